//! The gateway's front door: every request passes through [`Dispatch`], which establishes who is
//! calling and the trace context, then either answers it (the gateway's own services, health,
//! reflection) or forwards it unchanged over HTTP/2 to the service that owns its package:
//! `/kefu.<service>.v1.<Service>/<Method>` goes to `<service>`. New methods and services of a
//! package need no change here.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use kefu_kit::{config::ServiceName, trace::TraceContext};
use tonic::{Status, body::Body, metadata::MetadataMap, service::Routes, transport::Channel};
use tower::{Service, ServiceExt};

use crate::identity;

/// Internal methods that callers may not reach through the gateway, with what to use instead.
const REFUSED: &[(&str, &str)] = &[(
    "/kefu.intake.v1.Intake/RegisterComplaint",
    "register complaints with kefu.gateway.v1.Complaints/CreateComplaint, which applies the routing policy",
)];

#[derive(Clone)]
pub struct Dispatch {
    local: Routes,
    backends: Arc<HashMap<&'static str, Channel>>,
}

impl Dispatch {
    pub fn new(local: Routes, backends: Vec<(ServiceName, Channel)>) -> Self {
        let backends = backends.into_iter().map(|(service, channel)| (service.as_str(), channel)).collect();
        Dispatch { local, backends: Arc::new(backends) }
    }

    /// The backend owning the package of `path`, if it is a `kefu.<service>.v1` package.
    fn backend_for(&self, path: &str) -> Option<(&'static str, Channel)> {
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
        let mut metadata = MetadataMap::from_headers(std::mem::take(request.headers_mut()));
        let caller = identity::authenticate(&metadata);
        identity::stamp(&mut metadata, &caller);
        let trace = TraceContext::from_metadata(&metadata).unwrap_or_else(TraceContext::new_root);
        trace.child().write_metadata(&mut metadata);
        *request.headers_mut() = metadata.into_headers();

        let path = request.uri().path().to_owned();
        if let Some((_, instead)) = REFUSED.iter().find(|(refused, _)| *refused == path) {
            return Box::pin(async move { Ok(status_response(Status::permission_denied(*instead))) });
        }
        match self.backend_for(&path) {
            Some((service, channel)) => Box::pin(async move {
                match channel.oneshot(request).await {
                    Ok(response) => Ok(response),
                    Err(error) => {
                        tracing::warn!(%service, %path, %error, "forwarding failed");
                        Ok(status_response(Status::unavailable(format!("{service} is unavailable; retry later"))))
                    }
                }
            }),
            None => {
                let local = self.local.clone();
                Box::pin(async move { local.oneshot(request).await })
            }
        }
    }
}

fn status_response(status: Status) -> Response<Body> {
    let (parts, ()) = status.into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}
