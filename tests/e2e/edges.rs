//! Hardened edges: one careless or hostile caller never hurts another. The hostile input goes
//! through the gateway of a running suite while honest callers work beside it, and the honest
//! callers' errors and latency are measured.

use std::time::{Duration, Instant};

use kefu_proto::{
    gateway::v1::{ListComplaintsRequest, complaints_client::ComplaintsClient},
    inspection::v1::{GetMonthlyReportRequest, inspection_client::InspectionClient},
    intake::v1::{RegisterWebhookRequest, Webhook, intake_client::IntakeClient},
};
use tonic::Code;

use crate::support::{Backend, Gateway, TestSuite, complaint, create, on_both_backends, system_clock};

/// The longest `grpc-message` a caller may get back, in bytes as sent (percent-encoded).
const MESSAGE_LIMIT: usize = 1_024;

on_both_backends!(a_poison_caller_never_breaks_the_connection_honest_callers_share);
async fn a_poison_caller_never_breaks_the_connection_honest_callers_share(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let gateway = suite.gateway.clone();

    // The honest caller alone first, then beside the poison caller.
    let (alone_errors, alone) = honest_caller(gateway.clone(), "alone", Duration::from_secs(2)).await;
    let honest = tokio::spawn(honest_caller(gateway.clone(), "beside", Duration::from_secs(3)));

    // The poison caller: requests whose errors would echo a 6,000-character month and 20,000 bad
    // event names.
    let mut inspection = InspectionClient::new(gateway.clone());
    let mut intake = IntakeClient::new(gateway.clone());
    let month = "9".repeat(6_000);
    let events: Vec<String> = (0..20_000).map(|n| format!("no-such-event-{n}")).collect();
    let started = Instant::now();
    let mut poison = 0;
    while started.elapsed() < Duration::from_secs(3) {
        poison += 1;
        let report = inspection.get_monthly_report(GetMonthlyReportRequest { month: month.clone() }).await;
        let report = report.expect_err("no such month");
        assert_eq!(report.code(), Code::InvalidArgument);
        assert!(report.message().len() <= MESSAGE_LIMIT, "the error echoes {} bytes", report.message().len());
        let webhook = RegisterWebhookRequest {
            request_id: format!("poison-{poison}"),
            webhook: Some(Webhook {
                branch: "SH01".into(),
                url: "https://sh01.example.com/hook".into(),
                events: events.clone(),
                ..Default::default()
            }),
            secret: "a long enough shared secret".into(),
        };
        let refused = intake.register_webhook(webhook).await.expect_err("bad event names");
        assert_eq!(refused.code(), Code::InvalidArgument, "{}", &refused.message()[..refused.message().len().min(200)]);
        assert!(refused.message().len() <= MESSAGE_LIMIT, "the error echoes {} bytes", refused.message().len());
        assert!(refused.details().len() <= 16 * 1024, "details of {} bytes", refused.details().len());
    }
    let (errors, beside) = honest.await.expect("the honest caller ran");
    println!("honest caller alone: {} rounds, {} errors, p99 {:?}", alone.len(), alone_errors.len(), p99(alone));
    println!(
        "honest caller beside {poison} poison rounds: {} rounds, {} errors, p99 {:?}",
        beside.len(),
        errors.len(),
        p99(beside)
    );
    assert!(alone_errors.is_empty(), "{alone_errors:?}");
    assert!(errors.is_empty(), "the honest caller saw {} failures: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    suite.stop().await;
}

/// Files a complaint and lists complaints, round after round, for `duration`: the errors it saw and
/// each round's latency.
async fn honest_caller(gateway: Gateway, tag: &'static str, duration: Duration) -> (Vec<String>, Vec<Duration>) {
    let mut complaints = ComplaintsClient::new(gateway);
    let (mut errors, mut latencies) = (Vec::new(), Vec::new());
    let until = Instant::now() + duration;
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        let id = format!("honest-{tag}-{n}");
        let filed = complaints.create_complaint(create(&id, complaint("late_delivery", &format!("YD-{id}")))).await;
        let listed = complaints.list_complaints(ListComplaintsRequest { page_size: 5, ..Default::default() }).await;
        latencies.push(started.elapsed());
        for status in [filed.err(), listed.err()].into_iter().flatten() {
            errors.push(format!("{:?}: {}", status.code(), status.message()));
        }
    }
    (errors, latencies)
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies.get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1))).copied().unwrap_or_default()
}
