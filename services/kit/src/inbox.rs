//! The idempotent inbox. A receiver records each event id in the same transaction as the event's
//! effect; a second delivery of the same event finds the id and changes nothing. Together with the
//! outbox this gives effectively-once handoffs: delivered at least once, applied at most once.
//!
//! Only the service that emits an event may deliver it: the call's verified issuer (see
//! [`crate::trust`]) must be the event's `source`, and [`emitters`] must name that service for the
//! event's kind (only claims sends `claim_approved`, only intake sends `case_closed`, …). A delivery
//! that breaks this is refused whole, `PERMISSION_DENIED`, before anything is applied.
//!
//! Events arrive in batches. A batch is applied in one transaction (one commit for many events);
//! if any event of it fails, the batch is rolled back and its events are applied one by one, so
//! one bad event never holds back the others.

use std::{collections::HashSet, future::Future};

use chrono::{DateTime, Utc};
use kefu_proto::events::v1::{
    DeliverRequest, DeliverResponse, DeliveryOutcome, Event, event::Payload, event_inbox_server,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait,
    entity::prelude::*,
    sea_query::{Index, OnConflict, Query},
};
use tonic::{Request, Response, Status};

use crate::{
    clock::SharedClock,
    config::ServiceName,
    error,
    migrate::{Migration, SchemaStatement},
    outbox::RelayWaker,
    trust::Issuer,
};

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

/// The index upkeep prunes the inbox by ([`crate::upkeep::INBOX`]).
pub static MIGRATION_RECEIVE_TIME: Migration = Migration {
    name: "kit_0002_inbox_receive_time",
    statements: || {
        vec![SchemaStatement::Index(
            Index::create()
                .if_not_exists()
                .name("inbox_receive_time")
                .table(Entity)
                .col(Column::ReceiveTime)
                .to_owned(),
        )]
    },
};

/// Records `events` as received within `tx`, in one statement; for each, whether it is new.
/// An event received before (or twice in this batch) is not new: its effect is already committed,
/// or being committed by a concurrent delivery, and must not be applied again.
pub async fn record(tx: &impl ConnectionTrait, events: &[Event], now: DateTime<Utc>) -> Result<Vec<bool>, DbErr> {
    let values: Vec<Value> =
        events.iter().flat_map(|event| [event.id.clone().into(), event.source.clone().into(), now.into()]).collect();
    let backend = tx.get_database_backend();
    let insert = crate::statements::kept(backend, "inbox record", values, || {
        let mut insert = Query::insert();
        insert.into_table(Entity).columns([Column::EventId, Column::Source, Column::ReceiveTime]);
        for event in events {
            insert.values_panic([event.id.clone().into(), event.source.clone().into(), now.into()]);
        }
        insert.on_conflict(OnConflict::column(Column::EventId).do_nothing().to_owned()).returning_col(Column::EventId);
        backend.build(&insert)
    });
    let inserted: HashSet<String> = tx
        .query_all(insert)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "event_id"))
        .collect::<Result<_, _>>()?;
    let mut seen = HashSet::new();
    Ok(events.iter().map(|event| inserted.contains(&event.id) && seen.insert(event.id.as_str())).collect())
}

/// The services that emit events of this kind; an event from any other is refused.
pub fn emitters(payload: &Payload) -> &'static [ServiceName] {
    use ServiceName::*;
    match payload {
        Payload::CaseRouted(_) | Payload::CaseClosed(_) | Payload::CaseNotice(_) => &[Intake],
        Payload::CaseAccepted(_) | Payload::CaseResolved(_) => &[Inspection, Claims, Settlement],
        Payload::CaseEscalated(_) | Payload::CaseDeadlineChanged(_) | Payload::FineImposed(_) => &[Inspection],
        Payload::ClaimApproved(_) | Payload::InsurerRecoveryRecorded(_) => &[Claims],
        Payload::CustomerGraded(_) => &[Archives],
    }
}

/// Why `issuer` may not deliver `event`, if it may not.
fn refusal(issuer: &str, index: usize, event: &Event) -> Option<String> {
    if event.source != issuer {
        return Some(format!("events[{index}] names {:?} as its source, but {issuer} sent it", event.source));
    }
    let Some(payload) = &event.payload else {
        return Some(format!("events[{index}] carries no payload"));
    };
    if !emitters(payload).iter().any(|emitter| emitter.as_str() == issuer) {
        return Some(format!("events[{index}] is of a kind {issuer} does not emit"));
    }
    None
}

/// What a service does with the events it receives.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `events` (new ones, in the order sent) within `tx`. An error rolls the transaction
    /// back; the inbox then applies the events one at a time, and the sender retries those that fail.
    fn apply<'a>(
        &'a self,
        tx: &'a DatabaseTransaction,
        events: &'a [&'a Event],
    ) -> impl Future<Output = Result<(), Status>> + Send + 'a;
}

/// The `kefu.events.v1.EventInbox` server of a service.
pub struct Inbox<H> {
    part: &'static str,
    db: DatabaseConnection,
    clock: SharedClock,
    relay: RelayWaker,
    handler: H,
}

impl<H: EventHandler> Inbox<H> {
    /// The inbox of the service `context` describes.
    pub fn new(context: &crate::server::ServiceContext, handler: H) -> Self {
        let (db, clock, relay) = (context.db.clone(), context.clock.clone(), context.relay.clone());
        Self { part: context.name.as_str(), db, clock, relay, handler }
    }

    pub fn into_server(self) -> event_inbox_server::EventInboxServer<Self> {
        event_inbox_server::EventInboxServer::new(self)
    }

    /// Applies every event in one transaction; which of them were new.
    async fn apply_all(&self, events: &[Event]) -> Result<Vec<bool>, Status> {
        let now = self.clock.now();
        let tx = self.db.begin().await.map_err(|e| error::from_db("applying events", e))?;
        let applied = record(&tx, events, now).await.map_err(|e| error::from_db("recording events", e))?;
        let new: Vec<&Event> = events.iter().zip(&applied).filter(|(_, new)| **new).map(|(event, _)| event).collect();
        if !new.is_empty() {
            self.handler.apply(&tx, &new).await?;
        }
        tx.commit().await.map_err(|e| error::from_db("applying events", e))?;
        Ok(applied)
    }
}

#[tonic::async_trait]
impl<H: EventHandler> event_inbox_server::EventInbox for Inbox<H> {
    async fn deliver(&self, request: Request<DeliverRequest>) -> Result<Response<DeliverResponse>, Status> {
        let issuer = request.extensions().get::<Issuer>().map(|issuer| issuer.0.clone());
        let mut events = request.into_inner().events;
        let Some(issuer) = issuer else {
            return Err(Status::unauthenticated("events are accepted only from kefu's services, signed"));
        };
        if let Some(why) = events.iter().enumerate().find_map(|(index, event)| refusal(&issuer, index, event)) {
            tracing::warn!(%issuer, reason = %why, "event delivery refused");
            return Err(Status::permission_denied(format!("delivery refused: {why}")));
        }
        if events.is_empty() {
            return Ok(Response::new(DeliverResponse { outcomes: Vec::new() }));
        }
        if events.len() > MAX_BATCH {
            return Err(error::invalid_field("events", format!("at most {MAX_BATCH} events per delivery")));
        }
        if let Some(index) = events.iter().position(|event| event.id.is_empty() || event.id.len() > 64) {
            return Err(error::invalid_field(&format!("events[{index}].id"), "required, at most 64 characters"));
        }
        // Where traces are exported, applying each event is a consumer span in the event's own
        // trace, and what the event causes (its effects' events) carries that span.
        // The batch's statements are spans of the first event's application.
        let applying: Vec<tracing::Span> = if crate::trace::exporting() {
            events.iter_mut().map(|event| applying(self.part, event)).collect()
        } else {
            Vec::new()
        };
        let first = applying.first().cloned().unwrap_or_else(tracing::Span::none);
        let outcomes = match tracing::Instrument::instrument(self.apply_all(&events), first).await {
            Ok(applied) => events
                .iter()
                .zip(applied)
                .map(|(event, applied)| DeliveryOutcome { event_id: event.id.clone(), applied, error: String::new() })
                .collect(),
            // The database is away: each event alone would wait as long again. The sender retries.
            // (Logged where it was met, now and then.)
            Err(status) if status.code() == tonic::Code::Unavailable => events
                .iter()
                .map(|event| DeliveryOutcome {
                    event_id: event.id.clone(),
                    applied: false,
                    error: format!("{:?}: {}", status.code(), status.message()),
                })
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
        let applied = outcomes.iter().filter(|outcome| outcome.applied).count();
        crate::metrics::inbox_applied(self.part, &issuer, applied);
        // The effects may have written events of their own.
        self.relay.wake();
        Ok(Response::new(DeliverResponse { outcomes }))
    }
}

/// The span of applying `event` at `part`, a child of the event's trace; the event now carries it.
fn applying(part: &'static str, event: &mut Event) -> tracing::Span {
    let span = tracing::info_span!(
        "inbox.apply",
        otel.name = "kefu.inbox apply",
        otel.kind = "consumer",
        messaging.system = "kefu.outbox",
        kefu.part = part,
        kefu.event.source = %event.source,
    );
    let carried =
        crate::trace::TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() };
    let own = crate::trace::span_with_parent(&span, &carried);
    event.traceparent = own.traceparent;
    event.tracestate = own.tracestate;
    span
}

fn outcome_error(event: &Event, status: &Status) -> DeliveryOutcome {
    tracing::warn!(event_id = %event.id, source = %event.source, code = ?status.code(), message = status.message(), "event not applied");
    DeliveryOutcome {
        event_id: event.id.clone(),
        applied: false,
        error: format!("{:?}: {}", status.code(), status.message()),
    }
}
