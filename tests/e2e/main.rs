//! End-to-end tests: the suite started as users start it and driven through the gateway.
//!
//! - `flow`: the whole suite in this process (each service still its own gRPC server on a loopback
//!   port with its own database), on SQLite and on PostgreSQL — every test runs on both;
//! - `claims`: a cargo-damage claim from facts to payout, its errors, the monthly report;
//! - `inspection`: a staff complaint from written report to fine and resolution, the second
//!   complaint as an incident, recurrences, chasing overdue cases, audits;
//! - `settlement`: a waybill's cash on delivery from collection to a late remittance filed as a
//!   complaint and resolved by the remittance; change requests; seizures written off after six
//!   months; reversals, statements, the month's summary and reconciliation;
//! - `archives`: a closed case sealed into a case file; reads under approved, expiring access
//!   requests; clearance that hides classified files; retention, legal hold and destruction;
//!   customer files and grades; the audit log's hash chain catching an altered or removed entry;
//! - `webhooks`: case events posted to branch-office HTTP servers, signed, retried, recorded;
//! - `access`: the authorization matrix, every RPC × thirteen principals against the access table;
//! - `identity`: tokens, single sign-on, branch isolation, refusals;
//! - `events`: the event inbox of a service, spoken to directly as a sender's relay does, and the
//!   service ports refusing whatever kefu did not sign;
//! - `upkeep`: pruning what grows with traffic, and vacuuming without autovacuum;
//! - `processes`: the real `kefu` binary as separate processes: `kill -9`, restart, and a bad
//!   routing policy;
//! - `operations`: what an operator relies on: the drain on SIGTERM, and PostgreSQL going away
//!   under load (a private PostgreSQL server the test stops and starts), backups, metrics;
//! - `cli`: the staff's command line (`kefu complaint`, `kefu request`, `kefu call`) against a
//!   running suite, its output formats, and each failure's message and exit code;
//! - `traces`: one complaint's spans received by an OTLP trace service the test runs, from the
//!   gateway, intake and inspection as separate processes, and JSON log lines naming them.
//!
//! PostgreSQL tests create a fresh database per test on `KEFU_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail loudly if it cannot be reached.

mod access;
mod archives;
mod claims;
mod cli;
mod edges;
mod events;
mod flow;
mod identity;
mod inspection;
mod intake;
mod operations;
mod processes;
mod registration_batches;
mod settlement;
mod statements;
mod support;
mod traces;
mod upkeep;
mod webhooks;
