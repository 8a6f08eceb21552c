use chrono::{Duration, TimeZone};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single().expect("valid")
}

fn agent() -> Caller {
    Caller { user: "I007".into(), department: "inspection".into(), ..Caller::default() }
}

fn party(kind: PartyKind, id: &str) -> Party {
    Party { kind, id: id.into() }
}

fn person() -> Party {
    party(PartyKind::Person, "B042")
}

fn branch() -> Party {
    party(PartyKind::Branch, "SH01")
}

fn open_case(first_complaint: &str) -> Case {
    let policy = InspectionPolicy::handbook();
    Case::complaint("20261122-7K3M9Q", "attitude", "SH01", now() + Duration::days(3), first_complaint, &policy, now()).0
}

fn apply(case: &mut Case, command: Command) -> Result<(Vec<Step>, Vec<Effect>), CaseError> {
    case.apply(command, &agent(), now(), &InspectionPolicy::handbook())
}

fn fine(party: Party, violation: &str, amount_fen: i64) -> Penalty {
    Penalty { party, kind: PenaltyKind::Fine, violation: violation.into(), amount_fen, note: String::new() }
}

/// A case with the report in, findings recorded and responsibility divided 70/30.
fn investigated(first_complaint: &str) -> Case {
    let mut case = open_case(first_complaint);
    apply(&mut case, Command::RecordReport { author: person(), content: "I raised my voice".into() }).expect("report");
    apply(
        &mut case,
        Command::RecordFindings { facts: "verified by the recording".into(), evidence: vec!["call-1".into()] },
    )
    .expect("findings");
    let shares = vec![Share { party: person(), percent: 70 }, Share { party: branch(), percent: 30 }];
    apply(&mut case, Command::DivideResponsibility { shares, recurs: None }).expect("divided");
    case
}

fn precondition(result: Result<(Vec<Step>, Vec<Effect>), CaseError>) -> String {
    match result {
        Err(CaseError::Precondition(message)) => message,
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
}

fn invalid_fields(result: Result<(Vec<Step>, Vec<Effect>), CaseError>) -> Vec<String> {
    match result {
        Err(CaseError::Invalid(violations)) => violations.fields().map(str::to_owned).collect(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn the_written_report_sets_a_deadline_24_hours_on() {
    let mut case = open_case("");
    let (_, effects) =
        apply(&mut case, Command::RecordReport { author: person(), content: "what happened".into() }).expect("report");
    assert_eq!(case.state, State::Investigating);
    assert_eq!(case.deadline, now() + Duration::hours(24));
    assert!(case.deadline_reason.contains("001 §8 4.5"), "{}", case.deadline_reason);
    assert_eq!(effects, [Effect::DeadlineMoved]);
    assert!(
        precondition(apply(&mut case, Command::RecordReport { author: person(), content: "again".into() }))
            .contains("already in")
    );
}

#[test]
fn no_decision_without_the_written_report() {
    let mut case = open_case("");
    apply(&mut case, Command::RecordFindings { facts: "f".into(), evidence: vec![] }).expect("findings");
    apply(
        &mut case,
        Command::DivideResponsibility { shares: vec![Share { party: person(), percent: 100 }], recurs: None },
    )
    .expect("divided");
    let before = case.clone();
    let message = precondition(apply(
        &mut case,
        Command::Decide { penalties: vec![fine(person(), "attitude_or_inefficiency", 5_000)], note: String::new() },
    ));
    assert!(message.contains("written report"), "{message}");
    assert_eq!(case, before, "a refused command changes nothing");
}

#[test]
fn fines_must_lie_within_the_standards_range() {
    let mut case = investigated("");
    let before = case.clone();
    let fields = invalid_fields(apply(
        &mut case,
        Command::Decide {
            penalties: vec![
                fine(person(), "attitude_or_inefficiency", 4_999),
                fine(branch(), "stalled_cargo_query", 10_000),
                fine(person(), "no_such_rule", 100),
                fine(party(PartyKind::Person, "X9"), "language_or_image", 1_000),
            ],
            note: String::new(),
        },
    ));
    assert_eq!(
        fields,
        ["penalties[0].amount_fen", "penalties[1].amount_fen", "penalties[2].violation", "penalties[3].party"]
    );
    assert_eq!(case, before);
    // The edges of a range are inside it.
    for amount in [5_000, 10_000] {
        let mut case = investigated("");
        let (_, effects) = apply(
            &mut case,
            Command::Decide {
                penalties: vec![fine(person(), "attitude_or_inefficiency", amount)],
                note: String::new(),
            },
        )
        .expect("within the range");
        assert_eq!(effects, [Effect::Fined(vec![0])]);
        assert_eq!(case.state, State::Decided);
    }
}

#[test]
fn a_case_by_case_fine_needs_a_note() {
    let mut case = investigated("");
    let fields = invalid_fields(apply(
        &mut case,
        Command::Decide { penalties: vec![fine(branch(), "conflict_or_media_exposure", 50_000)], note: String::new() },
    ));
    assert_eq!(fields, ["penalties[0].note"]);
    let mut with_note = fine(branch(), "conflict_or_media_exposure", 50_000);
    with_note.note = "a newspaper reported the quarrel".into();
    apply(&mut case, Command::Decide { penalties: vec![with_note], note: String::new() }).expect("with a note");
}

#[test]
fn shares_add_up_to_100_and_name_each_party_once() {
    let mut case = open_case("");
    apply(&mut case, Command::RecordFindings { facts: "f".into(), evidence: vec![] }).expect("findings");
    let shares = vec![
        Share { party: person(), percent: 60 },
        Share { party: person(), percent: 30 },
        Share { party: branch(), percent: 0 },
    ];
    let fields = invalid_fields(apply(&mut case, Command::DivideResponsibility { shares, recurs: None }));
    assert_eq!(fields, ["shares[1].party", "shares[2].share_percent", "shares"]);
    assert!(case.responsibility.is_none());
}

#[test]
fn a_second_complaint_is_an_incident_from_the_start() {
    let policy = InspectionPolicy::handbook();
    let (case, steps, effects) =
        Case::complaint("20261122-7K3M9Q", "attitude", "SH01", now(), "complaints/20261120-AAAAAA", &policy, now());
    let incident = case.incident.expect("an incident");
    assert_eq!(incident.first_complaint, "complaints/20261120-AAAAAA");
    assert_eq!(incident.reason, IncidentReason::SecondComplaint);
    assert_eq!(incident.escalated_to, ["enterprise_management", "leadership"]);
    assert_eq!(effects, [Effect::Escalated]);
    assert_eq!(steps.last().map(|step| step.action), Some("escalated"));
}

#[test]
fn an_incident_fines_unit_and_person_and_vetoes_both() {
    let mut case = investigated("complaints/20261120-AAAAAA");
    let message = precondition(apply(
        &mut case,
        Command::Decide { penalties: vec![fine(person(), "attitude_or_inefficiency", 10_000)], note: String::new() },
    ));
    assert!(message.contains("4.10.3"), "{message}");
    let mut unit_fine = fine(branch(), "incident", 50_000);
    unit_fine.note = "second complaint within a week".into();
    let (_, effects) = apply(
        &mut case,
        Command::Decide {
            penalties: vec![fine(person(), "attitude_or_inefficiency", 10_000), unit_fine],
            note: String::new(),
        },
    )
    .expect("both fined");
    assert_eq!(effects, [Effect::Fined(vec![0, 1])]);
    let penalties = &case.decision.as_ref().expect("decided").penalties;
    let vetoed: Vec<&Party> = penalties.iter().filter(|p| p.kind == PenaltyKind::AwardVeto).map(|p| &p.party).collect();
    assert_eq!(vetoed, [&person(), &branch()]);
}

#[test]
fn a_recurrence_found_at_division_escalates_once() {
    let mut case = open_case("");
    apply(&mut case, Command::RecordFindings { facts: "f".into(), evidence: vec![] }).expect("findings");
    let shares = vec![Share { party: branch(), percent: 100 }];
    let (steps, effects) =
        apply(&mut case, Command::DivideResponsibility { shares, recurs: Some("complaints/20261101-CCCCCC".into()) })
            .expect("divided");
    assert_eq!(effects, [Effect::Escalated]);
    assert_eq!(steps.len(), 2);
    assert_eq!(case.incident.as_ref().map(|i| i.reason), Some(IncidentReason::Recurrence));
}

#[test]
fn penalties_follow_only_a_verified_complaint() {
    let mut case = open_case("");
    apply(&mut case, Command::RecordReport { author: person(), content: "r".into() }).expect("report");
    apply(&mut case, Command::RecordFindings { facts: "not borne out".into(), evidence: vec![] }).expect("findings");
    apply(&mut case, Command::DivideResponsibility { shares: vec![], recurs: None }).expect("nobody");
    let warning = Penalty {
        party: person(),
        kind: PenaltyKind::Warning,
        violation: String::new(),
        amount_fen: 0,
        note: String::new(),
    };
    assert!(
        precondition(apply(&mut case, Command::Decide { penalties: vec![warning], note: String::new() }))
            .contains("nobody was found responsible")
    );
    apply(&mut case, Command::Decide { penalties: vec![], note: "not borne out".into() }).expect("no penalty");
}

#[test]
fn rectification_is_assigned_after_the_decision_and_checked() {
    let mut case = investigated("");
    let due = now() + Duration::days(7);
    let task = Command::AssignRectification { unit: branch(), task: "retrain the counter staff".into(), due };
    assert!(precondition(apply(&mut case, task.clone())).contains("decide first"));
    apply(&mut case, Command::Decide { penalties: vec![], note: "first time".into() }).expect("decided");
    apply(&mut case, task).expect("assigned");
    let assign_person = Command::AssignRectification { unit: person(), task: "t".into(), due };
    assert_eq!(invalid_fields(apply(&mut case, assign_person)), ["unit.kind"]);
    let later = now() + Duration::days(14);
    apply(
        &mut case,
        Command::CheckRectification { index: 0, done: false, note: "not yet".into(), new_due: Some(later) },
    )
    .expect("checked");
    assert_eq!(case.rectifications[0].due, later);
    apply(&mut case, Command::Resolve { resolution: "the staff member was fined and apologized".into() })
        .expect("resolved");
    apply(&mut case, Command::CheckRectification { index: 0, done: true, note: "retrained".into(), new_due: None })
        .expect("checked after the case was resolved");
    assert!(case.rectifications[0].done);
    assert_eq!(
        invalid_fields(apply(
            &mut case,
            Command::CheckRectification { index: 3, done: true, note: "x".into(), new_due: None }
        )),
        ["rectification"]
    );
}

#[test]
fn an_overdue_case_is_chased_once_per_deadline() {
    let mut case = open_case("");
    let policy = InspectionPolicy::handbook();
    let late = case.deadline + Duration::minutes(1);
    assert!(precondition(case.apply(Command::Chase, &agent(), now(), &policy)).contains("not overdue"));
    case.apply(Command::Chase, &agent(), late, &policy).expect("chased");
    assert!(case.chased);
    assert!(case.apply(Command::Chase, &agent(), late, &policy).is_err(), "once per deadline");
    case.apply(Command::RecordReport { author: person(), content: "late report".into() }, &agent(), late, &policy)
        .expect("report");
    assert!(!case.chased, "a new deadline can be chased again");
}

#[test]
fn the_record_survives_a_round_trip_through_json() {
    let case = investigated("complaints/20261120-AAAAAA");
    let json = serde_json::to_string(&case).expect("serializes");
    let back: Case = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, case);
}
