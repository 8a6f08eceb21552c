//! Archives (档案室): keeps closed case files and customer files under access control.
//!
//! Today archives runs as a service of its own — its database, migrations, health, reflection and
//! event inbox — and owns no complaints (the routing policy refuses to make it an owner). Case files
//! arrive when intake closes cases, which a later issue builds.

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    inbox::{EventHandler, Inbox},
    server::{ServiceSpec, StartError, run_service},
};
use kefu_proto::events::v1::Event;
use sea_orm::DatabaseTransaction;
use tokio::net::TcpListener;
use tonic::{Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Archives;

/// Serves archives on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec = ServiceSpec { name: NAME, migrations: &[], service_names: &["kefu.events.v1.EventInbox"] };
    run_service(spec, config, clock, listener, shutdown, |context| {
        Routes::new(
            Inbox::new(context.db.clone(), context.clock.clone(), context.relay.clone(), ArchivesEvents).into_server(),
        )
    })
    .await
}

struct ArchivesEvents;

impl EventHandler for ArchivesEvents {
    async fn apply(&self, _tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        // Refusing keeps the events in their senders' outboxes, where an operator sees them,
        // rather than recording them as applied and losing them.
        let source = events.first().map(|event| event.source.as_str()).unwrap_or_default();
        Err(Status::failed_precondition(format!("archives handles no events from {source} yet")))
    }
}
