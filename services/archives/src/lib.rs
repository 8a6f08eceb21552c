//! Archives (档案室): keeps closed case files and customer files under access control
//! (`003 客户信息管理制度` 第18–27条, `003 客户分级`).
//!
//! The code map — the rules first, none of which does I/O:
//!
//! - [`policy`]: the rules with numbers — the two-month move, retention periods, how long an approval
//!   lasts, classification levels and clearances, the scoring sheet and its grade bands;
//! - [`custody`]: who keeps what — the archives' duties (classify, hold, destroy, the registers), the
//!   audit log for the top-secret cleared, classification up to one's clearance, customer files kept and
//!   graded by the service department and the archives — and where a file is (working documents for
//!   two months, then the archives); every refusal a [`custody::Refusal`];
//! - [`retention`]: when a file may go — never under legal hold, never before its period ends, on a
//!   proposal by another member of the archives, once;
//! - [`access`]: who must sign an access request and who may, whether an approval holds, what a read
//!   needs, who sees a request, masking;
//!
//! then what reads and writes:
//!
//! - [`filing`]: intake's `case_closed` sealed into an immutable case file with its SHA-256;
//! - [`audit`]: the hash-chained, append-only audit log, its seal and its verification, its head
//!   anchored in a file outside the database, and the operator's seal (`kefu audit seal`);
//! - [`store`]: every query, by room — `case_files`, `customers`, `access_requests`, `destruction`,
//!   `audit_log` — and the migrations (`schema`);
//! - [`api`]: `kefu.archives.v1.Archives`, the trait impl in `api/mod.rs` handing each RPC to its room —
//!   `case_files`, `destruction`, `access_requests`, `customers`, `audit`;
//! - [`error`]: failures → statuses.
//!
//! Invariants: a case file's content never changes after filing — destruction empties it and keeps
//! its hash; every read, approval, refusal, classification and destruction is audited in the same
//! transaction as itself (a refused read in one of its own); a file above the caller's clearance is
//! answered exactly as a file that does not exist.

pub mod access;
pub mod api;
pub mod audit;
pub mod custody;
pub mod error;
pub mod filing;
pub mod policy;
pub mod retention;
pub mod store;

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    inbox::{EventHandler, Inbox},
    migrate::Migration,
    server::{Served, ServiceSpec, StartError, run_service},
    time::to_micros,
};
use kefu_proto::{
    archives::v1::archives_server::ArchivesServer,
    events::v1::{Event, event::Payload},
};
use sea_orm::DatabaseTransaction;
use tokio::net::TcpListener;
use tonic::{Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Archives;

pub static MIGRATIONS: &[&Migration] =
    &[&store::schema::MIGRATION_FILES, &store::schema::MIGRATION_AUDIT, &store::schema::MIGRATION_PROPOSALS];

/// Serves archives on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec = ServiceSpec {
        name: NAME,
        migrations: MIGRATIONS,
        service_names: &[api::SERVICE_NAME, "kefu.events.v1.EventInbox"],
        retentions: &[],
    };
    let audit_key = audit::AuditKey::load(config).map_err(|message| StartError::Config { service: NAME, message })?;
    let anchor = audit::Anchor::new(audit::HeadFile::of(config));
    run_service(spec, config, clock, listener, shutdown, |context| {
        // The chain is checked whole at start — an unsealed or broken one is reported, never sealed
        // here (`kefu audit seal` is the operator's) — and its head anchored as entries are appended.
        let watch = {
            let (db, key, anchor) = (context.db.clone(), audit_key.clone(), anchor.clone());
            move |shutdown| anchor.watch(db, key, shutdown)
        };
        let events =
            ArchivesEvents { clock: context.clock.clone(), time_zone: context.time_zone, audit_key: audit_key.clone() };
        let inbox = Inbox::new(context, events);
        let api = api::ArchivesApi { context: context.clone(), audit_key, anchor };
        Served::new(Routes::new(ArchivesServer::new(api)).add_service(inbox.into_server())).until_shutdown(watch)
    })
    .await
}

/// What archives does with the events it receives: a closed case is filed.
struct ArchivesEvents {
    clock: SharedClock,
    time_zone: chrono_tz::Tz,
    audit_key: audit::AuditKey,
}

impl EventHandler for ArchivesEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        let now = to_micros(self.clock.now());
        for event in events {
            let Some(Payload::CaseClosed(closed)) = &event.payload else {
                // Refusing keeps the event in its sender's outbox, where an operator sees it,
                // rather than recording it as applied and losing it.
                return Err(Status::invalid_argument(format!(
                    "archives accepts only case_closed events, not {}'s",
                    event.source
                )));
            };
            let actor = event.caller.as_ref().map(|caller| caller.user.as_str()).unwrap_or(event.source.as_str());
            filing::file(tx, &self.audit_key, closed, actor, self.time_zone, now).await?;
        }
        Ok(())
    }
}
