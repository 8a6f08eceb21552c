//! The `kefu` binary's library: the command line ([`cli`]), starting the whole suite in one process
//! or one service alone ([`suite`]), and the clients of a running gateway: [`token`] (administrators'
//! tokens), [`report`], [`bench`], sharing [`client`] (where the gateway is, and the token).

pub mod bench;
pub mod cli;
pub mod client;
pub mod report;
pub mod suite;
pub mod token;
