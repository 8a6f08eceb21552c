//! Claims through the gateway: a cargo-damage complaint becomes a claim; facts, evidence and the
//! investigation are recorded; the customer agrees; the payout and the responsible party's
//! deduction land in settlement's ledger exactly once; the customer is told through intake.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use kefu_kit::{ManualClock, config::ServiceName, time::to_timestamp};
use kefu_proto::{
    claims::v1::{self as pb, claims_client::ClaimsClient},
    events::v1::{ClaimApproved, DeliverRequest, Event, event::Payload, event_inbox_client::EventInboxClient},
    gateway::v1::{GetComplaintRequest, State as ComplaintState},
    settlement::v1::{ListLedgerEntriesRequest, settlement_client::SettlementClient},
};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::support::Gateway;
use tonic_types::StatusExt;

use crate::{
    inspection::{ledger, postings},
    support::{Backend, TestSuite, as_user, complaint, create, eventually, on_both_backends, violated_fields},
};

/// 2026-11-22 10:00 in Shanghai.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single().expect("a time")))
}

fn claims(suite: &TestSuite) -> ClaimsClient<Gateway> {
    ClaimsClient::new(suite.gateway.clone())
}

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00 a photo of a crushed carton";

/// Files a cargo-damage complaint at the gateway and waits until claims holds it; the claim's name.
async fn open_claim(suite: &TestSuite, waybill: &str) -> String {
    let request = as_user(create(&format!("c-{waybill}"), complaint("cargo_damage", waybill)), "A1024", "intake");
    let created = suite.complaints().create_complaint(request).await.expect("created").into_inner();
    let complaints = suite.complaints();
    eventually("claims accepts the complaint", || {
        let mut complaints = complaints.clone();
        let name = created.name.clone();
        async move {
            let complaint = complaints.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (!complaint.owner_reference.is_empty()).then_some(complaint.owner_reference)
        }
    })
    .await
}

/// Declared 1,000 yuan, not insured, intact, with the shipping list; 800 yuan lost. The standards
/// allow 70% of 800 yuan: 560 yuan.
pub(crate) fn uninsured_loss() -> pb::QuoteCompensationRequest {
    pb::QuoteCompensationRequest {
        declared_value_fen: 100_000,
        insured: false,
        packaging: pb::Packaging::Intact as i32,
        shipping_list: true,
        loss_market_value_fen: 80_000,
        piece_freight_fen: 2_000,
        pieces: 4,
        pieces_affected: 1,
        accident: pb::AccidentKind::TransitDamage as i32,
        ..Default::default()
    }
}

pub(crate) fn facts(name: &str, compensation: pb::QuoteCompensationRequest) -> pb::RecordClaimFactsRequest {
    pb::RecordClaimFactsRequest {
        name: name.into(),
        facts: Some(pb::ClaimFacts {
            claimant: "王先生".into(),
            goods: "茶叶 4 箱".into(),
            compensation: Some(compensation),
        }),
        request_id: String::new(),
    }
}

pub(crate) fn investigation(name: &str, kind: &str, id: &str, share_percent: i32) -> pb::RecordInvestigationRequest {
    pb::RecordInvestigationRequest {
        name: name.into(),
        investigation: Some(pb::Investigation {
            findings: "carton dropped while unloading at the SH01 dock".into(),
            responsible_party: Some(pb::ResponsibleParty { kind: kind.into(), id: id.into() }),
            share_percent,
        }),
        request_id: String::new(),
    }
}

pub(crate) fn offer(name: &str, amount_fen: i64) -> pb::MakeOfferRequest {
    pb::MakeOfferRequest { name: name.into(), amount_fen, note: String::new(), request_id: String::new() }
}

pub(crate) fn accept(name: &str, request_id: &str) -> pb::RecordCustomerResponseRequest {
    pb::RecordCustomerResponseRequest {
        name: name.into(),
        response: Some(pb::record_customer_response_request::Response::Accept(true)),
        note: "by phone".into(),
        request_id: request_id.into(),
    }
}

fn as_supervisor<T>(message: T) -> tonic::Request<T> {
    crate::support::with_roles(as_user(message, "S2001", "claims"), "agent,supervisor")
}

on_both_backends!(a_cargo_damage_claim_goes_from_facts_to_payout_and_the_customer_is_told);
async fn a_cargo_damage_claim_goes_from_facts_to_payout_and_the_customer_is_told(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut claims = claims(&suite);
    let name = open_claim(&suite, "YD-CLAIM-1").await;
    assert!(name.starts_with("claims/"), "{name}");

    let claim = claims.get_claim(pb::GetClaimRequest { name: name.clone() }).await.expect("get").into_inner();
    assert_eq!(claim.state(), pb::State::Open);
    assert_eq!(claim.complaint.as_ref().map(|c| c.waybill_number.as_str()), Some("YD-CLAIM-1"));

    let claim =
        claims.record_claim_facts(as_user(facts(&name, uninsured_loss()), "L3001", "claims")).await.expect("facts");
    let quote = claim.into_inner().quote.expect("quoted");
    assert_eq!((quote.amount_fen, quote.rule.as_str()), (56_000, "declared_uninsured"));
    assert!(quote.reasons.iter().any(|reason| reason.contains("70%")), "{:?}", quote.reasons);

    // Evidence: stored whole with its SHA-256; the same photo twice is one evidence.
    let attach = |request_id: &str| pb::AttachEvidenceRequest {
        parent: name.clone(),
        evidence: Some(pb::Evidence {
            kind: "photo".into(),
            file_name: "carton.jpg".into(),
            media_type: "image/jpeg".into(),
            content: JPEG.to_vec(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    };
    let evidence =
        claims.attach_evidence(as_user(attach("ev-1"), "L3001", "claims")).await.expect("attach").into_inner();
    let expected_hash: String = Sha256::digest(JPEG).iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(evidence.sha256, expected_hash);
    assert_eq!(evidence.size_bytes, JPEG.len() as i64);
    assert_eq!(evidence.uploaded_by, "L3001");
    let again = claims.attach_evidence(attach("ev-2")).await.expect("attach again").into_inner();
    assert_eq!(again.name, evidence.name, "the same content is the same evidence");
    let fetched = claims.get_evidence(pb::GetEvidenceRequest { name: evidence.name.clone() }).await.expect("get");
    assert_eq!(fetched.into_inner().content, JPEG);

    claims.record_investigation(investigation(&name, "person", "B042", 30)).await.expect("investigation");
    let claim = claims.make_offer(offer(&name, 50_000)).await.expect("offer").into_inner();
    assert_eq!((claim.state(), claim.offer_fen), (pb::State::Negotiating, 50_000));

    // Within the standard and the authority limit: approved by policy at once.
    let claim = claims.record_customer_response(accept(&name, "acc-1")).await.expect("accept").into_inner();
    assert_eq!(claim.state(), pb::State::Approved);
    assert_eq!((claim.agreed_amount_fen, claim.responsible_share_fen), (50_000, 15_000));
    assert_eq!(claim.approval.as_ref().map(|approval| approval.approved_by.as_str()), Some("policy"));
    let actions: Vec<&str> = claim.history.iter().map(|step| step.action.as_str()).collect();
    assert_eq!(
        actions,
        ["facts_recorded", "evidence_attached", "investigation_recorded", "offer_made", "offer_accepted", "approved"]
    );
    assert_eq!(claim.evidence.len(), 1);

    // A retried accept changes nothing.
    let retried = claims.record_customer_response(accept(&name, "acc-1")).await.expect("retry").into_inner();
    assert_eq!(retried.history.len(), claim.history.len());

    // Settlement: the payout to the customer and the responsible party's share, each balanced.
    let entries = ledger(&suite, &format!("{name}/"), 2).await;
    let case_number = name.strip_prefix("claims/").expect("claims/…");
    let payout = entries.iter().find(|entry| entry.kind == "claim_payout").expect("a payout");
    assert_eq!(payout.origin, format!("{name}/payout"));
    let customer = format!("customer:complaints/{case_number}");
    assert_eq!(postings(payout), [("company:claims_expense", 50_000), (customer.as_str(), -50_000)]);
    let deduction = entries.iter().find(|entry| entry.kind == "claim_deduction").expect("a deduction");
    assert_eq!(postings(deduction), [("person:B042", 15_000), ("company:claims_expense", -15_000)]);

    // Intake: the complaint is resolved, with words the customer can be told.
    let complaints = suite.complaints();
    let resolved = eventually("intake records the resolution", || {
        let mut complaints = complaints.clone();
        let name = format!("complaints/{case_number}");
        async move {
            let complaint = complaints.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (complaint.state() == ComplaintState::Resolved).then_some(complaint)
        }
    })
    .await;
    assert!(resolved.resolution.contains("500.00 yuan"), "{}", resolved.resolution);
    assert_eq!(resolved.resolve_time, claim.approval.and_then(|approval| approval.approve_time));

    // Nothing more can arrive once claims has delivered everything it holds: still exactly two entries.
    crate::support::delivered_everything(&suite.config, "claims").await;
    assert_eq!(ledger(&suite, &format!("{name}/"), 2).await.len(), 2);
    suite.stop().await;
}

on_both_backends!(above_the_standard_only_a_supervisor_approves_and_no_money_moves_before);
async fn above_the_standard_only_a_supervisor_approves_and_no_money_moves_before(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut claims = claims(&suite);
    let name = open_claim(&suite, "YD-CLAIM-2").await;
    claims.record_claim_facts(facts(&name, uninsured_loss())).await.expect("facts");
    claims.record_investigation(investigation(&name, "branch", "SH01", 100)).await.expect("investigation");
    // A supervisor makes the offer; four eyes: another supervisor approves it.
    let offered_by_a_supervisor =
        crate::support::with_roles(as_user(offer(&name, 60_000), "S2002", "claims"), "agent,supervisor");
    claims.make_offer(offered_by_a_supervisor).await.expect("an offer may exceed the standard");
    let claim = claims.record_customer_response(accept(&name, "")).await.expect("accept").into_inner();
    assert_eq!(claim.state(), pb::State::AwaitingApproval);
    assert!(
        claim.approval_reasons.iter().any(|reason| reason.contains("above what the standards allow")),
        "{:?}",
        claim.approval_reasons
    );

    let settlement = SettlementClient::new(suite.gateway.clone());
    let entries = settlement
        .clone()
        .list_ledger_entries(ListLedgerEntriesRequest { origin_prefix: name.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .entries;
    assert!(entries.is_empty(), "nothing moves before approval: {entries:?}");

    let refused = claims
        .approve_claim(as_user(
            pb::ApproveClaimRequest { name: name.clone(), reason: "ok".into(), ..Default::default() },
            "A1",
            "claims",
        ))
        .await
        .expect_err("an agent may not approve");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = claims
        .approve_claim(as_supervisor(pb::ApproveClaimRequest { name: name.clone(), ..Default::default() }))
        .await
        .expect_err("a reason is required");
    assert_eq!(violated_fields(&refused), ["reason"]);

    let reason = "long-standing customer; photos show the whole carton crushed";
    let own = pb::ApproveClaimRequest { name: name.clone(), reason: reason.into(), request_id: "ap-own".into() };
    let own = crate::support::with_roles(as_user(own, "S2002", "claims"), "agent,supervisor");
    let refused = claims.approve_claim(own).await.expect_err("the supervisor who made the offer");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("four eyes"), "{}", refused.message());
    let request = pb::ApproveClaimRequest { name: name.clone(), reason: reason.into(), request_id: "ap-1".into() };
    let claim = claims.approve_claim(as_supervisor(request)).await.expect("approve").into_inner();
    assert_eq!(claim.state(), pb::State::Approved);
    let approval = claim.approval.expect("approval");
    assert_eq!((approval.approved_by.as_str(), approval.reason.as_str()), ("S2001", reason));
    assert_eq!(claim.responsible_share_fen, 60_000);

    let entries = ledger(&suite, &format!("{name}/"), 2).await;
    assert_eq!(entries.len(), 2);
    let deduction = entries.iter().find(|entry| entry.kind == "claim_deduction").expect("a deduction");
    assert_eq!(postings(deduction), [("branch:SH01", 60_000), ("company:claims_expense", -60_000)]);

    // Approving again is refused: the claim is settled.
    let request = pb::ApproveClaimRequest { name: name.clone(), reason: reason.into(), request_id: "ap-2".into() };
    let again = claims.approve_claim(as_supervisor(request)).await.expect_err("already approved");
    assert_eq!(again.code(), Code::FailedPrecondition);
    suite.stop().await;
}

on_both_backends!(bad_claim_requests_get_clear_errors_and_change_nothing);
async fn bad_claim_requests_get_clear_errors_and_change_nothing(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut claims = claims(&suite);
    let name = open_claim(&suite, "YD-CLAIM-3").await;

    let contradictory = pb::QuoteCompensationRequest { fragile: true, insured: true, packaging: 0, ..uninsured_loss() };
    let error = claims.record_claim_facts(facts(&name, contradictory)).await.expect_err("contradictory facts");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&error),
        ["facts.compensation.packaging", "facts.compensation.insured", "facts.compensation.consignment_value_fen"]
    );
    let error = claims.make_offer(offer(&name, 1_000)).await.expect_err("no facts yet");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("record the facts"), "{}", error.message());
    let error = claims.make_offer(offer(&name, -5)).await.expect_err("negative");
    assert_eq!(violated_fields(&error), ["amount_fen"]);

    let evidence = |media_type: &str, content: Vec<u8>| pb::AttachEvidenceRequest {
        parent: name.clone(),
        evidence: Some(pb::Evidence {
            kind: "photo".into(),
            file_name: "x".into(),
            media_type: media_type.into(),
            content,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let error = claims.attach_evidence(evidence("image/gif", b"GIF89a".to_vec())).await.expect_err("gif");
    assert_eq!(violated_fields(&error), ["evidence.media_type"]);
    let mut too_big = JPEG.to_vec();
    too_big.resize(4 * 1024 * 1024 + 1, 0);
    let error = claims.attach_evidence(evidence("image/jpeg", too_big)).await.expect_err("over 4 MiB");
    assert_eq!(violated_fields(&error), ["evidence.content"]);
    assert!(error.message().contains("4 MiB"), "{}", error.message());

    let claim = claims.get_claim(pb::GetClaimRequest { name: name.clone() }).await.expect("get").into_inner();
    assert_eq!(claim.state(), pb::State::Open);
    assert!(claim.history.is_empty() && claim.evidence.is_empty() && claim.facts.is_none(), "{claim:?}");

    let error =
        claims.get_claim(pb::GetClaimRequest { name: "claims/20261122-AAAAAA".into() }).await.expect_err("none");
    assert_eq!(error.code(), Code::NotFound);
    let error = claims.get_claim(pb::GetClaimRequest { name: "cases/1".into() }).await.expect_err("bad name");
    assert_eq!(violated_fields(&error), ["name"]);
    suite.stop().await;
}

on_both_backends!(the_monthly_claims_report_counts_what_was_approved_by_cause_branch_party_and_insurer);
async fn the_monthly_claims_report_counts_what_was_approved_by_cause_branch_party_and_insurer(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut claims = claims(&suite);

    let first = open_claim(&suite, "YD-R-1").await;
    claims.record_claim_facts(facts(&first, uninsured_loss())).await.expect("facts");
    claims.record_investigation(investigation(&first, "person", "B042", 50)).await.expect("investigation");
    claims.make_offer(offer(&first, 40_001)).await.expect("offer");
    claims.record_customer_response(accept(&first, "")).await.expect("accept");

    let second = open_claim(&suite, "YD-R-2").await;
    let accident = pb::QuoteCompensationRequest {
        accident: pb::AccidentKind::TrafficAccident as i32,
        invoice: true,
        insured: true,
        ..uninsured_loss()
    };
    claims.record_claim_facts(facts(&second, accident)).await.expect("facts");
    claims.record_investigation(investigation(&second, "company", "", 0)).await.expect("investigation");
    claims.make_offer(offer(&second, 80_000)).await.expect("offer");
    claims.record_customer_response(accept(&second, "")).await.expect("accept");
    let recovery = pb::RecordInsurerRecoveryRequest {
        name: second.clone(),
        insurer_recovery: Some(pb::InsurerRecovery {
            insurer: "PICC".into(),
            claimed_fen: 80_000,
            recovered_fen: 30_000,
        }),
        request_id: String::new(),
    };
    claims.record_insurer_recovery(recovery).await.expect("insurer");
    let receivable = ledger(&suite, &format!("{second}/insurer/"), 1).await;
    assert_eq!(
        postings(&receivable[0]),
        [("company:claims_expense", -80_000), ("company:insurance_received", 30_000), ("insurer:PICC", 50_000)],
        "the insurer owes what it has not paid yet"
    );

    // One more claim opened but not approved, in December.
    clock.advance(chrono::Duration::days(10));
    open_claim(&suite, "YD-R-3").await;

    let report = |month: &str| pb::GetMonthlyClaimsReportRequest { month: month.into() };
    let november = claims.get_monthly_claims_report(report("2026-11")).await.expect("report").into_inner();
    assert_eq!((november.claims_opened, november.claims_approved), (2, 2));
    assert_eq!(november.amount_fen, 120_001);
    assert_eq!(november.responsible_share_fen, 20_001, "half of 400.01 yuan, rounded half up");
    assert_eq!((november.insurer_claimed_fen, november.insurer_recovered_fen), (80_000, 30_000));
    let keys = |rows: &[pb::ReportRow]| rows.iter().map(|row| (row.key.clone(), row.amount_fen)).collect::<Vec<_>>();
    assert_eq!(
        keys(&november.by_cause),
        [("traffic_accident".to_owned(), 80_000), ("transit_damage".to_owned(), 40_001)]
    );
    assert_eq!(keys(&november.by_branch), [("SH01".to_owned(), 120_001)]);
    assert_eq!(
        keys(&november.by_responsible_party),
        [("company".to_owned(), 80_000), ("person:B042".to_owned(), 40_001)]
    );
    assert_eq!(keys(&november.by_insurer), [("PICC".to_owned(), 80_000), ("none".to_owned(), 40_001)]);
    assert!(november.csv.contains("2026-11,total,approved,2,120001,20001,80000,30000\n"), "{}", november.csv);
    assert!(november.csv.contains("2026-11,cause,traffic_accident,1,80000,0,80000,30000\n"), "{}", november.csv);

    let december = claims.get_monthly_claims_report(report("2026-12")).await.expect("report").into_inner();
    assert_eq!((december.claims_opened, december.claims_approved, december.amount_fen), (1, 0, 0));
    let error = claims.get_monthly_claims_report(report("November")).await.expect_err("bad month");
    assert_eq!(violated_fields(&error), ["month"]);
    suite.stop().await;
}

#[tokio::test]
async fn quote_compensation_answers_through_the_gateway_with_its_reasons_and_clear_refusals() {
    let suite = TestSuite::start(Backend::Sqlite, clock()).await;
    let mut claims = claims(&suite);
    let fragile = pb::QuoteCompensationRequest {
        fragile: true,
        declared_value_fen: 0,
        shipping_list: false,
        loss_market_value_fen: 0,
        pieces: 100,
        pieces_affected: 4,
        consignment_value_fen: 1_000_000,
        ..uninsured_loss()
    };
    let quote = claims.quote_compensation(fragile).await.expect("quote").into_inner();
    assert_eq!((quote.amount_fen, quote.rule.as_str()), (5_000, "fragile_breakage"));
    assert!(quote.reasons.iter().any(|reason| reason.contains("3.00%")), "{:?}", quote.reasons);

    let error = claims
        .quote_compensation(pb::QuoteCompensationRequest { insured: true, declared_value_fen: 1, ..fragile })
        .await
        .expect_err("fragile goods are never insured");
    assert_eq!(violated_fields(&error), ["insured"]);

    let traffic =
        pb::QuoteCompensationRequest { accident: pb::AccidentKind::TrafficAccident as i32, ..uninsured_loss() };
    let error = claims.quote_compensation(traffic).await.expect_err("no invoice");
    assert_eq!(error.code(), Code::FailedPrecondition);
    let missing: Vec<String> = error
        .get_details_precondition_failure()
        .map(|failure| failure.violations.into_iter().map(|violation| violation.subject).collect())
        .unwrap_or_default();
    assert_eq!(missing, ["invoice"]);
    suite.stop().await;
}

on_both_backends!(settlement_posts_each_origin_once_however_often_the_payout_arrives);
async fn settlement_posts_each_origin_once_however_often_the_payout_arrives(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut inbox = EventInboxClient::new(crate::events::signed(
        &suite,
        ServiceName::Settlement,
        "claims",
        crate::support::INTERNAL_KEY,
    ));
    let payout = |id: &str| Event {
        id: id.into(),
        source: "claims".into(),
        create_time: Some(to_timestamp(Utc::now())),
        payload: Some(Payload::ClaimApproved(ClaimApproved {
            claim: "claims/20261122-CCCCCC".into(),
            complaint: "complaints/20261122-CCCCCC".into(),
            waybill_number: "YD9".into(),
            branch: "SH01".into(),
            amount_fen: 12_345,
            responsible_kind: "person".into(),
            responsible_id: "B7".into(),
            responsible_share_fen: 2_000,
            approve_time: None,
        })),
        ..Default::default()
    };
    // The same event twice in one batch, again later, and a second event for the same claim.
    let batch = vec![payout("p-1"), payout("p-1")];
    let outcomes = inbox.deliver(DeliverRequest { events: batch }).await.expect("deliver").into_inner().outcomes;
    assert_eq!(
        outcomes.iter().map(|o| (o.applied, o.error.is_empty())).collect::<Vec<_>>(),
        [(true, true), (false, true)]
    );
    for events in [vec![payout("p-1")], vec![payout("p-2")]] {
        let outcomes = inbox.deliver(DeliverRequest { events }).await.expect("deliver").into_inner().outcomes;
        assert!(outcomes[0].error.is_empty(), "{outcomes:?}");
    }
    let entries = ledger(&suite, "claims/20261122-CCCCCC/", 2).await;
    assert_eq!(entries.len(), 2, "one payout and one deduction: {entries:?}");
    assert!(entries.iter().all(|entry| entry.event_id == "p-1"));
    assert!(entries.iter().all(|entry| entry.postings.iter().map(|p| p.amount_fen).sum::<i64>() == 0));
    suite.stop().await;
}

on_both_backends!(evidence_beyond_its_quotas_is_refused_naming_the_quota_and_nothing_is_written);
/// Evidence is bounded per claim and per principal a company day (`kit::limits`, here configured
/// small): beyond a quota, `RESOURCE_EXHAUSTED` says which quota, its size and when it resets, and
/// nothing is written — also for uploads at the same moment, which are counted one after another.
async fn evidence_beyond_its_quotas_is_refused_naming_the_quota_and_nothing_is_written(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start_configured(backend, clock.clone(), |config, _| {
        config.limits.evidence = kefu_kit::limits::EvidenceQuota {
            files_per_claim: 3,
            bytes_per_claim: 10 * 1024,
            files_per_day: 5,
            bytes_per_day: 1024 * 1024,
        };
    })
    .await;
    let mut claims = claims(&suite);
    let photo = |n: usize, size: usize| {
        let mut content = JPEG.to_vec();
        content.extend(format!(" #{n}").bytes());
        content.resize(size.max(content.len()), b' ');
        content
    };
    let attach = |parent: &str, n: usize, size: usize| pb::AttachEvidenceRequest {
        parent: parent.to_owned(),
        evidence: Some(pb::Evidence {
            kind: "photo".into(),
            file_name: format!("damage-{n}.jpg"),
            media_type: "image/jpeg".into(),
            content: photo(n, size),
            ..Default::default()
        }),
        request_id: format!("evidence-{n}"),
    };
    let quota_subjects = |status: &tonic::Status| -> Vec<String> {
        status
            .get_details_quota_failure()
            .map(|failure| failure.violations.into_iter().map(|v| v.subject).collect())
            .unwrap_or_default()
    };

    // Eight different photos of one claim at once: the claim holds three, the rest are refused.
    let first = open_claim(&suite, "WB-Q1").await;
    let uploads = (0..8).map(|n| {
        let mut claims = claims.clone();
        let request = as_user(attach(&first, n, 100), "L3001", "claims");
        async move { claims.attach_evidence(request).await }
    });
    let answers = futures_util::future::join_all(uploads).await;
    let refused: Vec<&tonic::Status> = answers.iter().filter_map(|answer| answer.as_ref().err()).collect();
    assert_eq!(answers.len() - refused.len(), 3, "{:?}", refused.first().map(|status| status.message()));
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
        assert!(status.message().contains("per claim") && status.message().contains("3 files"), "{}", status.message());
        assert!(status.message().contains("does not reset"), "{}", status.message());
        assert_eq!(quota_subjects(status), std::slice::from_ref(&first));
    }
    let claim = claims.get_claim(pb::GetClaimRequest { name: first.clone() }).await.expect("get").into_inner();
    assert_eq!(claim.evidence.len(), 3, "nothing refused was written");
    assert_eq!(claim.history.iter().filter(|step| step.action == "evidence_attached").count(), 3);

    // Bytes per claim: 6 KiB fits under 10 KiB, another 6 KiB does not.
    let second = open_claim(&suite, "WB-Q2").await;
    claims.attach_evidence(as_user(attach(&second, 10, 6 * 1024), "L3001", "claims")).await.expect("6 KiB");
    let over = claims.attach_evidence(as_user(attach(&second, 11, 6 * 1024), "L3001", "claims")).await;
    let over = over.expect_err("12 KiB in all");
    assert_eq!(over.code(), Code::ResourceExhausted);
    assert!(over.message().contains("per claim") && over.message().contains("10240 bytes"), "{}", over.message());

    // Per principal and day: L3001 has attached 4 today, the fifth fits and the sixth is refused,
    // saying when the day ends; another agent may still attach, and L3001 again tomorrow.
    let third = open_claim(&suite, "WB-Q3").await;
    claims.attach_evidence(as_user(attach(&third, 20, 100), "L3001", "claims")).await.expect("the fifth today");
    let sixth = claims.attach_evidence(as_user(attach(&third, 21, 100), "L3001", "claims")).await.expect_err("a sixth");
    assert_eq!(sixth.code(), Code::ResourceExhausted);
    assert!(
        sixth.message().contains("per principal per day") && sixth.message().contains("5 files"),
        "{}",
        sixth.message()
    );
    assert!(sixth.message().contains("resets at 2026-11-23T00:00:00+08:00"), "{}", sixth.message());
    assert_eq!(quota_subjects(&sixth), ["principal:L3001"]);
    claims.attach_evidence(as_user(attach(&third, 22, 100), "L3002", "claims")).await.expect("another agent's");
    clock.advance(chrono::Duration::hours(14));
    claims.attach_evidence(as_user(attach(&third, 21, 100), "L3001", "claims")).await.expect("the next day");
    let claim = claims.get_claim(pb::GetClaimRequest { name: third }).await.expect("get").into_inner();
    assert_eq!(claim.evidence.len(), 3);
    suite.stop().await;
}
