//! The service center's day through the gateway: inquiries answered in thirty working minutes and
//! turned into complaints, change requests routed by 001 §8 4.9 and early returns refused, serious
//! complaints approved by a manager and answered in writing, replies retried the next morning,
//! reopening, deadlines paused while waiting on the customer and explained, overdue cases chased,
//! and duplicates linked and unlinked. Every time rule runs on an injected clock.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_kit::{ManualClock, clock::Clock, time::to_timestamp};
use kefu_proto::{
    gateway::v1::{
        Contact, CreateComplaintRequest, ListComplaintsRequest, Severity as GatewaySeverity, State as ComplaintState,
    },
    inspection::v1::{GetCaseRequest, inspection_client::InspectionClient},
    intake::v1::{self as pb, intake_client::IntakeClient},
    settlement::v1::{ResolveCaseRequest, settlement_client::SettlementClient},
};
use tonic::Code;

use crate::support::Gateway;

use crate::{
    inspection::complaint_when,
    support::{Backend, TestSuite, as_user, complaint, create, on_both_backends, violated_fields},
};

/// Shanghai local time as UTC.
pub(crate) fn shanghai(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0).single().expect("a time") - Duration::hours(8)
}

fn intake(suite: &TestSuite) -> IntakeClient<Gateway> {
    IntakeClient::new(suite.gateway.clone())
}

fn staff<T>(message: T) -> tonic::Request<T> {
    as_user(message, "A1024", "intake")
}

fn manager<T>(message: T) -> tonic::Request<T> {
    crate::support::with_roles(as_user(message, "M001", ""), "business_manager")
}

fn request_of(kind: pb::Kind, waybill: &str, channel: pb::Channel) -> pb::Complaint {
    pb::Complaint {
        kind: kind as i32,
        waybill_number: waybill.into(),
        channel: channel as i32,
        description: "货物到哪里了".into(),
        contact: Some(pb::Contact { name: "王先生".into(), phone: "13800000000".into() }),
        branch: "SH01".into(),
        ..Default::default()
    }
}

fn create_request(request_id: &str, request: pb::Complaint) -> pb::CreateRequestRequest {
    pb::CreateRequestRequest { request_id: request_id.into(), request: Some(request) }
}

async fn replies(intake: &mut IntakeClient<Gateway>, complaint: &str, due_only: bool) -> Vec<pb::Reply> {
    let list = pb::ListRepliesRequest { complaint: complaint.into(), due_only, page_size: 100, ..Default::default() };
    intake.list_replies(staff(list)).await.expect("replies").into_inner().replies
}

/// The actions of the case's timeline that intake recorded, in order.
async fn actions(intake: &mut IntakeClient<Gateway>, complaint: &str) -> Vec<String> {
    let timeline = intake
        .get_complaint_timeline(pb::GetComplaintTimelineRequest { name: complaint.into() })
        .await
        .expect("timeline")
        .into_inner();
    timeline.steps.into_iter().filter(|step| step.department == "intake").map(|step| step.action).collect()
}

async fn explain(intake: &mut IntakeClient<Gateway>, complaint: &str) -> pb::DeadlineExplanation {
    intake
        .explain_deadline(pb::ExplainDeadlineRequest { name: complaint.into() })
        .await
        .expect("explained")
        .into_inner()
}

async fn count(suite: &TestSuite, filter: &str) -> usize {
    let list = ListComplaintsRequest { page_size: 500, filter: filter.into(), ..Default::default() };
    suite.complaints().list_complaints(list).await.expect("listed").into_inner().complaints.len()
}

on_both_backends!(an_inquiry_is_answered_in_thirty_working_minutes_and_can_become_a_complaint);
async fn an_inquiry_is_answered_in_thirty_working_minutes_and_can_become_a_complaint(backend: Backend) {
    // Ten minutes before the phones close for inquiries (18:30).
    let clock = Arc::new(ManualClock::new(shanghai(23, 18, 20)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);

    // Bad input names every field and records nothing.
    let bad = pb::Complaint { kind: pb::Kind::Complaint as i32, ..Default::default() };
    let refused = intake.create_request(staff(create_request("bad", bad))).await.expect_err("a complaint");
    assert_eq!(violated_fields(&refused), ["request.kind"]);
    let no_text = pb::Complaint {
        description: String::new(),
        waybill_number: String::new(),
        ..request_of(pb::Kind::Inquiry, "", pb::Channel::Phone)
    };
    let refused = intake.create_request(staff(create_request("bad", no_text))).await.expect_err("empty");
    assert_eq!(violated_fields(&refused), ["request.waybill_number", "request.description"]);
    assert_eq!(count(&suite, "kind = inquiry").await, 0);

    let inquiry = intake
        .create_request(staff(create_request("inq-1", request_of(pb::Kind::Inquiry, "YD7001", pb::Channel::Phone))))
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(inquiry.kind(), pb::Kind::Inquiry);
    assert_eq!(inquiry.state(), pb::State::Accepted, "the service center holds its inquiries");
    // Ten working minutes today, twenty from 08:30 tomorrow.
    assert_eq!(inquiry.deadline, Some(to_timestamp(shanghai(24, 8, 50))));
    let explained = explain(&mut intake, &inquiry.name).await;
    assert!(explained.working_hours);
    assert!(explained.rule.contains("30 minutes"), "{}", explained.rule);
    assert!(explained.steps.iter().any(|step| step.contains("08:30–18:30")), "{:?}", explained.steps);
    // The acknowledgement was said in the call, in the handbook's words.
    let acknowledged = replies(&mut intake, &inquiry.name, false).await;
    assert_eq!(acknowledged.len(), 1);
    assert_eq!(acknowledged[0].state(), pb::ReplyState::Delivered);
    assert!(acknowledged[0].text.contains("鹏达物流A1024号为您服务"), "{}", acknowledged[0].text);
    assert!(acknowledged[0].text.contains(inquiry.name.trim_start_matches("complaints/")));

    let answer = pb::ResolveComplaintRequest {
        name: inquiry.name.clone(),
        request_id: "answer-1".into(),
        resolution: "货物在上海分拨中心，明天送达".into(),
        cause: String::new(),
    };
    let answered = intake.resolve_complaint(staff(answer)).await.expect("answered").into_inner();
    assert_eq!(answered.state(), pb::State::Resolved);
    let result = replies(&mut intake, &inquiry.name, true).await;
    assert_eq!(result.len(), 1, "the result is due to be told");
    assert_eq!(result[0].purpose(), pb::ReplyPurpose::Result);
    assert!(
        result[0].text.contains("明天送达") && result[0].text.starts_with("您好，我是鹏达物流"),
        "{}",
        result[0].text
    );

    // The customer complains after all: the inquiry becomes the complaint, same number, its history kept.
    clock.advance(Duration::hours(15));
    let convert = || CreateComplaintRequest {
        request_id: "convert-1".into(),
        complaint: Some(complaint("late_delivery", "YD7001")),
        from_request: inquiry.name.clone(),
    };
    let converted = suite.complaints().create_complaint(convert()).await.expect("converted").into_inner();
    assert_eq!(converted.name, inquiry.name);
    assert_eq!(converted.category, "late_delivery");
    assert_eq!(converted.deadline, Some(to_timestamp(clock.now() + Duration::hours(48))));
    let again = suite.complaints().create_complaint(convert()).await.expect("retried").into_inner();
    assert_eq!(again.deadline, converted.deadline);
    complaint_when(&suite, &inquiry.name, "inspection accepts it", |c| c.state() == ComplaintState::Accepted).await;
    let steps = actions(&mut intake, &inquiry.name).await;
    assert_eq!(steps.iter().filter(|action| *action == "converted").count(), 1, "{steps:?}");
    assert_eq!(&steps[..3], ["registered", "resolved", "converted"], "{steps:?}");

    // Suggestions are recorded and counted; they do not turn into complaints.
    let suggestion = pb::Complaint {
        waybill_number: String::new(),
        description: "希望开通周日派送".into(),
        ..request_of(pb::Kind::Suggestion, "", pb::Channel::Online)
    };
    let suggestion =
        intake.create_request(staff(create_request("sug-1", suggestion))).await.expect("recorded").into_inner();
    assert_eq!(suggestion.deadline, Some(to_timestamp(clock.now() + Duration::days(7))));
    let refused = suite
        .complaints()
        .create_complaint(CreateComplaintRequest {
            request_id: "convert-2".into(),
            complaint: Some(complaint("late_delivery", "YD7002")),
            from_request: suggestion.name.clone(),
        })
        .await
        .expect_err("a suggestion");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(count(&suite, "kind = suggestion").await, 1);
    suite.stop().await;
}

fn change(kind: pb::ChangeRequest, waybill: &str) -> pb::Complaint {
    pb::Complaint {
        description: "客户来电要求更改".into(),
        change: Some(kind),
        ..request_of(pb::Kind::ChangeRequest, waybill, pb::Channel::Phone)
    }
}

on_both_backends!(change_requests_go_to_their_owner_and_early_returns_are_refused);
async fn change_requests_go_to_their_owner_and_early_returns_are_refused(backend: Backend) {
    let clock = Arc::new(ManualClock::new(shanghai(23, 10, 0)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);

    let consignee =
        pb::ChangeRequest { consignee: "李四".into(), consignee_phone: "13900000000".into(), ..Default::default() };
    let kept =
        intake.create_request(staff(create_request("chg-1", change(consignee.clone(), "YD8001")))).await.expect("kept");
    let kept = kept.into_inner();
    assert_eq!((kept.owner.as_str(), kept.state()), ("intake", pb::State::Accepted));
    assert_eq!(kept.change.as_ref().map(|c| c.consignee.as_str()), Some("李四"));

    // Consignee and COD amount together: all of it goes to settlement.
    let both = pb::ChangeRequest { cod_amount_fen: Some(123_456), ..consignee };
    let moved = intake.create_request(staff(create_request("chg-2", change(both, "YD8002")))).await.expect("moved");
    let moved = moved.into_inner();
    assert_eq!(moved.owner, "settlement");
    assert!(moved.customer_request.contains("1234.56 yuan") && !moved.customer_request.contains("李四"));
    complaint_when(&suite, &moved.name, "settlement accepts it", |c| !c.owner_reference.is_empty()).await;

    // Unclaimed cargo: 10 days after arrival and with the shipper's certificate, else refused.
    let arrived = clock.now() - Duration::days(9);
    let early = pb::ChangeRequest {
        return_unclaimed: true,
        arrival_time: Some(to_timestamp(arrived)),
        shipper_certificate: true,
        ..Default::default()
    };
    let refused = intake.create_request(staff(create_request("ret-1", change(early.clone(), "YD8003")))).await;
    let refused = refused.expect_err("a day early");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("10 days") && !refused.message().contains("certificate is missing"),
        "{}",
        refused.message()
    );
    clock.advance(Duration::days(1));
    let uncertified = pb::ChangeRequest { shipper_certificate: false, ..early.clone() };
    let refused = intake.create_request(staff(create_request("ret-2", change(uncertified, "YD8003")))).await;
    let refused = refused.expect_err("no certificate");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("certificate is missing"), "{}", refused.message());
    assert_eq!(count(&suite, "kind = change_request").await, 2, "nothing recorded for the refusals");
    let returned =
        intake.create_request(staff(create_request("ret-3", change(early, "YD8003")))).await.expect("returned");
    assert_eq!(returned.into_inner().owner, "intake");

    let empty =
        intake.create_request(staff(create_request("chg-3", change(pb::ChangeRequest::default(), "YD8004")))).await;
    assert_eq!(violated_fields(&empty.expect_err("nothing to change")), ["request.change"]);
    suite.stop().await;
}

on_both_backends!(a_serious_complaint_is_approved_by_a_manager_answered_in_writing_and_reopened_until_satisfied);
async fn a_serious_complaint_is_approved_by_a_manager_answered_in_writing_and_reopened_until_satisfied(
    backend: Backend,
) {
    let clock = Arc::new(ManualClock::new(shanghai(23, 17, 0)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let mut serious = complaint("late_remittance", "YD9001");
    serious.severity = GatewaySeverity::Serious as i32;
    serious.channel = pb::Channel::Letter as i32;
    let created =
        suite.complaints().create_complaint(create("serious-1", serious)).await.expect("created").into_inner();
    assert_eq!(created.severity(), GatewaySeverity::Serious);
    // 48 hours at 50% for a serious complaint.
    assert_eq!(created.deadline, Some(to_timestamp(clock.now() + Duration::hours(24))));
    let explained = explain(&mut intake, &created.name).await;
    assert!(explained.steps.contains(&"severity serious: 50% of the time, 24h".to_owned()), "{:?}", explained.steps);
    // A letter is acknowledged by letter, which the staff still have to send.
    let acknowledgement = &replies(&mut intake, &created.name, true).await[0];
    assert_eq!((acknowledgement.channel.as_str(), acknowledgement.state()), ("letter", pb::ReplyState::Pending));
    assert!(acknowledgement.text.starts_with("您的来信我们已收到"), "{}", acknowledgement.text);

    let held = complaint_when(&suite, &created.name, "settlement holds it", |c| !c.owner_reference.is_empty()).await;
    let resolve = ResolveCaseRequest {
        name: held.owner_reference,
        resolution: "货款已于今日汇出".into(),
        request_id: String::new(),
    };
    SettlementClient::new(suite.gateway.clone())
        .resolve_case(as_user(resolve, "J001", "settlement"))
        .await
        .expect("resolved");
    complaint_when(&suite, &created.name, "it waits for approval", |c| c.state() == ComplaintState::AwaitingApproval)
        .await;

    let close =
        pb::CloseComplaintRequest { name: created.name.clone(), request_id: "close-1".into(), note: "told".into() };
    assert_eq!(
        intake.close_complaint(staff(close.clone())).await.expect_err("not approved").code(),
        Code::FailedPrecondition
    );
    let approve = pb::ApproveOutcomeRequest {
        name: created.name.clone(),
        request_id: "approve-1".into(),
        written_answer: "货款已汇出，并对延误致歉".into(),
    };
    let denied = intake.approve_outcome(staff(approve.clone())).await.expect_err("not a manager");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let missing = pb::ApproveOutcomeRequest { written_answer: " ".into(), ..approve.clone() };
    assert_eq!(
        violated_fields(&intake.approve_outcome(manager(missing)).await.expect_err("no answer")),
        ["written_answer"]
    );
    let approved = intake.approve_outcome(manager(approve.clone())).await.expect("approved").into_inner();
    assert_eq!((approved.state(), approved.approved_by.as_str()), (pb::State::Resolved, "M001"));
    let retried = intake.approve_outcome(manager(approve)).await.expect("retried").into_inner();
    assert_eq!(retried.approve_time, approved.approve_time);

    // The written answer goes by letter; the first attempt fails, and it is due again tomorrow before 09:00.
    let result =
        replies(&mut intake, &created.name, true).await.into_iter().find(|r| r.purpose() == pb::ReplyPurpose::Result);
    let result = result.expect("the result is due");
    assert_eq!(result.channel, "letter");
    assert!(result.text.contains("货款已汇出，并对延误致歉"), "{}", result.text);
    let attempt =
        |reached: bool| pb::RecordReplyAttemptRequest {
            name: result.name.clone(), reached, note: "无人接听".into()
        };
    let unreached = intake.record_reply_attempt(staff(attempt(false))).await.expect("recorded").into_inner();
    assert_eq!(unreached.state(), pb::ReplyState::Unreached);
    assert_eq!(unreached.due_time, Some(to_timestamp(shanghai(24, 8, 30))));
    assert!(!replies(&mut intake, &created.name, true).await.iter().any(|r| r.name == result.name), "not due tonight");
    clock.set(shanghai(24, 8, 31));
    assert!(replies(&mut intake, &created.name, true).await.iter().any(|r| r.name == result.name), "due this morning");
    intake.record_reply_attempt(staff(attempt(true))).await.expect("reached");
    let told =
        complaint_when(&suite, &created.name, "the customer was told", |c| c.state() == ComplaintState::Notified).await;
    assert_eq!(told.resolution, "货款已于今日汇出");
    let again = intake.record_reply_attempt(staff(attempt(true))).await.expect_err("delivered before");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Not satisfied: reopened, held by the service center with 24 hours, settlement told.
    let reopen = pb::ReopenComplaintRequest {
        name: created.name.clone(),
        request_id: "reopen-1".into(),
        reason: "客户要求赔偿利息".into(),
    };
    let reopened = intake.reopen_complaint(staff(reopen.clone())).await.expect("reopened").into_inner();
    assert_eq!((reopened.state(), reopened.reopen_count), (pb::State::Reopened, 1));
    // 24 hours to handle it again, at 50% for a serious complaint.
    assert_eq!(reopened.deadline, Some(to_timestamp(clock.now() + Duration::hours(12))));
    assert_eq!(intake.reopen_complaint(staff(reopen)).await.expect("retried").into_inner().reopen_count, 1);
    let resolve = pb::ResolveComplaintRequest {
        name: created.name.clone(),
        request_id: "resolve-2".into(),
        resolution: "按日息补偿客户".into(),
        cause: String::new(),
    };
    let resolved = intake.resolve_complaint(staff(resolve)).await.expect("resolved").into_inner();
    assert_eq!(resolved.state(), pb::State::AwaitingApproval, "a serious complaint's new outcome is approved again");
    let approve = pb::ApproveOutcomeRequest {
        name: created.name.clone(),
        request_id: "approve-2".into(),
        written_answer: "按日息补偿".into(),
    };
    intake.approve_outcome(manager(approve)).await.expect("approved");
    let closed = intake.close_complaint(staff(close)).await.expect("closed").into_inner();
    assert_eq!(closed.state(), pb::State::Closed);
    let steps = actions(&mut intake, &created.name).await;
    assert_eq!(
        steps,
        [
            "registered",
            "accepted",
            "resolved",
            "awaiting_approval",
            "approved",
            "notified",
            "reopened",
            "resolved",
            "awaiting_approval",
            "approved",
            "closed"
        ]
    );
    suite.stop().await;
}

on_both_backends!(deadlines_pause_while_waiting_and_overdue_cases_are_chased);
async fn deadlines_pause_while_waiting_and_overdue_cases_are_chased(backend: Backend) {
    let start = shanghai(23, 10, 0);
    let clock = Arc::new(ManualClock::new(start));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let created = suite.complaints().create_complaint(create("late-1", complaint("late_delivery", "YD6001"))).await;
    let name = created.expect("created").into_inner().name;
    complaint_when(&suite, &name, "inspection accepts it", |c| c.state() == ComplaintState::Accepted).await;

    clock.advance(Duration::hours(1));
    let wait = |reason: &str| pb::WaitForCustomerRequest { name: name.clone(), reason: reason.into() };
    assert_eq!(violated_fields(&intake.wait_for_customer(staff(wait(""))).await.expect_err("no reason")), ["reason"]);
    let waiting = intake.wait_for_customer(staff(wait("等客户提供签收单照片"))).await.expect("waits").into_inner();
    assert!(waiting.waiting_since.is_some());
    let twice = intake.wait_for_customer(staff(wait("again"))).await.expect_err("waits already");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    clock.advance(Duration::hours(5));
    let explained = explain(&mut intake, &name).await;
    assert!(explained.steps.iter().any(|step| step.contains("the deadline is paused")), "{:?}", explained.steps);
    let resumed = intake
        .resume_complaint(staff(pb::ResumeComplaintRequest { name: name.clone(), note: "照片已收到".into() }))
        .await
        .expect("resumed")
        .into_inner();
    assert_eq!(resumed.deadline, Some(to_timestamp(start + Duration::hours(48 + 5))));
    let explained = explain(&mut intake, &name).await;
    assert_eq!(explained.paused, Some(kefu_kit::time::to_duration(Duration::hours(5))));
    assert!(explained.steps.contains(&"waited on the customer 5h: added".to_owned()), "{:?}", explained.steps);

    // Graver than it looked: the deadline follows the severity, and says why.
    let severity = |reason: &str| pb::ChangeSeverityRequest {
        name: name.clone(),
        severity: pb::Severity::Critical as i32,
        reason: reason.into(),
    };
    assert_eq!(violated_fields(&intake.change_severity(staff(severity(""))).await.expect_err("no reason")), ["reason"]);
    let graver =
        intake.change_severity(staff(severity("客户为重要客户，已两次来电"))).await.expect("changed").into_inner();
    // 48 hours at 25%, plus the 5 hours waited.
    assert_eq!(graver.deadline, Some(to_timestamp(start + Duration::hours(12 + 5))));

    // Past the deadline: the owner is chased and a supervisor told, once a day while it stays overdue.
    let chase = |intake: &mut IntakeClient<Gateway>| {
        let mut intake = intake.clone();
        async move { intake.chase_overdue(pb::ChaseOverdueRequest {}).await.expect("chased").into_inner().chased }
    };
    assert!(!chase(&mut intake).await.contains(&name), "not yet overdue");
    clock.set(start + Duration::hours(18));
    chase(&mut intake).await;
    let sent = replies(&mut intake, &name, false).await;
    let chases: Vec<(&str, pb::ReplyPurpose)> =
        sent.iter().filter(|r| r.recipient != "customer").map(|r| (r.recipient.as_str(), r.purpose())).collect();
    assert_eq!(chases, [("owner", pb::ReplyPurpose::Chase), ("supervisor", pb::ReplyPurpose::OverdueNotice)]);
    assert!(!chase(&mut intake).await.contains(&name), "chased once today");
    clock.advance(Duration::days(1));
    chase(&mut intake).await;
    let steps = actions(&mut intake, &name).await;
    assert_eq!(steps.iter().filter(|action| *action == "chased").count(), 2, "{steps:?}");
    // The owner is chased in its own case too, each time.
    let inspection = InspectionClient::new(suite.gateway.clone());
    let case = GetCaseRequest { name: name.replace("complaints/", "cases/") };
    crate::support::eventually("inspection's case records both chases", || {
        let mut inspection = inspection.clone();
        let case = case.clone();
        async move {
            let history = inspection.get_case(case).await.ok()?.into_inner().history;
            let chased: Vec<_> = history.iter().filter(|step| step.action == "chased").collect();
            (chased.len() == 2)
                .then(|| chased.iter().all(|step| step.actor == "intake" && step.detail.contains("催办")))
        }
    })
    .await
    .then_some(())
    .expect("recorded as intake's chase");
    suite.stop().await;
}

on_both_backends!(duplicates_are_linked_not_handled_twice_and_can_be_unlinked);
async fn duplicates_are_linked_not_handled_twice_and_can_be_unlinked(backend: Backend) {
    let clock = Arc::new(ManualClock::new(shanghai(23, 10, 0)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let first = suite.complaints().create_complaint(create("dup-1", complaint("mis_sort", "YD5001"))).await;
    let first = first.expect("first").into_inner();
    complaint_when(&suite, &first.name, "inspection accepts it", |c| c.state() == ComplaintState::Accepted).await;
    // The same customer writes online an hour later about the same waybill: the same complaint.
    clock.advance(Duration::hours(1));
    let mut online = complaint("mis_sort", "YD5001");
    online.channel = pb::Channel::Online as i32;
    let second = suite.complaints().create_complaint(create("dup-2", online)).await.expect("second").into_inner();
    assert_eq!(second.state(), ComplaintState::Duplicate);
    assert!(!second.incident && second.first_complaint.is_empty(), "a duplicate is not a second complaint");
    let shown = intake.get_complaint(pb::GetComplaintRequest { name: second.name.clone() }).await.expect("shown");
    assert_eq!(shown.into_inner().duplicate_of, first.name);
    assert_eq!(count(&suite, "category = mis_sort AND state = duplicate").await, 1);
    let mut inspection = InspectionClient::new(suite.gateway.clone());
    let owner_case = |name: &str| GetCaseRequest { name: name.replace("complaints/", "cases/") };
    let absent = inspection.get_case(owner_case(&second.name)).await.expect_err("never handed over");
    assert_eq!(absent.code(), Code::NotFound);

    // Unlinked, it stands on its own and goes to its owner.
    let unlink = pb::UnlinkDuplicateRequest { name: second.name.clone(), reason: "客户说是另一票货".into() };
    let unlinked = intake.unlink_duplicate(staff(unlink.clone())).await.expect("unlinked").into_inner();
    assert_eq!((unlinked.state(), unlinked.duplicate_of.as_str()), (pb::State::Routed, ""));
    complaint_when(&suite, &second.name, "inspection accepts it now", |c| c.state() == ComplaintState::Accepted).await;
    assert_eq!(intake.unlink_duplicate(staff(unlink)).await.expect_err("not linked").code(), Code::FailedPrecondition);

    // Linked by hand; a complaint about another waybill is refused.
    let link = |name: &str, of: &str| pb::LinkDuplicateRequest {
        name: name.into(),
        duplicate_of: of.into(),
        reason: "同一事件".into(),
    };
    let mut relative = complaint("mis_sort", "YD5001");
    relative.contact = Some(Contact { name: "王太太".into(), phone: "13700000000".into() });
    let third = suite.complaints().create_complaint(create("dup-3", relative)).await.expect("third").into_inner();
    let other = suite
        .complaints()
        .create_complaint(create("dup-4", complaint("mis_sort", "YD5002")))
        .await
        .expect("other")
        .into_inner();
    // Staff link a case they see accepted: linking while the owner's acceptance is being applied
    // is ABORTED (a concurrent change), which a client retries.
    for name in [&third.name, &other.name] {
        complaint_when(&suite, name, "its owner accepts it", |c| c.state() == ComplaintState::Accepted).await;
    }
    let wrong = intake.link_duplicate(staff(link(&third.name, &other.name))).await.expect_err("another waybill");
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    let bad = intake.link_duplicate(staff(link(&third.name, "cases/1"))).await.expect_err("bad name");
    assert_eq!(violated_fields(&bad), ["duplicate_of"]);
    let linked = intake.link_duplicate(staff(link(&third.name, &first.name))).await.expect("linked").into_inner();
    assert_eq!((linked.state(), linked.duplicate_of.as_str()), (pb::State::Duplicate, first.name.as_str()));
    let first_steps = actions(&mut intake, &first.name).await;
    assert_eq!(first_steps.iter().filter(|action| *action == "duplicate_linked").count(), 2, "{first_steps:?}");
    suite.stop().await;
}

on_both_backends!(a_resolved_complaint_is_visited_an_unsatisfied_customer_reopens_it_and_the_week_is_reported);
async fn a_resolved_complaint_is_visited_an_unsatisfied_customer_reopens_it_and_the_week_is_reported(backend: Backend) {
    // Monday 2026-11-23, 10:00.
    let clock = Arc::new(ManualClock::new(shanghai(23, 10, 0)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let created = suite.complaints().create_complaint(create("visit-1", complaint("late_remittance", "YD4001"))).await;
    let name = created.expect("created").into_inner().name;
    let held = complaint_when(&suite, &name, "settlement holds it", |c| !c.owner_reference.is_empty()).await;
    let resolve =
        ResolveCaseRequest {
            name: held.owner_reference, resolution: "货款已汇出".into(), request_id: String::new()
        };
    SettlementClient::new(suite.gateway.clone())
        .resolve_case(as_user(resolve, "J001", "settlement"))
        .await
        .expect("resolved");
    complaint_when(&suite, &name, "intake records the outcome", |c| c.state() == ComplaintState::Resolved).await;

    // The resolution planned a visit by phone for the next day.
    let list = || pb::ListVisitsRequest { parent: name.clone(), page_size: 10, page_token: String::new() };
    let planned = intake.list_visits(staff(list())).await.expect("listed").into_inner().visits;
    assert_eq!(planned.len(), 1);
    assert_eq!((planned[0].method(), planned[0].state()), (pb::VisitMethod::VisitPhone, pb::VisitState::Planned));
    assert_eq!(planned[0].plan_time, Some(to_timestamp(clock.now() + Duration::days(1))));

    // A face-to-face visit is announced three days ahead.
    let in_person = |days: i64, request_id: &str| pb::PlanVisitRequest {
        parent: name.clone(),
        request_id: request_id.into(),
        visit: Some(pb::Visit {
            method: pb::VisitMethod::VisitInPerson as i32,
            visitor: "A1024".into(),
            plan_time: Some(to_timestamp(clock.now() + Duration::days(days))),
            purpose: "当面致歉并了解意见".into(),
            ..Default::default()
        }),
    };
    let early = intake.plan_visit(staff(in_person(1, "plan-1"))).await.expect_err("one day ahead");
    assert_eq!(early.code(), Code::FailedPrecondition);
    let face = intake.plan_visit(staff(in_person(3, "plan-2"))).await.expect("planned").into_inner();
    assert_eq!(intake.plan_visit(staff(in_person(3, "plan-2"))).await.expect("retried").into_inner().name, face.name);
    assert_eq!(intake.list_visits(staff(list())).await.expect("listed").into_inner().visits.len(), 2);

    // The phone visit: the customer is not satisfied, and the complaint goes on.
    let record = |visit: &str, service: pb::Satisfaction| pb::RecordVisitRequest {
        name: visit.into(),
        service_satisfaction: service as i32,
        product_satisfaction: pb::Satisfaction::Good as i32,
        opinions: "汇款太慢".into(),
        counter_measures: "结算部加快转账".into(),
    };
    let blank = pb::RecordVisitRequest { name: planned[0].name.clone(), ..Default::default() };
    let refused = intake.record_visit(staff(blank)).await.expect_err("no satisfaction");
    assert_eq!(violated_fields(&refused), ["service_satisfaction", "product_satisfaction"]);
    clock.advance(Duration::days(1));
    let unsatisfied =
        intake.record_visit(staff(record(&planned[0].name, pb::Satisfaction::Poor))).await.expect("recorded");
    let unsatisfied = unsatisfied.into_inner();
    assert!(unsatisfied.reopened);
    let reopened = complaint_when(&suite, &name, "it is reopened", |c| c.state() == ComplaintState::Reopened).await;
    assert_eq!(reopened.resolution, "货款已汇出");
    let again = intake
        .record_visit(staff(record(&planned[0].name, pb::Satisfaction::Good)))
        .await
        .expect_err("recorded before");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let sign = pb::SignVisitRequest { name: unsatisfied.name.clone() };
    assert_eq!(
        intake.sign_visit(staff(sign.clone())).await.expect_err("not a supervisor").code(),
        Code::PermissionDenied
    );
    let supervisor = crate::support::with_roles(as_user(sign, "S001", "intake"), "supervisor");
    let signed = intake.sign_visit(supervisor).await.expect("signed").into_inner();
    assert_eq!((signed.state(), signed.signed_by.as_str()), (pb::VisitState::Signed, "S001"));

    // More of the week: an inquiry, a suggestion, a duplicate, a mis-sort, a refused consignment returned.
    intake
        .create_request(staff(create_request("w-inq", request_of(pb::Kind::Inquiry, "YD4002", pb::Channel::Phone))))
        .await
        .expect("inquiry");
    let suggestion =
        pb::Complaint { waybill_number: String::new(), ..request_of(pb::Kind::Suggestion, "", pb::Channel::Online) };
    intake.create_request(staff(create_request("w-sug", suggestion))).await.expect("suggestion");
    suite.complaints().create_complaint(create("w-mis", complaint("mis_sort", "YD4003"))).await.expect("mis-sort");
    let mut online = complaint("mis_sort", "YD4003");
    online.channel = pb::Channel::Online as i32;
    let duplicate = suite.complaints().create_complaint(create("w-dup", online)).await.expect("duplicate").into_inner();
    assert_eq!(duplicate.state(), ComplaintState::Duplicate);
    let returned = pb::ChangeRequest {
        return_unclaimed: true,
        arrival_time: Some(to_timestamp(clock.now() - Duration::days(12))),
        shipper_certificate: true,
        ..Default::default()
    };
    let mut returned = change(returned, "YD4004");
    returned.cause = "收货人拒收：包装破损".into();
    intake.create_request(staff(create_request("w-ret", returned))).await.expect("returned");

    let week = intake
        .get_complaint_summary(staff(pb::GetComplaintSummaryRequest { week: "2026-11-25".into() }))
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(week.week, "2026-11-23");
    assert_eq!(week.duplicates, 1, "the duplicate is not counted twice");
    let totals: Vec<(&str, i64)> = ["complaint", "inquiry", "suggestion", "change_request", "consultation"]
        .into_iter()
        .map(|kind| (kind, week.totals.get(kind).copied().unwrap_or(-1)))
        .collect();
    assert_eq!(
        totals,
        [("complaint", 2), ("inquiry", 1), ("suggestion", 1), ("change_request", 1), ("consultation", 0)]
    );
    assert!(week.csv.starts_with("kind,category,owner,branch,count\n"), "{}", week.csv);
    assert!(week.csv.contains("complaint,mis_sort,inspection,SH01,1\n"), "{}", week.csv);
    let bad = intake.get_complaint_summary(staff(pb::GetComplaintSummaryRequest { week: "last week".into() })).await;
    assert_eq!(violated_fields(&bad.expect_err("not a date")), ["week"]);

    let visits = intake
        .get_visit_summary(staff(pb::GetVisitSummaryRequest { week: "2026-11-23".into() }))
        .await
        .expect("visit summary")
        .into_inner();
    assert_eq!((visits.recorded, visits.signed, visits.unsatisfied, visits.planned), (1, 1, 1, 1));
    assert_eq!(visits.service.get("poor"), Some(&1));
    assert_eq!(visits.product.get("good"), Some(&1));
    assert!(visits.csv.contains("service,poor,1\n"), "{}", visits.csv);

    let month = intake
        .get_cargo_exception_report(staff(pb::GetCargoExceptionReportRequest { month: "2026-11".into() }))
        .await
        .expect("report")
        .into_inner();
    let rows: Vec<(&str, &str, i64)> =
        month.rows.iter().map(|row| (row.kind.as_str(), row.cause.as_str(), row.count)).collect();
    assert_eq!(rows, [("mis_delivered", "not yet established", 1), ("refused", "收货人拒收：包装破损", 1)]);
    assert!(month.csv.contains("refused,收货人拒收：包装破损,1,YD4004\n"), "{}", month.csv);
    suite.stop().await;
}
