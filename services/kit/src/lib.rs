//! The runtime every kefu service shares.
//!
//! Each service crate (`intake`, `inspection`, `claims`, `settlement`, `archives`) holds its own
//! API, rules and tables; what is the same for all of them lives here, once:
//!
//! - [`config`]: the one typed configuration, read from `KEFU_*` environment variables;
//! - [`clock`]: the injected clock and the company's time zone;
//! - [`db`] and [`migrate`]: connecting to SQLite or PostgreSQL and running migrations;
//! - [`statements`]: the complaint path's inserts and look-ups, their SQL written once per shape;
//! - [`outbox`], [`relay`] and [`inbox`]: events between services — written in the same
//!   transaction as the change that caused them, delivered with retries, applied at most once;
//! - [`backup`]: a consistent copy of a running suite's SQLite databases (`kefu backup`);
//! - [`upkeep`]: pruning what grows with traffic, and vacuuming and analyzing on PostgreSQL without
//!   counting on autovacuum;
//! - [`routed`]: the record an owning department keeps of a complaint routed to it;
//! - [`history`]: the steps taken on a case — who, when, what — and the requests that took them;
//! - [`caller`] and [`trace`]: who is calling, and the W3C trace context, carried on every hop;
//! - [`trust`]: the signed assertion that proves a call comes from kefu's gateway or a service;
//! - [`money`]: the bound on every amount, in fen, and how an amount is put into words;
//! - [`names`]: resource names such as `complaints/{case_number}`, taken apart in one place;
//! - [`error`]: field violations and the mapping of internal failures to `tonic::Status`;
//! - [`keys`]: keys kept out of the database (the audit key, the webhook key);
//! - [`metrics`]: Prometheus metrics on `KEFU_METRICS_ADDR`;
//! - [`observe`]: every call's span and metrics, in one layer of the server;
//! - [`telemetry`]: logs (text or JSON) and the OpenTelemetry trace exporter;
//! - [`limits`]: what every server bounds (connections, handshakes, calls, time), in one table;
//! - [`server`]: one gRPC server with health, reflection and graceful shutdown (draining first);
//! - [`readiness`]: what health reports — not while draining, not while the database is away;
//! - [`resend`]: a call its connection refused unsent (a server retiring the connection) is sent again;
//! - [`paging`]: AIP-158 page tokens;
//! - [`policy_file`]: reading the policy files operators may replace;
//! - [`report`]: the calendar month and CSV fields of the monthly reports;
//! - [`write`]: the one write path — a command applied to an aggregate at a version, saved with
//!   its history and its events in one transaction, once per request id.

pub mod backup;
pub mod caller;
pub mod case_number;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod history;
pub mod inbox;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod money;
pub mod names;
pub mod observe;
pub mod outbox;
pub mod paging;
pub mod personal;
pub mod policy_file;
pub mod readiness;
pub mod relay;
pub mod report;
pub mod resend;
pub mod routed;
pub mod server;
pub mod shutdown;
pub mod statements;
pub mod telemetry;
pub mod text;
pub mod time;
pub mod trace;
pub mod trust;
pub mod upkeep;
pub mod write;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use shutdown::Shutdown;
