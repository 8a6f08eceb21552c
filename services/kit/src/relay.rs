//! The outbox relay: delivers each service's outbox over gRPC (`kefu.events.v1.EventInbox/Deliver`)
//! with retries and exponential backoff, and deletes a row once its receiver has it.
//!
//! Invariants:
//! - a row leaves the outbox only after the receiver acknowledged the event, so a crash at any
//!   point leaves it to be delivered again (at least once); the receiver's inbox makes the second
//!   delivery harmless (at most once);
//! - with several replicas on PostgreSQL, a relay claims rows with `FOR UPDATE SKIP LOCKED` and a
//!   short lease, so replicas share the work without delivering the same row at the same time;
//! - the relay wakes when its service commits an outbox row, and polls besides, to pick up rows
//!   left by a crash, by another replica, or due for a retry.

use std::{collections::HashMap, time::Duration};

use futures_util::{StreamExt, stream};
use kefu_proto::events::v1::{DeliverRequest, Event, event_inbox_client::EventInboxClient};
use prost::Message;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType},
};
use tonic::transport::Channel;

use crate::{
    caller::Caller,
    clock::SharedClock,
    config::{Config, ServiceName},
    outbox::{self, RelayWaker},
    shutdown::Shutdown,
    trace::TraceContext,
};

/// Rows claimed at once.
const BATCH: u64 = 128;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 32;
/// How long a claim keeps other replicas off a row.
const LEASE: chrono::Duration = chrono::Duration::seconds(15);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the relay looks without being woken.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

pub struct Relay {
    source: ServiceName,
    db: DatabaseConnection,
    clock: SharedClock,
    waker: RelayWaker,
    receivers: HashMap<String, EventInboxClient<Channel>>,
}

enum Outcome {
    Delivered(i64),
    Failed { seq: i64, attempts: i32, error: String },
}

impl Relay {
    /// A relay for `source`'s outbox that reaches the other services where `config` says.
    pub fn new(
        source: ServiceName,
        db: DatabaseConnection,
        clock: SharedClock,
        waker: RelayWaker,
        config: &Config,
    ) -> Result<Self, String> {
        let mut receivers = HashMap::new();
        for service in ServiceName::ALL {
            let url = &config.endpoint(service).url;
            let channel = Channel::from_shared(url.clone())
                .map_err(|error| format!("KEFU_{}_URL={url:?} is not a URL: {error}", service.as_str().to_uppercase()))?
                .connect_timeout(Duration::from_secs(2))
                .connect_lazy();
            receivers.insert(service.as_str().to_owned(), EventInboxClient::new(channel));
        }
        Ok(Relay { source, db, clock, waker, receivers })
    }

    /// Delivers until `shutdown` fires.
    pub async fn run(self, shutdown: Shutdown) {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            // A SQLite file has one process; a lease left by a crash of that process is void.
            if let Err(error) = self.release_all_leases().await {
                tracing::error!(%error, "cannot release outbox leases");
            }
        }
        loop {
            loop {
                match self.deliver_batch().await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::error!(source = %self.source, %error, "outbox relay: database error; will retry");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.clone().wait() => return,
                _ = self.waker.woken() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Claims one batch of due rows and delivers them; returns how many rows it claimed.
    pub async fn deliver_batch(&self) -> Result<usize, DbErr> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed = rows.len();
        let outcomes: Vec<Outcome> =
            stream::iter(rows).map(|row| self.deliver(row)).buffer_unordered(IN_FLIGHT).collect().await;
        let now = self.clock.now();
        let delivered: Vec<i64> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Delivered(seq) => Some(*seq),
                Outcome::Failed { .. } => None,
            })
            .collect();
        if !delivered.is_empty() {
            outbox::Entity::delete_many().filter(outbox::Column::Seq.is_in(delivered)).exec(&self.db).await?;
        }
        for outcome in outcomes {
            if let Outcome::Failed { seq, attempts, error } = outcome {
                let attempts = attempts.saturating_add(1);
                outbox::Entity::update_many()
                    .col_expr(outbox::Column::Attempts, Expr::value(attempts))
                    .col_expr(outbox::Column::NextAttemptAt, Expr::value(now + backoff(attempts)))
                    .col_expr(outbox::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
                    .col_expr(outbox::Column::LastError, Expr::value(error))
                    .filter(outbox::Column::Seq.eq(seq))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(claimed)
    }

    async fn claim(&self) -> Result<Vec<outbox::Model>, DbErr> {
        let now = self.clock.now();
        let tx = self.db.begin().await?;
        let mut due = outbox::Entity::find()
            .filter(outbox::Column::NextAttemptAt.lte(now))
            .filter(Condition::any().add(outbox::Column::LeaseUntil.is_null()).add(outbox::Column::LeaseUntil.lt(now)))
            .order_by_asc(outbox::Column::Seq)
            .limit(BATCH);
        if self.db.get_database_backend() == DbBackend::Postgres {
            due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = due.all(&tx).await?;
        if !rows.is_empty() {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::LeaseUntil, Expr::value(now + LEASE))
                .filter(outbox::Column::Seq.is_in(rows.iter().map(|row| row.seq)))
                .exec(&tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    async fn release_all_leases(&self) -> Result<(), DbErr> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn deliver(&self, row: outbox::Model) -> Outcome {
        let failed = |error: String| Outcome::Failed { seq: row.seq, attempts: row.attempts, error };
        let Some(mut client) = self.receivers.get(&row.destination).cloned() else {
            return failed(format!("no service named {:?}", row.destination));
        };
        let event = match Event::decode(row.payload.as_slice()) {
            Ok(event) => event,
            Err(error) => return failed(format!("undecodable event: {error}")),
        };
        let mut request = tonic::Request::new(DeliverRequest { event: Some(event.clone()) });
        request.set_timeout(DELIVERY_TIMEOUT);
        let trace = TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() };
        trace.child().write_metadata(request.metadata_mut());
        Caller::from_proto(event.caller.as_ref()).write_metadata(request.metadata_mut());
        match client.deliver(request).await {
            Ok(_) => Outcome::Delivered(row.seq),
            Err(status) => {
                tracing::warn!(
                    source = %self.source,
                    destination = %row.destination,
                    event_id = %event.id,
                    attempts = row.attempts + 1,
                    code = ?status.code(),
                    message = status.message(),
                    "event delivery failed; will retry"
                );
                failed(format!("{:?}: {}", status.code(), status.message()))
            }
        }
    }
}

/// 250 ms, doubling with each failed attempt, at most one minute.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    let millis = 250_i64.saturating_mul(1_i64 << exponent).min(60_000);
    chrono::Duration::milliseconds(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), chrono::Duration::milliseconds(250));
        assert_eq!(backoff(1), chrono::Duration::milliseconds(500));
        assert_eq!(backoff(3), chrono::Duration::seconds(2));
        assert_eq!(backoff(30), chrono::Duration::seconds(60));
    }
}
