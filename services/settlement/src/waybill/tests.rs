use chrono::TimeZone;

use super::*;

const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    SHANGHAI.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("a valid time").with_timezone(&Utc)
}

fn clerk() -> Caller {
    Caller { user: "J001".into(), ..Caller::default() }
}

fn supervisor() -> Caller {
    Caller { user: "S001".into(), roles: vec!["supervisor".into()], ..Caller::default() }
}

fn waybill() -> Waybill {
    let fields = WaybillFields {
        number: "WB1001",
        shipper: "S1001",
        branch: "SH01",
        freight_fen: 2_000,
        payment_method: "collect",
        cod_amount_fen: 50_000,
        cod_remit_days: 0,
        consignee: "李四",
        consignee_phone: "13900000000",
    };
    Waybill::new(&fields, at(2026, 8, 1, 9)).expect("valid")
}

fn footprint(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(account, fen)| ((*account).to_owned(), *fen)).collect()
}

fn apply(waybill: &mut Waybill, command: Command, caller: &Caller, now: DateTime<Utc>) -> Result<Applied, Refusal> {
    waybill.apply(command, caller, now, SHANGHAI)
}

fn refused_unchanged(waybill: &mut Waybill, command: Command, caller: &Caller, now: DateTime<Utc>) -> Refusal {
    let before = waybill.clone();
    let refusal = apply(waybill, command, caller, now).expect_err("refused");
    assert_eq!(*waybill, before, "a refused command changes nothing");
    refusal
}

fn precondition_message(refusal: Refusal) -> String {
    match refusal {
        Refusal::Precondition(message) => message,
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
}

#[test]
fn cod_moves_from_the_branch_through_the_company_to_the_shipper() {
    let mut waybill = waybill();
    let charged = waybill.footprint();
    assert_eq!(charged, footprint(&[("branch:SH01", 52_000), (COD_PENDING, -50_000), (FREIGHT_INCOME, -2_000)]));

    let collected =
        apply(&mut waybill, Command::CollectCod { time: None }, &clerk(), at(2026, 8, 3, 15)).expect("collected");
    assert_eq!(collected.movement.expect("money moves").origin, "cod_collection");
    assert_eq!(waybill.cod.remit_due_time, Some(at(2026, 8, 10, 15)), "seven days by default");
    assert_eq!(
        difference(&charged, &waybill.footprint()),
        [(COD_PENDING.to_owned(), 50_000), ("shipper:S1001".to_owned(), -50_000)]
    );

    let before = waybill.footprint();
    let remitted =
        apply(&mut waybill, Command::RemitCod { time: None }, &clerk(), at(2026, 8, 12, 10)).expect("remitted");
    assert!(remitted.step.detail.ends_with("2 day(s) late"), "{}", remitted.step.detail);
    assert_eq!(
        difference(&before, &waybill.footprint()),
        [("branch:SH01".to_owned(), -50_000), ("shipper:S1001".to_owned(), 50_000)]
    );
    assert_eq!(
        waybill.footprint(),
        footprint(&[("branch:SH01", 2_000), (FREIGHT_INCOME, -2_000)]),
        "the branch still owes the freight"
    );

    let refusal = refused_unchanged(&mut waybill, Command::RemitCod { time: None }, &clerk(), at(2026, 8, 13, 10));
    assert!(precondition_message(refusal).contains("was remitted on 2026-08-12"));
}

#[test]
fn every_state_s_footprint_balances() {
    let mut waybill = waybill();
    let mut states = vec![waybill.footprint()];
    apply(&mut waybill, Command::CollectCod { time: None }, &clerk(), at(2026, 8, 3, 15)).expect("collected");
    states.push(waybill.footprint());
    apply(&mut waybill, Command::RemitCod { time: None }, &clerk(), at(2026, 8, 4, 15)).expect("remitted");
    states.push(waybill.footprint());
    for state in states {
        assert_eq!(state.values().sum::<i64>(), 0, "{state:?}");
    }
}

#[test]
fn a_consignee_change_alone_belongs_to_the_service_center_and_a_mixed_one_to_settlement() {
    let mut waybill = waybill();
    let consignee = vec![(Field::Consignee, "王五".to_owned())];
    let refusal = refused_unchanged(
        &mut waybill,
        Command::RequestChange { changes: consignee, reason: "moved".into() },
        &clerk(),
        at(2026, 8, 2, 9),
    );
    assert!(precondition_message(refusal).contains("customer service center"));

    let mixed = vec![(Field::Consignee, "王五".to_owned()), (Field::CodAmountFen, "45000".to_owned())];
    apply(
        &mut waybill,
        Command::RequestChange { changes: mixed, reason: "price agreed lower".into() },
        &clerk(),
        at(2026, 8, 2, 9),
    )
    .expect("requested");
    assert_eq!(waybill.change_requests[0].changes[1].before, "50000");
    assert_eq!(waybill.cod_amount_fen, 50_000, "nothing changes before approval");

    let refusal = refused_unchanged(
        &mut waybill,
        Command::ApproveChange { index: 0, reason: String::new() },
        &clerk(),
        at(2026, 8, 2, 10),
    );
    assert!(matches!(refusal, Refusal::NotSupervisor(_)));

    let before = waybill.footprint();
    let applied = apply(
        &mut waybill,
        Command::ApproveChange { index: 0, reason: "ok".into() },
        &supervisor(),
        at(2026, 8, 2, 10),
    )
    .expect("approved");
    assert_eq!(applied.movement.expect("money moves").origin, "changeRequests/1");
    assert_eq!((waybill.cod_amount_fen, waybill.consignee.as_str()), (45_000, "王五"));
    assert_eq!(waybill.change_requests[0].state, ChangeState::Applied);
    assert_eq!(
        difference(&before, &waybill.footprint()),
        [("branch:SH01".to_owned(), -5_000), (COD_PENDING.to_owned(), 5_000)]
    );

    let refusal = refused_unchanged(
        &mut waybill,
        Command::ApproveChange { index: 0, reason: String::new() },
        &supervisor(),
        at(2026, 8, 2, 11),
    );
    assert!(precondition_message(refusal).contains("already applied"));
}

#[test]
fn money_that_has_moved_cannot_be_changed_and_a_change_must_change_something() {
    let mut waybill = waybill();
    let same = vec![(Field::FreightFen, "2000".to_owned())];
    let refusal = refused_unchanged(
        &mut waybill,
        Command::RequestChange { changes: same, reason: "x".into() },
        &clerk(),
        at(2026, 8, 2, 9),
    );
    let Refusal::Invalid(violations) = refusal else { panic!("expected INVALID_ARGUMENT") };
    assert_eq!(violations.fields().collect::<Vec<_>>(), ["changes[0].after"]);

    apply(&mut waybill, Command::CollectCod { time: None }, &clerk(), at(2026, 8, 3, 9)).expect("collected");
    let cod = vec![(Field::CodAmountFen, "1".to_owned())];
    let refusal = refused_unchanged(
        &mut waybill,
        Command::RequestChange { changes: cod, reason: "x".into() },
        &clerk(),
        at(2026, 8, 3, 10),
    );
    assert!(precondition_message(refusal).contains("already collected"));

    // A new shipper before remittance: the COD is owed to the new one.
    let shipper = vec![(Field::Shipper, "S2002".to_owned())];
    apply(
        &mut waybill,
        Command::RequestChange { changes: shipper, reason: "sold".into() },
        &clerk(),
        at(2026, 8, 3, 10),
    )
    .expect("requested");
    apply(&mut waybill, Command::ApproveChange { index: 0, reason: "ok".into() }, &supervisor(), at(2026, 8, 3, 11))
        .expect("approved");
    assert_eq!(waybill.footprint().get("shipper:S2002"), Some(&-50_000));
    assert_eq!(waybill.footprint().get("shipper:S1001"), None);
}

#[test]
fn six_months_after_a_seizure_on_the_last_day_of_august_is_the_last_day_of_february() {
    assert_eq!(write_off_from(at(2026, 8, 31, 10), SHANGHAI), at(2027, 2, 28, 10));
    assert_eq!(write_off_from(at(2026, 11, 22, 23), SHANGHAI), at(2027, 5, 22, 23));
}

fn seize(waybill: &mut Waybill, cause: &str, notified: bool) {
    let facts = SeizureFacts {
        authority: "工商局".into(),
        certificate_number: "CK-2026-0815".into(),
        seize_time: Some(at(2026, 8, 15, 10)),
        cause: cause.into(),
        shipper_notify_time: notified.then(|| at(2026, 8, 15, 11)),
        notified_by: if notified { "SH01-张三".into() } else { String::new() },
    };
    apply(waybill, Command::Seize(facts), &clerk(), at(2026, 8, 15, 12)).expect("seized");
}

#[test]
fn seized_cargo_is_written_off_six_months_later_on_the_original_certificate_only() {
    let mut waybill = waybill();
    seize(&mut waybill, "customer", false);
    let write_off = |original_certificate| Command::WriteOff { original_certificate };

    let refusal = refused_unchanged(&mut waybill, write_off(true), &clerk(), at(2027, 2, 16, 9));
    assert!(precondition_message(refusal).contains("shipper was told"));
    apply(
        &mut waybill,
        Command::NotifyShipper { time: Some(at(2026, 8, 15, 11)), by: "SH01-张三".into() },
        &clerk(),
        at(2026, 8, 15, 12),
    )
    .expect("notified");

    let refusal = refused_unchanged(&mut waybill, write_off(true), &clerk(), at(2027, 2, 15, 9));
    assert!(precondition_message(refusal).contains("possible from 2027-02-15 10:00"), "one hour early");
    let refusal = refused_unchanged(&mut waybill, write_off(false), &clerk(), at(2027, 2, 16, 9));
    assert!(precondition_message(refusal).contains("original seizure certificate"));

    let before = waybill.footprint();
    apply(&mut waybill, write_off(true), &clerk(), at(2027, 2, 15, 10)).expect("written off");
    assert_eq!(waybill.footprint(), footprint(&[(FREIGHT_INCOME, -2_000), (SEIZURE_WRITE_OFFS, 2_000)]));
    assert_eq!(
        difference(&before, &waybill.footprint()),
        [("branch:SH01".to_owned(), -52_000), (COD_PENDING.to_owned(), 50_000), (SEIZURE_WRITE_OFFS.to_owned(), 2_000)]
    );
    let refusal = refused_unchanged(&mut waybill, write_off(true), &clerk(), at(2027, 3, 1, 9));
    assert!(precondition_message(refusal).contains("already written off"));
}

#[test]
fn a_lost_certificate_or_the_branch_s_fault_makes_the_branch_pay_the_shipper() {
    let mut lost = waybill();
    seize(&mut lost, "customer", true);
    let applied =
        apply(&mut lost, Command::ReportProblem { problem: "certificate_lost".into() }, &clerk(), at(2026, 9, 1, 9))
            .expect("reported");
    assert_eq!(applied.movement.expect("money moves").origin, "branch_loss");
    assert!(lost.cod_owed());
    assert_eq!(lost.cod.remit_due_time, Some(at(2026, 9, 8, 9)));
    let refusal =
        refused_unchanged(&mut lost, Command::WriteOff { original_certificate: true }, &clerk(), at(2027, 3, 1, 9));
    assert!(precondition_message(refusal).contains("bears the loss"));
    apply(&mut lost, Command::RemitCod { time: None }, &clerk(), at(2026, 9, 5, 9))
        .expect("the branch pays the shipper");
    assert_eq!(lost.footprint(), footprint(&[("branch:SH01", 2_000), (FREIGHT_INCOME, -2_000)]));

    let mut fault = waybill();
    seize(&mut fault, "branch", true);
    assert!(fault.seizure.as_ref().and_then(|seizure| seizure.branch_bears_loss.as_ref()).is_some());
    assert_eq!(fault.footprint().get("shipper:S1001"), Some(&-50_000), "the shipper is owed the COD at once");
}

#[test]
fn a_seizure_needs_its_facts_and_undelivered_cargo() {
    let mut waybill = waybill();
    let facts = SeizureFacts {
        authority: String::new(),
        certificate_number: String::new(),
        seize_time: None,
        cause: "weather".into(),
        shipper_notify_time: None,
        notified_by: String::new(),
    };
    let Refusal::Invalid(violations) =
        refused_unchanged(&mut waybill, Command::Seize(facts), &clerk(), at(2026, 8, 15, 12))
    else {
        panic!("expected INVALID_ARGUMENT");
    };
    assert_eq!(
        violations.fields().collect::<Vec<_>>(),
        ["seizure.authority", "seizure.certificate_number", "seizure.cause", "seizure.seize_time"]
    );
    apply(&mut waybill, Command::CollectCod { time: None }, &clerk(), at(2026, 8, 3, 9)).expect("collected");
    let facts = SeizureFacts {
        authority: "工商局".into(),
        certificate_number: "CK1".into(),
        seize_time: Some(at(2026, 8, 4, 9)),
        cause: "customer".into(),
        shipper_notify_time: None,
        notified_by: String::new(),
    };
    let refusal = refused_unchanged(&mut waybill, Command::Seize(facts), &clerk(), at(2026, 8, 5, 9));
    assert!(precondition_message(refusal).contains("was delivered"));
}

#[test]
fn a_new_waybill_names_every_bad_field_at_once() {
    let fields = WaybillFields {
        number: "WB 1",
        shipper: "",
        branch: "SH01",
        freight_fen: -1,
        payment_method: "cash",
        cod_amount_fen: 0,
        cod_remit_days: 91,
        consignee: "",
        consignee_phone: "call me",
    };
    let violations = Waybill::new(&fields, at(2026, 8, 1, 9)).expect_err("refused");
    assert_eq!(
        violations.fields().collect::<Vec<_>>(),
        [
            "waybill.name",
            "waybill.shipper",
            "waybill.freight_fen",
            "waybill.payment_method",
            "waybill.cod_remit_days",
            "waybill.consignee_phone"
        ]
    );
}
