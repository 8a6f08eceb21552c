//! Closing a complaint. Once its owner has resolved it and the customer has been told, the service
//! center closes the case; in the same transaction the `case_closed` event carries the case's whole
//! story — intake's steps, the owner's steps and payments kept from its `case_resolved` — to
//! archives, which seals it into an immutable case file.

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller, config::ServiceName, error, outbox, server::ServiceContext, time::to_timestamp, trace::TraceContext,
};
use kefu_proto::{
    events::v1::{CaseClosed, CaseResolved, event::Payload},
    types::v1::{CasePayment, CaseStep},
};
use prost::Message;
use sea_orm::TransactionTrait;
use tonic::Status;

use crate::{api::routed_complaint, domain::State, store};

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
    let db_error = |context: &'static str| move |e| error::from_db(context, e);
    let now = kefu_kit::time::to_micros(context.clock.now());
    let tx = context.db.begin().await.map_err(db_error("closing a complaint"))?;
    let row = store::by_case_number(&tx, case_number)
        .await
        .map_err(db_error("reading a complaint"))?
        .ok_or_else(|| Status::not_found(format!("no complaint named complaints/{case_number}")))?;
    match row.state.parse::<State>() {
        Ok(State::Resolved) => {}
        Ok(State::Closed) if request_id.is_some() && row.close_request_id.as_deref() == request_id => return Ok(row),
        Ok(State::Closed) => {
            return Err(Status::failed_precondition(format!(
                "complaints/{case_number} was closed before, by {}",
                row.closed_by.as_deref().unwrap_or("someone")
            )));
        }
        _ => {
            return Err(Status::failed_precondition(format!(
                "complaints/{case_number} is {}: only a complaint its owner ({}) has resolved can be closed",
                row.state, row.owner
            )));
        }
    }
    if !store::mark_closed(&tx, case_number, &caller.user, note, request_id, now)
        .await
        .map_err(db_error("closing a complaint"))?
    {
        return Err(Status::aborted("the complaint changed at the same moment; read it and retry"));
    }
    let closed = store::Model {
        state: State::Closed.as_str().into(),
        close_time: Some(now),
        closed_by: Some(caller.user.clone()),
        close_note: Some(note.to_owned()),
        close_request_id: request_id.map(str::to_owned),
        ..row
    };
    let event = outbox::new_event(ServiceName::Intake, now, trace, caller, Payload::CaseClosed(story(&closed, now)));
    outbox::enqueue(&tx, ServiceName::Archives, &event, now).await.map_err(db_error("queueing the case file"))?;
    tx.commit().await.map_err(db_error("closing a complaint"))?;
    context.relay.wake();
    tracing::info!(case_number, "complaint closed");
    Ok(closed)
}

/// The case's story so far, oldest first — intake's steps and the owner's (known once it resolved
/// the case) — and the money the outcome moved.
pub fn timeline(row: &store::Model) -> (Vec<CaseStep>, Vec<CasePayment>) {
    let owner = row.owner_story.as_deref().and_then(|bytes| CaseResolved::decode(bytes).ok()).unwrap_or_default();
    // Where steps share a moment, the story's order decides: registered, accepted, the owner's
    // handling, resolved, closed.
    let mut steps: Vec<(u8, CaseStep)> = intake_steps(row);
    steps.extend(owner.steps.into_iter().map(|step| (HANDLING, step)));
    steps.sort_by_key(|(phase, step)| (step.time.map(|time| (time.seconds, time.nanos)), *phase));
    (steps.into_iter().map(|(_, step)| step).collect(), owner.payments)
}

/// The case's whole story as archives files it.
fn story(row: &store::Model, close_time: DateTime<Utc>) -> CaseClosed {
    let (steps, payments) = timeline(row);
    CaseClosed {
        complaint: Some(routed_complaint(row)),
        owner: row.owner.clone(),
        owner_reference: row.owner_reference.clone().unwrap_or_default(),
        resolution: row.resolution.clone().unwrap_or_default(),
        accept_time: row.accept_time.map(to_timestamp),
        resolve_time: row.resolve_time.map(to_timestamp),
        close_time: Some(to_timestamp(close_time)),
        closed_by: row.closed_by.clone().unwrap_or_default(),
        incident: row.incident,
        escalated_to: row.escalated_to.split(',').filter(|to| !to.is_empty()).map(str::to_owned).collect(),
        steps,
        payments,
    }
}

/// The phase of the owner's handling, between intake's acceptance and resolution.
const HANDLING: u8 = 2;

/// What the service center did and learned — registered, accepted by the owner, resolved, closed —
/// each with its phase in the story.
fn intake_steps(row: &store::Model) -> Vec<(u8, CaseStep)> {
    let step = |action: &str, actor: &str, time: Option<DateTime<Utc>>, detail: String| {
        let phase = match action {
            "registered" => 0,
            "accepted" => 1,
            "escalated" => HANDLING,
            "resolved" => 3,
            _ => 4,
        };
        let step = CaseStep {
            action: action.into(),
            actor: actor.into(),
            time: time.map(to_timestamp),
            detail,
            department: ServiceName::Intake.as_str().into(),
        };
        (phase, step)
    };
    let mut steps = vec![step(
        "registered",
        &row.received_by,
        Some(row.create_time),
        format!(
            "{} by {} at branch {}, routed to {} ({})",
            row.category, row.channel, row.branch, row.owner, row.responsible_unit
        ),
    )];
    if let Some(accepted) = row.accept_time {
        steps.push(step(
            "accepted",
            &row.owner,
            Some(accepted),
            format!("as {}", row.owner_reference.as_deref().unwrap_or_default()),
        ));
    }
    if row.incident {
        let first = row.first_complaint.as_deref().unwrap_or("an earlier complaint");
        steps.push(step(
            "escalated",
            &row.owner,
            row.accept_time.or(Some(row.create_time)),
            format!("incident repeating {first}, escalated to {}", row.escalated_to),
        ));
    }
    if let Some(resolved) = row.resolve_time {
        steps.push(step("resolved", &row.owner, Some(resolved), row.resolution.clone().unwrap_or_default()));
    }
    if let Some(closed) = row.close_time {
        steps.push(step(
            "closed",
            row.closed_by.as_deref().unwrap_or_default(),
            Some(closed),
            row.close_note.clone().unwrap_or_default(),
        ));
    }
    steps
}
