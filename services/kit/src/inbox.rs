//! The idempotent inbox. A receiver records each event id in the same transaction as the event's
//! effect; a second delivery of the same event finds the id and changes nothing. Together with the
//! outbox this gives effectively-once handoffs: delivered at least once, applied at most once.
//!
//! Events arrive in batches. A batch is applied in one transaction (one commit for many events);
//! if any event of it fails, the batch is rolled back and its events are applied one by one, so
//! one bad event never holds back the others.

use std::future::Future;

use chrono::{DateTime, Utc};
use kefu_proto::events::v1::{DeliverRequest, DeliverResponse, DeliveryOutcome, Event, event_inbox_server};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, TransactionTrait,
    TryInsertResult, entity::prelude::*, sea_query::OnConflict,
};
use tonic::{Request, Response, Status};

use crate::{clock::SharedClock, error, outbox::RelayWaker};

/// Events in one delivery at most.
pub const MAX_BATCH: usize = 256;

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

/// Records `event` as received within `tx`; false if it was received before (then its effect is
/// already committed, or being committed by a concurrent delivery, and must not be applied again).
pub async fn record(tx: &impl ConnectionTrait, event: &Event, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let row =
        ActiveModel { event_id: Set(event.id.clone()), source: Set(event.source.clone()), receive_time: Set(now) };
    let inserted = Entity::insert(row)
        .on_conflict(OnConflict::column(Column::EventId).do_nothing().to_owned())
        .do_nothing()
        .exec_without_returning(tx)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0))
}

/// What a service does with the events it receives.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event` within `tx`. An error rolls the transaction back and the sender retries later.
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

    /// Applies every event in one transaction; which of them were new.
    async fn apply_all(&self, events: &[Event]) -> Result<Vec<bool>, Status> {
        let now = self.clock.now();
        let tx = self.db.begin().await.map_err(|e| error::from_db("applying events", e))?;
        let mut applied = Vec::with_capacity(events.len());
        for event in events {
            let new = record(&tx, event, now).await.map_err(|e| error::from_db("recording an event", e))?;
            if new {
                self.handler.apply(&tx, event).await?;
            }
            applied.push(new);
        }
        tx.commit().await.map_err(|e| error::from_db("applying events", e))?;
        Ok(applied)
    }
}

#[tonic::async_trait]
impl<H: EventHandler> event_inbox_server::EventInbox for Inbox<H> {
    async fn deliver(&self, request: Request<DeliverRequest>) -> Result<Response<DeliverResponse>, Status> {
        let events = request.into_inner().events;
        if events.is_empty() {
            return Ok(Response::new(DeliverResponse { outcomes: Vec::new() }));
        }
        if events.len() > MAX_BATCH {
            return Err(error::invalid_field("events", format!("at most {MAX_BATCH} events per delivery")));
        }
        if let Some(index) = events.iter().position(|event| event.id.is_empty() || event.id.len() > 64) {
            return Err(error::invalid_field(&format!("events[{index}].id"), "required, at most 64 characters"));
        }
        let outcomes = match self.apply_all(&events).await {
            Ok(applied) => events
                .iter()
                .zip(applied)
                .map(|(event, applied)| DeliveryOutcome { event_id: event.id.clone(), applied, error: String::new() })
                .collect(),
            Err(_) if events.len() > 1 => {
                // Find the culprit: each event on its own.
                let mut outcomes = Vec::with_capacity(events.len());
                for event in &events {
                    let outcome = match self.apply_all(std::slice::from_ref(event)).await {
                        Ok(applied) => {
                            DeliveryOutcome { event_id: event.id.clone(), applied: applied[0], error: String::new() }
                        }
                        Err(status) => outcome_error(event, &status),
                    };
                    outcomes.push(outcome);
                }
                outcomes
            }
            Err(status) => vec![outcome_error(&events[0], &status)],
        };
        // The effects may have written events of their own.
        self.relay.wake();
        Ok(Response::new(DeliverResponse { outcomes }))
    }
}

fn outcome_error(event: &Event, status: &Status) -> DeliveryOutcome {
    tracing::warn!(event_id = %event.id, source = %event.source, code = ?status.code(), message = status.message(), "event not applied");
    DeliveryOutcome {
        event_id: event.id.clone(),
        applied: false,
        error: format!("{:?}: {}", status.code(), status.message()),
    }
}
