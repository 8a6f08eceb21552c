//! The `kefu` binary's library: the command line ([`cli`]), starting the whole suite in one process
//! or one service alone ([`suite`]), an operator's seal of archives' audit chain ([`audit`]), the service center's web [`console`], and the clients of a running gateway: [`call`] (any method,
//! JSON in and out, from the compiled-in descriptors), [`complaint`] (the service center's daily
//! work as typed commands), [`claim`] (quotes and approvals), [`token`] (administrators' tokens), [`report`], [`bench`], sharing
//! [`client`] (where the gateway is, the token, and how a failure is told: message and exit code).

pub mod audit;
pub mod bench;
pub mod call;
pub mod claim;
pub mod cli;
pub mod client;
pub mod complaint;
pub mod console;
pub mod report;
pub mod suite;
pub mod token;
