//! Each transition's rule, and that a refused command changes nothing.

use chrono::TimeZone;

use super::*;
use crate::compensation::{AccidentKind, Packaging, UncheckedFacts};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single().expect("a time")
}

fn agent() -> Caller {
    Caller { user: "A1001".into(), department: "claims".into(), ..Caller::default() }
}

fn supervisor() -> Caller {
    Caller { user: "S2001".into(), roles: vec!["agent".into(), SUPERVISOR_ROLE.into()], ..agent() }
}

/// Declared 1,000 yuan, not insured, with the list, 800 yuan lost: the standards allow 560 yuan.
fn facts(accident: AccidentKind, invoice: bool) -> Facts {
    Facts::parse(
        UncheckedFacts {
            declared_value_fen: 100_000,
            insured: false,
            packaging: Some(Packaging::Intact),
            shipping_list: true,
            invoice,
            loss_market_value_fen: 80_000,
            piece_freight_fen: 2_000,
            pieces: 4,
            pieces_affected: 1,
            accident: Some(accident),
            ..UncheckedFacts::default()
        },
        "",
    )
    .expect("valid facts")
}

fn apply(claim: &mut Claim, command: Command, caller: &Caller) -> Result<Vec<Step>, ClaimError> {
    claim.apply(command, caller, now(), &CompensationPolicy::handbook())
}

fn investigated() -> Claim {
    let mut claim = Claim::open("20261122-7K3M9Q");
    let record = Command::RecordFacts {
        claimant: "Wang".into(),
        goods: "tea".into(),
        facts: facts(AccidentKind::TransitDamage, false),
    };
    apply(&mut claim, record, &agent()).expect("facts");
    let investigation =
        Investigation::parse("dropped at unloading".into(), "person", "B042".into(), 30).expect("valid");
    apply(&mut claim, Command::RecordInvestigation(investigation), &agent()).expect("investigation");
    claim
}

fn offer(amount_fen: i64) -> Command {
    Command::MakeOffer { amount_fen, note: String::new() }
}

#[test]
fn an_agreed_amount_within_the_standard_and_the_limit_is_approved_by_policy() {
    let mut claim = investigated();
    assert_eq!(claim.quote.as_ref().map(|quote| quote.amount_fen), Some(56_000));
    apply(&mut claim, offer(50_000), &agent()).expect("offer");
    assert_eq!((claim.state, claim.offer_fen), (State::Negotiating, 50_000));
    let steps = apply(&mut claim, Command::Accept { note: String::new() }, &agent()).expect("accept");
    assert_eq!(steps.iter().map(|step| step.action).collect::<Vec<_>>(), ["offer_accepted", "approved"]);
    assert_eq!(steps[1].actor, "policy");
    assert_eq!((claim.state, claim.agreed_amount_fen), (State::Approved, 50_000));
    // 30% of 500 yuan.
    assert_eq!(claim.responsible_share_fen, 15_000);
    assert_eq!(claim.approval.as_ref().map(|approval| approval.approved_by.as_str()), Some("policy"));
}

#[test]
fn above_the_standard_a_supervisor_approves_with_a_reason() {
    let mut claim = investigated();
    apply(&mut claim, offer(60_000), &agent()).expect("an offer may exceed the standard");
    let steps = apply(&mut claim, Command::Accept { note: String::new() }, &agent()).expect("accept");
    assert_eq!(claim.state, State::AwaitingApproval);
    assert!(steps[1].detail.contains("above what the standards allow (560.00 yuan"), "{}", steps[1].detail);

    let before = claim.clone();
    let refused = apply(&mut claim, Command::Approve { reason: "loyal customer".into() }, &agent());
    assert!(matches!(refused, Err(ClaimError::NotSupervisor(_))), "{refused:?}");
    let refused = apply(&mut claim, Command::Approve { reason: " ".into() }, &supervisor());
    assert!(matches!(refused, Err(ClaimError::Invalid(_))), "{refused:?}");
    assert_eq!(claim, before, "refused commands change nothing");

    let steps = apply(&mut claim, Command::Approve { reason: "loyal customer, photos clear".into() }, &supervisor())
        .expect("approve");
    assert_eq!((steps[0].action, steps[0].actor.as_str()), ("approved", "S2001"));
    assert_eq!(claim.state, State::Approved);
    assert_eq!(claim.responsible_share_fen, 18_000);
}

#[test]
fn above_the_authority_limit_a_supervisor_approves_even_within_the_standard() {
    let mut claim = investigated();
    let policy = CompensationPolicy { authority_limit_fen: 40_000, ..CompensationPolicy::handbook() };
    claim.apply(offer(50_000), &agent(), now(), &policy).expect("offer");
    claim.apply(Command::Accept { note: String::new() }, &agent(), now(), &policy).expect("accept");
    assert_eq!(claim.state, State::AwaitingApproval);
    assert_eq!(claim.approval_reasons(50_000, &policy), ["500.00 yuan is above the authority limit of 400.00 yuan"]);
}

#[test]
fn a_refusal_sends_the_claim_back_to_negotiation() {
    let mut claim = investigated();
    apply(&mut claim, offer(90_000), &agent()).expect("offer");
    apply(&mut claim, Command::Accept { note: String::new() }, &agent()).expect("accept");
    apply(&mut claim, Command::Refuse { reason: "no grounds above the standard".into() }, &supervisor())
        .expect("refuse");
    assert_eq!((claim.state, claim.agreed_amount_fen), (State::Negotiating, 0));
    apply(&mut claim, offer(56_000), &agent()).expect("a new offer");
}

#[test]
fn the_customer_counters_and_claims_answers_with_a_new_offer() {
    let mut claim = investigated();
    apply(&mut claim, offer(40_000), &agent()).expect("offer");
    apply(&mut claim, Command::Counter { amount_fen: 56_000, note: "receipt shown".into() }, &agent())
        .expect("counter");
    assert_eq!((claim.offer_fen, claim.counter_offer_fen), (0, 56_000));
    let accept = apply(&mut claim, Command::Accept { note: String::new() }, &agent());
    assert!(matches!(accept, Err(ClaimError::Precondition(ref m)) if m.contains("no outstanding offer")), "{accept:?}");
    apply(&mut claim, offer(56_000), &agent()).expect("meets the counter");
    apply(&mut claim, Command::Accept { note: String::new() }, &agent()).expect("accept");
    assert_eq!(claim.state, State::Approved);
}

#[test]
fn an_offer_needs_the_facts_and_the_investigation() {
    let mut claim = Claim::open("20261122-7K3M9Q");
    let refused = apply(&mut claim, offer(1_000), &agent());
    assert!(matches!(refused, Err(ClaimError::Precondition(ref m)) if m.contains("record the facts")), "{refused:?}");
    let record =
        Command::RecordFacts { claimant: "Wang".into(), goods: "tea".into(), facts: facts(AccidentKind::Loss, false) };
    apply(&mut claim, record, &agent()).expect("facts");
    let refused = apply(&mut claim, offer(1_000), &agent());
    assert!(matches!(refused, Err(ClaimError::Precondition(ref m)) if m.contains("investigation")), "{refused:?}");
}

#[test]
fn a_traffic_accident_waits_for_the_invoice() {
    let mut claim = Claim::open("20261122-7K3M9Q");
    let record = Command::RecordFacts {
        claimant: "Li".into(),
        goods: "tiles".into(),
        facts: facts(AccidentKind::TrafficAccident, false),
    };
    let steps = apply(&mut claim, record, &agent()).expect("the facts are recorded");
    assert_eq!((claim.quote.clone(), claim.missing_documents.clone()), (None, vec!["invoice"]));
    assert!(steps[0].detail.contains("invoice"));
    let investigation = Investigation::parse("truck hit".into(), "company", String::new(), 0).expect("valid");
    apply(&mut claim, Command::RecordInvestigation(investigation), &agent()).expect("investigation");
    let refused = apply(&mut claim, offer(1_000), &agent());
    assert!(matches!(refused, Err(ClaimError::Precondition(ref m)) if m.contains("invoice")), "{refused:?}");
    let record = Command::RecordFacts {
        claimant: "Li".into(),
        goods: "tiles".into(),
        facts: facts(AccidentKind::TrafficAccident, true),
    };
    apply(&mut claim, record, &agent()).expect("with the invoice");
    assert_eq!(claim.quote.as_ref().map(|quote| quote.amount_fen), Some(56_000));
    // The insurer has a part in a traffic accident.
    let recovery = InsurerRecovery::parse("PICC".into(), 56_000, 0).expect("valid");
    apply(&mut claim, Command::RecordInsurerRecovery(recovery), &agent()).expect("insurer");
}

#[test]
fn the_insurer_has_no_part_in_an_uninsured_transit_damage() {
    let mut claim = investigated();
    let recovery = InsurerRecovery::parse("PICC".into(), 1, 0).expect("valid");
    let refused = apply(&mut claim, Command::RecordInsurerRecovery(recovery), &agent());
    assert!(matches!(refused, Err(ClaimError::Precondition(_))), "{refused:?}");
    assert!(InsurerRecovery::parse(String::new(), 5, 6).is_err());
}

#[test]
fn an_approved_claim_is_settled() {
    let mut claim = investigated();
    apply(&mut claim, offer(10_000), &agent()).expect("offer");
    apply(&mut claim, Command::Accept { note: String::new() }, &agent()).expect("accept");
    let before = claim.clone();
    for command in [offer(5_000), Command::Counter { amount_fen: 1, note: String::new() }] {
        let refused = apply(&mut claim, command, &agent());
        assert!(matches!(refused, Err(ClaimError::Precondition(ref m)) if m.contains("approved")), "{refused:?}");
    }
    assert_eq!(claim, before);
}

#[test]
fn investigations_are_checked() {
    let fields = |result: Result<Investigation, FieldViolations>| {
        result.expect_err("invalid").fields().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        fields(Investigation::parse(String::new(), "driver", String::new(), 101)),
        ["investigation.findings", "investigation.responsible_party.kind", "investigation.share_percent"]
    );
    assert_eq!(
        fields(Investigation::parse("x".into(), "branch", String::new(), 10)),
        ["investigation.responsible_party.id"]
    );
    assert_eq!(fields(Investigation::parse("x".into(), "company", String::new(), 10)), ["investigation.share_percent"]);
}
