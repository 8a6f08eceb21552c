//! `Complaint::apply` without I/O: each rule of a case's life, its refusals, and what it yields.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use kefu_kit::{caller::Caller, config::ServiceName};
use kefu_proto::events::v1::event::Payload;

use super::*;
use crate::{
    domain::{Channel, ComplaintFields, NewComplaint},
    registration::{Earlier, Registration},
};

const TZ: Tz = chrono_tz::Asia::Shanghai;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(2026, 11, day, hour, 0, 0).single().expect("a time").with_timezone(&Utc)
}

fn agent() -> Caller {
    Caller { user: "A001".into(), department: "intake".into(), ..Caller::default() }
}

fn manager() -> Caller {
    Caller { roles: vec!["business_manager".into()], ..agent() }
}

/// A complaint registered at 09:00 on the 23rd, routed to `owner` with 48 hours.
fn registered(owner: ServiceName, severity: Severity) -> Complaint {
    let fields = ComplaintFields {
        category: "late_delivery",
        waybill_number: "WB1",
        channel: Some(Channel::Phone),
        description: "three days late",
        contact_phone: "13800000000",
        ..ComplaintFields::default()
    };
    let registration = Registration {
        complaint: NewComplaint::parse(fields).expect("allowed"),
        kind: Kind::Complaint,
        severity,
        change: None,
        owner,
        responsible_unit: "ops".into(),
        rule: Rule::for_category("late_delivery", Duration::hours(48)),
        cause: String::new(),
    };
    registration.register("20261123-AAAAAA", None, &Earlier::default(), "", &agent(), at(23, 9), TZ).0
}

fn apply(
    complaint: &mut Complaint,
    command: Command,
    caller: &Caller,
    time: DateTime<Utc>,
) -> Result<Applied<Effects>, Error> {
    complaint.apply(command, &Now { time, time_zone: TZ, caller })
}

fn actions(applied: &Applied<Effects>) -> Vec<&'static str> {
    applied.steps.iter().map(|step| step.action).collect()
}

fn owner_resolves(complaint: &mut Complaint, time: DateTime<Utc>) -> Applied<Effects> {
    let command = Command::OwnerResolved {
        owner: "inspection".into(),
        resolution: "fined the branch".into(),
        resolve_time: time,
        story: Vec::new(),
    };
    apply(complaint, command, &agent(), time).expect("allowed")
}

#[test]
fn a_serious_complaint_s_outcome_waits_for_a_manager_and_only_a_manager_approves_it() {
    let mut complaint = registered(ServiceName::Inspection, Severity::Serious);
    let resolved = owner_resolves(&mut complaint, at(24, 9));
    assert_eq!(complaint.state, State::AwaitingApproval);
    assert_eq!(actions(&resolved), ["resolved", "awaiting_approval"]);
    assert!(resolved.effects.replies.is_empty(), "the customer is answered once approved");

    let approve = || Command::Approve { written_answer: "we apologise".into() };
    let refused = apply(&mut complaint, approve(), &agent(), at(24, 10)).expect_err("refused");
    assert!(matches!(refused, Error::NotAllowed(_)), "{refused:?}");
    assert_eq!(complaint.state, State::AwaitingApproval, "a refusal changes nothing");

    let approved = apply(&mut complaint, approve(), &manager(), at(24, 10)).expect("allowed");
    assert_eq!(complaint.state, State::Resolved);
    assert_eq!(complaint.approved_by.as_deref(), Some("A001"));
    assert_eq!(approved.effects.replies.len(), 1);
    assert!(approved.effects.replies[0].text.contains("we apologise"), "the written answer is the reply");
    assert_eq!(approved.effects.visits.len(), 1, "a follow-up visit is planned");
}

#[test]
fn a_refused_command_leaves_the_case_as_it_was() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    let before = complaint.clone();
    let refused =
        apply(&mut complaint, Command::Reopen { reason: "unhappy".into() }, &agent(), at(23, 10)).expect_err("refused");
    match refused {
        Error::Refused { state, .. } => assert_eq!(state, State::Routed),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(complaint, before);
}

#[test]
fn a_reopened_case_is_held_by_the_service_center_with_24_hours_and_its_owner_told() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    owner_resolves(&mut complaint, at(24, 9));
    let reopened =
        apply(&mut complaint, Command::Reopen { reason: "still late".into() }, &agent(), at(25, 9)).expect("allowed");
    assert_eq!(complaint.state, State::Reopened);
    assert_eq!(complaint.reopen_count, 1);
    assert_eq!(complaint.deadline, at(26, 9));
    assert!(matches!(reopened.effects.events.as_slice(), [(ServiceName::Inspection, Payload::CaseNotice(_))]));
}

#[test]
fn an_owner_s_deadline_holds_through_a_pause_and_a_change_of_severity() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    let moved = Command::MoveDeadline {
        owner: "inspection".into(),
        deadline: at(28, 18),
        reason: "waiting for the report".into(),
    };
    apply(&mut complaint, moved, &agent(), at(23, 12)).expect("allowed");
    assert_eq!(complaint.deadline, at(28, 18));
    apply(&mut complaint, Command::WaitForCustomer { reason: "photos".into() }, &agent(), at(24, 9)).expect("allowed");
    apply(&mut complaint, Command::Resume { note: String::new() }, &agent(), at(24, 15)).expect("allowed");
    assert_eq!(complaint.deadline, at(28, 18) + Duration::hours(6), "moved only by the time waited");
    let graver = Command::ChangeSeverity { to: Severity::Critical, reason: "a second call".into() };
    apply(&mut complaint, graver, &agent(), at(24, 16)).expect("allowed");
    assert_eq!(complaint.deadline, at(28, 18) + Duration::hours(6), "an owner's date is not scaled by severity");
    assert_eq!(complaint.computed_deadline(TZ).deadline, complaint.deadline, "recomputable from what it keeps");
}

#[test]
fn an_owner_s_event_about_a_case_it_does_not_own_is_refused() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    let accept =
        Command::Accept { owner: "claims".into(), owner_reference: "claims/1".into(), accept_time: at(23, 10) };
    assert!(matches!(apply(&mut complaint, accept, &agent(), at(23, 10)), Err(Error::Precondition(_))));
    let accept =
        Command::Accept { owner: "inspection".into(), owner_reference: "inspection/1".into(), accept_time: at(23, 10) };
    apply(&mut complaint, accept, &agent(), at(23, 10)).expect("allowed");
    assert_eq!(complaint.state, State::Accepted);
}

#[test]
fn an_overdue_case_is_chased_once_a_day_and_not_before_its_deadline() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    assert!(matches!(apply(&mut complaint, Command::Chase, &agent(), at(24, 9)), Err(Error::Precondition(_))));
    let chased = apply(&mut complaint, Command::Chase, &agent(), at(25, 10)).expect("allowed");
    assert_eq!(complaint.chase_at, Some(at(26, 10)));
    assert_eq!(chased.effects.replies.len(), 2, "the owner chased, a supervisor told");
    assert_eq!(chased.effects.events.len(), 1, "the owner hears of it in its own case");
}

#[test]
fn a_duplicate_is_the_same_waybill_and_kind_and_never_itself() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    let itself = Command::LinkDuplicate { original: Box::new(complaint.clone()), reason: "same".into() };
    assert!(matches!(apply(&mut complaint, itself, &agent(), at(23, 10)), Err(Error::Invalid(_))));
    let mut other = registered(ServiceName::Inspection, Severity::General);
    other.case_number = "20261123-BBBBBB".into();
    other.waybill_number = "WB2".into();
    let elsewhere = Command::LinkDuplicate { original: Box::new(other.clone()), reason: "same".into() };
    assert!(matches!(apply(&mut complaint, elsewhere, &agent(), at(23, 10)), Err(Error::Precondition(_))));
    other.waybill_number = "WB1".into();
    let linked = Command::LinkDuplicate { original: Box::new(other), reason: "same".into() };
    let applied = apply(&mut complaint, linked, &agent(), at(23, 10)).expect("allowed");
    assert_eq!(complaint.state, State::Duplicate);
    assert_eq!(complaint.chase_at, None);
    assert_eq!(applied.effects.other_steps[0].0, "20261123-BBBBBB");
}

#[test]
fn closing_needs_the_outcome_and_sends_the_story_to_archives() {
    let mut complaint = registered(ServiceName::Inspection, Severity::General);
    let close = || Command::Close { note: "done".into(), request_id: Some("r1".into()) };
    assert!(matches!(apply(&mut complaint, close(), &agent(), at(23, 10)), Err(Error::Refused { .. })));
    owner_resolves(&mut complaint, at(24, 9));
    let closed = apply(&mut complaint, close(), &agent(), at(24, 10)).expect("allowed");
    assert_eq!(complaint.state, State::Closed);
    assert_eq!(complaint.close_request_id.as_deref(), Some("r1"));
    assert!(closed.effects.story_to_archives);
}
