//! What intake does with the events it receives: each owner's event is a [`Command`] on the
//! complaint's write path, a delivery's commands written together inside the inbox's transaction
//! (`kefu_kit::write::act_all_in`) — an
//! owner's `case_accepted` sets the complaint's owner reference; its `case_resolved` records the
//! outcome the customer is told (by the same rule as the service center's own outcomes);
//! `case_escalated` marks the complaint an incident; `case_deadline_changed` moves its deadline.
//! Archives' `customer_graded` keeps a customer's grade. Each change is recorded in the case's
//! history.

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    clock::SharedClock,
    config::ServiceName,
    error::FieldViolations,
    inbox::EventHandler,
    time::{from_timestamp, to_micros},
    trace::TraceContext,
    write,
};
use kefu_proto::events::v1::{CustomerGraded, Event, event::Payload};
use sea_orm::DatabaseTransaction;
use tonic::Status;

use crate::{
    complaint::Command,
    error::{Error, db},
    grades,
    keeper::ComplaintKeeper,
};

pub struct IntakeEvents {
    pub keeper: ComplaintKeeper,
    /// The time of an event that carries none.
    pub clock: SharedClock,
}

impl EventHandler for IntakeEvents {
    /// The owners' events are changes of complaints, written together ([`write::act_all_in`]);
    /// archives' grades are kept as they come.
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        let mut changes = Vec::with_capacity(events.len());
        let mut commands = Vec::with_capacity(events.len());
        for event in events {
            if let Some(Payload::CustomerGraded(graded)) = &event.payload {
                grade(tx, graded).await?;
            } else {
                let (change, command) = self.change(event)?;
                changes.push(change);
                commands.push(command);
            }
        }
        let asked = changes
            .iter()
            .zip(commands)
            .map(|(change, command)| write::Asked {
                key: change.case_number,
                caller: &change.caller,
                trace: &change.trace,
                command,
                now: change.now,
            })
            .collect();
        if let Err(error) = write::act_all_in(&self.keeper, tx, ServiceName::Intake, asked).await {
            return Err(match (error, &changes[..]) {
                (Error::NotFound(_), [change]) => {
                    Error::Precondition(format!("no complaint {} routed to {}", change.name, change.owner))
                }
                (other, _) => other,
            }
            .into());
        }
        for change in &changes {
            if change.escalated {
                tracing::warn!(case_number = change.case_number, owner = %change.owner, "incident escalated");
            } else {
                tracing::debug!(case_number = change.case_number, owner = %change.owner, "owner reported on the case");
            }
        }
        Ok(())
    }
}

/// What an owner's event asks of a complaint.
struct OwnersChange<'a> {
    name: &'a str,
    case_number: &'a str,
    owner: &'a str,
    escalated: bool,
    /// An owner's change of a case: its caller and trace are the event's, its time the event's.
    caller: Caller,
    trace: TraceContext,
    now: DateTime<Utc>,
}

impl IntakeEvents {
    fn change<'a>(&self, event: &'a Event) -> Result<(OwnersChange<'a>, Command), Error> {
        let (complaint, owner, command) = match &event.payload {
            Some(Payload::CaseAccepted(accepted)) => (
                (&accepted.complaint, "event.case_accepted.complaint"),
                &accepted.owner,
                Command::Accept {
                    owner: accepted.owner.clone(),
                    owner_reference: accepted.owner_reference.clone(),
                    accept_time: time(&accepted.accept_time, "event.case_accepted.accept_time")?,
                },
            ),
            Some(Payload::CaseResolved(resolved)) => (
                (&resolved.complaint, "event.case_resolved.complaint"),
                &resolved.owner,
                Command::OwnerResolved {
                    owner: resolved.owner.clone(),
                    resolution: resolved.resolution.clone(),
                    resolve_time: time(&resolved.resolve_time, "event.case_resolved.resolve_time")?,
                    story: prost::Message::encode_to_vec(resolved),
                },
            ),
            Some(Payload::CaseEscalated(escalated)) => (
                (&escalated.complaint, "event.case_escalated.complaint"),
                &escalated.owner,
                Command::Escalate {
                    owner: escalated.owner.clone(),
                    escalated_to: escalated.escalated_to.clone(),
                    first_complaint: escalated.first_complaint.clone(),
                    reason: escalated.reason.clone(),
                    time: escalated
                        .escalate_time
                        .as_ref()
                        .and_then(from_timestamp)
                        .map(to_micros)
                        .unwrap_or(self.sent(event)),
                },
            ),
            Some(Payload::CaseDeadlineChanged(changed)) => (
                (&changed.complaint, "event.case_deadline_changed.complaint"),
                &changed.owner,
                Command::MoveDeadline {
                    owner: changed.owner.clone(),
                    deadline: time(&changed.deadline, "event.case_deadline_changed.deadline")?,
                    reason: changed.reason.clone(),
                },
            ),
            _ => {
                return Err(Error::Invalid(FieldViolations::of(
                    "event.payload",
                    "intake accepts case_accepted, case_resolved, case_escalated, case_deadline_changed and customer_graded events",
                )));
            }
        };
        let (name, field) = complaint;
        let change = OwnersChange {
            name,
            case_number: kefu_kit::names::complaint(name, field)?,
            owner,
            escalated: matches!(command, Command::Escalate { .. }),
            caller: Caller::from_proto(event.caller.as_ref()),
            trace: TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() },
            now: self.sent(event),
        };
        Ok((change, command))
    }

    /// When the event was made (the clock's now, for an event that does not say).
    fn sent(&self, event: &Event) -> DateTime<Utc> {
        event
            .create_time
            .as_ref()
            .and_then(from_timestamp)
            .map(to_micros)
            .unwrap_or_else(|| to_micros(self.clock.now()))
    }
}

fn time(timestamp: &Option<prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>, Error> {
    timestamp
        .as_ref()
        .and_then(from_timestamp)
        .map(to_micros)
        .ok_or_else(|| Error::Invalid(FieldViolations::of(field, "required")))
}

/// Keeps archives' grade of a customer, for the deadlines of their next cases.
async fn grade(tx: &DatabaseTransaction, graded: &CustomerGraded) -> Result<(), Error> {
    if !matches!(graded.grade.as_str(), "A" | "B" | "C" | "D") {
        return Err(Error::Invalid(FieldViolations::of("event.customer_graded.grade", "A, B, C or D")));
    }
    let score_time = time(&graded.score_time, "event.customer_graded.score_time")?;
    grades::record(tx, &graded.phones, &graded.grade, score_time).await.map_err(db("recording a customer's grade"))
}
