//! The walking skeleton, in one process: a complaint filed at the gateway is stored, routed by
//! category and accepted by the service that owns it.

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use kefu_kit::{ManualClock, time::from_timestamp};
use kefu_proto::{
    claims::v1::{ListClaimsRequest, claims_client::ClaimsClient},
    gateway::v1::{Complaint, Department, GetComplaintRequest, ListComplaintsRequest, State},
    inspection::v1::{GetCaseRequest, ListCasesRequest, inspection_client::InspectionClient},
    intake::v1::{RegisterComplaintRequest, intake_client::IntakeClient},
    settlement::v1::{self as settlement, settlement_client::SettlementClient},
};
use tonic::Code;

use crate::support::{
    Backend, TestSuite, as_user, complaint, create, eventually, on_both_backends, system_clock, violated_fields,
};

async fn accepted(suite: &TestSuite, name: &str) -> Complaint {
    let client = suite.complaints();
    eventually(&format!("{name} is accepted by its owner"), || {
        let mut client = client.clone();
        let name = name.to_owned();
        async move {
            let complaint = client.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (!complaint.owner_reference.is_empty()).then_some(complaint)
        }
    })
    .await
}

on_both_backends!(a_complaint_is_routed_to_its_owner_which_accepts_and_shows_it);
async fn a_complaint_is_routed_to_its_owner_which_accepts_and_shows_it(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut complaints = suite.complaints();

    let cases = [
        ("late_delivery", Department::Inspection, "cases/", Duration::hours(48)),
        ("cargo_damage", Department::Claims, "claims/", Duration::days(7)),
        ("late_remittance", Department::Settlement, "cases/", Duration::hours(48)),
    ];
    for (index, (category, owner, collection, handling_time)) in cases.iter().enumerate() {
        let request =
            as_user(create(&format!("req-{index}"), complaint(category, &format!("YD{index}"))), "A1024", "intake");
        let created = complaints.create_complaint(request).await.expect("created").into_inner();

        let case_number = created.name.strip_prefix("complaints/").expect("named complaints/…");
        assert!(kefu_kit::case_number::is_well_formed(case_number), "{}", created.name);
        assert_eq!(created.owner(), *owner, "{category}");
        assert_eq!(created.category, *category);
        assert_eq!(created.waybill_number, format!("YD{index}"));
        assert_eq!(created.received_by, "A1024", "who took it comes from the caller's identity");
        let create_time = from_timestamp(created.create_time.as_ref().expect("create_time")).expect("valid");
        let deadline = from_timestamp(created.deadline.as_ref().expect("deadline")).expect("valid");
        assert_eq!(deadline - create_time, *handling_time, "{category}: deadline from the policy");

        let accepted = accepted(&suite, &created.name).await;
        assert_eq!(accepted.owner_reference, format!("{collection}{case_number}"));
        assert_eq!(accepted.state(), State::Accepted);
        assert_eq!(accepted.create_time, created.create_time);
    }

    // Each owner's own API, reached through the gateway, lists and shows its record.
    let mut inspection = InspectionClient::new(suite.gateway.clone());
    let listed = inspection.list_cases(ListCasesRequest::default()).await.expect("listed").into_inner();
    assert_eq!(listed.cases.len(), 1);
    let case = &listed.cases[0];
    let routed = case.complaint.as_ref().expect("the complaint's facts");
    assert_eq!(routed.category, "late_delivery");
    assert_eq!(routed.waybill_number, "YD0");
    assert_eq!(routed.responsible_unit, "branch");
    assert_eq!(routed.received_by, "A1024");
    let mut shown = inspection.get_case(GetCaseRequest { name: case.name.clone() }).await.expect("shown").into_inner();
    assert_eq!(shown.history.iter().map(|step| step.action.as_str()).collect::<Vec<_>>(), ["accepted"]);
    shown.history.clear();
    assert_eq!(&shown, case, "the list shows each case without its history");

    let claims = ClaimsClient::new(suite.gateway.clone())
        .list_claims(ListClaimsRequest::default())
        .await
        .expect("claims")
        .into_inner();
    assert_eq!(claims.claims.len(), 1);
    assert_eq!(claims.claims[0].complaint.as_ref().map(|c| c.category.as_str()), Some("cargo_damage"));
    let settlement_cases = SettlementClient::new(suite.gateway.clone())
        .list_cases(settlement::ListCasesRequest::default())
        .await
        .expect("settlement")
        .into_inner();
    assert_eq!(settlement_cases.cases.len(), 1);

    let missing =
        inspection.get_case(GetCaseRequest { name: "cases/20261122-7K3M9Q".into() }).await.expect_err("no such case");
    assert_eq!(missing.code(), Code::NotFound);
    suite.stop().await;
}

on_both_backends!(a_branch_code_with_quotes_markup_or_bidi_controls_is_refused_and_nothing_is_filed);
/// A branch code is letters, digits, `-` and `_`, at most 16 (`kit::text::is_branch`), wherever it
/// enters: staff's complaint and request, and a list's filter. Quotes, markup and a right-to-left
/// override are refused naming the field, and nothing is filed.
async fn a_branch_code_with_quotes_markup_or_bidi_controls_is_refused_and_nothing_is_filed(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut complaints = suite.complaints();
    let mut intake = IntakeClient::new(suite.gateway.clone());
    for (n, hostile) in ["SH\"01", "<b>SH01</b>", "SH\u{202E}01", "SH01-0123456789ab"].into_iter().enumerate() {
        let filed = Complaint { branch: hostile.into(), ..complaint("late_delivery", "YD1") };
        let refused = complaints
            .create_complaint(as_user(create(&format!("hostile-{n}"), filed), "A1024", "intake"))
            .await
            .expect_err(hostile);
        assert_eq!(
            (refused.code(), violated_fields(&refused)),
            (Code::InvalidArgument, vec!["complaint.branch".to_owned()]),
            "{hostile:?}"
        );
        let inquiry = kefu_proto::intake::v1::CreateRequestRequest {
            request_id: format!("hostile-request-{n}"),
            request: Some(kefu_proto::intake::v1::Complaint {
                kind: kefu_proto::intake::v1::Kind::Inquiry as i32,
                waybill_number: "YD2".into(),
                channel: kefu_proto::intake::v1::Channel::Online as i32,
                description: "where is my parcel".into(),
                branch: hostile.into(),
                ..Default::default()
            }),
        };
        let refused = intake.create_request(as_user(inquiry, "A1024", "intake")).await.expect_err(hostile);
        assert_eq!(
            (refused.code(), violated_fields(&refused)),
            (Code::InvalidArgument, vec!["request.branch".to_owned()]),
            "{hostile:?}"
        );
        let filter = format!("branch = \"{}\"", hostile.replace('"', "\\\""));
        let refused = complaints
            .list_complaints(as_user(ListComplaintsRequest { filter, ..Default::default() }, "A1024", "intake"))
            .await
            .expect_err(hostile);
        assert_eq!((refused.code(), violated_fields(&refused)), (Code::InvalidArgument, vec!["filter".to_owned()]));
    }
    let filed = Complaint { branch: "SH01-north_2".into(), ..complaint("late_delivery", "YD1") };
    complaints.create_complaint(as_user(create("fine", filed), "A1024", "intake")).await.expect("a branch code");
    let listed = complaints
        .list_complaints(as_user(ListComplaintsRequest::default(), "A1024", "intake"))
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.complaints.iter().map(|c| c.branch.as_str()).collect::<Vec<_>>(), ["SH01-north_2"]);
    suite.stop().await;
}

on_both_backends!(bad_input_is_refused_naming_every_field_and_nothing_is_stored);
async fn bad_input_is_refused_naming_every_field_and_nothing_is_stored(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut complaints = suite.complaints();

    let empty = Complaint { channel: 1, ..Default::default() };
    let status = complaints.create_complaint(create("r1", empty)).await.expect_err("nothing given");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["complaint.category", "complaint.waybill_number", "complaint.description"]);

    let unknown = Complaint { description: String::new(), ..complaint("lost_in_space", "YD1") };
    let status = complaints.create_complaint(create("r2", unknown)).await.expect_err("unknown category");
    assert_eq!(violated_fields(&status), ["complaint.category", "complaint.description"]);
    assert!(status.message().contains("late_delivery"), "the error lists the known categories: {}", status.message());

    let oversized = Complaint { description: "长".repeat(4001), ..complaint("attitude", "YD1") };
    let status = complaints.create_complaint(create("r3", oversized)).await.expect_err("oversized");
    assert_eq!(violated_fields(&status), ["complaint.description"]);

    let bad_phone = Complaint {
        contact: Some(kefu_proto::gateway::v1::Contact { name: "李".into(), phone: "call me".into() }),
        ..complaint("attitude", "YD1")
    };
    let status = complaints.create_complaint(create(&"x".repeat(200), bad_phone)).await.expect_err("bad phone and id");
    assert_eq!(violated_fields(&status), ["request_id", "complaint.contact.phone"]);

    for name in ["complaints/nope", "tickets/20261122-7K3M9Q", ""] {
        let status = complaints.get_complaint(GetComplaintRequest { name: name.into() }).await.expect_err("malformed");
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(violated_fields(&status), ["name"]);
    }
    let status = complaints
        .get_complaint(GetComplaintRequest { name: "complaints/20261122-7K3M9Q".into() })
        .await
        .expect_err("absent");
    assert_eq!(status.code(), Code::NotFound);

    let status = complaints
        .list_complaints(ListComplaintsRequest { filter: "colour = red".into(), ..Default::default() })
        .await
        .expect_err("bad filter");
    assert_eq!(violated_fields(&status), ["filter"]);
    let status = complaints
        .list_complaints(ListComplaintsRequest { page_token: "garbage".into(), ..Default::default() })
        .await
        .expect_err("bad token");
    assert_eq!(violated_fields(&status), ["page_token"]);

    let listed = complaints.list_complaints(ListComplaintsRequest::default()).await.expect("listed").into_inner();
    assert!(listed.complaints.is_empty(), "nothing was stored: {:?}", listed.complaints);
    suite.stop().await;
}

/// `kefu up` on PostgreSQL holds at most 20 connections in all, also under load, so that two
/// replicas of the suite and `bench/ceiling.sh 64` fit under PostgreSQL's default of 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_holds_at_most_twenty_postgresql_connections_under_load() {
    let suite = TestSuite::start(Backend::Postgres, system_clock()).await;
    let calls = (0..64).map(|i| {
        let mut client = suite.complaints();
        tokio::spawn(async move {
            client.create_complaint(create(&format!("pool-{i}"), complaint("attitude", "YD-POOL"))).await
        })
    });
    for call in calls {
        call.await.expect("joined").expect("created");
    }
    // Every complaint reaches its owner and the owner's acceptance comes back: every pool was used.
    let client = suite.complaints();
    eventually("the owner accepts all 64", || {
        let mut client = client.clone();
        async move {
            let filter = r#"waybill_number = "YD-POOL" AND state = ACCEPTED"#.to_owned();
            let request = ListComplaintsRequest { page_size: 100, filter, ..Default::default() };
            let accepted = client.list_complaints(request).await.ok()?.into_inner().complaints.len();
            (accepted == 64).then_some(())
        }
    })
    .await;
    let held = suite.postgres_connections().await;
    assert!((1..=20).contains(&held), "the suite holds {held} connections");
    suite.stop().await;
}

on_both_backends!(retries_with_one_request_id_make_one_complaint_and_case_numbers_never_collide);
async fn retries_with_one_request_id_make_one_complaint_and_case_numbers_never_collide(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let client = suite.complaints();

    let retries = (0..16).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client.create_complaint(create("same-key", complaint("mis_sort", "YD7"))).await })
    });
    let mut names = HashSet::new();
    for retry in retries {
        names.insert(retry.await.expect("joined").expect("created").into_inner().name);
    }
    assert_eq!(names.len(), 1, "one request_id, one complaint: {names:?}");

    let distinct = (0..32).map(|i| {
        let mut client = client.clone();
        tokio::spawn(
            async move { client.create_complaint(create(&format!("key-{i}"), complaint("attitude", "YD8"))).await },
        )
    });
    let mut names = HashSet::new();
    for call in distinct {
        names.insert(call.await.expect("joined").expect("created").into_inner().name);
    }
    assert_eq!(names.len(), 32, "every complaint has its own case number");

    let mut all = Vec::new();
    let mut page_token = String::new();
    let mut client = client.clone();
    loop {
        let page = client
            .list_complaints(ListComplaintsRequest { page_size: 10, page_token, filter: String::new() })
            .await
            .expect("listed")
            .into_inner();
        assert!(page.complaints.len() <= 10);
        all.extend(page.complaints);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(all.len(), 33, "pages cover every complaint once");
    assert_eq!(all.iter().map(|c| &c.name).collect::<HashSet<_>>().len(), 33);
    let times: Vec<_> =
        all.iter().map(|c| from_timestamp(c.create_time.as_ref().expect("time")).expect("valid")).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "newest first");

    let filtered = client
        .list_complaints(ListComplaintsRequest {
            filter: r#"category = "mis_sort" AND owner = INSPECTION"#.into(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(filtered.complaints.len(), 1);
    suite.stop().await;
}

on_both_backends!(deadlines_and_case_numbers_keep_company_time_and_policy_is_data);
async fn deadlines_and_case_numbers_keep_company_time_and_policy_is_data(backend: Backend) {
    // 17:30 UTC on the 22nd is 01:30 on the 23rd in Shanghai.
    let now: DateTime<Utc> = "2026-11-22T17:30:00Z".parse().expect("a time");
    let clock = ManualClock::new(now);
    let policy = "late_delivery inspection branch 48h\nlost_receipt intake service_center 90m 回单遗失\n";
    let suite = TestSuite::start_with(backend, Arc::new(clock.clone()), Some(policy)).await;
    let mut complaints = suite.complaints();

    let created = complaints
        .create_complaint(create("d1", complaint("lost_receipt", "YD9")))
        .await
        .expect("created")
        .into_inner();
    assert!(created.name.starts_with("complaints/20261123-"), "dated in company time: {}", created.name);
    assert_eq!(from_timestamp(created.create_time.as_ref().expect("time")), Some(now));
    assert_eq!(from_timestamp(created.deadline.as_ref().expect("deadline")), Some(now + Duration::minutes(90)));
    assert_eq!(created.owner(), Department::Intake, "a category the service center owns itself");
    assert_eq!(created.owner_reference, created.name, "intake holds the case at once");
    assert_eq!(created.responsible_unit, "service_center");

    clock.advance(Duration::hours(3));
    let later = complaints
        .create_complaint(create("d2", complaint("late_delivery", "YD9")))
        .await
        .expect("created")
        .into_inner();
    assert_eq!(
        from_timestamp(later.deadline.as_ref().expect("deadline")),
        Some(now + Duration::hours(3) + Duration::hours(48))
    );

    // The built-in table is replaced, not merged: attitude is no longer a category.
    let status =
        complaints.create_complaint(create("d3", complaint("attitude", "YD9"))).await.expect_err("not in this policy");
    assert_eq!(violated_fields(&status), ["complaint.category"]);
    suite.stop().await;
}

on_both_backends!(the_gateway_is_one_address_for_every_department_with_reflection_and_health);
async fn the_gateway_is_one_address_for_every_department_with_reflection_and_health(backend: Backend) {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let suite = TestSuite::start(backend, system_clock()).await;
    let mut reflection = ServerReflectionClient::new(suite.gateway.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let response = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list")
    };
    let services: HashSet<String> = list.service.into_iter().map(|service| service.name).collect();
    for expected in [
        "kefu.gateway.v1.Complaints",
        "kefu.intake.v1.Intake",
        "kefu.inspection.v1.Inspection",
        "kefu.claims.v1.Claims",
        "kefu.settlement.v1.Settlement",
        "kefu.archives.v1.Archives",
        "kefu.gateway.v1.Tokens",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(expected), "reflection lists {expected}: {services:?}");
    }
    assert!(!services.contains("kefu.events.v1.EventInbox"), "internal events are not public");

    // Intake's API is reachable through the gateway, but registration only with the policy applied.
    let mut intake = IntakeClient::new(suite.gateway.clone());
    let status = intake.register_complaint(RegisterComplaintRequest::default()).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    let listed =
        intake.list_complaints(kefu_proto::intake::v1::ListComplaintsRequest::default()).await.expect("forwarded");
    assert!(listed.into_inner().complaints.is_empty());

    let mut health = tonic_health::pb::health_client::HealthClient::new(suite.gateway.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest { service: "kefu.gateway.v1.Complaints".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(serving.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    suite.stop().await;
}
