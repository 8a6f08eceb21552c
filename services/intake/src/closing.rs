//! Closing a complaint, and its story. Once the outcome is in and the customer has been told, the
//! service center closes the case; in the same transaction the `case_closed` event carries the
//! case's whole story — intake's steps from its history, the owner's steps and payments kept from
//! its `case_resolved` — to archives, which seals it into an immutable case file.

use kefu_kit::{
    caller::Caller, config::ServiceName, error, history, server::ServiceContext, time::to_timestamp,
    trace::TraceContext,
};
use kefu_proto::{
    events::v1::{CaseClosed, CaseResolved, event::Payload},
    types::v1::{CasePayment, CaseStep},
};
use prost::Message;
use sea_orm::ConnectionTrait;
use tonic::Status;

use crate::{api::routed_complaint, lifecycle, store};

/// The longest note accepted on closing.
pub const MAX_NOTE: usize = 2000;

/// Closes complaint `case_number`. A retry with the request id that closed it returns it as closed.
pub async fn close(
    context: &ServiceContext,
    case_number: &str,
    note: &str,
    request_id: Option<&str>,
    caller: &Caller,
    trace: &TraceContext,
) -> Result<store::Model, Status> {
    let acting = lifecycle::begin(context, case_number, caller).await?;
    if acting.already_done(request_id).await? {
        return Ok(acting.row);
    }
    let mut change = lifecycle::close(&acting.row, note, &acting.now)?;
    change.row.close_request_id = request_id.map(str::to_owned);
    // The story archives files: what is recorded so far, and this last step.
    let mut recorded = history::story(&acting.tx, case_number, ServiceName::Intake)
        .await
        .map_err(|e| error::from_db("reading the case's history", e))?;
    recorded.extend(change.steps.iter().map(|step| step.to_proto(ServiceName::Intake)));
    let (steps, payments) = merge(recorded, &change.row);
    change.events.push((ServiceName::Archives, Payload::CaseClosed(story(&change.row, steps, payments))));
    let closed = acting.finish(context, change, request_id, trace).await?;
    tracing::info!(case_number, "complaint closed");
    Ok(closed)
}

/// The case's story so far, oldest first — intake's steps and the owner's (known once it resolved
/// the case) — and the money the outcome moved.
pub async fn timeline(
    db: &impl ConnectionTrait,
    row: &store::Model,
) -> Result<(Vec<CaseStep>, Vec<CasePayment>), Status> {
    let intake = history::story(db, &row.case_number, ServiceName::Intake)
        .await
        .map_err(|e| error::from_db("reading the case's history", e))?;
    Ok(merge(intake, row))
}

/// Intake's steps in the order recorded, with the owner's handling woven in by time: an owner's
/// step at the same moment as intake's comes after intake's registration and acceptance and
/// before its outcome.
fn merge(intake: Vec<CaseStep>, row: &store::Model) -> (Vec<CaseStep>, Vec<CasePayment>) {
    let owner = row.owner_story.as_deref().and_then(|bytes| CaseResolved::decode(bytes).ok()).unwrap_or_default();
    let time = |step: &CaseStep| step.time.map(|time| (time.seconds, time.nanos));
    let outcome = |step: &CaseStep| {
        matches!(
            step.action.as_str(),
            "resolved" | "awaiting_approval" | "approved" | "notified" | "reopened" | "closed"
        )
    };
    let mut steps = Vec::with_capacity(intake.len() + owner.steps.len());
    let mut owner_steps = owner.steps.into_iter().peekable();
    for step in intake {
        while let Some(next) =
            owner_steps.next_if(|o| time(o) < time(&step) || (time(o) == time(&step) && outcome(&step)))
        {
            steps.push(next);
        }
        steps.push(step);
    }
    steps.extend(owner_steps);
    (steps, owner.payments)
}

/// The case's whole story as archives files it.
pub fn story(row: &store::Model, steps: Vec<CaseStep>, payments: Vec<CasePayment>) -> CaseClosed {
    CaseClosed {
        complaint: Some(routed_complaint(row)),
        owner: row.owner.clone(),
        owner_reference: row.owner_reference.clone().unwrap_or_default(),
        resolution: row.resolution.clone().unwrap_or_default(),
        accept_time: row.accept_time.map(to_timestamp),
        resolve_time: row.resolve_time.map(to_timestamp),
        close_time: row.close_time.map(to_timestamp),
        closed_by: row.closed_by.clone().unwrap_or_default(),
        incident: row.incident,
        escalated_to: row.escalated_to.split(',').filter(|to| !to.is_empty()).map(str::to_owned).collect(),
        steps,
        payments,
    }
}
