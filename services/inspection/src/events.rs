//! Inspection and the other services. In: `case_routed` from intake opens a case (and a repeat
//! complaint is escalated at once). Out, in the same transaction as the change that causes them:
//! `case_escalated`, `case_deadline_changed` and `case_resolved` to intake, `fine_imposed` to
//! settlement — one per fine, keyed by the penalty's name so that settlement deducts it once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    clock::SharedClock,
    config::ServiceName,
    error, history,
    inbox::EventHandler,
    outbox,
    routed::AcceptRoutedCases,
    time::{from_timestamp, to_micros, to_timestamp},
    trace::TraceContext,
};
use kefu_proto::{
    events::v1::{CaseDeadlineChanged, CaseEscalated, CaseResolved, Event, FineImposed, event::Payload},
    types::v1::CasePayment,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use tonic::Status;

use crate::{
    COLLECTION,
    case::{Case, Effect, Kind},
    policy::InspectionPolicy,
    store,
};

/// The name of a penalty: `cases/{case_number}/penalties/{n}`, `n` from 1.
pub fn penalty_name(case_number: &str, index: usize) -> String {
    format!("{COLLECTION}/{case_number}/penalties/{}", index + 1)
}

/// The events `effects` of a change to `case` send, and to whom.
pub fn payloads(case: &Case, effects: &[Effect], now: DateTime<Utc>) -> Vec<(ServiceName, Payload)> {
    let complaint = format!("complaints/{}", case.case_number);
    let owner = ServiceName::Inspection.as_str().to_owned();
    let mut payloads = Vec::new();
    for effect in effects {
        match effect {
            Effect::Escalated if case.kind == Kind::Complaint => {
                let Some(incident) = &case.incident else { continue };
                payloads.push((
                    ServiceName::Intake,
                    Payload::CaseEscalated(CaseEscalated {
                        complaint: complaint.clone(),
                        owner: owner.clone(),
                        first_complaint: incident.first_complaint.clone(),
                        reason: incident.reason.as_str().into(),
                        escalated_to: incident.escalated_to.clone(),
                        escalate_time: Some(to_timestamp(incident.time)),
                    }),
                ));
            }
            Effect::DeadlineMoved if case.kind == Kind::Complaint => payloads.push((
                ServiceName::Intake,
                Payload::CaseDeadlineChanged(CaseDeadlineChanged {
                    complaint: complaint.clone(),
                    owner: owner.clone(),
                    deadline: Some(to_timestamp(case.deadline)),
                    reason: case.deadline_reason.clone(),
                }),
            )),
            Effect::Resolved if case.kind == Kind::Complaint => payloads.push((
                ServiceName::Intake,
                Payload::CaseResolved(CaseResolved {
                    complaint: complaint.clone(),
                    owner: owner.clone(),
                    owner_reference: format!("{COLLECTION}/{}", case.case_number),
                    resolution: case.resolution.clone().unwrap_or_default(),
                    resolve_time: Some(to_timestamp(case.resolve_time.unwrap_or(now))),
                    // The steps are read in `enqueue`, from the case's history.
                    steps: Vec::new(),
                    payments: fines(case),
                }),
            )),
            Effect::Fined(positions) => {
                let Some(decision) = &case.decision else { continue };
                for &index in positions {
                    let Some(penalty) = decision.penalties.get(index) else { continue };
                    payloads.push((
                        ServiceName::Settlement,
                        Payload::FineImposed(FineImposed {
                            penalty: penalty_name(&case.case_number, index),
                            party_kind: penalty.party.kind.as_str().into(),
                            party_id: penalty.party.id.clone(),
                            violation: penalty.violation.clone(),
                            amount_fen: penalty.amount_fen,
                            decide_time: Some(to_timestamp(decision.time)),
                        }),
                    ));
                }
            }
            Effect::Escalated | Effect::DeadlineMoved | Effect::Resolved => {}
        }
    }
    payloads
}

/// The fines of the case's decision, as money the case moved.
fn fines(case: &Case) -> Vec<CasePayment> {
    let Some(decision) = &case.decision else { return Vec::new() };
    decision
        .penalties
        .iter()
        .map(|penalty| CasePayment {
            kind: "fine".into(),
            party: format!("{}:{}", penalty.party.kind.as_str(), penalty.party.id),
            amount_fen: penalty.amount_fen,
            time: Some(to_timestamp(decision.time)),
        })
        .collect()
}

/// The events `effects` send, each to its service; a resolution carries the case's story.
pub async fn messages(
    tx: &impl ConnectionTrait,
    case: &Case,
    effects: &[Effect],
    now: DateTime<Utc>,
) -> Result<Vec<(ServiceName, Payload)>, DbErr> {
    let mut payloads = payloads(case, effects, now);
    for (_, payload) in &mut payloads {
        if let Payload::CaseResolved(resolved) = payload {
            resolved.steps = history::story(tx, &case.case_number, ServiceName::Inspection).await?;
        }
    }
    Ok(payloads)
}

/// Writes the events of `effects` to the outbox within `tx`.
pub async fn enqueue(
    tx: &impl ConnectionTrait,
    case: &Case,
    effects: &[Effect],
    trace: &TraceContext,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let events: Vec<(ServiceName, Event)> = messages(tx, case, effects, now)
        .await?
        .into_iter()
        .map(|(to, payload)| (to, outbox::new_event(ServiceName::Inspection, now, trace, caller, payload)))
        .collect();
    outbox::enqueue_many(tx, events.iter().map(|(to, event)| (*to, event, now))).await?;
    Ok(events.len())
}

/// What inspection does with the events it receives: a routed complaint becomes a case.
pub struct InspectionEvents {
    pub routed: AcceptRoutedCases,
    pub clock: SharedClock,
    pub policy: Arc<InspectionPolicy>,
}

impl EventHandler for InspectionEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        if events.iter().any(|event| !matches!(event.payload, Some(Payload::CaseRouted(_) | Payload::CaseNotice(_)))) {
            return Err(Status::invalid_argument("inspection accepts only case_routed and case_notice events"));
        }
        self.routed.apply(tx, events).await?;
        let now = to_micros(self.clock.now());
        // Many routed cases arrive in one delivery: each table is written once for all of them.
        let mut opened = Vec::with_capacity(events.len());
        for event in events {
            let Some(Payload::CaseRouted(routed)) = &event.payload else { continue };
            let Some(complaint) = &routed.complaint else { continue };
            // AcceptRoutedCases checked the name and the times.
            let case_number = complaint.complaint.trim_start_matches("complaints/");
            let deadline = complaint.deadline.as_ref().and_then(from_timestamp).map(to_micros).unwrap_or(now);
            let (case, steps, effects) = Case::complaint(
                case_number,
                &complaint.category,
                &complaint.branch,
                deadline,
                &complaint.first_complaint,
                &self.policy,
                now,
            );
            if case.incident.is_some() {
                tracing::warn!(case_number, "second complaint: an incident, escalated");
            }
            opened.push((event, case, steps, effects));
        }
        let db = |e| error::from_db("opening inspection cases", e);
        let cases: Vec<&Case> = opened.iter().map(|(_, case, _, _)| case).collect();
        store::insert(tx, &cases, None, now).await.map_err(db)?;
        let steps: Vec<(&str, &history::Step)> = opened
            .iter()
            .flat_map(|(_, case, steps, _)| steps.iter().map(|step| (case.case_number.as_str(), step)))
            .collect();
        history::record_many(tx, &steps).await.map_err(db)?;
        for (event, case, _, effects) in opened.iter().filter(|(_, _, _, effects)| !effects.is_empty()) {
            let trace = TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() };
            let caller = Caller::from_proto(event.caller.as_ref());
            enqueue(tx, case, effects, &trace, &caller, now).await.map_err(db)?;
        }
        Ok(())
    }
}
