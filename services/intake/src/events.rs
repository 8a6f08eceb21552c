//! What intake does with the events it receives: an owner's `case_accepted` sets the complaint's
//! owner reference.

use kefu_kit::{
    error,
    inbox::EventHandler,
    time::{from_timestamp, to_micros},
};
use kefu_proto::events::v1::{Event, event::Payload};
use sea_orm::DatabaseTransaction;
use tonic::Status;

use crate::store;

pub struct IntakeEvents;

impl EventHandler for IntakeEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        for event in events {
            accept(tx, event).await?;
        }
        Ok(())
    }
}

/// Sets the owner's reference on the complaint an owner accepted.
async fn accept(tx: &DatabaseTransaction, event: &Event) -> Result<(), Status> {
    let Some(Payload::CaseAccepted(accepted)) = &event.payload else {
        return Err(Status::invalid_argument("intake accepts only case_accepted events"));
    };
    let case_number = accepted
        .complaint
        .strip_prefix("complaints/")
        .ok_or_else(|| error::invalid_field("event.case_accepted.complaint", "expected complaints/{case_number}"))?;
    let accept_time = accepted
        .accept_time
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| error::invalid_field("event.case_accepted.accept_time", "required"))?;
    let updated =
        store::mark_accepted(tx, case_number, &accepted.owner, &accepted.owner_reference, to_micros(accept_time))
            .await
            .map_err(|e| error::from_db("recording case_accepted", e))?;
    if !updated {
        return Err(Status::failed_precondition(format!(
            "no complaint {} routed to {}",
            accepted.complaint, accepted.owner
        )));
    }
    tracing::debug!(case_number, owner = %accepted.owner, "owner accepted the case");
    Ok(())
}
