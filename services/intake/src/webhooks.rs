//! Webhooks for branch-office systems: a branch registers an endpoint and receives its cases'
//! events — registered, accepted, resolved, reopened, overdue — as signed JSON POSTs.
//!
//! - [`store`]: the endpoints, the deliveries and their attempts;
//! - [`sender`]: the background sender that posts due deliveries and records every attempt;
//! - [`api`]: the RPCs that register, list and disable endpoints and show and redeliver deliveries.
//!
//! Invariants:
//! - A delivery is written in the transaction that changes its case ([`enqueue`]), so an event
//!   that happened is delivered at least once, across crashes and restarts; an event that was
//!   rolled back is never sent.
//! - A delivery's id and body are fixed when it is written: every attempt sends the same bytes
//!   with the same `Kefu-Delivery` id and the same signature, so a receiver deduplicates by the id.
//! - Intake's requests never wait on an endpoint: deliveries are posted by the sender, after the
//!   commit, each endpoint in its own task with a timeout, so a dead endpoint delays only itself.
//! - A delivery written or sent again wakes the sender ([`Wake`]), which then looks within
//!   [`sender::POLL_EVERY`]; with nothing written it looks less and less often, up to every
//!   [`sender::IDLE_POLL_MAX`] (for retries falling due, and deliveries another replica wrote), so
//!   an idle intake is idle.
//! - The body carries no personal data (no customer name or phone); a branch reads the case by
//!   its name through the API when it needs more.

pub mod address;

/// What the operator decides about webhooks: where they may go, how many a branch may have.
#[derive(Clone)]
pub struct Rules {
    pub allowed: std::sync::Arc<address::Allowed>,
    pub max_per_branch: usize,
    /// The key endpoints' secrets are sealed with in the database.
    pub secrets: sealed::SecretBox,
}

/// Wakes the sender: deliveries were written (or a delivery sent again). Every part of intake that
/// writes deliveries holds a clone of the one its sender waits on.
#[derive(Clone, Default)]
pub struct Wake(std::sync::Arc<tokio::sync::Notify>);

impl Wake {
    /// Deliveries may be due (written, sent again, or waiting behind an endpoint's task that has
    /// ended): the sender looks within [`sender::POLL_EVERY`]. [`enqueue`] calls it in the writing
    /// transaction, before its commit: the sender's look comes after the commit (or, should the
    /// commit take longer, its next one does).
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

pub mod api;
pub mod sealed;
pub mod sender;
pub mod store;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use kefu_kit::history::Step;
use sea_orm::{ConnectionTrait, DbErr};
use sha2::Sha256;

use crate::{domain::State, store as complaints};

pub use store::MIGRATION;

/// The events a branch can receive, by the names in `Webhook.events` and the body's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseEvent {
    Registered,
    Accepted,
    Resolved,
    Reopened,
    Overdue,
}

impl CaseEvent {
    pub const ALL: [CaseEvent; 5] =
        [CaseEvent::Registered, CaseEvent::Accepted, CaseEvent::Resolved, CaseEvent::Reopened, CaseEvent::Overdue];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseEvent::Registered => "registered",
            CaseEvent::Accepted => "accepted",
            CaseEvent::Resolved => "resolved",
            CaseEvent::Reopened => "reopened",
            CaseEvent::Overdue => "overdue",
        }
    }

    pub fn parse(name: &str) -> Option<CaseEvent> {
        CaseEvent::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

/// What a change of a case tells the branch: the state it reached, or its being chased overdue.
pub fn signals(before: &complaints::Model, after: &complaints::Model, steps: &[Step]) -> Vec<CaseEvent> {
    let mut signals = Vec::new();
    if before.state != after.state {
        match after.state {
            State::Accepted => signals.push(CaseEvent::Accepted),
            State::Resolved => signals.push(CaseEvent::Resolved),
            State::Reopened => signals.push(CaseEvent::Reopened),
            _ => {}
        }
    }
    if steps.iter().any(|step| step.action == "chased") {
        signals.push(CaseEvent::Overdue);
    }
    signals
}

/// How long a delivery is retried before it fails (and can only be redelivered by hand).
pub const RETRY_FOR: Duration = Duration::hours(24);

/// The wait after the `attempts`-th failed attempt: a minute, doubling, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 6) as u32;
    Duration::minutes(1 << doublings).min(Duration::hours(1))
}

/// How long a receiver should accept a signature after its `t`: a captured delivery replayed later
/// is refused (docs/webhooks.md).
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

/// The lower-case hex HMAC-SHA256 of `message` with `secret`.
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(message);
    kefu_kit::text::hex(&mac.finalize().into_bytes())
}

/// The `Kefu-Signature` header: `t=<unix seconds>,sha256=<hex>`, the HMAC-SHA256 with the
/// endpoint's secret of `<t>.` followed by the raw body — so a receiver can refuse a delivery
/// replayed after [`REPLAY_WINDOW_SECONDS`].
pub fn signature(secret: &str, time: i64, body: &[u8]) -> String {
    let mut message = format!("{time}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={time},sha256={}", hmac_hex(secret, &message))
}

/// Writes, in `tx`, a delivery of each signal — the case as it became, the event, when — to every
/// active endpoint of the case's branch that takes that event, and wakes the sender if it wrote any.
pub async fn enqueue(
    tx: &impl ConnectionTrait,
    signals: &[(&complaints::Model, CaseEvent, DateTime<Utc>)],
    time_zone: Tz,
    wake: &Wake,
) -> Result<(), DbErr> {
    let mut branches: Vec<&str> = signals.iter().map(|(row, _, _)| row.branch.as_str()).collect();
    branches.sort_unstable();
    branches.dedup();
    let endpoints = store::active_for(tx, &branches).await?;
    let mut deliveries = Vec::new();
    for &(row, event, now) in signals {
        for endpoint in endpoints.iter().filter(|endpoint| endpoint.branch == row.branch && takes(endpoint, event)) {
            let delivery_id = uuid::Uuid::now_v7().to_string();
            deliveries.push(store::delivery::Model {
                seq: 0,
                body: body(&delivery_id, event, row, now, time_zone),
                delivery_id,
                webhook_id: endpoint.id.clone(),
                event: event.as_str().into(),
                case_number: row.case_number.clone(),
                state: store::PENDING.into(),
                attempts: 0,
                next_attempt_time: now,
                retry_until: now + RETRY_FOR,
                create_time: now,
                deliver_time: None,
            });
        }
    }
    if deliveries.is_empty() {
        return Ok(());
    }
    store::insert_deliveries(tx, deliveries).await?;
    wake.wake();
    Ok(())
}

fn takes(endpoint: &store::endpoint::Model, event: CaseEvent) -> bool {
    endpoint.events.is_empty() || endpoint.events.split(',').any(|name| name == event.as_str())
}

/// The JSON a branch receives. Times are RFC 3339 in the company's time zone.
fn body(delivery_id: &str, event: CaseEvent, row: &complaints::Model, now: DateTime<Utc>, time_zone: Tz) -> String {
    let time = |time: DateTime<Utc>| time.with_timezone(&time_zone).to_rfc3339_opts(SecondsFormat::Secs, false);
    let state = row.state.api_name();
    serde_json::json!({
        "id": delivery_id,
        "event": event.as_str(),
        "occurred_at": time(now),
        "complaint": {
            "name": format!("complaints/{}", row.case_number),
            "case_number": row.case_number,
            "kind": row.kind.as_str(),
            "category": row.category,
            "severity": row.severity.as_str(),
            "state": state,
            "branch": row.branch,
            "waybill_number": row.waybill_number,
            "owner": row.owner,
            "deadline": time(row.deadline),
            "resolution": row.resolution,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(|attempts| backoff(attempts).num_minutes()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn signature_is_rfc_4231_hmac_sha256_over_the_time_and_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature("Jefe", 1_764_000_000, b"{}"),
            format!("t=1764000000,sha256={}", hmac_hex("Jefe", b"1764000000.{}"))
        );
    }
}
