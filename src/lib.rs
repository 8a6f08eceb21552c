//! The `kefu` binary's library: the command line ([`cli`]), starting the whole suite in one process
//! or one service alone ([`suite`]), the benchmark client ([`bench`]) and the report client
//! ([`report`]).

pub mod bench;
pub mod cli;
pub mod report;
pub mod suite;
