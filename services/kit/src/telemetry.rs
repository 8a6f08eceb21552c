//! Logs and traces. `tracing` everywhere, to stderr, filtered by `KEFU_LOG`; `KEFU_LOG_FORMAT=json`
//! gives one JSON object a line, with the `trace_id` and `span_id` of the call it belongs to.
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, a
//! server exports its spans over OTLP/gRPC, as `service.name` `kefu-<part>` (`kefu serve <part>`) or
//! `kefu` (`kefu up`, each span with `kefu.part`), unless `OTEL_SERVICE_NAME` says otherwise; the
//! exporter reads the other standard `OTEL_*` variables itself (headers, timeout, sampler, resource
//! attributes). Unset: no exporter, no OpenTelemetry layer, no cost.
//!
//! Personal data (names, phone numbers) is never a field of any span or event: log case numbers,
//! categories and codes instead.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For a person: one line of text an event (the default).
    Text,
    /// For a collector: one JSON object a line.
    Json,
}

/// What stays alive while the process runs: the tracer provider, flushed by [`Telemetry::flush`].
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Whether traces are to be exported, by the standard variables.
fn endpoint_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|variable| std::env::var(variable).is_ok_and(|value| !value.trim().is_empty()))
        && std::env::var("OTEL_TRACES_EXPORTER").map_or(true, |exporter| exporter != "none")
}

/// Installs the logger, and the trace exporter where configured, for a process named `service_name`
/// (`None`: a client command, which exports nothing). Must run inside the Tokio runtime.
pub fn init(filter: &str, format: LogFormat, service_name: Option<&str>) -> Telemetry {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let provider = match service_name {
        Some(name) if endpoint_configured() => match exporter(name) {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("kefu: traces will not be exported: {error}");
                None
            }
        },
        _ => None,
    };
    // Spans are exported whatever `KEFU_LOG` keeps out of the log: the filter is the log's alone.
    let traces = provider.as_ref().map(|provider| {
        crate::trace::set_exporting(provider.tracer("kefu"));
        // Without the source location, thread and busy/idle time of every span: nothing an operator
        // reads, and a clock read on every poll of every instrumented future.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("kefu"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let logs = match format {
        LogFormat::Text => {
            // Colours only for a person at a terminal: a log file or a collector gets plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(traces).with(logs.with_filter(filter)).try_init();
    Telemetry { provider }
}

fn exporter(service_name: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| format!("the OTLP exporter: {error}"))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder().with_resource(resource.build()).with_batch_exporter(exporter).build())
}

impl Telemetry {
    /// Sends what spans are still buffered and stops the exporter (at the end of a drain).
    pub fn flush(self) {
        if let Some(provider) = self.provider {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}
