//! The gateway's front door: every request passes through [`Dispatch`], which
//!
//! 1. lets health and reflection through to anyone;
//! 2. establishes who is calling ([`crate::identity`]) — `UNAUTHENTICATED` otherwise;
//! 3. asks the access table ([`crate::access`]) whether that principal may call the method —
//!    `PERMISSION_DENIED` otherwise, naming who may;
//! 4. drops every `x-kefu-*` header the caller sent and sets the established identity and the
//!    trace context in their place;
//!    — and keeps each principal to its calls per second ([`crate::rate`]);
//! 5. reads the message once against its contract ([`crate::guard`]) — `INVALID_ARGUMENT` naming
//!    the field if it is malformed, not UTF-8, or has control characters;
//! 6. answers the call itself (the gateway's own services) or forwards it over HTTP/2, signed as
//!    the gateway (`kefu_kit::trust`), to the service that owns its package:
//!    `/kefu.<service>.v1.<Service>/<Method>` goes to `<service>`. New methods and services of a
//!    package need no change here, only a line in the access table.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use kefu_kit::{
    config::ServiceName,
    trace::TraceContext,
    trust::{self, SignedChannel, status_response},
};
use tonic::{Status, body::Body, metadata::MetadataMap, service::Routes};
use tower::{Service, ServiceExt};

use crate::{
    access::AccessTable,
    guard::Guard,
    identity::{self, Authenticator},
    rate::RateLimiter,
    refusals::{Refusal, Refusals},
};

/// The largest request the gateway reads: the largest message a service takes, and its frame.
const MAX_REQUEST_BYTES: usize = kefu_kit::server::MAX_REQUEST_BYTES + 5;

/// Internal methods that callers may not reach through the gateway, with what to use instead.
const REFUSED: &[(&str, &str)] = &[(
    "/kefu.intake.v1.Intake/RegisterComplaint",
    "register complaints with kefu.gateway.v1.Complaints/CreateComplaint, which applies the routing policy",
)];

#[derive(Clone)]
pub struct Dispatch {
    local: Routes,
    backends: Arc<HashMap<&'static str, SignedChannel>>,
    authenticator: Arc<Authenticator>,
    access: Arc<AccessTable>,
    guard: Arc<Guard>,
    limiter: Arc<RateLimiter>,
    refusals: Arc<Refusals>,
}

impl Dispatch {
    pub fn new(
        local: Routes,
        backends: Vec<(ServiceName, SignedChannel)>,
        authenticator: Arc<Authenticator>,
        access: Arc<AccessTable>,
        limiter: Arc<RateLimiter>,
        refusals: Arc<Refusals>,
    ) -> Self {
        let backends = backends.into_iter().map(|(service, channel)| (service.as_str(), channel)).collect();
        let guard = Arc::new(Guard::load());
        Dispatch { local, backends: Arc::new(backends), authenticator, access, guard, limiter, refusals }
    }

    /// A refused call's answer: `status`, or, for a peer address over its refusals,
    /// `RESOURCE_EXHAUSTED` ([`crate::refusals`]). `record` counts it, and logs it when told to.
    fn refusal(
        &self,
        request: &Request<Body>,
        status: Status,
        record: impl FnOnce(Option<u64>),
    ) -> Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>> {
        let peer = kefu_kit::limits::Peer::of(request).and_then(kefu_kit::limits::Peer::ip);
        let status = match self.refusals.refuse(peer, std::time::Instant::now()) {
            Refusal::Answer { log } => {
                record(log);
                status
            }
            Refusal::Shed { wait } => {
                identity::record_shed();
                Status::resource_exhausted(format!(
                    "too many refused calls from your address: at most {} a second; fix the credentials or the method, and retry in {} ms",
                    self.refusals.per_second(),
                    wait.as_millis().max(1)
                ))
            }
        };
        Box::pin(async move { Ok(status_response(status)) })
    }

    /// The backend owning the package of `path`, if it is a `kefu.<service>.v1` package.
    fn backend_for(&self, path: &str) -> Option<(&'static str, SignedChannel)> {
        let service = path.strip_prefix("/kefu.")?.split('.').next()?;
        let version = path.strip_prefix("/kefu.")?.split('.').nth(1)?;
        if version != "v1" {
            return None;
        }
        self.backends.get_key_value(service).map(|(name, channel)| (*name, channel.clone()))
    }
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let refuse = |status: Status| -> Self::Future { Box::pin(async move { Ok(status_response(status)) }) };
        let (principal, service_assertion) = if trust::is_open(&path) {
            (None, None)
        } else {
            match self.authenticator.authenticate(&path, request.headers()) {
                Ok((principal, service_assertion)) => (Some(principal), service_assertion),
                Err(error) => {
                    let status = Status::unauthenticated(error.message());
                    return self.refusal(&request, status, |log| identity::record_unauthenticated(&path, &error, log));
                }
            }
        };
        if let Some(principal) = &principal
            && !self.access.allows(&path, principal)
        {
            let status = match REFUSED.iter().find(|(refused, _)| *refused == path) {
                Some((_, instead)) => Status::permission_denied(format!(
                    "the access table lets no caller reach {} through the gateway: {instead}",
                    path.trim_start_matches('/')
                )),
                None => Status::permission_denied(format!(
                    "the access table does not let {} call {}; it is for: {}",
                    principal.describe(),
                    path.trim_start_matches('/'),
                    self.access.who_may(&path)
                )),
            };
            return self.refusal(&request, status, |log| identity::record_denied(&path, principal, log));
        }

        if let Some(principal) = &principal
            && principal.service().is_none()
        {
            // Per subject, not per token: a dozen tokens of one person share one rate.
            if let Err(wait) = self.limiter.admit(&principal.caller.user, std::time::Instant::now()) {
                identity::record_limited(&path, principal);
                return refuse(Status::resource_exhausted(format!(
                    "too many calls from {}: at most {} a second; retry in {} ms",
                    principal.caller.user,
                    self.limiter.per_second(),
                    wait.as_millis().max(1)
                )));
            }
        }

        // Nothing the caller says about who it is goes further: not its x-kefu-* headers, not its
        // credentials.
        let headers = request.headers_mut();
        let claimed: Vec<http::HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with("x-kefu-")).cloned().collect();
        for name in claimed {
            headers.remove(name);
        }
        headers.remove(http::header::AUTHORIZATION);
        let mut metadata = MetadataMap::from_headers(std::mem::take(headers));
        if let Some(principal) = &principal {
            principal.caller.write_metadata(&mut metadata);
        }
        // The caller's trace goes on (its context is this call's span where traces are exported).
        let trace = TraceContext::from_metadata(&metadata).unwrap_or_else(TraceContext::new_root);
        trace.write_metadata(&mut metadata);
        *request.headers_mut() = metadata.into_headers();

        let backend = self.backend_for(&path);
        let local = self.local.clone();
        let guard = self.guard.clone();
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            // Read the message once — against its contract, and against a kefu service's
            // assertion — before anyone else sees it.
            let request_type = guard.request_type(&path).map(str::to_owned);
            let request = if request_type.is_none() && service_assertion.is_none() {
                request
            } else {
                let (parts, body) = request.into_parts();
                let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
                let bytes = match http_body_util::BodyExt::collect(limited).await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => {
                        return Ok(status_response(Status::resource_exhausted(format!(
                            "a request may be at most {MAX_REQUEST_BYTES} bytes"
                        ))));
                    }
                };
                if let Some(verified) = service_assertion
                    && let Err(error) = authenticator.accept_service(verified, &bytes)
                {
                    identity::record_unauthenticated(&path, &error, Some(0));
                    return Ok(status_response(Status::unauthenticated(error.message())));
                }
                if let Some(request_type) = &request_type
                    && let Err(refusal) = guard.check(&path, &bytes)
                {
                    return Ok(status_response(refusal.into_violations(request_type).into_status()));
                }
                Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)))
            };
            match backend {
                Some((service, channel)) => match channel.oneshot(request).await {
                    Ok(response) => Ok(response),
                    Err(error) => {
                        tracing::warn!(%service, %path, %error, "forwarding failed");
                        Ok(status_response(Status::unavailable(format!("{service} is unavailable; retry later"))))
                    }
                },
                None => {
                    let mut request = request;
                    if let Some(principal) = principal {
                        request.extensions_mut().insert(principal);
                    }
                    local.oneshot(request).await
                }
            }
        })
    }
}
