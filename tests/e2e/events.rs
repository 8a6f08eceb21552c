//! The event inbox, spoken to directly as a relay does: a batch is applied at most once per event,
//! and one bad event does not hold back the others; intake applies an owner's delivery in order,
//! saving its complaints together, each over the version it was read at or none. And the service ports' door: only a call
//! signed by kefu's gateway or the service that sends an event gets through.

use chrono::Timelike;
use kefu_kit::{
    config::ServiceName,
    time::to_timestamp,
    trust::{InternalKey, SignedChannel},
};
use kefu_proto::{
    claims::v1::{ApproveClaimRequest, claims_client::ClaimsClient},
    events::v1::{
        CaseDeadlineChanged, CaseRouted, DeliverRequest, Event, event::Payload, event_inbox_client::EventInboxClient,
    },
    gateway::v1::GetComplaintRequest,
    inspection::v1::{ListCasesRequest, inspection_client::InspectionClient},
    intake::v1::{GetComplaintTimelineRequest, intake_client::IntakeClient},
    types::v1::RoutedComplaint,
};
use tonic::{Code, transport::Channel};

use crate::support::{
    Backend, INTERNAL_KEY, TestSuite, as_user, complaint, create, eventually, on_both_backends, system_clock,
};

/// A channel to `service`'s own port, signing as `issuer` with `key`.
pub(crate) fn signed(suite: &TestSuite, service: ServiceName, issuer: &'static str, key: &str) -> SignedChannel {
    let url = suite.config.endpoint(service).url.clone();
    SignedChannel::new(Channel::from_shared(url).expect("a URL").connect_lazy(), InternalKey::new(key), issuer)
}

fn routed(id: &str, case_number: Option<&str>) -> Event {
    let now = to_timestamp(chrono::Utc::now());
    Event {
        id: id.into(),
        source: "intake".into(),
        create_time: Some(now),
        payload: Some(Payload::CaseRouted(CaseRouted {
            complaint: case_number.map(|number| RoutedComplaint {
                complaint: format!("complaints/{number}"),
                category: "attitude".into(),
                waybill_number: "YD1".into(),
                create_time: Some(now),
                deadline: Some(now),
                ..Default::default()
            }),
        })),
        ..Default::default()
    }
}

on_both_backends!(a_batch_applies_each_event_once_and_isolates_a_bad_one);
async fn a_batch_applies_each_event_once_and_isolates_a_bad_one(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut inbox = EventInboxClient::new(signed(&suite, ServiceName::Inspection, "intake", INTERNAL_KEY));

    let batch = vec![
        routed("e-1", Some("20261122-AAAAAA")),
        routed("e-2", None), // no complaint: refused
        routed("e-3", Some("20261122-CCCCCC")),
    ];
    let outcomes =
        inbox.deliver(DeliverRequest { events: batch.clone() }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(&str, bool, bool)> =
        outcomes.iter().map(|o| (o.event_id.as_str(), o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [("e-1", true, true), ("e-2", false, false), ("e-3", true, true)]);
    assert!(outcomes[1].error.contains("complaint"), "{}", outcomes[1].error);

    // The same batch again: nothing is applied twice, and the bad event is still refused.
    let again = inbox.deliver(DeliverRequest { events: batch }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(bool, bool)> = again.iter().map(|o| (o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [(false, true), (false, false), (false, true)]);

    // One event twice in one batch: applied once.
    let twice = vec![routed("e-4", Some("20261122-DDDDDD")), routed("e-4", Some("20261122-DDDDDD"))];
    let outcomes = inbox.deliver(DeliverRequest { events: twice }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(bool, bool)> = outcomes.iter().map(|o| (o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [(true, true), (false, true)]);

    let cases =
        InspectionClient::new(suite.gateway.clone()).list_cases(ListCasesRequest::default()).await.expect("listed");
    let mut names: Vec<String> = cases.into_inner().cases.into_iter().map(|case| case.name).collect();
    names.sort();
    assert_eq!(names, ["cases/20261122-AAAAAA", "cases/20261122-CCCCCC", "cases/20261122-DDDDDD"]);
    suite.stop().await;
}

/// A complaint about staff attitude registered and accepted by its owner, inspection; its name.
async fn accepted_by_inspection(suite: &TestSuite, request_id: &str, waybill: &str) -> String {
    let request = as_user(create(request_id, complaint("attitude", waybill)), "A1024", "intake");
    let name = suite.complaints().create_complaint(request).await.expect("registered").into_inner().name;
    eventually("inspection accepts the case", || {
        let mut complaints = suite.complaints();
        let name = name.clone();
        async move {
            let found = complaints.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (!found.owner_reference.is_empty()).then_some(())
        }
    })
    .await;
    name
}

/// Inspection moving a complaint's deadline, as its relay would tell intake.
fn deadline_moved(id: &str, complaint: &str, deadline: chrono::DateTime<chrono::Utc>, reason: &str) -> Event {
    Event {
        id: id.into(),
        source: "inspection".into(),
        create_time: Some(to_timestamp(chrono::Utc::now())),
        payload: Some(Payload::CaseDeadlineChanged(CaseDeadlineChanged {
            complaint: complaint.into(),
            owner: "inspection".into(),
            deadline: Some(to_timestamp(deadline)),
            reason: reason.into(),
        })),
        ..Default::default()
    }
}

on_both_backends!(an_owners_delivery_changes_each_complaint_in_order_and_refuses_only_the_unknown_one);
async fn an_owners_delivery_changes_each_complaint_in_order_and_refuses_only_the_unknown_one(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    // Inspection's own acceptance first, so that only this delivery changes the deadlines below.
    let names = [
        accepted_by_inspection(&suite, "moved-a", "YD-MOVED-A").await,
        accepted_by_inspection(&suite, "moved-b", "YD-MOVED-B").await,
    ];

    // One delivery: a, b, a again (which must find a's first change), and a complaint intake never had.
    let now = chrono::Utc::now().with_nanosecond(0).expect("a time");
    let day = |days: i64| now + chrono::Duration::days(days);
    let batch = vec![
        deadline_moved("moved-1", &names[0], day(3), "waiting for the depot's report"),
        deadline_moved("moved-2", &names[1], day(4), "the driver is on leave"),
        deadline_moved("moved-3", &names[0], day(5), "the depot's report is late"),
        deadline_moved("moved-4", "complaints/20261122-7K3M9Q", day(6), "unknown"),
    ];
    let mut inbox = EventInboxClient::new(signed(&suite, ServiceName::Intake, "inspection", INTERNAL_KEY));
    let outcomes = inbox.deliver(DeliverRequest { events: batch }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(bool, bool)> = outcomes.iter().map(|o| (o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [(true, true), (true, true), (true, true), (false, false)]);
    assert!(outcomes[3].error.contains("no complaint complaints/20261122-7K3M9Q"), "{}", outcomes[3].error);

    let deadline = |name: &String| {
        let mut complaints = suite.complaints();
        let name = name.clone();
        async move { complaints.get_complaint(GetComplaintRequest { name }).await.expect("found").into_inner().deadline }
    };
    assert_eq!(deadline(&names[0]).await, Some(to_timestamp(day(5))), "the later change of a wins");
    assert_eq!(deadline(&names[1]).await, Some(to_timestamp(day(4))));
    let timeline = IntakeClient::new(suite.gateway.clone())
        .get_complaint_timeline(as_user(GetComplaintTimelineRequest { name: names[0].clone() }, "A1024", "intake"))
        .await
        .expect("timeline")
        .into_inner();
    let moved: Vec<&str> = timeline
        .steps
        .iter()
        .filter(|step| step.action == "deadline_moved" && step.department == "intake")
        .map(|step| step.detail.rsplit(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(moved, ["waiting for the depot's report", "the depot's report is late"]);
    suite.stop().await;
}

async fn case_count(suite: &TestSuite) -> usize {
    let cases = InspectionClient::new(suite.gateway.clone()).list_cases(ListCasesRequest::default()).await;
    cases.expect("listed").into_inner().cases.len()
}

on_both_backends!(a_service_port_serves_only_calls_signed_by_kefu);
async fn a_service_port_serves_only_calls_signed_by_kefu(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let event = || vec![routed("forged-1", Some("20261122-FFFFFF"))];
    let port = |service: ServiceName| {
        Channel::from_shared(suite.config.endpoint(service).url.clone()).expect("a URL").connect_lazy()
    };

    // A forged event, unsigned: refused at the door, nothing applied.
    let refused = EventInboxClient::new(port(ServiceName::Inspection))
        .deliver(DeliverRequest { events: event() })
        .await
        .expect_err("unsigned");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // Signed with another key: refused the same way.
    let refused = EventInboxClient::new(signed(
        &suite,
        ServiceName::Inspection,
        "intake",
        "a-key-that-is-not-the-suites-0123456789",
    ))
    .deliver(DeliverRequest { events: event() })
    .await
    .expect_err("wrong key");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Signed by a real service that does not send this kind of event (only intake routes cases),
    // or naming another service as its source: refused whole.
    let refused = EventInboxClient::new(signed(&suite, ServiceName::Inspection, "claims", INTERNAL_KEY))
        .deliver(DeliverRequest { events: event() })
        .await
        .expect_err("claims does not route cases");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = EventInboxClient::new(signed(&suite, ServiceName::Inspection, "settlement", INTERNAL_KEY))
        .deliver(DeliverRequest { events: event() })
        .await
        .expect_err("the event names intake as its source");
    assert!(refused.message().contains("source"), "{refused:?}");
    // The gateway forwards public calls, but it sends no events.
    let refused = EventInboxClient::new(signed(&suite, ServiceName::Inspection, "gateway", INTERNAL_KEY))
        .deliver(DeliverRequest { events: event() })
        .await
        .expect_err("the gateway sends no events");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(case_count(&suite).await, 0, "no forged event was applied");

    // A public method straight at the service port with forged identity headers: refused.
    let mut forged = tonic::Request::new(ApproveClaimRequest {
        name: "claims/20261122-FFFFFF".into(),
        reason: "approved by a forged supervisor".into(),
        request_id: "forged".into(),
    });
    for (key, value) in [("x-kefu-user", "S1"), ("x-kefu-department", "claims"), ("x-kefu-roles", "supervisor")] {
        forged.metadata_mut().insert(key, value.parse().expect("ascii"));
    }
    let refused = ClaimsClient::new(port(ServiceName::Claims)).approve_claim(forged).await.expect_err("forged");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("gateway"), "says where to call instead: {}", refused.message());
    // Health stays open for probes.
    let health = tonic_health::pb::health_client::HealthClient::new(port(ServiceName::Claims))
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await;
    assert!(health.is_ok(), "{health:?}");

    // The real thing, signed as intake, is applied.
    let outcomes = EventInboxClient::new(signed(&suite, ServiceName::Inspection, "intake", INTERNAL_KEY))
        .deliver(DeliverRequest { events: event() })
        .await
        .expect("delivered")
        .into_inner()
        .outcomes;
    assert!(outcomes[0].applied, "{outcomes:?}");
    assert_eq!(case_count(&suite).await, 1);
    suite.stop().await;
}

on_both_backends!(complaints_saved_together_are_each_saved_over_the_version_read_or_none_is);
async fn complaints_saved_together_are_each_saved_over_the_version_read_or_none_is(backend: Backend) {
    use kefu_intake::store;
    use sea_orm::TransactionTrait;

    let suite = TestSuite::start(backend, system_clock()).await;
    // The owner's acceptance first, so that nothing else writes them below.
    let mut case_numbers = Vec::new();
    for (request_id, waybill) in [("saved-a", "YD-SAVED-A"), ("saved-b", "YD-SAVED-B")] {
        let name = accepted_by_inspection(&suite, request_id, waybill).await;
        case_numbers.push(name.trim_start_matches("complaints/").to_owned());
    }
    let db = kefu_kit::db::connect(&suite.config, "intake").await.expect("intake's database");
    let keys: Vec<&str> = case_numbers.iter().map(String::as_str).collect();
    let read = store::by_case_numbers(&db, &keys).await.expect("read");
    assert_eq!(read.len(), 2);
    let changed: Vec<store::Model> = read
        .iter()
        .map(|row| store::Model { description: format!("{} (amended)", row.description), ..row.clone() })
        .collect();

    // One of the two read at a version that has since moved: the statement does not save it, says
    // so, and the caller rolls back, so neither is saved.
    let tx = db.begin().await.expect("a transaction");
    let stale = [(&changed[0], read[0].version), (&changed[1], read[1].version - 1)];
    assert!(!store::save_changed(&tx, &[store::Column::Description], &stale).await.expect("ran"));
    tx.rollback().await.expect("rolled back");
    let after = store::by_case_numbers(&db, &keys).await.expect("read");
    assert!(after.iter().all(|row| !row.description.ends_with("(amended)")), "nothing saved");

    // Both at the versions read: both saved, only the column named, each version one up.
    let tx = db.begin().await.expect("a transaction");
    let current = [(&changed[0], read[0].version), (&changed[1], read[1].version)];
    assert!(store::save_changed(&tx, &[store::Column::Description], &current).await.expect("ran"));
    tx.commit().await.expect("committed");
    let mut after = store::by_case_numbers(&db, &keys).await.expect("read");
    after.sort_by_key(|row| row.seq);
    let mut before = read.clone();
    before.sort_by_key(|row| row.seq);
    for (after, before) in after.iter().zip(&before) {
        assert_eq!(after.description, format!("{} (amended)", before.description));
        assert_eq!(after.version, before.version + 1);
        assert_eq!((&after.state, &after.deadline), (&before.state, &before.deadline), "other columns untouched");
    }
    let _ = db.close().await;
    suite.stop().await;
}

/// Sends one gRPC call to a service's own port exactly as given — its headers, its framed message —
/// as one who recorded a call off the wire would, and returns the status code and message.
async fn send_as_recorded(
    suite: &TestSuite,
    service: ServiceName,
    path: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> (Code, String) {
    let url = suite.config.endpoint(service).url.clone();
    let channel = Channel::from_shared(url).expect("a URL").connect_lazy();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::copy_from_slice(body))))
        .expect("a request");
    request.headers_mut().extend(headers.clone());
    let response = tower::ServiceExt::oneshot(channel, request).await.expect("answered");
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return (status.code(), status.message().to_owned());
    }
    let collected = http_body_util::BodyExt::collect(response.into_body()).await.expect("a body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = tonic::Status::from_header_map(&trailers).expect("a status in the trailers");
    (status.code(), status.message().to_owned())
}

/// A message in its gRPC frame: no compression, its length, its bytes.
fn framed(message: &impl prost::Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    frame.extend_from_slice(&encoded);
    frame
}

on_both_backends!(a_recorded_assertion_carries_no_other_message_and_is_taken_once);
/// Issue 41: a recorded assertion from the gateway to claims approved another claim, and one from
/// claims to settlement carried a forged 10,000,000-yuan `claim_approved`, for up to 90 s. The
/// assertion now covers the message (so the events and their ids too) and is taken once.
async fn a_recorded_assertion_carries_no_other_message_and_is_taken_once(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let key = InternalKey::new(INTERNAL_KEY);
    let now = std::time::SystemTime::now();

    // Claims to settlement: a delivery of one harmless event, recorded.
    let deliver = "/kefu.events.v1.EventInbox/Deliver";
    let harmless = DeliverRequest {
        events: vec![Event {
            id: "rec-1".into(),
            source: "claims".into(),
            create_time: Some(to_timestamp(chrono::Utc::now())),
            ..Default::default()
        }],
    };
    let mut forged_event = harmless.events[0].clone();
    forged_event.id = "rec-2".into();
    forged_event.payload = Some(Payload::ClaimApproved(kefu_proto::events::v1::ClaimApproved {
        claim: "claims/20261122-FORGED".into(),
        complaint: "complaints/20261122-FORGED".into(),
        waybill_number: "YD-FORGED".into(),
        branch: "SH01".into(),
        amount_fen: 1_000_000_000,
        ..Default::default()
    }));
    let forged = DeliverRequest { events: vec![forged_event] };
    let mut headers = http::HeaderMap::new();
    let assertion = key.sign("claims", deliver, &headers, &framed(&harmless), now);
    headers.insert(kefu_kit::trust::ASSERTION, assertion.parse().expect("ascii"));
    let (code, message) = send_as_recorded(&suite, ServiceName::Settlement, deliver, &headers, &framed(&forged)).await;
    assert_eq!(code, Code::Unauthenticated, "the forged delivery: {message}");
    assert!(message.contains("another message"), "{message}");
    let (code, message) =
        send_as_recorded(&suite, ServiceName::Settlement, deliver, &headers, &framed(&harmless)).await;
    assert_ne!(code, Code::Unauthenticated, "the recorded delivery itself, once: {message}");
    let (code, message) =
        send_as_recorded(&suite, ServiceName::Settlement, deliver, &headers, &framed(&harmless)).await;
    assert_eq!(code, Code::Unauthenticated, "the same delivery again: {message}");
    assert!(message.contains("already used"), "{message}");

    // The gateway to claims: a supervisor's approval of one claim does not approve another.
    let approve = "/kefu.claims.v1.Claims/ApproveClaim";
    let mut headers = http::HeaderMap::new();
    headers.insert(kefu_kit::caller::USER, "S2003".parse().expect("ascii"));
    headers.insert(kefu_kit::caller::DEPARTMENT, "claims".parse().expect("ascii"));
    headers.insert(kefu_kit::caller::ROLES, "supervisor".parse().expect("ascii"));
    let mine = ApproveClaimRequest { name: "claims/20261122-AAAAAA".into(), ..Default::default() };
    let other = ApproveClaimRequest { name: "claims/20261122-BBBBBB".into(), ..Default::default() };
    let assertion = key.sign("gateway", approve, &headers, &framed(&mine), now);
    headers.insert(kefu_kit::trust::ASSERTION, assertion.parse().expect("ascii"));
    let (code, message) = send_as_recorded(&suite, ServiceName::Claims, approve, &headers, &framed(&other)).await;
    assert_eq!(code, Code::Unauthenticated, "another claim: {message}");
    let (code, message) = send_as_recorded(&suite, ServiceName::Claims, approve, &headers, &framed(&mine)).await;
    assert_ne!(code, Code::Unauthenticated, "the claim it was made for: {message}");
    suite.stop().await;
}
