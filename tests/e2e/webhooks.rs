//! Webhooks for branch-office systems, received by real HTTP servers on loopback ports: events
//! signed with HMAC-SHA256 and delivered at least once under a stable id, retried on the service's
//! clock, every attempt recorded, a failed delivery redelivered by hand; an endpoint that never
//! answers delays only itself.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::Duration;
use hmac::{Hmac, Mac};
use kefu_kit::{ManualClock, clock::Clock, time::to_timestamp};
use kefu_proto::intake::v1::{self as pb, intake_client::IntakeClient};
use sha2::Sha256;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};
use tonic::Code;

use crate::support::Gateway;

use crate::support::{Backend, TestSuite, as_user, complaint, create, eventually, on_both_backends, violated_fields};

const SECRET: &str = "shared-secret-of-SH01-0123456789";

/// One POST as the branch's system received it.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    /// How many connections the dead endpoint held when this arrived.
    dead_open: usize,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// A branch office's system: an HTTP/1.1 server that records every request and answers with the
/// statuses it is told, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    /// Read when a request arrives: the dead endpoint's open connections.
    dead_open: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(answers: &[u16], dead_open: Arc<AtomicUsize>) -> Receiver {
        Receiver::start_on(answers, dead_open, None).await
    }

    /// An HTTPS receiver presenting the fixture certificate `name` (`server` or `untrusted`).
    async fn start_tls(name: &str) -> Receiver {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let fixture = |file: String| format!("{}/tests/fixtures/webhook-tls/{file}", env!("CARGO_MANIFEST_DIR"));
        let chain = CertificateDer::pem_file_iter(fixture(format!("{name}.pem")))
            .expect("the certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let key = PrivateKeyDer::from_pem_file(fixture(format!("{name}.key"))).expect("the key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Receiver::start_on(&[], Arc::default(), Some(acceptor)).await
    }

    async fn start_on(
        answers: &[u16],
        dead_open: Arc<AtomicUsize>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/kefu/events", listener.local_addr().expect("address"));
        let receiver = Receiver {
            url,
            received: Arc::default(),
            answers: Arc::new(Mutex::new(answers.iter().rev().copied().collect())),
            dead_open,
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = serving.clone();
                match tls.clone() {
                    None => drop(tokio::spawn(serving.serve(stream))),
                    Some(acceptor) => drop(tokio::spawn(async move {
                        // A client that refuses the certificate ends here.
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serving.serve(stream).await;
                        }
                    })),
                }
            }
        });
        receiver
    }

    async fn serve(self, mut stream: impl AsyncRead + AsyncWrite + Unpin) {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let Ok(read) = stream.read(&mut chunk).await else { return };
            if read == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while buffer.len() < head_end + length {
            let Ok(read) = stream.read(&mut chunk).await else { return };
            if read == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
        let dead_open = self.dead_open.load(Ordering::SeqCst);
        self.received.lock().expect("lock").push(Received { headers, body, dead_open });
        let status = self.answers.lock().expect("lock").pop().unwrap_or(200);
        let answer = format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `count` requests have arrived.
    async fn when_received(&self, count: usize) -> Vec<Received> {
        eventually(&format!("{} receives {count} requests", self.url), || async move {
            let received = self.received();
            (received.len() >= count).then_some(received)
        })
        .await
    }
}

/// An endpoint that accepts connections and never answers, counting those it holds open.
async fn dead_endpoint(open: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let open = open.clone();
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Read and never answer, until the sender gives up and closes.
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    url
}

/// A URL on which nothing listens: the connection is refused.
async fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    drop(listener);
    url
}

fn intake(suite: &TestSuite) -> IntakeClient<Gateway> {
    IntakeClient::new(suite.gateway.clone())
}

fn staff<T>(message: T) -> tonic::Request<T> {
    as_user(message, "A1024", "intake")
}

/// A request from a branch's own system.
fn branch<T>(message: T, code: &str) -> tonic::Request<T> {
    crate::support::as_branch_system(message, code)
}

fn webhook(request_id: &str, url: &str, events: &[&str]) -> pb::RegisterWebhookRequest {
    pb::RegisterWebhookRequest {
        request_id: request_id.into(),
        webhook: Some(pb::Webhook {
            branch: "SH01".into(),
            url: url.into(),
            events: events.iter().map(|event| (*event).to_owned()).collect(),
            ..Default::default()
        }),
        secret: SECRET.into(),
    }
}

async fn deliveries(intake: &mut IntakeClient<Gateway>, webhook: &str) -> Vec<pb::WebhookDelivery> {
    let list = pb::ListWebhookDeliveriesRequest { webhook: webhook.into(), page_size: 100, ..Default::default() };
    intake.list_webhook_deliveries(staff(list)).await.expect("deliveries").into_inner().deliveries
}

/// Waits until the delivery of `event` about `complaint` to `webhook` satisfies `done`.
async fn delivery_when(
    intake: &IntakeClient<Gateway>,
    webhook: &str,
    complaint: &str,
    event: &str,
    what: &str,
    done: impl Fn(&pb::WebhookDelivery) -> bool,
) -> pb::WebhookDelivery {
    eventually(what, || {
        let mut intake = intake.clone();
        let done = &done;
        async move {
            deliveries(&mut intake, webhook)
                .await
                .into_iter()
                .find(|delivery| delivery.complaint == complaint && delivery.event == event && done(delivery))
        }
    })
    .await
}

/// The signature a branch computes to check a delivery, as docs/webhooks.md tells it: the `t` of
/// the header, then HMAC-SHA256 with the shared secret of `<t>.<body>`, in hex.
fn expected_signature(header: &str, body: &str) -> String {
    let time = header.strip_prefix("t=").and_then(|rest| rest.split(',').next()).expect("t= first");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(format!("{time}.{body}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={time},sha256={digest}")
}

on_both_backends!(a_branch_receives_its_cases_events_signed_and_at_least_once);
async fn a_branch_receives_its_cases_events_signed_and_at_least_once(backend: Backend) {
    let start = crate::intake::shanghai(23, 10, 0);
    let clock = Arc::new(ManualClock::new(start));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let unused = Arc::new(AtomicUsize::new(0));
    // The branch's system is down for the first delivery.
    let all = Receiver::start(&[503], unused.clone()).await;
    let overdue_only = Receiver::start(&[], unused).await;

    // Bad input names every field and registers nothing; a branch registers for itself only.
    let bad = pb::RegisterWebhookRequest {
        request_id: "bad".into(),
        webhook: Some(pb::Webhook {
            branch: String::new(),
            url: "ftp://branch.example.com/hook".into(),
            events: vec!["closed".into()],
            ..Default::default()
        }),
        secret: "short".into(),
    };
    let refused = intake.register_webhook(staff(bad)).await.expect_err("bad input");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["webhook.branch", "webhook.url", "secret", "webhook.events[0]"]);
    let others = intake.register_webhook(branch(webhook("w-0", &all.url, &[]), "BJ01")).await.expect_err("not BJ01's");
    assert_eq!(others.code(), Code::PermissionDenied);
    let listed = intake.list_webhooks(staff(pb::ListWebhooksRequest::default())).await.expect("listed");
    assert!(listed.into_inner().webhooks.is_empty());

    let registered =
        intake.register_webhook(branch(webhook("w-1", &all.url, &[]), "SH01")).await.expect("registered").into_inner();
    assert!(registered.name.starts_with("webhooks/") && registered.active);
    let again = intake.register_webhook(branch(webhook("w-1", &all.url, &[]), "SH01")).await.expect("retried");
    assert_eq!(again.into_inner().name, registered.name, "a retried request registers nothing new");
    let overdue_hook = intake
        .register_webhook(staff(webhook("w-2", &overdue_only.url, &["overdue"])))
        .await
        .expect("registered")
        .into_inner();
    assert_eq!(overdue_hook.events, ["overdue"]);
    let own = intake.list_webhooks(branch(pb::ListWebhooksRequest::default(), "SH01")).await.expect("listed");
    assert_eq!(own.into_inner().webhooks.len(), 2);
    let none = intake.list_webhooks(branch(pb::ListWebhooksRequest::default(), "BJ01")).await.expect("listed");
    assert!(none.into_inner().webhooks.is_empty(), "a branch sees its own endpoints only");

    // Registered: the first attempt meets a 503 and is retried a minute later by the clock.
    let created = suite.complaints().create_complaint(create("late-1", complaint("late_delivery", "YD8001"))).await;
    let name = created.expect("created").into_inner().name;
    let elsewhere =
        kefu_proto::gateway::v1::Complaint { branch: "BJ01".into(), ..complaint("late_delivery", "YD8002") };
    suite.complaints().create_complaint(create("late-2", elsewhere)).await.expect("created");
    let first = all.when_received(1).await.remove(0);
    let failed = delivery_when(&intake, &registered.name, &name, "registered", "the 503 is recorded", |delivery| {
        delivery.attempts.len() == 1
    })
    .await;
    assert_eq!(failed.state(), pb::WebhookDeliveryState::DeliveryPending);
    assert_eq!(failed.attempts[0].status_code, 503);
    assert!(failed.attempts[0].error.contains("503"), "{}", failed.attempts[0].error);
    assert_eq!(failed.next_attempt_time, Some(to_timestamp(start + Duration::minutes(1))));

    // What the branch received: the event, signed over the body, with the delivery id; no personal data.
    assert_eq!(first.header("kefu-delivery"), failed.delivery_id);
    assert_eq!(first.header("kefu-event"), "registered");
    assert_eq!(first.header("content-type"), "application/json");
    let signed = first.header("kefu-signature");
    assert_eq!(signed, expected_signature(signed, &first.body));
    let signed_at: i64 = signed[2..signed.find(',').expect("a comma")].parse().expect("unix seconds");
    assert_eq!(signed_at, clock.now().timestamp(), "t is when it was sent");
    assert_eq!(first.body, failed.body);
    let json = first.json();
    assert_eq!(json["id"], failed.delivery_id.as_str());
    assert_eq!(json["event"], "registered");
    assert_eq!(json["occurred_at"], "2026-11-23T10:00:00+08:00");
    assert_eq!(json["complaint"]["name"], name.as_str());
    assert_eq!(json["complaint"]["branch"], "SH01");
    assert_eq!(json["complaint"]["deadline"], "2026-11-25T10:00:00+08:00");
    assert!(!first.body.contains("13800000000") && !first.body.contains("王先生"), "{}", first.body);

    // A minute later by the clock the endpoint is tried again: the registration, and the owner's
    // acceptance (held back while the endpoint was failing, unless it came after).
    clock.advance(Duration::minutes(1));
    let retried = delivery_when(&intake, &registered.name, &name, "registered", "the retry succeeds", |delivery| {
        delivery.state() == pb::WebhookDeliveryState::DeliverySucceeded
    })
    .await;
    let accepted =
        delivery_when(&intake, &registered.name, &name, "accepted", "the acceptance is delivered", |delivery| {
            delivery.state() == pb::WebhookDeliveryState::DeliverySucceeded
        })
        .await;
    assert_eq!(accepted.attempts.last().map(|attempt| attempt.status_code), Some(200));
    let numbers: Vec<(i32, i32)> = retried.attempts.iter().map(|a| (a.number, a.status_code)).collect();
    assert_eq!(numbers, [(1, 503), (2, 200)]);
    assert_eq!(retried.deliver_time, Some(to_timestamp(start + Duration::minutes(1))));
    let twice: Vec<Received> =
        all.received().into_iter().filter(|r| r.header("kefu-delivery") == failed.delivery_id).collect();
    assert_eq!(twice.len(), 2, "at least once: sent again after the 503");
    assert_eq!(twice[1].body, twice[0].body, "the same body every time");
    assert_ne!(twice[1].header("kefu-signature"), twice[0].header("kefu-signature"), "signed anew, with its own t");

    // Overdue: both endpoints hear of it; the second takes nothing else.
    clock.set(start + Duration::hours(49));
    intake.chase_overdue(staff(pb::ChaseOverdueRequest {})).await.expect("chased");
    let overdue = overdue_only.when_received(1).await;
    assert_eq!(overdue[0].json()["event"], "overdue");
    assert_eq!(overdue[0].json()["complaint"]["name"], name.as_str());
    delivery_when(&intake, &registered.name, &name, "overdue", "overdue reaches the branch", |delivery| {
        delivery.state() == pb::WebhookDeliveryState::DeliverySucceeded
    })
    .await;

    // Resolved and reopened, on the service center's own case.
    let inquiry = pb::Complaint {
        kind: pb::Kind::Inquiry as i32,
        waybill_number: "YD8003".into(),
        channel: pb::Channel::Phone as i32,
        description: "货物到哪里了".into(),
        contact: Some(pb::Contact { name: "王先生".into(), phone: "13800000000".into() }),
        branch: "SH01".into(),
        ..Default::default()
    };
    let inquiry = intake
        .create_request(staff(pb::CreateRequestRequest { request_id: "inq-1".into(), request: Some(inquiry) }))
        .await
        .expect("recorded")
        .into_inner();
    let answer = pb::ResolveComplaintRequest {
        name: inquiry.name.clone(),
        request_id: "answer-1".into(),
        resolution: "货物明天送达".into(),
        cause: String::new(),
    };
    intake.resolve_complaint(staff(answer)).await.expect("answered");
    let reopen = pb::ReopenComplaintRequest {
        name: inquiry.name.clone(),
        request_id: "reopen-1".into(),
        reason: "客户说今天必须到".into(),
    };
    intake.reopen_complaint(staff(reopen)).await.expect("reopened");
    let reopened = delivery_when(&intake, &registered.name, &inquiry.name, "reopened", "reopening is sent", |d| {
        d.state() == pb::WebhookDeliveryState::DeliverySucceeded
    })
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reopened.body).expect("JSON")["complaint"]["state"],
        "reopened"
    );
    let events: Vec<(String, String)> = deliveries(&mut intake, &registered.name)
        .await
        .into_iter()
        .rev()
        .map(|delivery| (delivery.complaint, delivery.event))
        .collect();
    let expected = [
        (name.as_str(), "registered"),
        (name.as_str(), "accepted"),
        (name.as_str(), "overdue"),
        (inquiry.name.as_str(), "registered"),
        (inquiry.name.as_str(), "resolved"),
        (inquiry.name.as_str(), "reopened"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(c, e)| ((*c).to_owned(), (*e).to_owned())).collect();
    assert_eq!(events, expected, "the branch's cases only, each event once");
    assert_eq!(overdue_only.received().len(), 1);

    // A lost delivery is sent again by hand: the same id and body.
    let redeliver = pb::RedeliverWebhookDeliveryRequest { name: retried.name.clone() };
    let again = intake.redeliver_webhook_delivery(branch(redeliver, "SH01")).await.expect("redelivered").into_inner();
    assert_eq!(again.state(), pb::WebhookDeliveryState::DeliveryPending);
    eventually("the redelivery arrives", || async {
        let copies = all.received().into_iter().filter(|r| r.header("kefu-delivery") == failed.delivery_id).count();
        (copies == 3).then_some(())
    })
    .await;
    let unknown = pb::RedeliverWebhookDeliveryRequest { name: format!("{}/deliveries/nothing", registered.name) };
    assert_eq!(intake.redeliver_webhook_delivery(staff(unknown)).await.expect_err("none").code(), Code::NotFound);

    // Disabled: nothing more is sent there, and nothing can be redelivered.
    let disable = |reason: &str| pb::DisableWebhookRequest { name: overdue_hook.name.clone(), reason: reason.into() };
    assert_eq!(violated_fields(&intake.disable_webhook(staff(disable(""))).await.expect_err("why")), ["reason"]);
    let disabled = intake.disable_webhook(staff(disable("分部系统迁移"))).await.expect("disabled").into_inner();
    assert!(!disabled.active);
    clock.advance(Duration::days(1));
    intake.chase_overdue(staff(pb::ChaseOverdueRequest {})).await.expect("chased");
    delivery_when(&intake, &registered.name, &name, "overdue", "the second chase reaches the branch", |delivery| {
        delivery.attempts.iter().any(|attempt| attempt.attempt_time == Some(to_timestamp(clock.now())))
    })
    .await;
    assert_eq!(overdue_only.received().len(), 1, "a disabled endpoint hears nothing more");
    let old = deliveries(&mut intake, &overdue_hook.name).await;
    let refused = intake
        .redeliver_webhook_delivery(staff(pb::RedeliverWebhookDeliveryRequest { name: old[0].name.clone() }))
        .await
        .expect_err("disabled");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    suite.stop().await;
}

on_both_backends!(a_dead_endpoint_delays_only_itself_and_fails_after_a_day);
async fn a_dead_endpoint_delays_only_itself_and_fails_after_a_day(backend: Backend) {
    let start = crate::intake::shanghai(23, 10, 0);
    let clock = Arc::new(ManualClock::new(start));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    let dead_open = Arc::new(AtomicUsize::new(0));
    let dead_url = dead_endpoint(dead_open.clone()).await;
    let healthy = Receiver::start(&[], dead_open.clone()).await;
    let refused_url = refused_endpoint().await;
    let register = |request_id: &'static str, url: String| {
        let mut intake = intake.clone();
        async move { intake.register_webhook(staff(webhook(request_id, &url, &[]))).await.expect("ok").into_inner() }
    };
    let dead = register("dead", dead_url).await;
    let refused = register("refused", refused_url).await;
    let healthy_hook = register("healthy", healthy.url.clone()).await;

    // The dead endpoint holds its connection; intake registers and the healthy endpoint receives meanwhile.
    let first = suite.complaints().create_complaint(create("c-1", complaint("late_delivery", "YD9001"))).await;
    let first = first.expect("created").into_inner().name;
    eventually("the dead endpoint holds a connection", || async {
        (dead_open.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let second = suite.complaints().create_complaint(create("c-2", complaint("late_delivery", "YD9002"))).await;
    let second = second.expect("registered while the dead endpoint hangs").into_inner().name;
    let second_received = eventually("the healthy endpoint receives the second complaint", || async {
        healthy.received().into_iter().find(|r| r.json()["complaint"]["name"] == second.as_str())
    })
    .await;
    assert_eq!(second_received.dead_open, 1, "delivered while the dead endpoint still held its connection");

    // The dead endpoint's attempt ends at the timeout; the refused one's at once. Both are retried.
    let timed_out = delivery_when(&intake, &dead.name, &first, "registered", "the timeout is recorded", |delivery| {
        !delivery.attempts.is_empty()
    })
    .await;
    assert_eq!(timed_out.attempts[0].status_code, 0);
    assert!(timed_out.attempts[0].error.contains("no answer within"), "{}", timed_out.attempts[0].error);
    assert_eq!(timed_out.state(), pb::WebhookDeliveryState::DeliveryPending);
    let unreached = delivery_when(&intake, &refused.name, &first, "registered", "the refusal is recorded", |d| {
        !d.attempts.is_empty()
    })
    .await;
    assert!(unreached.attempts[0].error.to_lowercase().contains("connect"), "{}", unreached.attempts[0].error);
    assert_eq!(unreached.next_attempt_time, Some(to_timestamp(start + Duration::minutes(1))));
    let disable = pb::DisableWebhookRequest { name: dead.name.clone(), reason: "test over".into() };
    intake.disable_webhook(staff(disable)).await.expect("disabled");

    // Retried for a day: an attempt after which the next would fall past the day fails the delivery.
    clock.set(start + Duration::hours(24) - Duration::minutes(1));
    let gave_up = delivery_when(&intake, &refused.name, &first, "registered", "the delivery fails", |delivery| {
        delivery.state() == pb::WebhookDeliveryState::DeliveryFailed
    })
    .await;
    assert_eq!(gave_up.attempts.len(), 2);
    assert_eq!(gave_up.next_attempt_time, None);
    // The endpoint failed again: its other deliveries were not tried, they wait with it.
    let then = clock.now();
    for other in deliveries(&mut intake, &refused.name).await.iter().filter(|d| d.name != gave_up.name) {
        assert!(other.attempts.len() <= 1, "{other:?}");
        assert_eq!(other.next_attempt_time, Some(to_timestamp(then + Duration::minutes(2))), "{other:?}");
    }
    let still = deliveries(&mut intake, &healthy_hook.name).await;
    assert!(still.iter().all(|d| d.state() == pb::WebhookDeliveryState::DeliverySucceeded), "{still:?}");
    suite.stop().await;
}

on_both_backends!(https_endpoints_are_verified_against_trusted_roots);
async fn https_endpoints_are_verified_against_trusted_roots(backend: Backend) {
    let clock = Arc::new(ManualClock::new(crate::intake::shanghai(23, 10, 0)));
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut intake = intake(&suite);
    // Signed by the CA the suite trusts (KEFU_WEBHOOK_CA_FILE), and self-signed.
    let trusted = Receiver::start_tls("server").await;
    let untrusted = Receiver::start_tls("untrusted").await;
    let trusted_hook =
        intake.register_webhook(staff(webhook("tls", &trusted.url, &["registered"]))).await.expect("ok").into_inner();
    let untrusted_hook = intake
        .register_webhook(staff(webhook("self", &untrusted.url, &["registered"])))
        .await
        .expect("ok")
        .into_inner();

    let created = suite.complaints().create_complaint(create("c-1", complaint("late_delivery", "YD9101"))).await;
    let name = created.expect("created").into_inner().name;
    let received = trusted.when_received(1).await.remove(0);
    assert_eq!(received.json()["complaint"]["name"], name.as_str());
    let signed = received.header("kefu-signature");
    assert_eq!(signed, expected_signature(signed, &received.body));
    let refused = delivery_when(&intake, &untrusted_hook.name, &name, "registered", "the refusal is recorded", |d| {
        !d.attempts.is_empty()
    })
    .await;
    assert_eq!(refused.state(), pb::WebhookDeliveryState::DeliveryPending, "retried later");
    assert!(refused.attempts[0].error.contains("certificate"), "{}", refused.attempts[0].error);
    assert!(untrusted.received().is_empty(), "nothing is sent to an endpoint that fails verification");
    let delivered = deliveries(&mut intake, &trusted_hook.name).await;
    assert_eq!(delivered[0].state(), pb::WebhookDeliveryState::DeliverySucceeded);
    suite.stop().await;
}

on_both_backends!(concurrent_registrations_never_pass_the_cap_of_a_branch);
/// Thirty registrations for one branch at once, each a different endpoint: exactly the cap (5, the
/// default) are active, every other one is refused `FAILED_PRECONDITION` — the count and the
/// insert are one transaction, one branch's after another's. A refused branch code changes nothing.
async fn concurrent_registrations_never_pass_the_cap_of_a_branch(backend: Backend) {
    let suite = TestSuite::start(backend, crate::support::system_clock()).await;
    let cap = suite.config.webhook_max_per_branch;
    assert_eq!(cap, 5, "the documented default");
    let intake = intake(&suite);
    let registrations = (0..30).map(|n| {
        let mut intake = intake.clone();
        async move {
            let request = webhook(&format!("race-{n}"), &format!("http://127.0.0.1:9/hook-{n}"), &[]);
            intake.register_webhook(staff(request)).await
        }
    });
    let answers = futures_util::future::join_all(registrations).await;
    let registered = answers.iter().filter(|answer| answer.is_ok()).count();
    let refused: Vec<(Code, &str)> = answers
        .iter()
        .filter_map(|answer| answer.as_ref().err())
        .map(|status| (status.code(), status.message()))
        .collect();
    assert_eq!(registered, cap, "{:?}", refused.first());
    assert!(refused.iter().all(|(code, _)| *code == Code::FailedPrecondition), "{refused:?}");
    let mut intake = intake.clone();
    let listed = intake
        .list_webhooks(staff(pb::ListWebhooksRequest { branch: "SH01".into() }))
        .await
        .expect("listed")
        .into_inner()
        .webhooks;
    assert_eq!(listed.iter().filter(|webhook| webhook.active).count(), cap);

    // A branch code is a code: no quotes, markup or bidirectional controls, for any branch.
    for hostile in ["BJ\"01", "<b>BJ01</b>", "BJ\u{202E}01"] {
        let mut request = webhook("hostile", "http://127.0.0.1:9/hook", &[]);
        request.webhook.as_mut().expect("a webhook").branch = hostile.into();
        let refused = intake.register_webhook(staff(request)).await.expect_err(hostile);
        assert_eq!(
            (refused.code(), violated_fields(&refused)),
            (Code::InvalidArgument, vec!["webhook.branch".to_owned()])
        );
        let refused =
            intake.list_webhooks(staff(pb::ListWebhooksRequest { branch: hostile.into() })).await.expect_err(hostile);
        assert_eq!((refused.code(), violated_fields(&refused)), (Code::InvalidArgument, vec!["branch".to_owned()]));
    }
    let all = intake.list_webhooks(staff(pb::ListWebhooksRequest::default())).await.expect("listed").into_inner();
    assert_eq!(all.webhooks.len(), cap, "nothing registered for a refused branch");
    suite.stop().await;
}
