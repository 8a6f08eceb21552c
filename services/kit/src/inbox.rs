//! The idempotent inbox. A receiver records each event id in the same transaction as the event's
//! effect; a second delivery of the same event finds the id and changes nothing. Together with the
//! outbox this gives effectively-once handoffs: delivered at least once, applied at most once.

use std::future::Future;

use chrono::{DateTime, Utc};
use kefu_proto::events::v1::{DeliverRequest, DeliverResponse, Event, event_inbox_server};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, TransactionTrait, entity::prelude::*,
};
use tonic::{Request, Response, Status};

use crate::{clock::SharedClock, error, outbox::RelayWaker};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    pub source: String,
    pub receive_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Begins the transaction that applies `event`, with its id recorded; `None` if it was applied
/// before. The caller applies the effect in the transaction and commits.
pub async fn begin(
    db: &DatabaseConnection,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Option<DatabaseTransaction>, DbErr> {
    let tx = db.begin().await?;
    let row =
        ActiveModel { event_id: Set(event.id.clone()), source: Set(event.source.clone()), receive_time: Set(now) };
    match Entity::insert(row).exec_without_returning(&tx).await {
        Ok(_) => Ok(Some(tx)),
        Err(error) if error::is_unique_violation(&error) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// What a service does with the events it receives.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` within `tx`. An error rolls everything back and the sender retries later.
    fn apply<'a>(
        &'a self,
        tx: &'a DatabaseTransaction,
        event: &'a Event,
    ) -> impl Future<Output = Result<(), Status>> + Send + 'a;
}

/// The `kefu.events.v1.EventInbox` server of a service.
pub struct Inbox<H> {
    db: DatabaseConnection,
    clock: SharedClock,
    relay: RelayWaker,
    handler: H,
}

impl<H: EventHandler> Inbox<H> {
    pub fn new(db: DatabaseConnection, clock: SharedClock, relay: RelayWaker, handler: H) -> Self {
        Self { db, clock, relay, handler }
    }

    pub fn into_server(self) -> event_inbox_server::EventInboxServer<Self> {
        event_inbox_server::EventInboxServer::new(self)
    }
}

#[tonic::async_trait]
impl<H: EventHandler> event_inbox_server::EventInbox for Inbox<H> {
    async fn deliver(&self, request: Request<DeliverRequest>) -> Result<Response<DeliverResponse>, Status> {
        let event = request.into_inner().event.ok_or_else(|| error::invalid_field("event", "required"))?;
        if event.id.is_empty() || event.id.len() > 64 {
            return Err(error::invalid_field("event.id", "required, at most 64 characters"));
        }
        let Some(tx) =
            begin(&self.db, &event, self.clock.now()).await.map_err(|e| error::from_db("recording an event", e))?
        else {
            tracing::debug!(event_id = %event.id, source = %event.source, "event applied before; nothing to do");
            return Ok(Response::new(DeliverResponse { applied: false }));
        };
        self.handler.apply(&tx, &event).await?;
        tx.commit().await.map_err(|e| error::from_db("applying an event", e))?;
        // The effect may have written events of its own.
        self.relay.wake();
        tracing::debug!(event_id = %event.id, source = %event.source, "event applied");
        Ok(Response::new(DeliverResponse { applied: true }))
    }
}
