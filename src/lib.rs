//! The `kefu` binary's library: the command line ([`cli`]), starting the whole suite in one process
//! or one service alone ([`suite`]), and the benchmark client ([`bench`]).

pub mod bench;
pub mod cli;
pub mod suite;
