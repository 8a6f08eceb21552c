//! Traces, received as a collector receives them: an OTLP/gRPC trace service started by the test
//! (`opentelemetry-proto`'s, served with tonic), and the gateway, intake and inspection as separate
//! `kefu serve` processes exporting to it. One complaint is one trace, from `CreateComplaint` to
//! inspection's acceptance and back to intake, with every parent link pointing at a span received
//! and each database statement a span of the work it was part of; a relay's call that hands over
//! several complaints at once is linked to each of their traces; and a server flushes the spans it
//! holds when it stops on SIGTERM.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use kefu_proto::gateway::v1::complaints_client::ComplaintsClient;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::span::SpanKind,
};

use crate::{
    processes::Cluster,
    support::{accepted_by_owner, complaint, create, eventually},
};

/// A span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    /// The spans it is linked to, as (trace id, span id).
    links: Vec<(String, String)>,
}

#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter().map(|pair| (pair.key.clone(), text(&pair.value))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("not poisoned");
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|resource| attributes(&resource.attributes)).unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: attributes(&span.attributes),
                        links: span.links.iter().map(|link| (hex(&link.trace_id), hex(&link.span_id))).collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_complaint_is_one_trace_across_the_gateway_intake_and_its_owner() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let collector = listener.local_addr().expect("its address");
    let serving = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let dir = tempfile::tempdir().expect("a directory");
    let mut cluster = Cluster::new(dir.path(), None);
    let exporting = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), format!("http://{collector}")),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
        ("KEFU_LOG_FORMAT".to_owned(), "json".to_owned()),
    ];
    // The gateway holds its spans until it stops (a batch every ten minutes): they arrive only
    // because SIGTERM flushes the exporter.
    let holding: Vec<(String, String)> = exporting
        .iter()
        .cloned()
        .chain([("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "600000".to_owned()), ("KEFU_DRAIN".to_owned(), "0".to_owned())])
        .collect();
    cluster.start_as("gateway", "gateway", &holding);
    cluster.start_as("intake", "intake", &exporting);
    // Spans are exported whatever the log keeps: inspection logs warnings only.
    let quiet: Vec<(String, String)> = exporting
        .iter()
        .cloned()
        .chain([("KEFU_LOG".to_owned(), "warn".to_owned()), ("KEFU_DRAIN".to_owned(), "0".to_owned())])
        .collect();
    cluster.start_as("inspection", "inspection", &quiet);
    let client = ComplaintsClient::new(cluster.gateway());
    let warm_up = eventually("the gateway and intake answer", || {
        let mut client = client.clone();
        async move { client.create_complaint(create("warm-up", complaint("attitude", "YT0"))).await.ok() }
    })
    .await
    .into_inner()
    .name;
    // Quiet before the traced complaint: its handoff is then a delivery of its own. (A delivery of
    // several events is a span of the first one's trace; each event's application is in its own.)
    accepted_by_owner(&client, &warm_up).await;

    // The branch system's own trace: the complaint's spans are to continue it.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let callers_span = "b7ad6b7169203331";
    let mut request = tonic::Request::new(create("traced", complaint("attitude", "YT1")));
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{callers_span}-01").parse().expect("ascii"));
    let name = client.clone().create_complaint(request).await.expect("registered").into_inner().name;
    accepted_by_owner(&client, &name).await;

    // Complaints registered while inspection is down wait in intake's outbox; when it is back, one
    // call hands several over, and its span is linked to the trace of each complaint it carries.
    cluster.signal("inspection", "TERM");
    assert!(cluster.exit_of("inspection", Duration::from_secs(20)).await.success());
    let mut waiting = Vec::new();
    for number in 0..5 {
        let trace = format!("ba7c4ed{number:0>25}");
        let mut request = tonic::Request::new(create(&format!("batched {number}"), complaint("attitude", "YT2")));
        request.metadata_mut().insert("traceparent", format!("00-{trace}-{callers_span}-01").parse().expect("ascii"));
        waiting.push((trace, client.clone().create_complaint(request).await.expect("registered").into_inner().name));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_as("inspection", "inspection", &quiet);
    for (_, name) in &waiting {
        accepted_by_owner(&client, name).await;
    }

    // Everything else has arrived; the gateway's spans wait in its exporter until it stops.
    eventually("intake's spans of the trace arrive", || {
        let arrived =
            receiver.spans.lock().expect("not poisoned").iter().any(|span| {
                span.trace_id == trace_id && span.service == "kefu-intake" && span.name == "kefu.inbox apply"
            });
        async move { arrived.then_some(()) }
    })
    .await;
    let from_gateway = |spans: &[Received]| spans.iter().filter(|span| span.service == "kefu-gateway").count();
    assert_eq!(from_gateway(&receiver.spans.lock().expect("not poisoned")), 0, "the gateway holds its spans");
    cluster.signal("gateway", "TERM");
    let stopped = cluster.exit_of("gateway", Duration::from_secs(20)).await;
    assert!(stopped.success(), "{stopped:?}");

    let wanted: [(&str, &str, SpanKind); 6] = [
        ("kefu-gateway", "kefu.gateway.v1.Complaints/CreateComplaint", SpanKind::Server),
        ("kefu-gateway", "kefu.intake.v1.Intake/RegisterComplaint", SpanKind::Client),
        ("kefu-intake", "kefu.intake.v1.Intake/RegisterComplaint", SpanKind::Server),
        ("kefu-intake", "kefu.events.v1.EventInbox/Deliver", SpanKind::Client),
        ("kefu-inspection", "kefu.events.v1.EventInbox/Deliver", SpanKind::Server),
        ("kefu-intake", "kefu.events.v1.EventInbox/Deliver", SpanKind::Server),
    ];
    let spans = eventually("the spans of the complaint's trace are exported", || {
        let spans: Vec<Received> = receiver
            .spans
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect();
        let found = wanted.iter().all(|(service, name, kind)| {
            spans.iter().any(|span| span.service == *service && span.name == *name && span.kind == *kind as i32)
        });
        async move { found.then_some(spans) }
    })
    .await;
    let find = |service: &str, name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|span| span.service == service && span.name == name && span.kind == kind as i32)
            .unwrap_or_else(|| panic!("{service} {name} {kind:?} in {spans:#?}"))
    };
    let by_id: HashMap<&str, &Received> = spans.iter().map(|span| (span.span_id.as_str(), span)).collect();
    let parent_of = |span: &Received| by_id.get(span.parent_span_id.as_str()).copied();

    // The gateway continues the caller's trace; each hop is a child of the one before.
    let created = find("kefu-gateway", "kefu.gateway.v1.Complaints/CreateComplaint", SpanKind::Server);
    assert_eq!(created.parent_span_id, callers_span, "the gateway's span is a child of the caller's");
    let forwarded = find("kefu-gateway", "kefu.intake.v1.Intake/RegisterComplaint", SpanKind::Client);
    assert_eq!(parent_of(forwarded).map(|span| span.span_id.as_str()), Some(created.span_id.as_str()));
    let registered = find("kefu-intake", "kefu.intake.v1.Intake/RegisterComplaint", SpanKind::Server);
    assert_eq!(registered.parent_span_id, forwarded.span_id, "intake's span is a child of the gateway's call");
    // The handoff: written in the registration, delivered by intake's relay, applied by inspection.
    let delivered_to_owner = find("kefu-inspection", "kefu.events.v1.EventInbox/Deliver", SpanKind::Server);
    let relay_call = parent_of(delivered_to_owner).expect("the delivery's client span was received");
    assert_eq!((relay_call.service.as_str(), relay_call.kind), ("kefu-intake", SpanKind::Client as i32));
    let sending = parent_of(relay_call).expect("the relay's send was received");
    assert_eq!((sending.name.as_str(), sending.kind), ("send inspection", SpanKind::Client as i32));
    assert_eq!(sending.attributes.get("messaging.destination.name").map(String::as_str), Some("inspection"));
    let written = parent_of(sending).expect("the event's write was received");
    assert_eq!((written.name.as_str(), written.kind), ("kefu.outbox write", SpanKind::Producer as i32));
    let mut ancestor = Some(written);
    while let Some(span) = ancestor {
        if span.span_id == registered.span_id {
            break;
        }
        ancestor = parent_of(span);
    }
    assert!(ancestor.is_some(), "the handoff descends from the registration");
    // Applied by inspection in a consumer span, a child of the event's write.
    let applied = find("kefu-inspection", "kefu.inbox apply", SpanKind::Consumer);
    assert_eq!(applied.parent_span_id, written.span_id, "inspection applies the event intake wrote");
    // The acceptance: written by inspection while applying, delivered back, applied by intake.
    let accepted = find("kefu-inspection", "kefu.outbox write", SpanKind::Producer);
    assert_eq!(accepted.parent_span_id, applied.span_id, "the acceptance is written while the handoff is applied");
    let back = find("kefu-intake", "kefu.inbox apply", SpanKind::Consumer);
    assert_eq!(back.parent_span_id, accepted.span_id, "intake applies inspection's acceptance");
    let delivered_back = find("kefu-intake", "kefu.events.v1.EventInbox/Deliver", SpanKind::Server);
    assert!(parent_of(delivered_back).is_some_and(|span| span.service == "kefu-inspection"), "{delivered_back:?}");
    assert!(spans.iter().any(|span| span.service == "kefu-intake" && span.name == "kefu.register"), "a database span");
    // Each statement is a span of the work it was part of, named by what it does and to which table.
    let descends_from = |span: &Received, ancestor: &Received| {
        let mut at = parent_of(span);
        while let Some(span) = at {
            if span.span_id == ancestor.span_id {
                return true;
            }
            at = parent_of(span);
        }
        false
    };
    let statement = |service: &str, name: &str| {
        spans.iter().find(|span| span.service == service && span.name == name && span.kind == SpanKind::Client as i32)
    };
    let inserted = statement("kefu-intake", "INSERT complaints").unwrap_or_else(|| panic!("{spans:#?}"));
    assert!(descends_from(inserted, registered), "the complaint's INSERT is a span of its registration");
    assert_eq!(inserted.attributes.get("db.system.name").map(String::as_str), Some("sqlite"));
    assert_eq!(inserted.attributes.get("db.collection.name").map(String::as_str), Some("complaints"));
    let opened = statement("kefu-inspection", "INSERT inspection_cases").unwrap_or_else(|| panic!("{spans:#?}"));
    assert!(descends_from(opened, applied), "inspection's case is opened while the handoff is applied");

    // Every link points at a span received, but the root's, which is the caller's.
    for span in &spans {
        assert!(
            span.parent_span_id == callers_span || by_id.contains_key(span.parent_span_id.as_str()),
            "{span:?} has a parent that was never exported"
        );
    }
    // Server spans carry the semantic conventions' attributes, and no personal data anywhere.
    assert_eq!(created.attributes.get("rpc.system.name").map(String::as_str), Some("grpc"));
    assert_eq!(
        created.attributes.get("rpc.method").map(String::as_str),
        Some("kefu.gateway.v1.Complaints/CreateComplaint")
    );
    assert_eq!(created.attributes.get("rpc.response.status_code").map(String::as_str), Some("OK"));
    let services: HashSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
    assert!(services.is_superset(&HashSet::from(["kefu-gateway", "kefu-intake", "kefu-inspection"])));
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains("13800000000") && !value.contains("王先生"), "personal data in {span:?}");
        }
    }

    // The call that handed the waiting complaints over is a span of one of their traces, linked to
    // the others' events.
    let everything = receiver.spans.lock().expect("not poisoned").clone();
    let writes: HashMap<&str, &Received> = everything
        .iter()
        .filter(|span| span.name == "kefu.outbox write" && span.service == "kefu-intake")
        .map(|span| (span.span_id.as_str(), span))
        .collect();
    let batched: HashSet<&str> = waiting.iter().map(|(trace, _)| trace.as_str()).collect();
    let sends: Vec<&Received> = everything
        .iter()
        .filter(|span| {
            span.service == "kefu-intake" && span.name == "send inspection" && batched.contains(span.trace_id.as_str())
        })
        .collect();
    let linked: Vec<&Received> = sends
        .iter()
        .flat_map(|send| &send.links)
        .filter_map(|(_, span_id)| writes.get(span_id.as_str()).copied())
        .collect();
    assert!(!linked.is_empty(), "a call carried several waiting complaints, linked to their traces: {sends:#?}");
    for (send, write) in sends.iter().flat_map(|send| send.links.iter().map(move |link| (send, link))) {
        let write = writes.get(write.1.as_str()).unwrap_or_else(|| panic!("{send:?} links to an event never exported"));
        assert!(batched.contains(write.trace_id.as_str()) && write.trace_id != send.trace_id, "{send:?} -> {write:?}");
    }
    assert!(sends.iter().all(|send| {
        send.attributes
            .get("messaging.batch.message_count")
            .is_some_and(|count| count.parse::<usize>().expect("a count") == send.links.len() + 1)
    }));

    // JSON logs (stderr; the file also has the start-up banner, on stdout): a line of intake's
    // registration names the trace.
    let log = cluster.log("intake");
    let logged: Vec<&str> =
        log.lines().filter(|line| !line.starts_with("kefu serving") && !line.starts_with("  ")).collect();
    let lines: Vec<serde_json::Value> = logged.iter().filter_map(|line| serde_json::from_str(line).ok()).collect();
    assert!(lines.len() >= 3 && lines.len() == logged.len(), "every log line is JSON:\n{log}");
    assert!(
        lines.iter().any(|line| line["span"]["trace_id"] == trace_id && line["span"]["span_id"] == registered.span_id),
        "a log line of the registration carries its trace and span ids:\n{log}"
    );
    drop(cluster);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
