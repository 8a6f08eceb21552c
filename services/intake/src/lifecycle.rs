//! The life of a case at intake: every transition after registration, each as one rule that reads
//! the case and decides a [`Change`] — the case as it becomes, the steps recorded in its history
//! (who, when, why), the events for other services, and the replies to the customer and the
//! departments — and one [`write`] that applies a change in a transaction, over the version of
//! the case it read.
//!
//! ```text
//! ROUTED ─accepted─▶ ACCEPTED ─resolved─▶ RESOLVED ─told─▶ NOTIFIED ─closed─▶ CLOSED
//!    │                   │       │  (serious, critical)        │   ▲      │
//!    │                   │       └──▶ AWAITING_APPROVAL ─approved┘   │      │
//!    └── linked ─▶ DUPLICATE ─unlinked─▶ (back)          REOPENED ◀─not satisfied
//! ```
//!
//! Invariant: the case, its history, its events, its replies and its webhook deliveries change in
//! one transaction; a retried request (same request id, recorded on its first step) changes nothing.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{self, Failure},
    history::{self, Step},
    server::ServiceContext,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
};
use kefu_proto::events::v1::{CaseNotice, CaseRouted, event::Payload};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    TransactionTrait,
};
use tonic::Status;

use crate::{
    api::routed_complaint,
    deadline::{self, Counting, Rule},
    domain::{Kind, Severity, State},
    replies::{self, NewReply},
    store,
    visits::{self, NewVisit},
    webhooks,
};

/// Roles that may approve the outcome of a serious or critical complaint (业务经理, 总经理).
pub const APPROVER_ROLES: [&str; 3] = ["department_head", "business_manager", "general_manager"];

/// What a transition does.
#[derive(Debug, Clone)]
pub struct Change {
    pub row: store::Model,
    pub steps: Vec<Step>,
    /// Steps recorded on other cases (the complaint a duplicate is linked to).
    pub other_steps: Vec<(String, Step)>,
    pub events: Vec<(ServiceName, Payload)>,
    pub replies: Vec<NewReply>,
    pub visits: Vec<NewVisit>,
}

impl Change {
    fn new(row: store::Model) -> Change {
        Change {
            row,
            steps: Vec::new(),
            other_steps: Vec::new(),
            events: Vec::new(),
            replies: Vec::new(),
            visits: Vec::new(),
        }
    }

    /// A change an owner reports (accepted, escalated, deadline moved).
    pub fn for_owner(row: store::Model) -> Change {
        Change::new(row)
    }

    pub fn step(mut self, action: &'static str, actor: &str, time: DateTime<Utc>, detail: impl Into<String>) -> Change {
        self.steps.push(Step { action, actor: actor.to_owned(), time, detail: detail.into() });
        self
    }
}

/// What a rule knows besides the case.
pub struct Now<'a> {
    pub time: DateTime<Utc>,
    pub time_zone: Tz,
    pub caller: &'a Caller,
}

pub fn state(row: &store::Model) -> Result<State, Status> {
    row.state.parse().map_err(|()| Status::internal(format!("complaints/{} has an unknown state", row.case_number)))
}

pub fn kind(row: &store::Model) -> Kind {
    row.kind.parse().unwrap_or(Kind::Complaint)
}

pub fn severity(row: &store::Model) -> Severity {
    row.severity.parse().unwrap_or(Severity::General)
}

fn name(row: &store::Model) -> String {
    format!("complaints/{}", row.case_number)
}

fn refuse(row: &store::Model, why: impl std::fmt::Display) -> Status {
    Status::failed_precondition(format!("{} is {}: {why}", name(row), row.state))
}

/// The case's deadline rule, as kept on it.
pub fn rule(row: &store::Model) -> Rule {
    Rule {
        name: row.deadline_rule.clone(),
        allowed: Duration::seconds(row.deadline_allowed_secs),
        counting: Counting::parse(&row.deadline_counting),
    }
}

/// The deadline computed from what the case keeps, with its steps in words.
pub fn computed_deadline(row: &store::Model, time_zone: Tz) -> deadline::Computed {
    let rule = rule(row);
    let inputs = deadline::Inputs {
        start: row.deadline_start,
        rule: &rule,
        severity: severity(row),
        grade: &row.customer_grade,
        paused: Duration::seconds(row.paused_secs),
    };
    deadline::compute(&inputs, time_zone)
}

/// Sets the deadline from the case's rule, and when to chase it.
fn recompute_deadline(row: &mut store::Model, time_zone: Tz) {
    row.deadline = to_micros(computed_deadline(row, time_zone).deadline);
    row.chase_at = chase_at(row);
}

/// When an open case not waiting on the customer is to be chased: at its deadline.
fn chase_at(row: &store::Model) -> Option<DateTime<Utc>> {
    let open = row.state.parse::<State>().is_ok_and(State::is_open);
    (open && row.waiting_since.is_none()).then_some(row.deadline)
}

/// Starts the case's time anew under `rule`.
pub fn start_deadline(row: &mut store::Model, rule: &Rule, start: DateTime<Utc>, time_zone: Tz) {
    row.deadline_start = start;
    row.deadline_rule = rule.name.clone();
    row.deadline_allowed_secs = rule.allowed.num_seconds();
    row.deadline_counting = rule.counting.as_str().into();
    row.paused_secs = 0;
    recompute_deadline(row, time_zone);
}

fn notice(row: &store::Model, action: &str, detail: String, time: DateTime<Utc>) -> Option<(ServiceName, Payload)> {
    let owner = row.owner.parse::<ServiceName>().ok().filter(|owner| *owner != ServiceName::Intake)?;
    row.handed_off.then(|| {
        let notice = CaseNotice {
            complaint: name(row),
            owner: row.owner.clone(),
            action: action.into(),
            detail,
            notice_time: Some(to_timestamp(time)),
        };
        (owner, Payload::CaseNotice(notice))
    })
}

// The rules, one per transition.

/// The outcome is in — the owner's (`case_resolved`) or the service center's own. A serious or
/// critical complaint waits for a manager's approval; otherwise the customer's result reply is due.
pub fn resolved(row: &store::Model, resolution: &str, actor: &str, now: &Now<'_>) -> Change {
    let before = row.state.parse::<State>().ok();
    let mut after = row.clone();
    after.resolution = Some(resolution.to_owned());
    after.resolve_time = Some(now.time);
    after.waiting_since = None;
    after.waiting_reason = None;
    after.chase_at = None;
    let needs_approval = kind(row) == Kind::Complaint && severity(row).needs_approval() && row.approve_time.is_none();
    after.state = if needs_approval { State::AwaitingApproval } else { State::Resolved }.as_str().into();
    let mut change = Change::new(after).step("resolved", actor, now.time, resolution);
    if needs_approval {
        change = change.step(
            "awaiting_approval",
            "intake",
            now.time,
            format!(
                "a {} complaint: a manager approves the outcome and the customer is answered in writing (000 §12)",
                row.severity
            ),
        );
    } else if before != Some(State::Resolved) {
        change.replies.push(replies::result(&change.row, now.time_zone));
        if kind(row) == Kind::Complaint {
            change.visits.push(visits::after_resolution(now.time));
        }
    }
    change
}

/// The service center resolves a case it holds: an inquiry's answer, a consultation, a
/// suggestion, a change request or complaint it owns, or a reopened case.
pub fn resolve_here(row: &store::Model, resolution: &str, cause: &str, now: &Now<'_>) -> Result<Change, Status> {
    let state = state(row)?;
    let holds = state == State::Reopened || (row.owner == ServiceName::Intake.as_str() && state == State::Accepted);
    if !holds {
        return Err(refuse(
            row,
            format!(
                "the service center resolves only what it holds (cases it owns while open, and reopened cases); {} resolves this one",
                row.owner
            ),
        ));
    }
    let mut change = resolved(row, resolution, &now.caller.user, now);
    if !cause.is_empty() {
        change.row.cause = cause.to_owned();
    }
    Ok(change)
}

/// A manager approves a serious or critical complaint's outcome with the written answer.
pub fn approve(row: &store::Model, written_answer: &str, now: &Now<'_>) -> Result<Change, Status> {
    if !APPROVER_ROLES.iter().any(|role| now.caller.has_role(role)) {
        return Err(Status::permission_denied(format!(
            "approving the outcome of a {} complaint takes a manager (role department_head, business_manager or general_manager; 000 §12)",
            row.severity
        )));
    }
    if state(row)? != State::AwaitingApproval {
        return Err(refuse(row, "only an outcome awaiting approval can be approved"));
    }
    let mut after = row.clone();
    after.state = State::Resolved.as_str().into();
    after.approve_time = Some(now.time);
    after.approved_by = Some(now.caller.user.clone());
    after.written_answer = Some(written_answer.to_owned());
    let mut change = Change::new(after).step("approved", &now.caller.user, now.time, written_answer);
    change.replies.push(replies::result(&change.row, now.time_zone));
    change.visits.push(visits::after_resolution(now.time));
    Ok(change)
}

/// The customer was told the outcome (their result reply reached them).
pub fn notified(row: &store::Model, actor: &str, now: &Now<'_>) -> Option<Change> {
    if state(row).ok()? != State::Resolved {
        return None;
    }
    let mut after = row.clone();
    after.state = State::Notified.as_str().into();
    after.notify_time = Some(now.time);
    Some(Change::new(after).step("notified", actor, now.time, "the customer was told the outcome"))
}

/// The customer is not satisfied: the case goes on until they are (001 §8 4.5). The service center
/// holds it, with 24 hours, and tells the owner.
pub fn reopen(row: &store::Model, reason: &str, now: &Now<'_>) -> Result<Change, Status> {
    match state(row)? {
        State::Resolved | State::Notified => {}
        State::Closed => {
            return Err(refuse(
                row,
                "a closed case is in archives' keeping; register the customer's new complaint, which is linked to this one as a second complaint (二次投诉)",
            ));
        }
        _ => return Err(refuse(row, "only a resolved case can be reopened")),
    }
    let mut after = row.clone();
    after.state = State::Reopened.as_str().into();
    after.reopen_count += 1;
    after.approve_time = None;
    after.approved_by = None;
    after.written_answer = None;
    after.notify_time = None;
    start_deadline(&mut after, &Rule::reopened(), now.time, now.time_zone);
    let detail =
        format!("the customer is not satisfied: {reason}; handled again by {}", local(after.deadline, now.time_zone));
    let mut change = Change::new(after).step("reopened", &now.caller.user, now.time, detail.clone());
    change.events.extend(notice(row, "reopened", detail, now.time));
    Ok(change)
}

/// The case waits on the customer: its deadline is paused.
pub fn wait_for_customer(row: &store::Model, reason: &str, now: &Now<'_>) -> Result<Change, Status> {
    if !state(row)?.is_open() {
        return Err(refuse(row, "only an open case can wait on the customer"));
    }
    if row.waiting_since.is_some() {
        return Err(refuse(row, "it already waits on the customer; resume it first"));
    }
    let mut after = row.clone();
    after.waiting_since = Some(now.time);
    after.waiting_reason = Some(reason.to_owned());
    after.chase_at = None;
    Ok(Change::new(after).step("waiting_on_customer", &now.caller.user, now.time, reason))
}

/// The customer answered: the deadline runs again, moved by the time waited (counted as the rule counts).
pub fn resume(row: &store::Model, note: &str, now: &Now<'_>) -> Result<Change, Status> {
    let Some(since) = row.waiting_since else {
        return Err(refuse(row, "it does not wait on the customer"));
    };
    let mut after = row.clone();
    let waited = deadline::elapsed(since, now.time, Counting::parse(&row.deadline_counting), now.time_zone);
    after.paused_secs += waited.num_seconds();
    after.waiting_since = None;
    after.waiting_reason = None;
    recompute_deadline(&mut after, now.time_zone);
    let detail = format!(
        "waited {} on the customer; deadline now {}{}",
        deadline::words(waited),
        local(after.deadline, now.time_zone),
        if note.is_empty() { String::new() } else { format!(": {note}") }
    );
    Ok(Change::new(after).step("resumed", &now.caller.user, now.time, detail))
}

/// A complaint's severity changes, with the reason; its deadline follows.
pub fn change_severity(row: &store::Model, to: Severity, reason: &str, now: &Now<'_>) -> Result<Change, Status> {
    if kind(row) != Kind::Complaint {
        return Err(refuse(row, format!("severity is graded for complaints; this is a {}", row.kind)));
    }
    if !state(row)?.is_open() {
        return Err(refuse(row, "severity can be changed only while the complaint is being handled"));
    }
    let from = severity(row);
    if from == to {
        return Err(refuse(row, format!("its severity is already {}", to.as_str())));
    }
    let mut after = row.clone();
    after.severity = to.as_str().into();
    recompute_deadline(&mut after, now.time_zone);
    let detail =
        format!("{} → {}: {reason}; deadline now {}", from.as_str(), to.as_str(), local(after.deadline, now.time_zone));
    Ok(Change::new(after).step("severity_changed", &now.caller.user, now.time, detail))
}

/// The same complaint as `original`, by another channel: linked, not handled twice.
pub fn link_duplicate(
    row: &store::Model,
    original: &store::Model,
    reason: &str,
    now: &Now<'_>,
) -> Result<Change, Status> {
    if !matches!(state(row)?, State::Routed | State::Accepted) {
        return Err(refuse(row, "only a complaint not yet handled can be linked as a duplicate"));
    }
    if original.case_number == row.case_number {
        return Err(Status::invalid_argument("a complaint cannot duplicate itself"));
    }
    if original.state == State::Duplicate.as_str() {
        return Err(Status::failed_precondition(format!(
            "{} is itself a duplicate of {}: link to that one",
            name(original),
            original.duplicate_of.as_deref().unwrap_or_default()
        )));
    }
    if original.waybill_number != row.waybill_number || original.kind != row.kind {
        return Err(Status::failed_precondition(format!(
            "{} is about waybill {} ({}), {} about {} ({}): not the same complaint",
            name(original),
            original.waybill_number,
            original.kind,
            name(row),
            row.waybill_number,
            row.kind
        )));
    }
    Ok(linked(row, original, &now.caller.user, reason, now.time))
}

/// Links `row` to `original` (also at registration, where intake finds the duplicate itself).
pub fn linked(row: &store::Model, original: &store::Model, actor: &str, reason: &str, time: DateTime<Utc>) -> Change {
    let mut after = row.clone();
    after.state = State::Duplicate.as_str().into();
    after.duplicate_of = Some(name(original));
    after.chase_at = None;
    let detail = format!("the same complaint as {} (by {}): {reason}", name(original), original.channel);
    let mut change = Change::new(after).step("linked_duplicate", actor, time, detail.clone());
    change.other_steps.push((
        original.case_number.clone(),
        Step {
            action: "duplicate_linked",
            actor: actor.to_owned(),
            time,
            detail: format!("{} (by {}) is the same complaint", name(row), row.channel),
        },
    ));
    change.events.extend(notice(row, "linked_duplicate", detail, time));
    change
}

/// Undoes a link: the complaint stands on its own again; if its owner was never sent it, it is now.
pub fn unlink_duplicate(row: &store::Model, reason: &str, now: &Now<'_>) -> Result<Change, Status> {
    if state(row)? != State::Duplicate {
        return Err(refuse(row, "only a complaint linked as a duplicate can be unlinked"));
    }
    let mut after = row.clone();
    after.state = if after.owner_reference.is_some() { State::Accepted } else { State::Routed }.as_str().into();
    let was = after.duplicate_of.take().unwrap_or_default();
    after.chase_at = chase_at(&after);
    let detail = format!("no longer the same complaint as {was}: {reason}");
    let mut events = Vec::new();
    if !row.handed_off
        && let Ok(owner) = row.owner.parse::<ServiceName>()
        && owner != ServiceName::Intake
    {
        after.handed_off = true;
        events.push((owner, Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(&after)) })));
    } else {
        events.extend(notice(row, "unlinked_duplicate", detail.clone(), now.time));
    }
    let mut change = Change::new(after).step("unlinked_duplicate", &now.caller.user, now.time, detail);
    change.events = events;
    Ok(change)
}

/// An open case past its deadline: its owner is chased and a supervisor told; it is chased again
/// a day later while it stays overdue.
pub fn chase(row: &store::Model, now: &Now<'_>) -> Option<Change> {
    if !state(row).ok()?.is_open() || row.waiting_since.is_some() || row.deadline > now.time {
        return None;
    }
    let mut after = row.clone();
    after.chase_at = Some(now.time + Duration::days(1));
    let overdue = deadline::words(now.time - row.deadline);
    let deadline = local(row.deadline, now.time_zone);
    let mut change = Change::new(after).step(
        "chased",
        "intake",
        now.time,
        format!("{overdue} past the deadline {deadline}: {} chased, a supervisor told", row.owner),
    );
    // The owner hears of it in its own case, besides the chase in intake's replies.
    change.events.extend(notice(row, "chased", format!("{overdue} past the deadline {deadline} (催办)"), now.time));
    change.replies.push(replies::chase(row, now.time_zone));
    change.replies.push(replies::overdue_notice(row, now.time_zone));
    Some(change)
}

/// Closes a resolved case once the customer has been told.
pub fn close(row: &store::Model, note: &str, now: &Now<'_>) -> Result<Change, Status> {
    match state(row)? {
        State::Resolved | State::Notified => {}
        State::Closed => {
            return Err(refuse(
                row,
                format!("it was closed before, by {}", row.closed_by.as_deref().unwrap_or("someone")),
            ));
        }
        State::AwaitingApproval => return Err(refuse(row, "a manager must approve its outcome first (000 §12)")),
        _ => return Err(refuse(row, format!("only a case its owner ({}) has resolved can be closed", row.owner))),
    }
    let mut after = row.clone();
    after.state = State::Closed.as_str().into();
    after.close_time = Some(now.time);
    after.closed_by = Some(now.caller.user.clone());
    after.close_note = Some(note.to_owned());
    after.chase_at = None;
    Ok(Change::new(after).step("closed", &now.caller.user, now.time, note))
}

fn local(time: DateTime<Utc>, time_zone: Tz) -> String {
    time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string()
}

// Writing.

/// Applies `change` over `before`, in `tx`: the row only if no one changed it since it was read.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    tx: &DatabaseTransaction,
    before: &store::Model,
    change: Change,
    request_id: Option<&str>,
    now: DateTime<Utc>,
    time_zone: Tz,
    trace: &TraceContext,
    caller: &Caller,
) -> Result<store::Model, Status> {
    let db = |context: &'static str| move |e| error::from_db(context, e);
    let mut after = change.row;
    after.version = before.version + 1;
    let mut active: store::ActiveModel = after.clone().into();
    active = active.reset_all();
    active.seq = NotSet;
    let result = store::Entity::update_many()
        .set(active)
        .filter(store::Column::Seq.eq(before.seq))
        .filter(store::Column::Version.eq(before.version))
        .exec(tx)
        .await
        .map_err(db("changing a case"))?;
    if result.rows_affected != 1 {
        return Err(Failure::Conflict { what: name(before) }.into());
    }
    history::record(tx, &after.case_number, request_id, &change.steps)
        .await
        .map_err(db("recording the case's history"))?;
    for (case_number, step) in &change.other_steps {
        history::record(tx, case_number, None, std::slice::from_ref(step))
            .await
            .map_err(db("recording the case's history"))?;
    }
    let replies: Vec<_> = change.replies.iter().map(|reply| (after.case_number.as_str(), reply, now)).collect();
    replies::insert(tx, &replies).await.map_err(db("recording replies"))?;
    visits::insert(tx, &after.case_number, &change.visits, now).await.map_err(db("planning a visit"))?;
    let request = kefu_kit::write::Request { caller, trace, request_id };
    kefu_kit::write::send(tx, ServiceName::Intake, &change.events, request, now).await?;
    let signals: Vec<_> =
        webhooks::signals(before, &after, &change.steps).into_iter().map(|signal| (&after, signal, now)).collect();
    webhooks::enqueue(tx, &signals, time_zone).await.map_err(db("queueing webhook deliveries"))?;
    Ok(after)
}

/// A case read in a transaction, to be changed by one rule.
pub struct Acting<'a> {
    pub tx: DatabaseTransaction,
    pub row: store::Model,
    pub now: Now<'a>,
}

/// Reads case `case_number` in a new transaction.
pub async fn begin<'a>(context: &ServiceContext, case_number: &str, caller: &'a Caller) -> Result<Acting<'a>, Status> {
    let db = |context: &'static str| move |e| error::from_db(context, e);
    let time = to_micros(context.clock.now());
    let tx = context.db.begin().await.map_err(db("changing a case"))?;
    let row = store::by_case_number(&tx, case_number)
        .await
        .map_err(db("reading a complaint"))?
        .ok_or_else(|| Status::not_found(format!("no complaint named complaints/{case_number}")))?;
    Ok(Acting { tx, row, now: Now { time, time_zone: context.time_zone, caller } })
}

impl Acting<'_> {
    /// Whether a request with this idempotency key already changed the case: a retry, answered
    /// with the case as it is.
    pub async fn already_done(&self, request_id: Option<&str>) -> Result<bool, Status> {
        match request_id {
            Some(request_id) => history::has_request(&self.tx, &self.row.case_number, request_id)
                .await
                .map_err(|e| error::from_db("reading the case's history", e)),
            None => Ok(false),
        }
    }

    /// Writes `change` and commits. Two attempts of one request racing each other read the same
    /// version: the second is ABORTED, and its retry finds the request recorded.
    pub async fn finish(
        self,
        context: &ServiceContext,
        change: Change,
        request_id: Option<&str>,
        trace: &TraceContext,
    ) -> Result<store::Model, Status> {
        let written =
            write(&self.tx, &self.row, change, request_id, self.now.time, self.now.time_zone, trace, self.now.caller)
                .await?;
        self.tx.commit().await.map_err(|e| error::from_db("changing a case", e))?;
        context.relay.wake();
        Ok(written)
    }
}

/// Reads case `case_number`, decides by `rule`, and writes the change in one transaction. A retry
/// of `request_id` returns the case as it is.
pub async fn act(
    context: &ServiceContext,
    case_number: &str,
    request_id: Option<&str>,
    caller: &Caller,
    trace: &TraceContext,
    rule: impl FnOnce(&store::Model, &Now<'_>) -> Result<Change, Status>,
) -> Result<store::Model, Status> {
    let acting = begin(context, case_number, caller).await?;
    if acting.already_done(request_id).await? {
        return Ok(acting.row);
    }
    let change = rule(&acting.row, &acting.now)?;
    acting.finish(context, change, request_id, trace).await
}

/// The open cases due to be chased at `now`, oldest deadline first, at most `limit` (by the
/// `chase_at` index: no scan of all cases).
pub async fn due_for_chase(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<store::Model>, sea_orm::DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    store::Entity::find()
        .filter(store::Column::ChaseAt.lte(now))
        .order_by_asc(store::Column::ChaseAt)
        .limit(limit)
        .all(db)
        .await
}

/// Chases every case due at the clock's now; returns their names.
pub async fn chase_overdue(context: &ServiceContext) -> Result<Vec<String>, Status> {
    let time = to_micros(context.clock.now());
    let due = due_for_chase(&context.db, time, 500).await.map_err(|e| error::from_db("finding overdue cases", e))?;
    let caller = Caller { user: "intake".into(), department: "intake".into(), ..Caller::default() };
    let trace = TraceContext::new_root();
    let mut chased = Vec::new();
    for row in due {
        let outcome = act(context, &row.case_number, None, &caller, &trace, |row, now| {
            chase(row, now).ok_or_else(|| Status::failed_precondition("no longer overdue"))
        })
        .await;
        match outcome {
            Ok(row) => {
                tracing::warn!(case_number = %row.case_number, owner = %row.owner, "overdue case chased");
                chased.push(name(&row));
            }
            Err(status) if matches!(status.code(), tonic::Code::FailedPrecondition | tonic::Code::Aborted) => {}
            Err(status) => return Err(status),
        }
    }
    Ok(chased)
}
