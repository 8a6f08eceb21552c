//! Inspection through the gateway: a complaint about staff is investigated on the written report,
//! responsibility is divided, fines are decided by the standards and deducted once in settlement;
//! a second complaint is an incident the gateway shows; overdue cases are chased; audits are cases.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use kefu_kit::{Clock, ManualClock, time::from_timestamp};
use kefu_proto::{
    gateway::v1::{Complaint, Contact, GetComplaintRequest, State as ComplaintState},
    inspection::v1::{self as pb, inspection_client::InspectionClient},
    settlement::v1::{LedgerEntry, ListLedgerEntriesRequest, settlement_client::SettlementClient},
};
use tonic::Code;

use crate::support::Gateway;

use crate::support::{Backend, TestSuite, as_user, complaint, create, eventually, on_both_backends, violated_fields};

/// 2026-11-22 10:00 in Shanghai.
pub(crate) fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single().expect("a time")))
}

pub(crate) fn inspection(suite: &TestSuite) -> InspectionClient<Gateway> {
    InspectionClient::new(suite.gateway.clone())
}

pub(crate) fn party(kind: &str, id: &str) -> Option<pb::Party> {
    Some(pb::Party { kind: kind.into(), id: id.into() })
}

/// A complaint from the customer with `phone`.
fn complaint_from(category: &str, waybill: &str, phone: &str) -> Complaint {
    let mut complaint = complaint(category, waybill);
    complaint.contact = Some(Contact { name: "李女士".into(), phone: phone.into() });
    complaint
}

/// Files `complaint` at the gateway and waits until inspection holds it: the complaint's and the case's names.
async fn file(suite: &TestSuite, request_id: &str, complaint: Complaint) -> (String, String) {
    let request = as_user(create(request_id, complaint), "A1024", "intake");
    let created = suite.complaints().create_complaint(request).await.expect("created").into_inner();
    let case = complaint_when(suite, &created.name, "inspection accepts it", |c| !c.owner_reference.is_empty()).await;
    assert!(case.owner_reference.starts_with("cases/"), "{}", case.owner_reference);
    (created.name, case.owner_reference)
}

/// The complaint at the gateway once `check` holds of it.
pub(crate) async fn complaint_when(
    suite: &TestSuite,
    name: &str,
    what: &str,
    check: impl Fn(&Complaint) -> bool + Clone,
) -> Complaint {
    let complaints = suite.complaints();
    eventually(what, || {
        let mut complaints = complaints.clone();
        let name = name.to_owned();
        let check = check.clone();
        async move {
            let complaint = complaints.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            check(&complaint).then_some(complaint)
        }
    })
    .await
}

/// Settlement's ledger entries whose origin starts with `prefix`, once there are `count`.
pub(crate) async fn ledger(suite: &TestSuite, prefix: &str, count: usize) -> Vec<LedgerEntry> {
    let settlement = SettlementClient::new(suite.gateway.clone());
    eventually(&format!("settlement posts {count} entries under {prefix}"), || {
        let mut settlement = settlement.clone();
        let origin_prefix = prefix.to_owned();
        async move {
            let request = ListLedgerEntriesRequest { origin_prefix, ..Default::default() };
            let entries = settlement.list_ledger_entries(request).await.ok()?.into_inner().entries;
            (entries.len() >= count).then_some(entries)
        }
    })
    .await
}

pub(crate) fn postings(entry: &LedgerEntry) -> Vec<(&str, i64)> {
    entry.postings.iter().map(|posting| (posting.account.as_str(), posting.amount_fen)).collect()
}

pub(crate) fn report(name: &str, author: Option<pb::Party>) -> pb::RecordWrittenReportRequest {
    pb::RecordWrittenReportRequest {
        name: name.into(),
        author,
        content: "客户催问时我语气生硬,没有耐心解释".into(),
        request_id: String::new(),
    }
}

pub(crate) fn findings(name: &str) -> pb::RecordFindingsRequest {
    pb::RecordFindingsRequest {
        name: name.into(),
        facts: "the call recording confirms the complaint".into(),
        evidence: vec!["recording 2026-11-21 14:02".into()],
        request_id: String::new(),
    }
}

pub(crate) fn divide(name: &str, shares: &[(&str, &str, i32)]) -> pb::DivideResponsibilityRequest {
    pb::DivideResponsibilityRequest {
        name: name.into(),
        shares: shares
            .iter()
            .map(|(kind, id, share_percent)| pb::ResponsibleShare {
                party: party(kind, id),
                share_percent: *share_percent,
            })
            .collect(),
        request_id: String::new(),
    }
}

pub(crate) fn fine(kind: &str, id: &str, violation: &str, amount_fen: i64, note: &str) -> pb::Penalty {
    pb::Penalty {
        party: party(kind, id),
        kind: pb::PenaltyKind::Fine as i32,
        violation: violation.into(),
        amount_fen,
        note: note.into(),
        ..Default::default()
    }
}

pub(crate) fn decide(name: &str, penalties: Vec<pb::Penalty>, request_id: &str) -> pb::DecidePenaltiesRequest {
    pb::DecidePenaltiesRequest { name: name.into(), penalties, note: String::new(), request_id: request_id.into() }
}

/// The report in, the findings recorded, responsibility divided as `shares`.
async fn investigate(inspection: &mut InspectionClient<Gateway>, case: &str, shares: &[(&str, &str, i32)]) -> pb::Case {
    inspection.record_written_report(report(case, party("person", "B042"))).await.expect("report");
    inspection.record_findings(findings(case)).await.expect("findings");
    inspection.divide_responsibility(divide(case, shares)).await.expect("divided").into_inner()
}

on_both_backends!(a_complaint_about_staff_is_investigated_fined_once_and_resolved);
async fn a_complaint_about_staff_is_investigated_fined_once_and_resolved(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut inspection = inspection(&suite);
    let (complaint, case) = file(&suite, "att-1", complaint_from("attitude", "YD-INSP-1", "13900000001")).await;

    let opened = inspection.get_case(pb::GetCaseRequest { name: case.clone() }).await.expect("get").into_inner();
    assert_eq!((opened.state(), opened.kind()), (pb::State::Open, pb::Kind::Complaint));
    assert!(opened.incident.is_none());
    assert_eq!(opened.complaint.as_ref().map(|c| c.waybill_number.as_str()), Some("YD-INSP-1"));

    // No decision before the written report; nothing changes.
    let refused = inspection
        .decide_penalties(decide(&case, vec![fine("person", "B042", "attitude_or_inefficiency", 8_000, "")], ""))
        .await
        .expect_err("no report yet");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("written report"), "{refused:?}");

    // The report is asked for, comes in two hours later: 24 hours from then, at inspection and at the gateway.
    let request = pb::RequestWrittenReportRequest {
        name: case.clone(),
        from: party("person", "B042"),
        request_id: "rq-1".into(),
    };
    let asked = inspection.request_written_report(request).await.expect("requested").into_inner();
    assert_eq!(asked.report_request.as_ref().and_then(|r| r.from.as_ref()).map(|p| p.id.as_str()), Some("B042"));
    clock.advance(Duration::hours(2));
    let reported = inspection
        .record_written_report(as_user(report(&case, party("person", "B042")), "I007", "inspection"))
        .await
        .expect("report")
        .into_inner();
    let due = clock.now() + Duration::hours(24);
    assert_eq!(reported.state(), pb::State::Investigating);
    assert_eq!(reported.deadline.as_ref().and_then(from_timestamp), Some(due));
    assert!(reported.deadline_reason.contains("001 §8 4.5"), "{}", reported.deadline_reason);
    complaint_when(&suite, &complaint, "the gateway shows the 24-hour deadline", |c| {
        c.deadline.as_ref().and_then(from_timestamp) == Some(due)
    })
    .await;

    inspection.record_findings(findings(&case)).await.expect("findings");
    let divided = inspection
        .divide_responsibility(divide(&case, &[("person", "B042", 70), ("branch", "SH01", 30)]))
        .await
        .expect("divided")
        .into_inner();
    assert_eq!(divided.responsibility.len(), 2);
    assert!(divided.incident.is_none(), "a first complaint is no incident");

    // A fine outside its range, and a party not found responsible: each named, nothing changes.
    let before = inspection.get_case(pb::GetCaseRequest { name: case.clone() }).await.expect("get").into_inner();
    let bad = decide(
        &case,
        vec![
            fine("person", "B042", "attitude_or_inefficiency", 4_999, ""),
            fine("person", "B777", "language_or_image", 1_000, ""),
        ],
        "",
    );
    let refused = inspection.decide_penalties(bad).await.expect_err("out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["penalties[0].amount_fen", "penalties[1].party"]);
    assert!(refused.message().contains("50.00 yuan to 100.00 yuan"), "{}", refused.message());
    let after = inspection.get_case(pb::GetCaseRequest { name: case.clone() }).await.expect("get").into_inner();
    assert_eq!(after, before);

    // The decision: a fine and a warning; retried with the same request id, it is taken once.
    let warning =
        pb::Penalty { party: party("branch", "SH01"), kind: pb::PenaltyKind::Warning as i32, ..Default::default() };
    let decision = decide(&case, vec![fine("person", "B042", "attitude_or_inefficiency", 8_000, ""), warning], "dec-1");
    let decided = inspection.decide_penalties(decision.clone()).await.expect("decided").into_inner();
    let retried = inspection.decide_penalties(decision).await.expect("retried").into_inner();
    assert_eq!(retried.history.len(), decided.history.len());
    assert_eq!(decided.state(), pb::State::Decided);
    let penalties = &decided.decision.as_ref().expect("a decision").penalties;
    assert_eq!(penalties[0].name, format!("{case}/penalties/1"));

    // Settlement deducts the fine from the person, once.
    let entries = ledger(&suite, &format!("inspection/{case}/"), 1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].origin, format!("inspection/{case}/penalties/1"));
    assert_eq!(postings(&entries[0]), [("person:B042", 8_000), ("company:fines_income", -8_000)]);

    // Rectification for the branch, checked; then the case is resolved and the customer told.
    let assign = pb::AssignRectificationRequest {
        name: case.clone(),
        unit: party("branch", "SH01"),
        task: "train the counter staff in the standard phrases".into(),
        due_time: Some(kefu_kit::time::to_timestamp(clock.now() + Duration::days(7))),
        request_id: String::new(),
    };
    inspection.assign_rectification(assign).await.expect("assigned");
    let check = pb::CheckRectificationRequest {
        name: case.clone(),
        rectification: 0,
        done: true,
        note: "training held 2026-11-25".into(),
        ..Default::default()
    };
    let checked = inspection.check_rectification(check).await.expect("checked").into_inner();
    assert_eq!(checked.rectifications[0].state(), pb::RectificationState::Done);
    let resolve = pb::ResolveCaseRequest {
        name: case.clone(),
        resolution: "the staff member was fined and will apologize by phone".into(),
        request_id: String::new(),
    };
    let resolved = inspection.resolve_case(resolve).await.expect("resolved").into_inner();
    assert_eq!(resolved.state(), pb::State::Resolved);
    let told =
        complaint_when(&suite, &complaint, "intake records the resolution", |c| c.state() == ComplaintState::Resolved)
            .await;
    assert!(told.resolution.contains("apologize"), "{}", told.resolution);
    let actions: Vec<&str> = resolved.history.iter().map(|step| step.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "accepted",
            "report_requested",
            "report_received",
            "findings_recorded",
            "responsibility_divided",
            "decided",
            "rectification_assigned",
            "rectification_checked",
            "resolved"
        ]
    );

    // The month's report matches the case.
    let month = inspection
        .get_monthly_report(pb::GetMonthlyReportRequest { month: "2026-11".into() })
        .await
        .expect("report")
        .into_inner();
    assert_eq!((month.cases_decided, month.fines, month.fines_fen, month.warnings, month.vetoes), (1, 1, 8_000, 1, 0));
    assert!(month.csv.contains("2026-11,person,B042,1,8000,0,0,0,no\n"), "{}", month.csv);
    assert!(month.csv.contains("2026-11,branch,SH01,0,0,1,0,0,no\n"), "{}", month.csv);
    let october = inspection.get_monthly_report(pb::GetMonthlyReportRequest { month: "2026-10".into() }).await;
    assert_eq!(october.expect("report").into_inner().fines, 0);
    suite.stop().await;
}

on_both_backends!(a_second_complaint_is_an_incident_escalated_fined_twice_and_vetoed);
async fn a_second_complaint_is_an_incident_escalated_fined_twice_and_vetoed(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut inspection = inspection(&suite);
    let (first, _) = file(&suite, "inc-1", complaint_from("attitude", "YD-INC-1", "13900000002")).await;
    let (second, case) = file(&suite, "inc-2", complaint_from("attitude", "YD-INC-1", "13900000002")).await;

    // The gateway shows the incident, the complaint it repeats, and whom it went to.
    let shown = complaint_when(&suite, &second, "intake records the escalation", |c| c.incident).await;
    assert_eq!(shown.first_complaint, first);
    assert_eq!(shown.escalated_to, ["enterprise_management", "leadership"]);
    let original = suite.complaints().get_complaint(GetComplaintRequest { name: first.clone() }).await;
    let original = original.expect("first").into_inner();
    assert!(!original.incident && original.first_complaint.is_empty(), "the first complaint is no incident");

    let held = inspection.get_case(pb::GetCaseRequest { name: case.clone() }).await.expect("get").into_inner();
    let incident = held.incident.expect("an incident");
    assert_eq!((incident.first_complaint.as_str(), incident.reason.as_str()), (first.as_str(), "second_complaint"));

    // Both the unit and the person are fined; fining only the person is refused.
    investigate(&mut inspection, &case, &[("person", "B042", 50), ("department", "business", 50)]).await;
    let only_person = decide(&case, vec![fine("person", "B042", "attitude_or_inefficiency", 10_000, "")], "");
    let refused = inspection.decide_penalties(only_person).await.expect_err("both must be fined");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("4.10.3"), "{}", refused.message());
    let both = decide(
        &case,
        vec![
            fine("person", "B042", "attitude_or_inefficiency", 10_000, ""),
            fine("department", "business", "incident", 50_000, "the same customer complained twice in a week"),
        ],
        "",
    );
    let decided = inspection.decide_penalties(both).await.expect("decided").into_inner();
    let vetoed: Vec<String> = decided
        .decision
        .expect("a decision")
        .penalties
        .iter()
        .filter(|penalty| penalty.kind() == pb::PenaltyKind::AwardVeto)
        .filter_map(|penalty| penalty.party.as_ref().map(|party| format!("{}:{}", party.kind, party.id)))
        .collect();
    assert_eq!(vetoed, ["person:B042", "department:business"]);

    let entries = ledger(&suite, &format!("inspection/{case}/"), 2).await;
    let mut charged: Vec<(&str, i64)> = entries.iter().map(|entry| postings(entry)[0]).collect();
    charged.sort();
    assert_eq!(charged, [("department:business", 50_000), ("person:B042", 10_000)]);

    let month = inspection
        .get_monthly_report(pb::GetMonthlyReportRequest { month: "2026-11".into() })
        .await
        .expect("report")
        .into_inner();
    assert_eq!((month.incidents, month.vetoes, month.fines_fen), (1, 2, 60_000));
    assert!(month.rows.iter().all(|row| row.veto && row.incidents == 1), "{:?}", month.rows);
    let listed = inspection
        .list_cases(pb::ListCasesRequest { filter: "incident=true".into(), ..Default::default() })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [case.as_str()]);
    suite.stop().await;
}

on_both_backends!(the_same_problem_again_in_the_same_branch_is_an_incident);
async fn the_same_problem_again_in_the_same_branch_is_an_incident(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut inspection = inspection(&suite);
    let (first, first_case) = file(&suite, "rec-1", complaint_from("late_delivery", "YD-REC-1", "13900000003")).await;
    let (second, second_case) = file(&suite, "rec-2", complaint_from("late_delivery", "YD-REC-2", "13900000004")).await;
    let divided = investigate(&mut inspection, &first_case, &[("branch", "SH09", 100)]).await;
    assert!(divided.incident.is_none());

    clock.advance(Duration::days(3));
    let divided = investigate(&mut inspection, &second_case, &[("branch", "SH09", 100)]).await;
    let incident = divided.incident.expect("a recurrence is an incident");
    assert_eq!((incident.first_complaint.as_str(), incident.reason.as_str()), (first.as_str(), "recurrence"));
    let shown = complaint_when(&suite, &second, "the gateway shows the recurrence", |c| c.incident).await;
    assert_eq!(shown.first_complaint, first);
    suite.stop().await;
}

on_both_backends!(overdue_cases_are_chased_and_audits_are_cases_too);
async fn overdue_cases_are_chased_and_audits_are_cases_too(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut inspection = inspection(&suite);
    let (_, case) = file(&suite, "late-1", complaint_from("delivery_delay", "YD-LATE-1", "13900000005")).await;
    let request = pb::RequestWrittenReportRequest {
        name: case.clone(),
        from: party("person", "B050"),
        request_id: String::new(),
    };
    inspection.request_written_report(request).await.expect("requested");

    let overdue = pb::ListCasesRequest { filter: "overdue=true".into(), ..Default::default() };
    let listed = inspection.list_cases(overdue.clone()).await.expect("listed").into_inner();
    assert!(listed.cases.is_empty(), "nothing is overdue yet");
    clock.advance(Duration::hours(25));
    let listed = inspection.list_cases(overdue).await.expect("listed").into_inner();
    assert_eq!(listed.cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [case.as_str()]);
    assert!(listed.cases[0].overdue);
    let chased = inspection.chase_overdue_cases(pb::ChaseOverdueCasesRequest {}).await.expect("chased").into_inner();
    assert_eq!(chased.chased, std::slice::from_ref(&case));
    let again = inspection.chase_overdue_cases(pb::ChaseOverdueCasesRequest {}).await.expect("chased").into_inner();
    assert!(again.chased.is_empty(), "chased once per deadline");
    let held = inspection.get_case(pb::GetCaseRequest { name: case.clone() }).await.expect("get").into_inner();
    let chase = held.history.iter().find(|step| step.action == "chased").expect("a chase in the history");
    assert!(chase.detail.contains("written report from person:B050"), "{}", chase.detail);

    // An audit of remittance timeliness: a case with findings, fined, and resolved.
    let audit = |kind: &str| pb::CreateAuditRequest {
        request_id: "audit-1".into(),
        audit: Some(pb::Audit {
            kind: kind.into(),
            branch: "BJ02".into(),
            subject: "COD remittances of October".into(),
            findings: "three remittances two days late".into(),
        }),
    };
    let refused = inspection.create_audit(audit("coffee_break")).await.expect_err("unknown kind");
    assert_eq!(violated_fields(&refused), ["audit.kind"]);
    let opened = inspection.create_audit(as_user(audit("remittance_timeliness"), "I007", "inspection")).await;
    let opened = opened.expect("audit").into_inner();
    let retried = inspection.create_audit(audit("remittance_timeliness")).await.expect("retried").into_inner();
    assert_eq!(retried.name, opened.name, "the same request id is the same audit");
    assert_eq!((opened.kind(), opened.state()), (pb::Kind::Audit, pb::State::Investigating));
    assert!(opened.complaint.is_none());
    inspection.divide_responsibility(divide(&opened.name, &[("branch", "BJ02", 100)])).await.expect("divided");
    let decision = decide(&opened.name, vec![fine("branch", "BJ02", "operational_error", 20_000, "")], "");
    inspection.decide_penalties(decision).await.expect("decided");
    let entries = ledger(&suite, &format!("inspection/{}/", opened.name), 1).await;
    assert_eq!(postings(&entries[0]), [("branch:BJ02", 20_000), ("company:fines_income", -20_000)]);
    let audits = pb::ListCasesRequest { filter: "kind=audit".into(), ..Default::default() };
    let listed = inspection.list_cases(audits).await.expect("listed").into_inner();
    assert_eq!(listed.cases.len(), 1);
    let bad_filter = pb::ListCasesRequest { filter: "colour=red".into(), ..Default::default() };
    assert_eq!(violated_fields(&inspection.list_cases(bad_filter).await.expect_err("bad filter")), ["filter"]);
    suite.stop().await;
}

on_both_backends!(the_owner_s_deadline_holds_through_a_pause_and_a_change_of_severity);
async fn the_owner_s_deadline_holds_through_a_pause_and_a_change_of_severity(backend: Backend) {
    use kefu_kit::time::to_timestamp;
    use kefu_proto::intake::v1::{
        ChangeSeverityRequest, ExplainDeadlineRequest, ResumeComplaintRequest, Severity, WaitForCustomerRequest,
        intake_client::IntakeClient,
    };
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut inspection = inspection(&suite);
    let (complaint, case) = file(&suite, "held-1", complaint_from("attitude", "YD-INSP-9", "13900000009")).await;
    // The written report moves the deadline to 24 hours from now (001 §8 4.5).
    inspection.record_written_report(report(&case, party("person", "B042"))).await.expect("report");
    let due = clock.now() + Duration::hours(24);
    complaint_when(&suite, &complaint, "intake learns the owner's deadline", |c| {
        c.deadline.as_ref().and_then(from_timestamp) == Some(due)
    })
    .await;

    // The case waits three hours on the customer: the owner's deadline moves by the time waited.
    let mut intake = IntakeClient::new(suite.gateway.clone());
    fn staff<T>(message: T) -> tonic::Request<T> {
        as_user(message, "A1024", "intake")
    }
    let wait = WaitForCustomerRequest { name: complaint.clone(), reason: "等客户补充说明".into() };
    intake.wait_for_customer(staff(wait)).await.expect("waits");
    clock.advance(Duration::hours(3));
    let resume = ResumeComplaintRequest { name: complaint.clone(), note: String::new() };
    let resumed = intake.resume_complaint(staff(resume)).await.expect("resumed").into_inner();
    assert_eq!(resumed.deadline, Some(to_timestamp(due + Duration::hours(3))));

    // A graver complaint keeps the date its owner set; the explanation says where it comes from.
    let graver = ChangeSeverityRequest {
        name: complaint.clone(),
        severity: Severity::Critical as i32,
        reason: "客户为重要客户".into(),
    };
    let changed = intake.change_severity(staff(graver)).await.expect("changed").into_inner();
    assert_eq!(changed.deadline, Some(to_timestamp(due + Duration::hours(3))));
    let explained = intake
        .explain_deadline(ExplainDeadlineRequest { name: complaint.clone() })
        .await
        .expect("explained")
        .into_inner();
    assert_eq!(explained.deadline, Some(to_timestamp(due + Duration::hours(3))));
    assert!(explained.rule.contains("inspection"), "{}", explained.rule);
    suite.stop().await;
}
