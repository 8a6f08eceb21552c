//! The outbox relay: delivers each service's outbox over gRPC (`kefu.events.v1.EventInbox/Deliver`)
//! with retries and exponential backoff, and deletes a row once its receiver has it.
//!
//! Invariants:
//! - a row leaves the outbox only after the receiver acknowledged the event, so a crash at any
//!   point leaves it to be delivered again (at least once); the receiver's inbox makes the second
//!   delivery harmless (at most once);
//! - each process delivers a service's outbox with one worker, which claims everything committed
//!   while it was delivering: under load its claims, its delivery calls and the receivers'
//!   transactions grow larger rather than more numerous (four workers, each woken by a commit,
//!   claimed 11 rows at a time where one claims 26; docs/benchmarks.md, "sixth round");
//! - with several replicas on PostgreSQL, a relay claims rows with `FOR UPDATE SKIP LOCKED` and a
//!   short lease, so replicas share the work without delivering the same row at the same time; on
//!   SQLite, the one process that owns the file reads its rows without a lease;
//! - the relay wakes when its service commits an outbox row (and gathers for [`GATHER`] what the
//!   next commits add), and polls besides, to pick up rows left by a crash, by another replica, or
//!   due for a retry — every half second while it finds work, less often the longer it finds none
//!   (up to every [`IDLE_POLL_MAX`]), so an idle suite is idle;
//! - on PostgreSQL the relay vacuums the outbox after every [`VACUUM_AFTER`] rows it deleted: each
//!   row leaves two dead versions (its lease, its deletion), and a claim that walks over thousands
//!   of them costs milliseconds (see [`crate::upkeep`]).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{StreamExt, stream};
use kefu_proto::events::v1::{DeliverRequest, Event, event_inbox_client::EventInboxClient};
use prost::Message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, sea_query::Expr,
};
use sea_orm::{Statement, Value};

use crate::{
    caller::Caller,
    clock::SharedClock,
    config::ServiceName,
    outbox::{self, RelayWaker},
    shutdown::Shutdown,
    trace::TraceContext,
    trust::SignedChannel,
};

/// Rows one claim leases at most: the LIMIT in the claim statements below.
const CLAIM_LIMIT: usize = 128;
/// Events in one delivery call at most.
const EVENTS_PER_CALL: usize = 32;
/// Delivery calls one worker has in flight at once.
const IN_FLIGHT: usize = 4;
/// How long a claim keeps other replicas off a row.
const LEASE: chrono::Duration = chrono::Duration::seconds(15);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the relay waits, once a commit has woken it, before it claims: the commits of those
/// few milliseconds go out in the same claim, delivery call and receiver's transaction. Under load
/// the relay is busy and claims together what came meanwhile anyway; at one caller each complaint
/// would otherwise be claimed, delivered and accepted by itself, beside the next registration
/// (docs/benchmarks.md, "tenth round": one caller on SQLite p50 2.0 → 1.6 ms).
const GATHER: Duration = Duration::from_millis(3);
/// How soon the relay looks again, without being woken, after a round that found work.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long an idle relay waits at most before it looks again: each empty round doubles the wait
/// from [`POLL_INTERVAL`] up to this. A commit in this process wakes it at once (`RelayWaker`);
/// the polls are for rows due for a retry and rows left by a crash or another replica.
const IDLE_POLL_MAX: Duration = Duration::from_secs(5);
/// How often receivers that could not be reached are asked, by an empty delivery, whether they
/// answer again — so a backlog waiting out a long backoff goes as soon as its receiver is up.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Rows deleted from the outbox between two vacuums of it (PostgreSQL): the dead rows a claim may
/// meet stay under about twice this.
pub const VACUUM_AFTER: u64 = 1_000;

pub struct Relay {
    source: ServiceName,
    db: DatabaseConnection,
    clock: SharedClock,
    waker: RelayWaker,
    receivers: HashMap<String, EventInboxClient<SignedChannel>>,
    /// Receivers that could not be reached since they last answered: their rows may be waiting
    /// out a backoff. The first answer from one makes its waiting rows due at once, so a service
    /// that comes back gets its backlog now, not up to a minute later. At start every receiver is
    /// here: rows may have been backing off before this process began.
    unreachable: Mutex<HashSet<String>>,
    /// When unreachable receivers were last probed.
    last_probe: Mutex<Option<std::time::Instant>>,
    /// Rows deleted since the outbox was last vacuumed.
    deleted_since_vacuum: AtomicU64,
}

enum Outcome {
    Delivered(i64),
    Failed { seq: i64, attempts: i32, error: String },
}

impl Relay {
    /// A relay for `source`'s outbox that reaches each service over its channel.
    pub fn new(
        source: ServiceName,
        db: DatabaseConnection,
        clock: SharedClock,
        waker: RelayWaker,
        receivers: Vec<(ServiceName, SignedChannel)>,
    ) -> Self {
        let receivers: HashMap<String, EventInboxClient<SignedChannel>> = receivers
            .into_iter()
            .map(|(service, channel)| (service.as_str().to_owned(), EventInboxClient::new(channel)))
            .collect();
        let unreachable = Mutex::new(receivers.keys().cloned().collect());
        Relay {
            source,
            db,
            clock,
            waker,
            receivers,
            unreachable,
            last_probe: Mutex::new(None),
            deleted_since_vacuum: AtomicU64::new(0),
        }
    }

    /// Delivers until `shutdown` fires: what is due (claim after claim while claims come back
    /// full), then waits to be woken or for the next poll.
    pub async fn run(self, shutdown: Shutdown) {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            // A SQLite file has one process; a lease left by a crash of that process is void.
            if let Err(error) = self.release_all_leases().await {
                crate::error::log_db("outbox relay: releasing leases", &error);
            }
        }
        let mut wait = POLL_INTERVAL;
        loop {
            let mut found = false;
            loop {
                match self.deliver_batch().await {
                    Ok(0) => {
                        if let Err(error) = self.probe_unreachable().await {
                            crate::error::log_db("outbox relay (will retry)", &error);
                        }
                        break;
                    }
                    Ok(claimed) => {
                        found = true;
                        if claimed < CLAIM_LIMIT {
                            // That was all that was due. What was committed meanwhile has woken
                            // the relay, so it is claimed next, together.
                            break;
                        }
                    }
                    Err(error) => {
                        crate::error::log_db("outbox relay (will retry)", &error);
                        break;
                    }
                }
            }
            wait = next_wait(wait, found, self.has_unreachable());
            tokio::select! {
                _ = shutdown.clone().wait() => return,
                _ = self.waker.woken() => {
                    wait = POLL_INTERVAL;
                    tokio::time::sleep(GATHER).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Whether some receiver could not be reached since it last answered.
    fn has_unreachable(&self) -> bool {
        !self.unreachable.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty()
    }

    /// Claims one batch of due rows and delivers them; returns how many rows it claimed.
    pub async fn deliver_batch(&self) -> Result<usize, DbErr> {
        let mut rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // A claim returns rows in no particular order (RETURNING, equal due times): deliver them in
        // the order they were written, so a receiver applies one change's events as they happened.
        rows.sort_by_key(|row| row.seq);
        let claimed = rows.len();
        // One call per destination and chunk of events, a few calls at once.
        let mut calls: Vec<Vec<outbox::Model>> = Vec::new();
        for row in rows {
            match calls.iter_mut().find(|call| call[0].destination == row.destination && call.len() < EVENTS_PER_CALL) {
                Some(call) => call.push(row),
                None => calls.push(vec![row]),
            }
        }
        let results: Vec<(String, bool, Vec<Outcome>)> =
            stream::iter(calls).map(|call| self.deliver(call)).buffer_unordered(IN_FLIGHT).collect().await;
        let mut back = Vec::new();
        let mut outcomes = Vec::with_capacity(claimed);
        for (destination, reached, call_outcomes) in results {
            let mut unreachable = self.unreachable.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !reached {
                unreachable.insert(destination);
            } else if unreachable.remove(&destination) {
                back.push(destination);
            }
            outcomes.extend(call_outcomes);
        }
        let now = self.clock.now();
        let delivered: Vec<i64> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Delivered(seq) => Some(*seq),
                Outcome::Failed { .. } => None,
            })
            .collect();
        if !delivered.is_empty() {
            let deleted =
                outbox::Entity::delete_many().filter(outbox::Column::Seq.is_in(delivered)).exec(&self.db).await?;
            self.vacuum_now_and_then(deleted.rows_affected).await;
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
        self.due_again(back).await?;
        Ok(claimed)
    }

    /// Vacuums the outbox once [`VACUUM_AFTER`] rows have left it since the last time (PostgreSQL).
    async fn vacuum_now_and_then(&self, deleted: u64) {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return;
        }
        let due = |since: u64| since.saturating_add(deleted) >= VACUUM_AFTER;
        let before = self.deleted_since_vacuum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |since| {
            Some(if due(since) { 0 } else { since + deleted })
        });
        if !before.is_ok_and(due) {
            return;
        }
        if let Err(error) = crate::upkeep::vacuum(&self.db, "outbox").await {
            tracing::warn!(source = %self.source, %error, "cannot vacuum the outbox; will try again");
        }
    }

    /// Makes the waiting rows of receivers that answer again due now.
    async fn due_again(&self, back: Vec<String>) -> Result<(), DbErr> {
        if back.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let result = outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
            .filter(outbox::Column::Destination.is_in(back.clone()))
            .filter(outbox::Column::Attempts.gt(0))
            .filter(outbox::Column::NextAttemptAt.gt(now))
            .exec(&self.db)
            .await?;
        if result.rows_affected > 0 {
            tracing::info!(source = %self.source, receivers = ?back, due = result.rows_affected, "receiver answers again: its backlog is due now");
            self.waker.wake();
        }
        Ok(())
    }

    /// Asks the receivers that could not be reached, at most every [`PROBE_INTERVAL`], whether
    /// they answer again; those that do get their backlog now.
    async fn probe_unreachable(&self) -> Result<(), DbErr> {
        let waiting: Vec<String> = {
            let unreachable = self.unreachable.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if unreachable.is_empty() {
                return Ok(());
            }
            let mut last = self.last_probe.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|last| last.elapsed() < PROBE_INTERVAL) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
            unreachable.iter().cloned().collect()
        };
        let mut back = Vec::new();
        for destination in waiting {
            let Some(mut client) = self.receivers.get(&destination).cloned() else { continue };
            let mut request = tonic::Request::new(DeliverRequest { events: Vec::new() });
            request.set_timeout(DELIVERY_TIMEOUT);
            if client.deliver(request).await.is_ok() {
                self.unreachable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&destination);
                back.push(destination);
            }
        }
        self.due_again(back).await
    }

    /// Leases the oldest due rows in one statement. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets
    /// several replicas claim at once without waiting for or taking each other's rows; on SQLite
    /// the one worker reads them ([`CLAIM_SQLITE`]).
    async fn claim(&self) -> Result<Vec<outbox::Model>, DbErr> {
        let now = self.clock.now();
        let backend = self.db.get_database_backend();
        let (sql, values): (&str, Vec<Value>) = match backend {
            DbBackend::Postgres => (CLAIM_POSTGRES, vec![(now + LEASE).into(), now.into()]),
            _ => (CLAIM_SQLITE, vec![now.into()]),
        };
        let mut rows = outbox::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
            .all(&self.db)
            .await?;
        rows.sort_by_key(|row| row.seq);
        Ok(rows)
    }

    async fn release_all_leases(&self) -> Result<(), DbErr> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Delivers the events of one call, all to the same destination; also the destination and
    /// whether it answered.
    async fn deliver(&self, rows: Vec<outbox::Model>) -> (String, bool, Vec<Outcome>) {
        let failed =
            |row: &outbox::Model, error: String| Outcome::Failed { seq: row.seq, attempts: row.attempts, error };
        let destination = rows[0].destination.clone();
        let Some(mut client) = self.receivers.get(&destination).cloned() else {
            let outcomes = rows.iter().map(|row| failed(row, format!("no service named {destination:?}"))).collect();
            return (destination, false, outcomes);
        };
        let mut outcomes = Vec::new();
        let mut sent = Vec::new();
        for row in rows {
            match Event::decode(row.payload.as_slice()) {
                Ok(event) => sent.push((row, event)),
                Err(error) => outcomes.push(failed(&row, format!("undecodable event: {error}"))),
            }
        }
        if sent.is_empty() {
            return (destination, true, outcomes);
        }
        let events: Vec<Event> = sent.iter().map(|(_, event)| event.clone()).collect();
        let mut request = tonic::Request::new(DeliverRequest { events });
        request.set_timeout(DELIVERY_TIMEOUT);
        // The call runs within the first event's trace; every event carries its own besides.
        let first = &sent[0].1;
        let (span, carried) = self.sending(&destination, &sent);
        carried.write_metadata(request.metadata_mut());
        Caller::from_proto(first.caller.as_ref()).write_metadata(request.metadata_mut());
        let reached = match tracing::Instrument::instrument(client.deliver(request), span).await {
            Ok(response) => {
                let results = response.into_inner().outcomes;
                for (row, event) in &sent {
                    match results.iter().find(|result| result.event_id == event.id) {
                        Some(result) if result.error.is_empty() => outcomes.push(Outcome::Delivered(row.seq)),
                        Some(result) => outcomes.push(failed(row, result.error.clone())),
                        None => outcomes.push(failed(row, "the receiver did not answer for this event".into())),
                    }
                }
                true
            }
            Err(status) => {
                // While a receiver is away every round fails alike: say so now and then.
                if let Some(left_out) = crate::error::now_and_then(&format!("relay {} -> {destination}", self.source)) {
                    tracing::warn!(
                        source = %self.source,
                        %destination,
                        events = sent.len(),
                        code = ?status.code(),
                        message = status.message(),
                        failures_not_logged = left_out,
                        "event delivery failed; will retry"
                    );
                }
                let error = format!("{:?}: {}", status.code(), status.message());
                outcomes.extend(sent.iter().map(|(row, _)| failed(row, error.clone())));
                false
            }
        };
        let failures = outcomes.iter().filter(|outcome| matches!(outcome, Outcome::Failed { .. })).count();
        if failures > 0 {
            crate::metrics::relay_delivery_failed(self.source.as_str(), &destination, failures);
        }
        (destination, reached, outcomes)
    }

    /// Where traces are exported, sending events is a span of the first event's trace, linked to
    /// the trace of every other event it carries (one call carries the events of many complaints),
    /// and the call carries that span; elsewhere, the first event's context itself.
    fn sending(&self, destination: &str, sent: &[(outbox::Model, Event)]) -> (tracing::Span, TraceContext) {
        let context_of = |event: &Event| TraceContext {
            traceparent: event.traceparent.clone(),
            tracestate: event.tracestate.clone(),
        };
        let first = context_of(&sent[0].1);
        if !crate::trace::exporting() {
            return (tracing::Span::none(), first);
        }
        let span = tracing::info_span!(
            "kefu.relay send",
            otel.name = %format!("send {destination}"),
            otel.kind = "client",
            messaging.system = "kefu.outbox",
            messaging.operation.name = "send",
            messaging.operation.type = "send",
            messaging.destination.name = %destination,
            messaging.batch.message_count = sent.len(),
            kefu.part = self.source.as_str(),
        );
        let carried = crate::trace::span_with_parent(&span, &first);
        for (_, event) in &sent[1..] {
            crate::trace::link(&span, &context_of(event));
        }
        (span, carried)
    }
}

const CLAIM_POSTGRES: &str = "UPDATE outbox SET lease_until = $1 WHERE seq IN (\
    SELECT seq FROM outbox WHERE next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) \
    ORDER BY seq LIMIT 128 FOR UPDATE SKIP LOCKED) \
    RETURNING seq, event_id, destination, payload, attempts, next_attempt_at, lease_until, last_error, create_time";

/// On SQLite one worker of one process delivers, and finishes with every row it read (deleted or
/// put off) before it reads again: a claim needs no lease, so it writes nothing (and waits for no
/// fsync).
const CLAIM_SQLITE: &str = "SELECT seq, event_id, destination, payload, attempts, next_attempt_at, lease_until, \
    last_error, create_time FROM outbox WHERE next_attempt_at <= ? ORDER BY seq LIMIT 128";

/// 250 ms, doubling with each failed attempt, at most one minute.
/// How long a worker waits before it looks again: the base interval after a round that found work,
/// twice the last wait after an empty one, at most [`IDLE_POLL_MAX`] — and while a receiver is
/// unreachable, at most [`PROBE_INTERVAL`], so its backlog goes as soon as it answers.
fn next_wait(last: Duration, found: bool, unreachable: bool) -> Duration {
    let wait = if found { POLL_INTERVAL } else { (last * 2).min(IDLE_POLL_MAX) };
    if unreachable { wait.min(PROBE_INTERVAL) } else { wait }
}

fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    let millis = 250_i64.saturating_mul(1_i64 << exponent).min(60_000);
    chrono::Duration::milliseconds(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_relay_looks_less_often_but_never_lets_an_unreachable_receiver_wait() {
        let mut wait = POLL_INTERVAL;
        let mut waits = Vec::new();
        for _ in 0..6 {
            wait = next_wait(wait, false, false);
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(next_wait(IDLE_POLL_MAX, true, false), POLL_INTERVAL, "work found: look again soon");
        assert_eq!(next_wait(IDLE_POLL_MAX, false, true), PROBE_INTERVAL, "a receiver down is asked every second");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), chrono::Duration::milliseconds(250));
        assert_eq!(backoff(1), chrono::Duration::milliseconds(500));
        assert_eq!(backoff(3), chrono::Duration::seconds(2));
        assert_eq!(backoff(30), chrono::Duration::seconds(60));
    }
}
