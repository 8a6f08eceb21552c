//! Registration's rules, without I/O: a new case from what the caller states and where the routing
//! policy sends it, and what intake finds about it among the customer's earlier complaints — the
//! same complaint by another channel within [`DUPLICATE_WINDOW`] (a duplicate, linked and not
//! handled twice), or a second complaint (二次投诉, `001 §8 4.10`).

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    history::Step,
    write::{Applied, Message},
};
use kefu_proto::{
    events::v1::{CaseRouted, event::Payload},
    intake::v1 as pb,
};
use prost::Message as _;

use crate::{
    complaint::{Complaint, Effects},
    convert::routed_complaint,
    deadline::{Counting, Rule},
    domain::{Kind, NewComplaint, Severity, State},
    replies,
};

/// How long after an earlier complaint a complaint by another channel about the same waybill and
/// category, while the first is still open, counts as the same complaint (a duplicate) rather
/// than a second complaint (二次投诉).
pub const DUPLICATE_WINDOW: Duration = Duration::hours(24);

/// What intake registers: the checked request, where it goes, and the rule of its deadline.
#[derive(Debug, Clone)]
pub struct Registration {
    pub complaint: NewComplaint,
    pub kind: Kind,
    pub severity: Severity,
    pub change: Option<pb::ChangeRequest>,
    pub owner: ServiceName,
    pub responsible_unit: String,
    pub rule: Rule,
    /// The cause, when it is known at intake (a consignee's refusal, say).
    pub cause: String,
}

/// What intake found among the customer's earlier complaints about the same waybill and category.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// The open complaint this one duplicates: by another channel, within [`DUPLICATE_WINDOW`].
    pub duplicate_of: Option<Complaint>,
    /// Otherwise the customer's first complaint about it: this one is a second complaint.
    pub first_complaint: Option<String>,
}

impl Earlier {
    /// Reads `earlier` (the same customer's complaints about the same waybill and category,
    /// oldest first) for a complaint arriving by `channel` at `now`.
    pub fn find(earlier: &[Complaint], channel: crate::domain::Channel, now: DateTime<Utc>) -> Earlier {
        let duplicate_of = earlier
            .iter()
            .rev()
            .find(|first| {
                first.channel != channel && first.state.is_open() && now - first.create_time <= DUPLICATE_WINDOW
            })
            .cloned();
        let first_complaint = match &duplicate_of {
            Some(_) => None,
            None => earlier.first().map(Complaint::name),
        };
        Earlier { duplicate_of, first_complaint }
    }
}

impl Registration {
    /// Whether the service center answers this itself (it holds the case at once).
    pub fn owned_here(&self) -> bool {
        self.owner == ServiceName::Intake
    }

    /// A new case, before its deadline is started.
    pub fn new_complaint(
        &self,
        case_number: &str,
        request_id: Option<String>,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Complaint {
        let complaint = &self.complaint;
        let owned_here = self.owned_here();
        Complaint {
            seq: 0,
            case_number: case_number.to_owned(),
            request_id,
            category: complaint.category.clone(),
            waybill_number: complaint.waybill_number.clone(),
            channel: complaint.channel,
            description: complaint.description.clone(),
            customer_request: complaint.customer_request.clone(),
            contact_name: complaint.contact_name.clone(),
            contact_phone: complaint.contact_phone.clone(),
            branch: complaint.branch.clone(),
            owner: self.owner.as_str().into(),
            responsible_unit: self.responsible_unit.clone(),
            owner_reference: owned_here.then(|| kefu_kit::names::complaint_name(case_number)),
            state: if owned_here { State::Accepted } else { State::Routed },
            create_time: now,
            deadline: now,
            accept_time: owned_here.then_some(now),
            received_by: caller.user.clone(),
            received_by_department: caller.department.clone(),
            resolution: None,
            resolve_time: None,
            first_complaint: None,
            incident: false,
            escalated_to: String::new(),
            owner_story: None,
            close_time: None,
            closed_by: None,
            close_note: None,
            close_request_id: None,
            kind: self.kind,
            severity: self.severity,
            change_request: self.change.as_ref().map(|change| change.encode_to_vec()),
            deadline_start: now,
            deadline_rule: String::new(),
            deadline_allowed_secs: 0,
            deadline_counting: Counting::Calendar,
            paused_secs: 0,
            waiting_since: None,
            waiting_reason: None,
            customer_grade: String::new(),
            duplicate_of: None,
            handed_off: !owned_here,
            approve_time: None,
            approved_by: None,
            written_answer: None,
            notify_time: None,
            reopen_count: 0,
            cause: self.cause.clone(),
            chase_at: None,
            version: 0,
        }
    }

    /// The case registered as `case_number`, and what registering it does: the steps of its
    /// history, its acknowledgement, the `case_routed` that hands it to its owner — unless it is a
    /// duplicate, linked to the open complaint it repeats, whose owner already has the case.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &self,
        case_number: &str,
        request_id: Option<String>,
        earlier: &Earlier,
        customer_grade: &str,
        caller: &Caller,
        now: DateTime<Utc>,
        time_zone: Tz,
    ) -> (Complaint, Applied<Effects>) {
        let mut complaint = self.new_complaint(case_number, request_id, caller, now);
        complaint.first_complaint = earlier.first_complaint.clone();
        complaint.customer_grade = customer_grade.to_owned();
        complaint.start_deadline(&self.rule, now, time_zone);
        let mut steps = vec![Step {
            action: "registered",
            actor: caller.user.clone(),
            time: now,
            detail: complaint.registered_detail(time_zone),
        }];
        if let Some(first) = &earlier.first_complaint {
            steps.push(Step {
                action: "second_complaint",
                actor: "intake".into(),
                time: now,
                detail: format!(
                    "the customer complained of waybill {} in {} before: {first} (二次投诉)",
                    complaint.waybill_number, complaint.category
                ),
            });
        }
        let mut effects = Effects::default();
        if let Some(original) = &earlier.duplicate_of {
            let linked = complaint.linked(original, "intake", "found at registration", now);
            steps.extend(linked.steps);
            effects.other_steps = linked.effects.other_steps;
            complaint.handed_off = false;
        }
        if !self.owned_here() && complaint.handed_off {
            let routed: Message =
                (self.owner, Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(&complaint)) }));
            effects.events.push(routed);
        }
        effects.replies.push(replies::acknowledgement(&complaint, time_zone));
        (complaint, Applied { steps, effects })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, ComplaintFields};
    use chrono::TimeZone;

    fn registration(owner: ServiceName) -> Registration {
        let fields = ComplaintFields {
            category: "late_delivery",
            waybill_number: "WB1",
            channel: Some(Channel::Phone),
            description: "late",
            contact_phone: "13800000000",
            ..ComplaintFields::default()
        };
        Registration {
            complaint: NewComplaint::parse(fields).expect("allowed"),
            kind: Kind::Complaint,
            severity: Severity::General,
            change: None,
            owner,
            responsible_unit: "ops".into(),
            rule: Rule::for_category("late_delivery", Duration::hours(48)),
            cause: String::new(),
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).single().expect("a time")
    }

    fn caller() -> Caller {
        Caller { user: "A001".into(), department: "intake".into(), ..Caller::default() }
    }

    #[test]
    fn the_same_complaint_by_another_channel_within_a_day_is_a_duplicate_and_not_handed_off_again() {
        let tz = chrono_tz::Asia::Shanghai;
        let (first, _) =
            registration(ServiceName::Inspection).register("1", None, &Earlier::default(), "", &caller(), at(1), tz);
        let mut online = registration(ServiceName::Inspection);
        online.complaint.channel = Channel::Online;
        let earlier = Earlier::find(std::slice::from_ref(&first), Channel::Online, at(5));
        assert_eq!(earlier.duplicate_of.as_ref().map(|c| c.case_number.as_str()), Some("1"));
        let (second, applied) = online.register("2", None, &earlier, "", &caller(), at(5), tz);
        assert_eq!(second.state, State::Duplicate);
        assert!(!second.handed_off);
        assert!(applied.effects.events.is_empty(), "the owner already has the case");
        assert_eq!(applied.effects.other_steps[0].0, "1");
    }

    #[test]
    fn the_same_channel_or_a_later_day_makes_a_second_complaint() {
        let tz = chrono_tz::Asia::Shanghai;
        let (first, _) =
            registration(ServiceName::Inspection).register("1", None, &Earlier::default(), "", &caller(), at(1), tz);
        let same_channel = Earlier::find(std::slice::from_ref(&first), Channel::Phone, at(2));
        assert!(same_channel.duplicate_of.is_none());
        assert_eq!(same_channel.first_complaint.as_deref(), Some("complaints/1"));
        let a_day_later = Earlier::find(std::slice::from_ref(&first), Channel::Online, at(1) + Duration::hours(25));
        assert!(a_day_later.duplicate_of.is_none());
        let (second, applied) =
            registration(ServiceName::Inspection).register("2", None, &same_channel, "", &caller(), at(2), tz);
        assert_eq!(second.first_complaint.as_deref(), Some("complaints/1"));
        assert_eq!(
            applied.steps.iter().map(|step| step.action).collect::<Vec<_>>(),
            ["registered", "second_complaint"]
        );
        assert_eq!(applied.effects.events.len(), 1, "a second complaint goes to its owner");
    }

    #[test]
    fn what_the_service_center_owns_it_holds_at_once_and_sends_nowhere() {
        let tz = chrono_tz::Asia::Shanghai;
        let (case, applied) =
            registration(ServiceName::Intake).register("1", None, &Earlier::default(), "", &caller(), at(1), tz);
        assert_eq!(case.state, State::Accepted);
        assert_eq!(case.owner_reference.as_deref(), Some("complaints/1"));
        assert!(applied.effects.events.is_empty());
        assert_eq!(applied.effects.replies.len(), 1, "the acknowledgement");
    }
}
