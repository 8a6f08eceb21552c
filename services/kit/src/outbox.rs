//! The transactional outbox. A service that changes its state and must tell another service writes
//! the event here **in the same transaction** as the change: either both are committed or neither
//! is. The [`relay`](crate::relay) delivers what is here and deletes it once the receiver has it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_proto::events::v1::{Event, event::Payload};
use prost::Message;
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait,
    entity::prelude::*,
    sea_query::{ColumnDef, Index, Table},
};
use tokio::sync::Notify;

use crate::{
    caller::Caller,
    config::ServiceName,
    migrate::{Migration, SchemaStatement},
    time::to_timestamp,
    trace::TraceContext,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The event's id, drawn when it is written. Not unique in the table (on PostgreSQL; see
    /// [`MIGRATION_EVENT_ID_NOT_UNIQUE`]): the receiver's inbox is what deduplicates by it.
    pub event_id: String,
    /// The receiving service's name.
    pub destination: String,
    /// The encoded `kefu.events.v1.Event`.
    pub payload: Vec<u8>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// While set and in the future, one relay has claimed the row.
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "kit_0001_outbox_inbox",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Column::EventId).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Column::Destination).string_len(32).not_null())
                    .col(ColumnDef::new(Column::Payload).binary().not_null())
                    .col(ColumnDef::new(Column::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Column::NextAttemptAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::LeaseUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Column::LastError).text().null())
                    .col(ColumnDef::new(Column::CreateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create().if_not_exists().name("outbox_due").table(Entity).col(Column::NextAttemptAt).to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(crate::inbox::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(crate::inbox::Column::EventId).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(crate::inbox::Column::Source).string_len(32).not_null())
                    .col(ColumnDef::new(crate::inbox::Column::ReceiveTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
        ]
    },
};

/// The unique index on `event_id` served nothing — an event's id is drawn afresh when it is
/// written, and the receiver's inbox deduplicates by it — yet every row written to the outbox was
/// inserted into it, and every vacuum of the outbox scanned it whole. On PostgreSQL the relay
/// vacuums after every [`VACUUM_AFTER`](crate::relay::VACUUM_AFTER) deliveries; a vacuum of a
/// thousand delivered rows took 9.9 ms with that index and 6.9 ms without (docs/benchmarks.md,
/// "Issue 20, fourth round"). SQLite cannot drop a column's UNIQUE without rebuilding the table,
/// and is never vacuumed: it keeps it.
pub static MIGRATION_EVENT_ID_NOT_UNIQUE: Migration = Migration {
    name: "kit_0003_outbox_event_id_not_unique",
    statements: || {
        vec![SchemaStatement::PostgresOnly("ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_event_id_key")]
    },
};

/// A vacuum of the outbox keeps its empty pages at the end rather than giving them back to the file
/// system. Giving them back needs the table's exclusive lock, which a vacuum asks for every 50 ms
/// while registrations keep inserting at that end: the relay's vacuums, which should take a few
/// milliseconds, took 100–300 ms (19 of them over 40 ms, 2.0 s in all, in a 15 s run at 64 callers;
/// none over 40 ms with this; docs/benchmarks.md, "Issue 20, fourth round"), holding up the relay
/// worker that ran them. A queue fills those pages again within the second. PostgreSQL only.
pub static MIGRATION_VACUUM_KEEPS_PAGES: Migration = Migration {
    name: "kit_0004_outbox_vacuum_keeps_its_pages",
    statements: || vec![SchemaStatement::PostgresOnly("ALTER TABLE outbox SET (vacuum_truncate = false)")],
};

/// Wakes the relay after an outbox write has been committed, so handoffs go out at once rather
/// than at the next poll.
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.0.notified().await;
    }
}

/// A new event from `source`, caused by `caller` within the trace `trace`.
pub fn new_event(
    source: ServiceName,
    now: DateTime<Utc>,
    trace: &TraceContext,
    caller: &Caller,
    payload: Payload,
) -> Event {
    // Where traces are exported, writing the event is a producer span, and the event carries it:
    // its delivery and its application are that span's children.
    let written = crate::trace::exporting().then(|| {
        let span = tracing::info_span!(
            "outbox.write",
            otel.name = "kefu.outbox write",
            otel.kind = "producer",
            messaging.system = "kefu.outbox",
            kefu.part = source.as_str(),
        );
        crate::trace::span_with_parent(&span, trace)
    });
    let trace = written.as_ref().unwrap_or(trace);
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        source: source.as_str().into(),
        create_time: Some(to_timestamp(now)),
        traceparent: trace.traceparent.clone(),
        tracestate: trace.tracestate.clone(),
        caller: Some(caller.to_proto()),
        payload: Some(payload),
    }
}

/// Writes `event` for `destination` within the caller's transaction `tx`.
pub async fn enqueue(
    tx: &impl ConnectionTrait,
    destination: ServiceName,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    enqueue_many(tx, [(destination, event, now)]).await
}

/// Writes several events, each for its destination, within the caller's transaction `tx`.
pub async fn enqueue_many<'a>(
    tx: &impl ConnectionTrait,
    events: impl IntoIterator<Item = (ServiceName, &'a Event, DateTime<Utc>)>,
) -> Result<(), DbErr> {
    let rows: Vec<ActiveModel> = events
        .into_iter()
        .map(|(destination, event, now)| ActiveModel {
            event_id: Set(event.id.clone()),
            destination: Set(destination.as_str().into()),
            payload: Set(event.encode_to_vec()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            last_error: Set(None),
            create_time: Set(now),
            ..Default::default()
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    crate::statements::insert_many(tx, rows).await?;
    Ok(())
}

/// The events waiting in the outbox, per destination: how many, and how long the oldest has waited
/// at `now` (for the metrics).
pub async fn backlog(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<(String, u64, std::time::Duration)>, DbErr> {
    use sea_orm::{QuerySelect, sea_query::Expr};
    let rows: Vec<(String, i64, DateTime<Utc>)> = Entity::find()
        .select_only()
        .column(Column::Destination)
        .column_as(Expr::col(Column::Seq).count(), "events")
        .column_as(Expr::col(Column::CreateTime).min(), "oldest")
        .group_by(Column::Destination)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(destination, events, oldest)| {
            let waited = (now - oldest).to_std().unwrap_or_default();
            (destination, u64::try_from(events).unwrap_or(0), waited)
        })
        .collect())
}
