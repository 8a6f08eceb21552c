//! What intake does with the events it receives: an owner's `case_accepted` sets the complaint's
//! owner reference; its `case_resolved` records the outcome the customer is told; `case_escalated`
//! marks the complaint an incident; `case_deadline_changed` moves its deadline.

use kefu_kit::{
    error,
    inbox::EventHandler,
    time::{from_timestamp, to_micros},
};
use kefu_proto::events::v1::{CaseAccepted, CaseDeadlineChanged, CaseEscalated, CaseResolved, Event, event::Payload};
use sea_orm::DatabaseTransaction;
use tonic::Status;

use crate::store;

pub struct IntakeEvents;

impl EventHandler for IntakeEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        for event in events {
            match &event.payload {
                Some(Payload::CaseAccepted(accepted)) => accept(tx, accepted).await?,
                Some(Payload::CaseResolved(resolved)) => resolve(tx, resolved).await?,
                Some(Payload::CaseEscalated(escalated)) => escalate(tx, escalated).await?,
                Some(Payload::CaseDeadlineChanged(changed)) => move_deadline(tx, changed).await?,
                _ => {
                    return Err(Status::invalid_argument(
                        "intake accepts case_accepted, case_resolved, case_escalated and case_deadline_changed events",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The case number of `complaints/{case_number}` in the event's field `field`.
fn case_number<'a>(complaint: &'a str, field: &str) -> Result<&'a str, Status> {
    complaint
        .strip_prefix("complaints/")
        .ok_or_else(|| error::invalid_field(field, "expected complaints/{case_number}"))
}

fn time(timestamp: &Option<prost_types::Timestamp>, field: &str) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    timestamp.as_ref().and_then(from_timestamp).map(to_micros).ok_or_else(|| error::invalid_field(field, "required"))
}

fn not_routed(complaint: &str, owner: &str) -> Status {
    Status::failed_precondition(format!("no complaint {complaint} routed to {owner}"))
}

/// Sets the owner's reference on the complaint an owner accepted.
async fn accept(tx: &DatabaseTransaction, accepted: &CaseAccepted) -> Result<(), Status> {
    let case_number = case_number(&accepted.complaint, "event.case_accepted.complaint")?;
    let accept_time = time(&accepted.accept_time, "event.case_accepted.accept_time")?;
    let updated = store::mark_accepted(tx, case_number, &accepted.owner, &accepted.owner_reference, accept_time)
        .await
        .map_err(|e| error::from_db("recording case_accepted", e))?;
    if !updated {
        return Err(not_routed(&accepted.complaint, &accepted.owner));
    }
    tracing::debug!(case_number, owner = %accepted.owner, "owner accepted the case");
    Ok(())
}

/// Records the owner's outcome on the complaint.
async fn resolve(tx: &DatabaseTransaction, resolved: &CaseResolved) -> Result<(), Status> {
    let case_number = case_number(&resolved.complaint, "event.case_resolved.complaint")?;
    let resolve_time = time(&resolved.resolve_time, "event.case_resolved.resolve_time")?;
    let story = prost::Message::encode_to_vec(resolved);
    let updated = store::mark_resolved(tx, case_number, &resolved.owner, &resolved.resolution, resolve_time, story)
        .await
        .map_err(|e| error::from_db("recording case_resolved", e))?;
    if !updated {
        return Err(not_routed(&resolved.complaint, &resolved.owner));
    }
    tracing::info!(case_number, owner = %resolved.owner, "owner resolved the case");
    Ok(())
}

/// Marks the complaint an incident, escalated as the owner says.
async fn escalate(tx: &DatabaseTransaction, escalated: &CaseEscalated) -> Result<(), Status> {
    let case_number = case_number(&escalated.complaint, "event.case_escalated.complaint")?;
    let updated =
        store::mark_escalated(tx, case_number, &escalated.owner, &escalated.first_complaint, &escalated.escalated_to)
            .await
            .map_err(|e| error::from_db("recording case_escalated", e))?;
    if !updated {
        return Err(not_routed(&escalated.complaint, &escalated.owner));
    }
    tracing::warn!(case_number, owner = %escalated.owner, reason = %escalated.reason, "incident escalated");
    Ok(())
}

/// Moves the complaint's deadline.
async fn move_deadline(tx: &DatabaseTransaction, changed: &CaseDeadlineChanged) -> Result<(), Status> {
    let case_number = case_number(&changed.complaint, "event.case_deadline_changed.complaint")?;
    let deadline = time(&changed.deadline, "event.case_deadline_changed.deadline")?;
    let updated = store::set_deadline(tx, case_number, &changed.owner, deadline)
        .await
        .map_err(|e| error::from_db("recording case_deadline_changed", e))?;
    if !updated {
        return Err(not_routed(&changed.complaint, &changed.owner));
    }
    tracing::debug!(case_number, owner = %changed.owner, reason = %changed.reason, "deadline moved");
    Ok(())
}
