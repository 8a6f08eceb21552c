//! Settlement through the gateway: a waybill's cash on delivery collected and remitted late — the
//! late remittance filed as a complaint like any other and resolved by the remittance; change
//! requests that touch money; seized cargo written off six months later; reversals, statements,
//! the month's summary, and reconciliation after each walk.

use chrono::{Duration, TimeZone, Utc};
use kefu_kit::Clock;
use kefu_proto::{
    gateway::v1::{Department, State as ComplaintState},
    inspection::v1 as inspection_pb,
    intake::v1::intake_client::IntakeClient,
    settlement::v1::{self as pb, settlement_client::SettlementClient},
};
use tonic::Code;

use crate::support::Gateway;

use crate::{
    inspection::{clock, complaint_when, decide, divide, fine, inspection, ledger, postings},
    support::{self, Backend, TestSuite, as_user, create, on_both_backends, violated_fields},
};

fn settlement(suite: &TestSuite) -> SettlementClient<Gateway> {
    SettlementClient::new(suite.gateway.clone())
}

fn supervisor<T>(message: T) -> tonic::Request<T> {
    crate::support::with_roles(as_user(message, "S001", "settlement"), "supervisor")
}

/// Waybill `number`: freight to collect 20.00 yuan, COD 500.00 yuan, shipper S1001, branch SH01.
pub(crate) fn waybill(number: &str, request_id: &str) -> pb::RecordWaybillRequest {
    pb::RecordWaybillRequest {
        waybill: Some(pb::Waybill {
            name: format!("waybills/{number}"),
            shipper: "S1001".into(),
            branch: "SH01".into(),
            freight_fen: 2_000,
            payment_method: "collect".into(),
            cod_amount_fen: 50_000,
            consignee: "李四".into(),
            consignee_phone: "13900000000".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

fn balances(waybill: &pb::Waybill) -> Vec<(&str, i64)> {
    waybill.balances.iter().map(|posting| (posting.account.as_str(), posting.amount_fen)).collect()
}

async fn reconciled(settlement: &mut SettlementClient<Gateway>) -> pb::Reconciliation {
    let found = settlement.reconcile(pb::ReconcileRequest {}).await.expect("reconciled").into_inner();
    assert_eq!(found.problems, Vec::<String>::new(), "the ledger reconciles");
    found
}

on_both_backends!(cod_remitted_late_is_filed_as_a_complaint_and_answered_by_the_remittance);
async fn cod_remitted_late_is_filed_as_a_complaint_and_answered_by_the_remittance(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut settlement = settlement(&suite);

    let recorded = settlement.record_waybill(waybill("WB7001", "w-1")).await.expect("recorded").into_inner();
    assert_eq!(recorded.cod_remit_days, 7, "the default remittance term");
    assert_eq!(
        balances(&recorded),
        [("branch:SH01", 52_000), ("company:cod_pending", -50_000), ("company:freight_income", -2_000)]
    );
    let retried = settlement.record_waybill(waybill("WB7001", "w-1")).await.expect("retried").into_inner();
    assert_eq!(retried, recorded, "the same request id is the same waybill");
    let again = settlement.record_waybill(waybill("WB7001", "w-2")).await.expect_err("taken");
    assert_eq!(again.code(), Code::AlreadyExists);
    let mut bad = waybill("WB 7002", "w-3");
    if let Some(bad) = bad.waybill.as_mut() {
        bad.payment_method = "cash".into();
        bad.cod_amount_fen = -1;
    }
    let refused = settlement.record_waybill(bad).await.expect_err("invalid");
    assert_eq!(violated_fields(&refused), ["waybill.name", "waybill.payment_method", "waybill.cod_amount_fen"]);

    let collect = |request_id: &str| pb::RecordCodCollectionRequest {
        name: "waybills/WB7001".into(),
        collect_time: None,
        request_id: request_id.into(),
    };
    let collected =
        settlement.record_cod_collection(as_user(collect("c-1"), "SH01-K7", "settlement")).await.expect("collected");
    let collected = collected.into_inner();
    let retried = settlement.record_cod_collection(collect("c-1")).await.expect("retried").into_inner();
    assert_eq!(retried.history.len(), 2, "recorded and collected, once");
    assert_eq!(retried.history[1].actor, "SH01-K7");
    let due = collected.cod.as_ref().and_then(|cod| cod.remit_due_time).expect("a due time");
    assert_eq!(due.seconds - clock.now().timestamp(), 7 * 24 * 3600);
    let twice = settlement.record_cod_collection(collect("c-2")).await.expect_err("collected before");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(ledger(&suite, "waybills/WB7001/", 2).await.len(), 2, "charges and collection");

    let nothing_yet = settlement.report_late_remittances(pb::ReportLateRemittancesRequest {}).await.expect("checked");
    assert!(nothing_yet.into_inner().complaints.is_empty(), "not due yet");
    clock.advance(Duration::days(8));
    let late = settlement.list_late_remittances(pb::ListLateRemittancesRequest::default()).await.expect("listed");
    assert_eq!(late.into_inner().waybills.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["waybills/WB7001"]);
    let filed =
        settlement.report_late_remittances(pb::ReportLateRemittancesRequest {}).await.expect("filed").into_inner();
    assert_eq!(filed.complaints.len(), 1);
    let again = settlement.report_late_remittances(pb::ReportLateRemittancesRequest {}).await.expect("checked");
    assert!(again.into_inner().complaints.is_empty(), "a late remittance is filed once");

    let complaint = complaint_when(&suite, &filed.complaints[0], "settlement holds the complaint", |complaint| {
        !complaint.owner_reference.is_empty()
    })
    .await;
    assert_eq!((complaint.category.as_str(), complaint.owner()), ("late_remittance", Department::Settlement));
    assert_eq!((complaint.waybill_number.as_str(), complaint.branch.as_str()), ("WB7001", "SH01"));
    assert!(complaint.description.contains("500.00 yuan"), "{}", complaint.description);
    let shown = settlement.get_waybill(pb::GetWaybillRequest { name: "waybills/WB7001".into() }).await.expect("shown");
    assert_eq!(shown.into_inner().cod.expect("cod").late_complaint, complaint.name);

    clock.advance(Duration::days(1));
    let remit =
        pb::RecordCodRemittanceRequest { name: "waybills/WB7001".into(), remit_time: None, request_id: "r-1".into() };
    let remitted = settlement.record_cod_remittance(remit).await.expect("remitted").into_inner();
    assert_eq!(
        balances(&remitted),
        [("branch:SH01", 2_000), ("company:freight_income", -2_000)],
        "only the freight is left to hand in"
    );
    let resolved = complaint_when(&suite, &complaint.name, "the complaint is resolved", |complaint| {
        complaint.state() == ComplaintState::Resolved
    })
    .await;
    assert!(
        resolved.resolution.contains("remitted to shipper S1001") && resolved.resolution.contains("2 day(s) late"),
        "{}",
        resolved.resolution
    );
    let case = settlement.get_case(pb::GetCaseRequest { name: complaint.owner_reference.clone() }).await.expect("case");
    assert_eq!(case.into_inner().resolution, resolved.resolution);

    // The shipper phones about the same waybill after the money went out: answered at once.
    let phoned =
        suite.complaints().create_complaint(create("phoned", support::complaint("late_remittance", "WB7001"))).await;
    let phoned = phoned.expect("filed").into_inner();
    let answered = complaint_when(&suite, &phoned.name, "the phoned complaint is answered", |complaint| {
        complaint.state() == ComplaintState::Resolved
    })
    .await;
    assert!(answered.resolution.contains("was remitted to the shipper on 2026-12-01"), "{}", answered.resolution);
    // Any other complaint of the category is resolved by hand, once.
    let other =
        suite.complaints().create_complaint(create("other", support::complaint("late_remittance", "WB7999"))).await;
    let other = complaint_when(&suite, &other.expect("filed").into_inner().name, "settlement holds it", |complaint| {
        !complaint.owner_reference.is_empty()
    })
    .await;
    let resolve = |resolution: &str| pb::ResolveCaseRequest {
        name: other.owner_reference.clone(),
        resolution: resolution.into(),
        request_id: String::new(),
    };
    let empty = settlement.resolve_case(resolve(" ")).await.expect_err("no resolution");
    assert_eq!(violated_fields(&empty), ["resolution"]);
    let text = "the branch remitted through the bank on 2026-11-30; receipt sent to the shipper";
    settlement.resolve_case(as_user(resolve(text), "J001", "settlement")).await.expect("resolved");
    let twice = settlement.resolve_case(resolve("something else")).await.expect_err("resolved before");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    complaint_when(&suite, &other.name, "the customer is told", |complaint| complaint.resolution == text).await;
    // The complaint's timeline names who in settlement resolved it.
    let timeline = IntakeClient::new(suite.gateway.clone())
        .get_complaint_timeline(kefu_proto::intake::v1::GetComplaintTimelineRequest { name: other.name.clone() })
        .await
        .expect("timeline")
        .into_inner();
    let by_settlement: Vec<_> = timeline
        .steps
        .iter()
        .filter(|step| step.department == "settlement")
        .map(|step| (step.action.as_str(), step.actor.as_str(), step.detail.as_str()))
        .collect();
    assert!(by_settlement.contains(&("resolved", "J001", text)), "{by_settlement:?}");

    let trial =
        settlement.get_trial_balance(pb::GetTrialBalanceRequest::default()).await.expect("balances").into_inner();
    assert_eq!(trial.total_fen, 0);
    assert!(trial.accounts.iter().all(|balance| balance.account != "shipper:S1001"), "the shipper is paid");
    let found = reconciled(&mut settlement).await;
    assert_eq!((found.waybills, found.entries), (1, 3));
    suite.stop().await;
}

on_both_backends!(a_change_of_money_is_settlement_s_and_is_applied_only_by_a_supervisor);
async fn a_change_of_money_is_settlement_s_and_is_applied_only_by_a_supervisor(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut settlement = settlement(&suite);
    settlement.record_waybill(waybill("WB7101", "")).await.expect("recorded");
    let change = |changes: &[(&str, &str)], request_id: &str| pb::RequestChangeRequest {
        name: "waybills/WB7101".into(),
        changes: changes
            .iter()
            .map(|(field, after)| pb::FieldChange {
                field: (*field).into(),
                after: (*after).into(),
                ..Default::default()
            })
            .collect(),
        reason: "the shipper asked by phone".into(),
        request_id: request_id.into(),
    };
    let before = settlement.get_waybill(pb::GetWaybillRequest { name: "waybills/WB7101".into() }).await.expect("shown");
    let before = before.into_inner();

    let alone = settlement.request_change(change(&[("consignee", "王五")], "")).await.expect_err("not settlement's");
    assert_eq!(alone.code(), Code::FailedPrecondition);
    assert!(alone.message().contains("customer service center"), "{}", alone.message());
    let unknown = settlement.request_change(change(&[("colour", "red")], "")).await.expect_err("unknown field");
    assert_eq!(violated_fields(&unknown), ["changes[0].field"]);
    let unchanged =
        settlement.get_waybill(pb::GetWaybillRequest { name: "waybills/WB7101".into() }).await.expect("shown");
    assert_eq!(unchanged.into_inner(), before, "refused requests change nothing");

    let mixed = change(&[("consignee", "王五"), ("payment_method", "monthly")], "ch-1");
    let requested = settlement.request_change(mixed).await.expect("a mixed request is settlement's").into_inner();
    let pending = &requested.change_requests[0];
    assert_eq!((pending.name.as_str(), pending.state.as_str()), ("waybills/WB7101/changeRequests/1", "pending"));
    assert_eq!((pending.changes[1].before.as_str(), pending.changes[1].after.as_str()), ("collect", "monthly"));

    let decide = |reason: &str| pb::ApproveChangeRequest {
        name: "waybills/WB7101/changeRequests/1".into(),
        reason: reason.into(),
        request_id: String::new(),
    };
    let reject = |reason: &str| pb::RejectChangeRequest {
        name: "waybills/WB7101/changeRequests/1".into(),
        reason: reason.into(),
        request_id: String::new(),
    };
    // The supervisors' queue holds the waybill while its request waits, and not after.
    let queue = |settlement: &SettlementClient<_>| {
        let mut settlement = settlement.clone();
        async move {
            let listed = settlement.list_pending_changes(pb::ListPendingChangesRequest::default()).await;
            listed.expect("listed").into_inner().waybills.into_iter().map(|waybill| waybill.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(queue(&settlement).await, ["waybills/WB7101"]);
    let clerk = settlement.approve_change(as_user(decide("ok"), "J001", "settlement")).await.expect_err("a clerk");
    assert_eq!(clerk.code(), Code::PermissionDenied);
    let applied = settlement.approve_change(supervisor(decide("confirmed with the shipper"))).await.expect("applied");
    let applied = applied.into_inner();
    assert_eq!((applied.payment_method.as_str(), applied.consignee.as_str()), ("monthly", "王五"));
    assert_eq!(applied.change_requests[0].state, "applied");
    assert_eq!(applied.change_requests[0].decided_by, "S001");
    let entries = ledger(&suite, "waybills/WB7101/changeRequests/1", 1).await;
    assert_eq!(entries[0].kind, "waybill_change");
    assert_eq!(
        postings(&entries[0]),
        [("branch:SH01", -2_000), ("shipper:S1001", 2_000)],
        "the shipper now owes the freight"
    );
    assert!(queue(&settlement).await.is_empty(), "decided: off the queue");
    let again = settlement.reject_change(supervisor(reject("too late"))).await.expect_err("decided");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Four eyes: a supervisor does not approve the change they asked for.
    let own = change(&[("payment_method", "prepaid")], "ch-own");
    settlement.request_change(supervisor(own)).await.expect("asked by the supervisor");
    let approve_own = pb::ApproveChangeRequest {
        name: "waybills/WB7101/changeRequests/2".into(),
        reason: "mine".into(),
        request_id: String::new(),
    };
    let refused = settlement.approve_change(supervisor(approve_own)).await.expect_err("their own request");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("four eyes"), "{}", refused.message());
    reconciled(&mut settlement).await;
    suite.stop().await;
}

on_both_backends!(seized_cargo_is_written_off_six_months_later_on_the_original_certificate);
async fn seized_cargo_is_written_off_six_months_later_on_the_original_certificate(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut settlement = settlement(&suite);
    settlement.record_waybill(waybill("WB7201", "")).await.expect("recorded");
    settlement.record_waybill(waybill("WB7202", "")).await.expect("recorded");
    let seize = |name: &str, notified: bool| pb::RecordSeizureRequest {
        name: name.into(),
        seizure: Some(pb::Seizure {
            authority: "工商局".into(),
            certificate_number: "CK-2026-1122".into(),
            seize_time: Some(prost_types::Timestamp { seconds: clock.now().timestamp() - 3600, nanos: 0 }),
            cause: "customer".into(),
            shipper_notify_time: notified
                .then(|| prost_types::Timestamp { seconds: clock.now().timestamp(), nanos: 0 }),
            notified_by: if notified { "SH01-张三".into() } else { String::new() },
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let seized = settlement.record_seizure(seize("waybills/WB7201", true)).await.expect("seized").into_inner();
    let from = seized.seizure.as_ref().and_then(|seizure| seizure.write_off_from).expect("a date");
    assert_eq!(
        Utc.timestamp_opt(from.seconds, 0).single().map(|t| t.to_rfc3339()),
        Some("2027-05-22T01:00:00+00:00".into())
    );
    let write_off = |name: &str, original_certificate: bool| pb::WriteOffSeizureRequest {
        name: name.into(),
        original_certificate,
        request_id: String::new(),
    };
    let early = settlement.write_off_seizure(write_off("waybills/WB7201", true)).await.expect_err("too early");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("possible from 2027-05-22 09:00"), "{}", early.message());

    clock.set(Utc.with_ymd_and_hms(2027, 5, 22, 2, 0, 0).single().expect("a time"));
    let copy = settlement.write_off_seizure(write_off("waybills/WB7201", false)).await.expect_err("a copy");
    assert!(copy.message().contains("original seizure certificate"), "{}", copy.message());
    let written =
        settlement.write_off_seizure(write_off("waybills/WB7201", true)).await.expect("written off").into_inner();
    assert_eq!(balances(&written), [("company:freight_income", -2_000), ("company:seizure_write_offs", 2_000)]);
    let entries = ledger(&suite, "waybills/WB7201/write_off", 1).await;
    assert_eq!(entries[0].kind, "seizure_write_off");
    assert_eq!(
        postings(&entries[0]),
        [("branch:SH01", -52_000), ("company:cod_pending", 50_000), ("company:seizure_write_offs", 2_000)]
    );

    // The branch let the seized cargo out: it bears the loss and owes the shipper the COD.
    settlement.record_seizure(seize("waybills/WB7202", true)).await.expect("seized");
    let problem = pb::ReportSeizureProblemRequest {
        name: "waybills/WB7202".into(),
        problem: "cargo_released".into(),
        request_id: String::new(),
    };
    let charged = settlement.report_seizure_problem(problem).await.expect("reported").into_inner();
    assert!(charged.seizure.as_ref().is_some_and(|seizure| seizure.branch_bears_loss.contains("released")));
    assert!(balances(&charged).contains(&("shipper:S1001", -50_000)));
    let refused =
        settlement.write_off_seizure(write_off("waybills/WB7202", true)).await.expect_err("the branch's loss");
    assert!(refused.message().contains("bears the loss"), "{}", refused.message());
    let missing = settlement.write_off_seizure(write_off("waybills/WB9999", true)).await.expect_err("no such waybill");
    assert_eq!(missing.code(), Code::NotFound);
    reconciled(&mut settlement).await;
    suite.stop().await;
}

on_both_backends!(the_ledger_reverses_a_fine_and_states_the_month);
async fn the_ledger_reverses_a_fine_and_states_the_month(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut settlement = settlement(&suite);
    let mut inspection = inspection(&suite);
    let audit = inspection_pb::CreateAuditRequest {
        request_id: "audit-1".into(),
        audit: Some(inspection_pb::Audit {
            kind: "service_standard".into(),
            branch: "SH01".into(),
            subject: "counter service".into(),
            findings: "B042 was rude to a customer".into(),
        }),
    };
    let audit = inspection.create_audit(audit).await.expect("audit").into_inner();
    inspection.divide_responsibility(divide(&audit.name, &[("person", "B042", 100)])).await.expect("divided");
    let decision = decide(&audit.name, vec![fine("person", "B042", "operational_error", 20_000, "")], "");
    inspection.decide_penalties(decision).await.expect("decided");
    let fined = ledger(&suite, &format!("inspection/{}/", audit.name), 1).await.remove(0);
    settlement.record_waybill(waybill("WB7301", "")).await.expect("recorded");
    let waybill_entry = ledger(&suite, "waybills/WB7301/", 1).await.remove(0);

    let reverse = |name: &str, reason: &str| pb::ReverseLedgerEntryRequest {
        name: name.into(),
        reason: reason.into(),
        request_id: String::new(),
    };
    let clerk = settlement.reverse_ledger_entry(as_user(reverse(&fined.name, "appeal"), "J001", "settlement")).await;
    assert_eq!(clerk.expect_err("a clerk").code(), Code::PermissionDenied);
    let no_reason = settlement.reverse_ledger_entry(supervisor(reverse(&fined.name, ""))).await.expect_err("no reason");
    assert_eq!(violated_fields(&no_reason), ["reason"]);
    // Four eyes: someone asks for the reversal, and another supervisor reverses.
    let unasked = settlement.reverse_ledger_entry(supervisor(reverse(&fined.name, "appeal"))).await;
    let unasked = unasked.expect_err("no one asked");
    assert_eq!(unasked.code(), Code::FailedPrecondition);
    assert!(unasked.message().contains("RequestReversal"), "{}", unasked.message());
    let ask = |reason: &str| pb::RequestReversalRequest { name: fined.name.clone(), reason: reason.into() };
    settlement.request_reversal(supervisor(ask("the fine was annulled on appeal"))).await.expect("asked");
    let own = settlement.reverse_ledger_entry(supervisor(reverse(&fined.name, "appeal"))).await;
    let own = own.expect_err("the supervisor who asked");
    assert_eq!(own.code(), Code::PermissionDenied);
    assert!(own.message().contains("four eyes"), "{}", own.message());
    let asked = settlement.request_reversal(as_user(ask("annulled on appeal, ruling 2026-17"), "J001", "settlement"));
    let asked = asked.await.expect("asked again, by the clerk").into_inner();
    assert_eq!((asked.entry.as_str(), asked.requested_by.as_str()), (fined.name.as_str(), "J001"));
    clock.advance(Duration::hours(1));
    let reversal = settlement.reverse_ledger_entry(supervisor(reverse(&fined.name, "fine annulled on appeal"))).await;
    let reversal = reversal.expect("reversed").into_inner();
    assert_eq!(reversal.origin, format!("{}/reversal", fined.name));
    assert!(reversal.memo.contains("asked by J001, by S001"), "{}", reversal.memo);
    assert_eq!(postings(&reversal), [("person:B042", -20_000), ("company:fines_income", 20_000)]);
    let retried = settlement.reverse_ledger_entry(supervisor(reverse(&fined.name, "again"))).await.expect("retried");
    assert_eq!(retried.into_inner().name, reversal.name, "an entry is reversed once");
    let of_reversal = settlement.reverse_ledger_entry(supervisor(reverse(&reversal.name, "undo"))).await;
    assert_eq!(of_reversal.expect_err("a reversal").code(), Code::FailedPrecondition);
    let of_waybill = settlement.reverse_ledger_entry(supervisor(reverse(&waybill_entry.name, "undo"))).await;
    assert!(of_waybill.expect_err("a waybill's").message().contains("change request"));

    let statement = pb::GetAccountStatementRequest { account: "person:B042".into(), month: "2026-11".into() };
    let statement = settlement.get_account_statement(statement).await.expect("statement").into_inner();
    assert_eq!(statement.opening_balance_fen, 0);
    let lines: Vec<(i64, i64)> = statement.lines.iter().map(|line| (line.amount_fen, line.balance_fen)).collect();
    assert_eq!(lines, [(20_000, 20_000), (-20_000, 0)]);
    assert_eq!(statement.closing_balance_fen, 0);
    assert_eq!(statement.csv.lines().count(), 5, "header, opening, two lines, closing:\n{}", statement.csv);
    let december = pb::GetAccountStatementRequest { account: "person:B042".into(), month: "2026-12".into() };
    let december = settlement.get_account_statement(december).await.expect("statement").into_inner();
    assert!(december.lines.is_empty());
    let bad = pb::GetAccountStatementRequest { account: "B042".into(), month: "November".into() };
    assert_eq!(violated_fields(&settlement.get_account_statement(bad).await.expect_err("bad")), ["month", "account"]);

    let summary = settlement.get_monthly_summary(pb::GetMonthlySummaryRequest { month: "2026-11".into() }).await;
    let summary = summary.expect("summary").into_inner();
    let rows: Vec<(&str, i32, i64)> =
        summary.rows.iter().map(|row| (row.kind.as_str(), row.entries, row.amount_fen)).collect();
    assert_eq!(rows, [("fine", 1, 20_000), ("reversal", 1, 20_000), ("waybill_charges", 1, 52_000)]);
    assert_eq!(summary.closing.as_ref().map(|closing| closing.total_fen), Some(0));
    assert!(summary.csv.contains("2026-11,movement,fine,1,20000"), "{}", summary.csv);

    let before_fine = pb::GetTrialBalanceRequest { as_of: fined.create_time, account_prefix: "person:".into() };
    let before_fine = settlement.get_trial_balance(before_fine).await.expect("balances").into_inner();
    assert!(before_fine.accounts.is_empty(), "{before_fine:?}");
    let found = reconciled(&mut settlement).await;
    assert_eq!((found.events_received, found.entries, found.waybills), (1, 3, 1));
    suite.stop().await;
}
