//! Every call a kefu server answers, observed once ([`Observed`], a layer of `server::serve`): a
//! span named after the method, in which the handler runs and logs, and the call's metrics
//! (duration by method and status, calls in flight).
//!
//! When traces are exported the span is a server span by the RPC semantic conventions — its name
//! the fully qualified method, with `rpc.system.name`, `rpc.method`, `rpc.response.status_code` and,
//! on failure, `error.type` — a child of the caller's `traceparent`, and it puts its own context in
//! that header, so the handler's events and calls continue it (see [`crate::trace`]). Its trace and
//! span ids are fields of the span, so every log line of the call names them.
//!
//! The status is read from the response's headers (an error answered at once) or from its trailers
//! (the end of the body); a call dropped before either is `CANCELLED`.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use tonic::body::Body;
use tracing::{Instrument as _, field::Empty};

use crate::{
    metrics::{IN_FLIGHT, enabled as metrics_enabled, method_label, record_call, status_name},
    trace,
};

#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    part: &'static str,
}

impl<S> Observed<S> {
    pub fn new(inner: S, part: &'static str) -> Observed<S> {
        Observed { inner, part }
    }
}

/// One call being observed; finished once, at the latest when dropped.
struct Call {
    part: &'static str,
    method: &'static str,
    started: Instant,
    span: tracing::Span,
    metered: bool,
    done: bool,
}

impl Call {
    fn finish(&mut self, status: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        if trace::exporting() {
            self.span.record("rpc.response.status_code", status_name(status));
            if is_server_error(status) {
                self.span.record("error.type", status_name(status));
                self.span.record("otel.status_code", "ERROR");
            }
        }
        if self.metered {
            IN_FLIGHT.with(&[self.part], |value| *value -= 1.0);
            record_call(self.part, self.method, status, self.started.elapsed());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// The statuses that are the server's failure, not the caller's (the semantic conventions' rule
/// for a server span's error status).
fn is_server_error(status: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(status, Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss)
}

fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

/// The span of a call of `method` at `part`: with the semantic conventions' fields when exported,
/// with the method alone otherwise (a log line's prefix).
fn span_of(part: &'static str, method: &'static str) -> tracing::Span {
    if trace::exporting() {
        tracing::info_span!(
            "rpc",
            otel.name = method,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system.name = "grpc",
            rpc.method = method,
            rpc.response.status_code = Empty,
            error.type = Empty,
            kefu.part = part,
            trace_id = Empty,
            span_id = Empty,
        )
    } else {
        tracing::info_span!("rpc", method, trace_id = Empty)
    }
}

impl<S> tower::Service<Request<Body>> for Observed<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let method = method_label(request.uri().path());
        let span = span_of(self.part, method);
        if trace::exporting() {
            trace::adopt_from_headers(&span, request.headers_mut());
            if let Some((trace_id, span_id)) = trace::ids_of(&span) {
                span.record("trace_id", trace_id.as_str());
                span.record("span_id", span_id.as_str());
            }
        } else if let Some(carried) = trace::TraceContext::from_headers(request.headers()) {
            span.record("trace_id", carried.trace_id());
        }
        let metered = metrics_enabled();
        if metered {
            IN_FLIGHT.with(&[self.part], |value| *value += 1.0);
        }
        let mut call =
            Call { part: self.part, method, started: Instant::now(), span: span.clone(), metered, done: false };
        let future = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let response = future.await?;
            if let Some(status) = status_of(response.headers()) {
                call.finish(status);
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(ObservedBody { inner: body, call })))
        })
    }
}

/// A response body that finishes its call when its trailers (or its end) come.
struct ObservedBody {
    inner: Body,
    call: Call,
}

impl http_body::Body for ObservedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(status_of) {
                    self.call.finish(status);
                }
            }
            Poll::Ready(Some(Err(status))) => self.call.finish(status.code()),
            Poll::Ready(None) => self.call.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
