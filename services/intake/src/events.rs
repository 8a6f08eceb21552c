//! What intake does with the events it receives: an owner's `case_accepted` sets the complaint's
//! owner reference; its `case_resolved` records the outcome the customer is told (through
//! [`lifecycle::resolved`], as the service center's own outcomes); `case_escalated` marks the
//! complaint an incident; `case_deadline_changed` moves its deadline; archives' `customer_graded`
//! keeps a customer's grade. Each change is recorded in the case's history.

use chrono_tz::Tz;
use kefu_kit::{
    caller::Caller,
    error,
    inbox::EventHandler,
    time::{from_timestamp, to_micros},
    trace::TraceContext,
};
use kefu_proto::events::v1::{
    CaseAccepted, CaseDeadlineChanged, CaseEscalated, CaseResolved, CustomerGraded, Event, event::Payload,
};
use sea_orm::DatabaseTransaction;
use tonic::Status;

use crate::{
    deadline::Rule,
    domain::State,
    grades,
    lifecycle::{self, Change, Now},
    store,
};

pub struct IntakeEvents {
    pub time_zone: Tz,
}

impl EventHandler for IntakeEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        for event in events {
            match &event.payload {
                Some(Payload::CaseAccepted(accepted)) => accept(tx, event, accepted, self.time_zone).await?,
                Some(Payload::CaseResolved(resolved)) => resolve(tx, event, resolved, self.time_zone).await?,
                Some(Payload::CaseEscalated(escalated)) => escalate(tx, event, escalated, self.time_zone).await?,
                Some(Payload::CaseDeadlineChanged(changed)) => {
                    move_deadline(tx, event, changed, self.time_zone).await?
                }
                Some(Payload::CustomerGraded(graded)) => grade(tx, graded).await?,
                _ => {
                    return Err(Status::invalid_argument(
                        "intake accepts case_accepted, case_resolved, case_escalated, case_deadline_changed and customer_graded events",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The case number of `complaints/{case_number}` in the event's field `field`.
fn case_number<'a>(complaint: &'a str, field: &str) -> Result<&'a str, Status> {
    kefu_kit::names::complaint(complaint, field).map_err(kefu_kit::error::FieldViolations::into_status)
}

fn time(timestamp: &Option<prost_types::Timestamp>, field: &str) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    timestamp.as_ref().and_then(from_timestamp).map(to_micros).ok_or_else(|| error::invalid_field(field, "required"))
}

fn not_routed(complaint: &str, owner: &str) -> Status {
    Status::failed_precondition(format!("no complaint {complaint} routed to {owner}"))
}

/// Reads the complaint an owner's event is about, and checks that the owner owns it.
async fn owned(tx: &DatabaseTransaction, complaint: &str, owner: &str, field: &str) -> Result<store::Model, Status> {
    let case_number = case_number(complaint, field)?;
    store::by_case_number(tx, case_number)
        .await
        .map_err(|e| error::from_db("reading a complaint", e))?
        .filter(|row| row.owner == owner)
        .ok_or_else(|| not_routed(complaint, owner))
}

/// Writes an owner's change of a case; its caller and trace are the event's.
async fn write(
    tx: &DatabaseTransaction,
    event: &Event,
    before: &store::Model,
    change: Change,
    time_zone: Tz,
) -> Result<(), Status> {
    let caller = Caller::from_proto(event.caller.as_ref());
    let trace = TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() };
    let now = event.create_time.as_ref().and_then(from_timestamp).map(to_micros).unwrap_or(before.create_time);
    lifecycle::write(tx, before, change, None, now, time_zone, &trace, &caller).await?;
    Ok(())
}

/// Sets the owner's reference on the complaint an owner accepted.
async fn accept(tx: &DatabaseTransaction, event: &Event, accepted: &CaseAccepted, time_zone: Tz) -> Result<(), Status> {
    let row = owned(tx, &accepted.complaint, &accepted.owner, "event.case_accepted.complaint").await?;
    let accept_time = time(&accepted.accept_time, "event.case_accepted.accept_time")?;
    let mut after = row.clone();
    after.owner_reference = Some(accepted.owner_reference.clone());
    after.accept_time = Some(accept_time);
    // A resolution (or anything after it) may come before the acceptance it follows: it is not undone.
    if row.state == State::Routed.as_str() {
        after.state = State::Accepted.as_str().into();
    }
    let change = Change::for_owner(after).step(
        "accepted",
        &accepted.owner,
        accept_time,
        format!("as {}", accepted.owner_reference),
    );
    write(tx, event, &row, change, time_zone).await?;
    tracing::debug!(case_number = %row.case_number, owner = %accepted.owner, "owner accepted the case");
    Ok(())
}

/// Records the owner's outcome on the complaint, and its story for the case file.
async fn resolve(
    tx: &DatabaseTransaction,
    event: &Event,
    resolved: &CaseResolved,
    time_zone: Tz,
) -> Result<(), Status> {
    let row = owned(tx, &resolved.complaint, &resolved.owner, "event.case_resolved.complaint").await?;
    let resolve_time = time(&resolved.resolve_time, "event.case_resolved.resolve_time")?;
    let story = prost::Message::encode_to_vec(resolved);
    let caller = Caller::from_proto(event.caller.as_ref());
    let now = Now { time: resolve_time, time_zone, caller: &caller };
    let mut change = match lifecycle::state(&row)? {
        // Told, closed or linked: the outcome and story are kept, the state stays.
        State::Notified | State::Closed | State::Duplicate => {
            let mut after = row.clone();
            after.resolution = Some(resolved.resolution.clone());
            after.resolve_time = Some(resolve_time);
            Change::for_owner(after).step("resolved", &resolved.owner, resolve_time, resolved.resolution.clone())
        }
        _ => lifecycle::resolved(&row, &resolved.resolution, &resolved.owner, &now),
    };
    change.row.owner_story = Some(story);
    write(tx, event, &row, change, time_zone).await?;
    tracing::info!(case_number = %row.case_number, owner = %resolved.owner, "owner resolved the case");
    Ok(())
}

/// Marks the complaint an incident, escalated as the owner says.
async fn escalate(
    tx: &DatabaseTransaction,
    event: &Event,
    escalated: &CaseEscalated,
    time_zone: Tz,
) -> Result<(), Status> {
    let row = owned(tx, &escalated.complaint, &escalated.owner, "event.case_escalated.complaint").await?;
    let mut after = row.clone();
    after.incident = true;
    after.escalated_to = escalated.escalated_to.join(",");
    if !escalated.first_complaint.is_empty() {
        after.first_complaint = Some(escalated.first_complaint.clone());
    }
    let time = escalated.escalate_time.as_ref().and_then(from_timestamp).map(to_micros).unwrap_or(row.create_time);
    let first = after.first_complaint.clone().unwrap_or_else(|| "an earlier complaint".into());
    let detail = format!("incident repeating {first}, escalated to {}: {}", after.escalated_to, escalated.reason);
    let change = Change::for_owner(after).step("escalated", &escalated.owner, time, detail);
    write(tx, event, &row, change, time_zone).await?;
    tracing::warn!(case_number = %row.case_number, owner = %escalated.owner, reason = %escalated.reason, "incident escalated");
    Ok(())
}

/// Moves the complaint's deadline as its owner says.
async fn move_deadline(
    tx: &DatabaseTransaction,
    event: &Event,
    changed: &CaseDeadlineChanged,
    time_zone: Tz,
) -> Result<(), Status> {
    let row = owned(tx, &changed.complaint, &changed.owner, "event.case_deadline_changed.complaint").await?;
    let deadline = time(&changed.deadline, "event.case_deadline_changed.deadline")?;
    let mut after = row.clone();
    lifecycle::start_deadline(&mut after, &Rule::set_by_owner(&changed.owner, &changed.reason), deadline, time_zone);
    let local = deadline.with_timezone(&time_zone).format("%Y-%m-%d %H:%M");
    let now = event.create_time.as_ref().and_then(from_timestamp).map(to_micros).unwrap_or(row.create_time);
    let detail = format!("to {local}: {}", changed.reason);
    let change = Change::for_owner(after).step("deadline_moved", &changed.owner, now, detail);
    write(tx, event, &row, change, time_zone).await?;
    tracing::debug!(case_number = %row.case_number, owner = %changed.owner, reason = %changed.reason, "deadline moved");
    Ok(())
}

/// Keeps archives' grade of a customer, for the deadlines of their next cases.
async fn grade(tx: &DatabaseTransaction, graded: &CustomerGraded) -> Result<(), Status> {
    if !matches!(graded.grade.as_str(), "A" | "B" | "C" | "D") {
        return Err(error::invalid_field("event.customer_graded.grade", "A, B, C or D"));
    }
    let score_time = time(&graded.score_time, "event.customer_graded.score_time")?;
    grades::record(tx, &graded.phones, &graded.grade, score_time)
        .await
        .map_err(|e| error::from_db("recording a customer's grade", e))
}
