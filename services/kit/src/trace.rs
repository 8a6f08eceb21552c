//! The W3C trace context (`traceparent`, `tracestate`), carried on every gRPC hop and inside every
//! event, so that one complaint is one trace from the gateway to the last department. The gateway
//! starts a trace when the caller did not send one; each hop below keeps the trace id.
//!
//! When traces are exported ([`crate::telemetry`], `OTEL_EXPORTER_OTLP_ENDPOINT`), the context
//! carried is OpenTelemetry's: every server span takes the incoming `traceparent` as its parent and
//! puts its own in its place, every call out and every event written carries the span that made it
//! ([`span_with_parent`], [`context_of`]). Unset, nothing is exported and the context is only carried.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    KeyValue,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _},
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracer};
use tonic::metadata::{MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The tracer spans are exported with, once the exporter is installed.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Whether spans are exported (set once, when the exporter is installed).
pub fn exporting() -> bool {
    TRACER.get().is_some()
}

pub(crate) fn set_exporting(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// HTTP headers as the propagator reads and writes them.
pub struct Headers<'a>(pub &'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

struct ReadHeaders<'a>(&'a http::HeaderMap);

impl Extractor for ReadHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent.as_str()),
            TRACESTATE => Some(self.tracestate.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

impl Injector for TraceContext {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

/// Makes `span` a child of the context in `headers` (when they carry one), then writes the span's
/// own context in its place: what runs under it, and what it calls, carries the span.
pub fn adopt_from_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if headers.contains_key(TRACEPARENT) {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&ReadHeaders(headers)));
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut Headers(headers));
}

/// Makes `span` a child of `parent` (when it is well-formed); returns the span's own context.
pub fn span_with_parent(span: &tracing::Span, parent: &TraceContext) -> TraceContext {
    if is_valid_traceparent(&parent.traceparent) {
        let _ = span.set_parent(TraceContextPropagator::new().extract(parent));
    }
    context_of(span).unwrap_or_else(|| parent.clone())
}

/// Links `span` to the span `other` names (when it is well-formed): a span that does the work of
/// several traces at once belongs to one of them and is linked to the others.
pub fn link(span: &tracing::Span, other: &TraceContext) {
    if is_valid_traceparent(&other.traceparent) {
        let context = TraceContextPropagator::new().extract(other);
        span.add_link(context.span().span_context().clone());
    }
}

/// The W3C context of `span`, when it is exported.
pub fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carried = TraceContext::default();
    TraceContextPropagator::new().inject_context(&context, &mut carried);
    Some(carried)
}

/// A database transaction's span, a child of `parent` (the current span where `None`): what
/// `operation` wrote, on `db`'s system. A disabled span where traces are not exported.
pub fn transaction_span(
    db: &sea_orm::DatabaseConnection,
    operation: &'static str,
    parent: Option<&TraceContext>,
) -> tracing::Span {
    if !exporting() {
        return tracing::Span::none();
    }
    let system = match sea_orm::ConnectionTrait::get_database_backend(db) {
        sea_orm::DbBackend::Postgres => "postgresql",
        sea_orm::DbBackend::Sqlite => "sqlite",
        sea_orm::DbBackend::MySql => "mysql",
    };
    let span = tracing::info_span!(
        "db.transaction",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = "TRANSACTION",
    );
    if let Some(parent) = parent {
        span_with_parent(&span, parent);
    }
    span
}

/// Records one database statement that took `elapsed` and has just ended, as a client span of the
/// work it was part of (the current span): sea-orm calls this for every statement of a connection
/// made while traces are exported ([`crate::db::connect`]). A statement outside any traced work (a
/// relay's poll, the upkeep) is no span: it would be a trace of its own, of one span, every second.
///
/// The span says what the statement did and to which table (`SELECT complaint`), never its text or
/// its values: a value may be a customer's name or phone number.
pub fn record_statement(system: &'static str, sql: &str, elapsed: Duration, failed: bool) {
    let Some(tracer) = TRACER.get() else { return };
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let end = SystemTime::now();
    let (operation, table) = summary_of(sql);
    let mut attributes = vec![KeyValue::new("db.system.name", system), KeyValue::new("db.operation.name", operation)];
    let name = match table {
        Some(table) => {
            attributes.push(KeyValue::new("db.collection.name", table.clone()));
            format!("{operation} {table}")
        }
        None => operation.to_owned(),
    };
    attributes.push(KeyValue::new("db.query.summary", name.clone()));
    if failed {
        attributes.push(KeyValue::new("error.type", "database_error"));
    }
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_start_time(end.checked_sub(elapsed).unwrap_or(end))
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    if failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(end);
}

/// What a statement does (`SELECT`, `INSERT`, …; `OTHER` for what is none of the usual) and the
/// table it does it to, when that is plain: only a name of letters, digits and `_`, so nothing
/// of the statement but its shape can reach a span.
fn summary_of(sql: &str) -> (&'static str, Option<String>) {
    // The words outside parentheses: a common table expression's body or a list of values is not
    // what the statement does.
    let mut depth = 0usize;
    let mut words = sql.split_whitespace().filter(move |word| {
        let outside = depth == 0;
        for byte in word.bytes() {
            match byte {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        outside
    });
    let one_of = |word: &str, operations: &[&'static str]| {
        operations.iter().copied().find(|operation| word.eq_ignore_ascii_case(operation))
    };
    const CHANGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];
    let mut operation = words
        .next()
        .and_then(|first| {
            one_of(first, &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VACUUM", "PRAGMA", "CREATE"])
        })
        .unwrap_or("OTHER");
    if operation == "WITH" {
        operation = words.by_ref().find_map(|word| one_of(word, &CHANGES)).unwrap_or("WITH");
    }
    fn after<'a>(keyword: &str, words: &mut impl Iterator<Item = &'a str>) -> Option<&'a str> {
        words.find(|word| word.eq_ignore_ascii_case(keyword)).and_then(|_| words.next())
    }
    let table = match operation {
        "SELECT" | "DELETE" => after("FROM", &mut words),
        "INSERT" => after("INTO", &mut words),
        "UPDATE" => words.next(),
        _ => None,
    };
    let table = table
        .map(|word| word.split('(').next().unwrap_or_default().trim_matches('"'))
        .filter(|word| !word.is_empty() && word.len() <= 63)
        .filter(|word| word.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_'));
    (operation, table.map(str::to_owned))
}

/// The trace and span ids of `span`, for log lines.
pub fn ids_of(span: &tracing::Span) -> Option<(String, String)> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; empty when there is none.
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_root() -> Self {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        TraceContext { traceparent: format!("00-{trace_id}-{span_id}-01"), tracestate: String::new() }
    }

    /// The trace context of an incoming call, if it has a well-formed one.
    pub fn from_metadata(metadata: &MetadataMap) -> Option<Self> {
        let traceparent = metadata.get(TRACEPARENT)?.to_str().ok()?.trim();
        if !is_valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = metadata.get(TRACESTATE).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
        Some(TraceContext { traceparent: traceparent.to_owned(), tracestate })
    }

    /// The trace context of an incoming request's headers, if it has a well-formed one.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let traceparent = headers.get(TRACEPARENT)?.to_str().ok()?.trim();
        is_valid_traceparent(traceparent)
            .then(|| TraceContext { traceparent: traceparent.to_owned(), tracestate: String::new() })
    }

    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }

    pub fn write_metadata(&self, metadata: &mut MetadataMap) {
        if let Ok(value) = MetadataValue::try_from(self.traceparent.as_str()) {
            metadata.insert(TRACEPARENT, value);
        }
        if !self.tracestate.is_empty()
            && let Ok(value) = MetadataValue::try_from(self.tracestate.as_str())
        {
            metadata.insert(TRACESTATE, value);
        }
    }
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "00000000000000000000000000000000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_a_well_formed_sampled_trace() {
        let root = TraceContext::new_root();
        assert!(is_valid_traceparent(&root.traceparent), "{}", root.traceparent);
        assert!(root.traceparent.ends_with("-01"));
        assert_ne!(TraceContext::new_root().trace_id(), root.trace_id());
    }

    #[test]
    fn a_statement_is_summed_up_by_what_it_does_and_to_which_table() {
        assert_eq!(
            summary_of(r#"SELECT "complaint"."name", "complaint"."phone" FROM "complaint" WHERE "phone" = $1"#),
            ("SELECT", Some("complaint".into()))
        );
        assert_eq!(
            summary_of(r#"INSERT INTO "outbox" ("seq", "payload") VALUES (?, ?)"#),
            ("INSERT", Some("outbox".into()))
        );
        assert_eq!(summary_of("update outbox SET lease_until = $1"), ("UPDATE", Some("outbox".into())));
        assert_eq!(summary_of(r#"DELETE FROM "inbox" WHERE x < $1"#), ("DELETE", Some("inbox".into())));
        // A schema-qualified or quoted-with-dots name is not plain: the operation alone.
        assert_eq!(summary_of(r#"SELECT 1 FROM "intake"."complaint""#), ("SELECT", None));
        // What a statement with a common table expression does is after it.
        assert_eq!(
            summary_of(
                r#"WITH v ("seq", "x") AS (VALUES ($1, $2), ($3, $4)) UPDATE "complaints" SET "x" = v."x" FROM v"#
            ),
            ("UPDATE", Some("complaints".into()))
        );
        assert_eq!(summary_of("WITH x AS (SELECT 1) SAVEPOINT"), ("WITH", None));
        assert_eq!(summary_of("SELECT 1"), ("SELECT", None));
        assert_eq!(summary_of("  "), ("OTHER", None));
        assert_eq!(summary_of("SAVEPOINT x"), ("OTHER", None));
    }

    #[test]
    fn malformed_traceparent_is_ignored() {
        let mut metadata = MetadataMap::new();
        metadata.insert(TRACEPARENT, MetadataValue::from_static("00-xyz-123-01"));
        assert_eq!(TraceContext::from_metadata(&metadata), None);
        metadata
            .insert(TRACEPARENT, MetadataValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let context = TraceContext::from_metadata(&metadata).expect("valid traceparent");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
