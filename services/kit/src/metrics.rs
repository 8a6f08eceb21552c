//! Metrics, in Prometheus' text exposition format, on `KEFU_METRICS_ADDR` at `/metrics`: one
//! endpoint per process (`kefu up` serves every part's from one; a `kefu serve` pod its own).
//! Unset, nothing is served and nothing is sampled from the databases. The same endpoint answers
//! `/ready` (200 while every part of the process reports `SERVING`, else 503) and `/live` (200),
//! for probes that cannot ask gRPC health (the gateway's port, when it speaks TLS).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `rpc_server_call_duration_seconds` | histogram | `part`, `rpc_system_name`, `rpc_method`, `rpc_response_status_code` | each call a server answered, by method and gRPC status (the RPC semantic conventions' `rpc.server.call.duration`); an unknown method is `_OTHER` |
//! | `rpc_server_calls_in_flight` | gauge | `part` | calls being answered now |
//! | `kefu_outbox_events` | gauge | `part`, `destination` | events waiting in a part's outbox |
//! | `kefu_outbox_oldest_event_age_seconds` | gauge | `part`, `destination` | how long the oldest of them has waited |
//! | `kefu_relay_delivery_failures_total` | counter | `part`, `destination` | deliveries of a batch of events that failed (they are retried) |
//! | `kefu_inbox_events_applied_total` | counter | `part`, `source` | events applied by a part's inbox (repeats not counted) |
//! | `kefu_webhook_deliveries_total` | counter | `outcome` | webhook POSTs to branch systems: `delivered`, `failed` |
//! | `kefu_archives_audit_chain_intact` | gauge | | 1 while archives finds its audit chain sealed with the audit key and reaching the head file's anchor; 0 once it finds it unsealed (plain SHA-256) or broken — the log says what, and `kefu audit seal` is the operator's answer (docs/operations.md, "The audit chain") |
//! | `kefu_cases_overdue` | gauge | `owner` | open cases past their deadline, by the department that owns them |
//! | `kefu_database_connections` | gauge | `part`, `state` | a part's database connections, `in_use` or `idle` |
//! | `kefu_ready` | gauge | `part` | 1 while the part reports `SERVING`, 0 while draining or its database does not answer |
//! | `kefu_gateway_refused_calls_total` | counter | `reason` | calls the gateway refused: `unauthenticated`, `denied`, `rate_limited`, `over_peer_refusals` (an address over its refused calls a second, `KEFU_REFUSALS_PER_PEER`) |
//! | `kefu_connections_closed_total` | counter | `reason` | connections a kefu server closed before serving them: `peer_share` (the peer address held its share, `KEFU_MAX_CONNECTIONS_PER_PEER`), `handshake_timeout` (no whole first request in time) |
//! | `kefu_build_info` | gauge | `version` | 1, with the binary's version |
//!
//! Labels are bounded: parts, destinations, owners, statuses and kefu's own methods. No label ever
//! holds personal data or anything a caller chose freely.

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// The upper bounds of the call-duration buckets, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often the gauges read from the databases are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// A family of series of one metric, one per set of label values.
pub(crate) struct Family<T> {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, T>>,
}

impl<T: Default> Family<T> {
    const fn new(name: &'static str, kind: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family { name, help, kind, labels, series: Mutex::new(BTreeMap::new()) }
    }

    pub(crate) fn with(&self, values: &[&str], change: impl FnOnce(&mut T)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let Ok(mut series) = self.series.lock() else { return };
        let key: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        change(series.entry(key).or_default());
    }

    /// Forgets every series whose first label is `first` (a part's gauges before a new sample).
    fn clear_of(&self, first: &str) {
        if let Ok(mut series) = self.series.lock() {
            series.retain(|key, _| key.first().map(String::as_str) != Some(first));
        }
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
    }

    fn label_set(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let mut pairs: Vec<String> =
            self.labels.iter().zip(values).map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect();
        if let Some((name, value)) = extra {
            pairs.push(format!("{name}=\"{value}\""));
        }
        if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
    }
}

impl Family<f64> {
    fn encode(&self, out: &mut String) {
        self.header(out);
        if let Ok(series) = self.series.lock() {
            for (values, value) in series.iter() {
                let _ = writeln!(out, "{}{} {}", self.name, self.label_set(values, None), number(*value));
            }
        }
    }
}

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Family<Histogram> {
    fn encode(&self, out: &mut String) {
        self.header(out);
        let Ok(series) = self.series.lock() else { return };
        for (values, histogram) in series.iter() {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let labels = self.label_set(values, Some(("le", &number(*bound))));
                let _ = writeln!(out, "{}_bucket{labels} {cumulative}", self.name);
            }
            let labels = self.label_set(values, Some(("le", "+Inf")));
            let _ = writeln!(out, "{}_bucket{labels} {}", self.name, histogram.count);
            let labels = self.label_set(values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, number(histogram.sum));
            let _ = writeln!(out, "{}_count{labels} {}", self.name, histogram.count);
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_finite() { format!("{value}") } else { "NaN".into() }
}

static CALL_DURATION: Family<Histogram> = Family::new(
    "rpc_server_call_duration_seconds",
    "histogram",
    "Duration of calls a kefu server answered, from the request to the end of the response, by method and gRPC status.",
    &["part", "rpc_system_name", "rpc_method", "rpc_response_status_code"],
);
pub(crate) static IN_FLIGHT: Family<f64> =
    Family::new("rpc_server_calls_in_flight", "gauge", "Calls a kefu server is answering now.", &["part"]);
static OUTBOX_EVENTS: Family<f64> = Family::new(
    "kefu_outbox_events",
    "gauge",
    "Events waiting in a part's outbox for delivery, by destination.",
    &["part", "destination"],
);
static OUTBOX_AGE: Family<f64> = Family::new(
    "kefu_outbox_oldest_event_age_seconds",
    "gauge",
    "How long the oldest event waiting in a part's outbox has waited, by destination.",
    &["part", "destination"],
);
static RELAY_FAILURES: Family<f64> = Family::new(
    "kefu_relay_delivery_failures_total",
    "counter",
    "Deliveries of events from a part's outbox that failed and will be retried, by destination.",
    &["part", "destination"],
);
static INBOX_APPLIED: Family<f64> = Family::new(
    "kefu_inbox_events_applied_total",
    "counter",
    "Events a part's inbox applied (a repeat is not counted), by the part that sent them.",
    &["part", "source"],
);
static WEBHOOK_DELIVERIES: Family<f64> = Family::new(
    "kefu_webhook_deliveries_total",
    "counter",
    "Webhook POSTs to branch systems, by outcome.",
    &["outcome"],
);
static AUDIT_CHAIN_INTACT: Family<f64> = Family::new(
    "kefu_archives_audit_chain_intact",
    "gauge",
    "1 while archives' audit chain is sealed with the audit key and reaches the head file's anchor; 0 when unsealed or broken.",
    &[],
);
static CASES_OVERDUE: Family<f64> = Family::new(
    "kefu_cases_overdue",
    "gauge",
    "Open cases past their deadline, by the department that owns them.",
    &["owner"],
);
static DATABASE_CONNECTIONS: Family<f64> = Family::new(
    "kefu_database_connections",
    "gauge",
    "A part's database connections, in use or idle.",
    &["part", "state"],
);
static READY: Family<f64> = Family::new(
    "kefu_ready",
    "gauge",
    "1 while a part reports SERVING; 0 while it drains or its database does not answer.",
    &["part"],
);
static GATEWAY_REFUSED: Family<f64> = Family::new(
    "kefu_gateway_refused_calls_total",
    "counter",
    "Calls the gateway refused: unauthenticated, denied by the access table, over the principal's rate.",
    &["reason"],
);
static CONNECTIONS_CLOSED: Family<f64> = Family::new(
    "kefu_connections_closed_total",
    "counter",
    "Connections closed before they were served: the peer address held its share, or no first request in time.",
    &["reason"],
);
static BUILD_INFO: Family<f64> =
    Family::new("kefu_build_info", "gauge", "1, labelled with the kefu binary's version.", &["version"]);

/// Every method kefu serves (its own APIs, health, reflection), as `package.Service/Method`: only
/// these become label values, so a caller inventing paths cannot grow the metrics.
static KNOWN_METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    use prost::Message as _;
    let mut known = HashSet::new();
    for set in [kefu_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let Ok(files) = prost_types::FileDescriptorSet::decode(set) else { continue };
        for file in files.file {
            for service in &file.service {
                for method in &service.method {
                    known.insert(format!("{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    for reflection in ["grpc.reflection.v1", "grpc.reflection.v1alpha"] {
        known.insert(format!("{reflection}.ServerReflection/ServerReflectionInfo"));
    }
    known
});

/// The `rpc_method` label of a request path.
pub fn method_label(path: &str) -> &'static str {
    KNOWN_METHODS.get(path.trim_start_matches('/')).map_or("_OTHER", String::as_str)
}

/// Counts one call answered by `part`.
pub fn record_call(part: &str, method: &str, status: tonic::Code, took: Duration) {
    let seconds = took.as_secs_f64();
    CALL_DURATION.with(&[part, "grpc", method, status_name(status)], |histogram| {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[bucket] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    });
}

pub fn relay_delivery_failed(part: &str, destination: &str, events: usize) {
    RELAY_FAILURES.with(&[part, destination], |value| *value += events as f64);
}

pub fn inbox_applied(part: &str, source: &str, events: usize) {
    if events > 0 {
        INBOX_APPLIED.with(&[part, source], |value| *value += events as f64);
    }
}

pub fn webhook_delivery(delivered: bool) {
    WEBHOOK_DELIVERIES.with(&[if delivered { "delivered" } else { "failed" }], |value| *value += 1.0);
}

pub fn connection_refused(reason: &'static str) {
    CONNECTIONS_CLOSED.with(&[reason], |value| *value += 1.0);
}

pub fn gateway_refused(reason: &'static str) {
    GATEWAY_REFUSED.with(&[reason], |value| *value += 1.0);
}

/// What archives found when it last checked its audit chain.
pub fn audit_chain_intact(intact: bool) {
    AUDIT_CHAIN_INTACT.with(&[], |value| *value = if intact { 1.0 } else { 0.0 });
}

/// Whether every part of this process reports `SERVING` (and there is at least one).
fn all_ready() -> bool {
    READY.series.lock().is_ok_and(|series| !series.is_empty() && series.values().all(|ready| *ready == 1.0))
}

pub fn ready(part: &str, serving: bool) {
    READY.with(&[part], |value| *value = if serving { 1.0 } else { 0.0 });
}

/// A part's outbox as last sampled: per destination, the events waiting and the oldest one's age.
pub fn outbox_sampled(part: &str, destinations: &[(String, u64, Duration)]) {
    OUTBOX_EVENTS.clear_of(part);
    OUTBOX_AGE.clear_of(part);
    for (destination, events, oldest) in destinations {
        OUTBOX_EVENTS.with(&[part, destination], |value| *value = *events as f64);
        OUTBOX_AGE.with(&[part, destination], |value| *value = oldest.as_secs_f64());
    }
}

/// Overdue open cases per owner, as last sampled (every department named, none overdue included).
pub fn overdue_sampled(by_owner: &[(String, u64)]) {
    if let Ok(mut series) = CASES_OVERDUE.series.lock() {
        series.values_mut().for_each(|cases| *cases = 0.0);
    }
    for service in crate::config::ServiceName::ALL {
        CASES_OVERDUE.with(&[service.as_str()], |_| {});
    }
    for (owner, cases) in by_owner {
        CASES_OVERDUE.with(&[owner], |value| *value = *cases as f64);
    }
}

/// A part's database pool as it is now.
pub fn pool_sampled(part: &str, db: &sea_orm::DatabaseConnection) {
    let (size, idle) = match db {
        sea_orm::DatabaseConnection::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        sea_orm::DatabaseConnection::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        _ => return,
    };
    DATABASE_CONNECTIONS.with(&[part, "in_use"], |value| *value = f64::from(size.saturating_sub(idle)));
    DATABASE_CONNECTIONS.with(&[part, "idle"], |value| *value = f64::from(idle));
}

pub(crate) fn status_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Everything, in Prometheus' text format (version 0.0.4).
pub fn render() -> String {
    let mut out = String::with_capacity(16 * 1024);
    BUILD_INFO.with(&[env!("CARGO_PKG_VERSION")], |value| *value = 1.0);
    CALL_DURATION.encode(&mut out);
    for family in [
        &IN_FLIGHT,
        &OUTBOX_EVENTS,
        &OUTBOX_AGE,
        &RELAY_FAILURES,
        &INBOX_APPLIED,
        &WEBHOOK_DELIVERIES,
        &AUDIT_CHAIN_INTACT,
        &CASES_OVERDUE,
        &DATABASE_CONNECTIONS,
        &READY,
        &GATEWAY_REFUSED,
        &CONNECTIONS_CLOSED,
        &BUILD_INFO,
    ] {
        family.encode(&mut out);
    }
    out
}

/// Whether metrics are served in this process ([`serve`] was started): the call layer records
/// nothing otherwise.
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Serves `/metrics` on `listener` until `shutdown`, over plain HTTP/1.1 (what Prometheus scrapes).
pub async fn serve(listener: tokio::net::TcpListener, shutdown: crate::Shutdown) {
    use hyper::{Response, StatusCode, body::Incoming, service::service_fn};
    ENABLED.store(true, Ordering::Relaxed);
    let answer = |request: hyper::Request<Incoming>| async move {
        let text = |status: StatusCode, body: &'static str| {
            Response::builder()
                .status(status)
                .body(http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())))
        };
        let response = match request.uri().path() {
            "/metrics" => Response::builder()
                .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                .body(http_body_util::Full::new(bytes::Bytes::from(render()))),
            // For probes that cannot speak gRPC health to a TLS port (the gateway's, with TLS on).
            "/ready" if all_ready() => text(StatusCode::OK, "ready\n"),
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining, or a database does not answer\n"),
            "/live" => text(StatusCode::OK, "alive\n"),
            _ => text(StatusCode::NOT_FOUND, "kefu serves /metrics, /ready and /live here\n"),
        };
        response.map_err(|error| error.to_string())
    };
    loop {
        let stream = tokio::select! {
            () = shutdown.clone().wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service_fn(answer));
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kefu_s_own_methods_become_labels() {
        assert_eq!(
            method_label("/kefu.gateway.v1.Complaints/CreateComplaint"),
            "kefu.gateway.v1.Complaints/CreateComplaint"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "grpc.health.v1.Health/Check");
        assert_eq!(method_label("/kefu.gateway.v1.Complaints/Invented"), "_OTHER");
        assert_eq!(method_label("/x\"y\n/z"), "_OTHER");
    }

    #[test]
    fn a_histogram_counts_each_call_in_its_bucket_and_all_above() {
        record_call("test-part", "m", tonic::Code::Ok, Duration::from_millis(3));
        record_call("test-part", "m", tonic::Code::Ok, Duration::from_millis(30));
        let text = render();
        let bucket = |le: &str| {
            let line = format!(
                "rpc_server_call_duration_seconds_bucket{{part=\"test-part\",rpc_system_name=\"grpc\",rpc_method=\"m\",rpc_response_status_code=\"OK\",le=\"{le}\"}} "
            );
            text.lines().find_map(|l| l.strip_prefix(&line)).map(str::to_owned)
        };
        assert_eq!(bucket("0.0025").as_deref(), Some("0"));
        assert_eq!(bucket("0.005").as_deref(), Some("1"));
        assert_eq!(bucket("0.05").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("2"));
        assert!(text.contains("# TYPE rpc_server_call_duration_seconds histogram"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
