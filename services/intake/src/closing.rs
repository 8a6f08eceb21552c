//! A case's story: its timeline, and what archives files when it closes. Once the outcome is in and
//! the customer has been told, the service center closes the case (`Complaint::apply`'s
//! `Close`); in the same transaction the `case_closed` event carries the case's whole story —
//! intake's steps from its history, the owner's steps and payments kept from its `case_resolved`
//! — to archives, which seals it into an immutable case file (written by the keeper).

use kefu_kit::{config::ServiceName, history, time::to_timestamp};
use kefu_proto::{
    events::v1::{CaseClosed, CaseResolved},
    types::v1::{CasePayment, CaseStep},
};
use prost::Message;
use sea_orm::ConnectionTrait;

use crate::{
    complaint::Complaint,
    convert::routed_complaint,
    error::{Error, db},
};

/// The case's story so far, oldest first — intake's steps and the owner's (known once it resolved
/// the case) — and the money the outcome moved.
pub async fn timeline(
    database: &impl ConnectionTrait,
    row: &Complaint,
) -> Result<(Vec<CaseStep>, Vec<CasePayment>), Error> {
    let intake = history::story(database, &row.case_number, ServiceName::Intake)
        .await
        .map_err(db("reading the case's history"))?;
    Ok(merge(intake, row))
}

/// Intake's steps in the order recorded, with the owner's handling woven in by time: an owner's
/// step at the same moment as intake's comes after intake's registration and acceptance and
/// before its outcome.
pub fn merge(intake: Vec<CaseStep>, row: &Complaint) -> (Vec<CaseStep>, Vec<CasePayment>) {
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
pub fn story(row: &Complaint, steps: Vec<CaseStep>, payments: Vec<CasePayment>) -> CaseClosed {
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
