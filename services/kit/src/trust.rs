//! Trust between the parts of kefu. Callers prove who they are to the gateway (bearer tokens, see
//! the gateway's `identity`); the gateway and the services prove to each other that a call comes
//! from a kefu process with a **signed assertion**: the header `x-kefu-assertion`, an HMAC-SHA256
//! with the installation's internal key (`KEFU_INTERNAL_KEY`) over
//!
//! - the issuer: `gateway`, or the service making the call (`intake`, `claims`, …),
//! - the method called (`/kefu.claims.v1.Claims/ApproveClaim`), so it serves no other method,
//! - its expiry, [`LIFETIME`] after it was made, and
//! - every identity key the call carries (`x-kefu-user`, `x-kefu-roles`, … see [`crate::caller`]),
//!   so no one can change who the call is for.
//!
//! A service port ([`Verify`]) serves a call only with a valid assertion: public methods from the
//! gateway, `EventInbox/Deliver` from a service (whose events must name it as their source, see
//! [`crate::inbox`]). Anything else — a call straight to a service port, forged `x-kefu-*` headers,
//! a forged event — is `UNAUTHENTICATED` and changes nothing. Health and reflection stay open for
//! probes. Outgoing calls are signed by [`SignedChannel`].
//!
//! Why not mutual TLS: one shared secret from a Kubernetes Secret is all an operator manages,
//! `kefu up` makes its own at start, and signing costs about a microsecond per call. The
//! assertion is short-lived and bound to one method; the NetworkPolicy in `deploy/` keeps anyone
//! but kefu from reaching the service ports at all.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderValue, Request, Response};
use ring::hmac;
use tonic::{Status, body::Body, transport::Channel};

use crate::{
    caller::{BRANCH, CLEARANCE, DEPARTMENT, ROLES, USER},
    config::ServiceName,
    resend::Resending,
    text::{hex, unhex},
};

/// The header carrying the assertion.
pub const ASSERTION: &str = "x-kefu-assertion";
/// How long an assertion is good for.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// How far apart the clocks of two kefu machines may be.
const SKEW: Duration = Duration::from_secs(30);
/// The issuer the gateway signs with.
pub const GATEWAY: &str = "gateway";
/// The identity keys an assertion covers, in the order they are signed.
const IDENTITY_KEYS: [&str; 5] = [USER, DEPARTMENT, BRANCH, ROLES, CLEARANCE];

/// The installation's internal key.
#[derive(Clone)]
pub struct InternalKey(hmac::Key);

impl InternalKey {
    pub fn new(secret: &str) -> InternalKey {
        InternalKey(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    /// A fresh random key, hex-encoded: what `kefu up` uses when `KEFU_INTERNAL_KEY` is unset.
    pub fn generate_secret() -> Result<String, String> {
        random_hex(32)
    }

    /// The assertion for a call of `path` by `issuer` carrying the identity keys in `headers`.
    pub fn sign(&self, issuer: &str, path: &str, headers: &HeaderMap, now: SystemTime) -> String {
        let expiry = unix_seconds(now) + LIFETIME.as_secs();
        let tag = hmac::sign(&self.0, &signed_bytes(issuer, path, expiry, headers));
        format!("v1.{issuer}.{expiry}.{}", hex(tag.as_ref()))
    }

    /// The issuer of a call of `path` with these headers, if its assertion is valid now.
    pub fn verify(&self, path: &str, headers: &HeaderMap, now: SystemTime) -> Result<String, Refusal> {
        let value = headers.get(ASSERTION).ok_or(Refusal::Missing)?.to_str().map_err(|_| Refusal::Malformed)?;
        let mut parts = value.split('.');
        let (Some("v1"), Some(issuer), Some(expiry), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let expiry: u64 = expiry.parse().map_err(|_| Refusal::Malformed)?;
        let tag = unhex(tag).ok_or(Refusal::Malformed)?;
        hmac::verify(&self.0, &signed_bytes(issuer, path, expiry, headers), &tag).map_err(|_| Refusal::BadSignature)?;
        let now = unix_seconds(now);
        if expiry + SKEW.as_secs() < now || expiry > now + LIFETIME.as_secs() + SKEW.as_secs() {
            return Err(Refusal::Expired);
        }
        Ok(issuer.to_owned())
    }
}

/// Why an assertion was refused; the text is safe to log and to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    WrongIssuer,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "no internal assertion",
            Refusal::Malformed => "a malformed internal assertion",
            Refusal::BadSignature => "an internal assertion whose signature does not match the call",
            Refusal::Expired => "an expired internal assertion",
            Refusal::WrongIssuer => "an internal assertion from a part of kefu that does not make this call",
        }
    }
}

fn signed_bytes(issuer: &str, path: &str, expiry: u64, headers: &HeaderMap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    for part in [b"kefu-assertion-v1".as_slice(), issuer.as_bytes(), path.as_bytes(), expiry.to_string().as_bytes()] {
        bytes.extend_from_slice(part);
        bytes.push(0);
    }
    for key in IDENTITY_KEYS {
        // Every value of the key, so a second copy of a header cannot slip past the signature.
        for value in headers.get_all(key) {
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(b',');
        }
        bytes.push(0);
    }
    bytes
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// `bytes` random bytes from the operating system, hex-encoded.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| "the operating system's random number generator failed".to_owned())?;
    Ok(hex(&buffer))
}

/// A channel that signs every call it carries as `issuer`, and sends again a call its connection
/// refused unsent ([`Resending`]).
#[derive(Clone)]
pub struct SignedChannel {
    channel: Resending,
    key: InternalKey,
    issuer: &'static str,
}

impl SignedChannel {
    pub fn new(channel: Channel, key: InternalKey, issuer: &'static str) -> SignedChannel {
        SignedChannel { channel: Resending::new(channel), key, issuer }
    }
}

impl tower::Service<Request<Body>> for SignedChannel {
    type Response = Response<Body>;
    type Error = tower::BoxError;
    type Future = tracing::instrument::Instrumented<<Resending as tower::Service<Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let assertion = self.key.sign(self.issuer, request.uri().path(), request.headers(), SystemTime::now());
        if let Ok(value) = HeaderValue::try_from(assertion) {
            request.headers_mut().insert(ASSERTION, value);
        }
        // Where traces are exported, the call is a client span: a child of the trace the request
        // carries (or of the span it is made in), whose context the callee continues.
        let span = if crate::trace::exporting() {
            let method = request.uri().path().trim_start_matches('/').to_owned();
            let span = tracing::info_span!(
                "rpc.client",
                otel.name = %method,
                otel.kind = "client",
                rpc.system.name = "grpc",
                rpc.method = %method,
                kefu.part = self.issuer,
            );
            crate::trace::adopt_from_headers(&span, request.headers_mut());
            span
        } else {
            tracing::Span::none()
        };
        tracing::Instrument::instrument(self.channel.call(request), span)
    }
}

/// The part of kefu that made a verified call, put in the request's extensions by [`Verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(pub String);

/// Calls refused for want of a valid assertion, since start.
pub static REFUSED_CALLS: AtomicU64 = AtomicU64::new(0);

/// A service port's door: serves only calls with a valid assertion from the part of kefu that may
/// make them (see the module's documentation), and health and reflection to anyone.
#[derive(Clone)]
pub struct Verify<S> {
    inner: S,
    key: InternalKey,
    service: ServiceName,
}

impl<S> Verify<S> {
    pub fn new(inner: S, key: InternalKey, service: ServiceName) -> Verify<S> {
        Verify { inner, key, service }
    }
}

/// Whether `path` is health or reflection, which anyone may call.
pub fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// The path of the one internal method: events from one service to another.
pub const DELIVER: &str = "/kefu.events.v1.EventInbox/Deliver";

/// Whether `issuer` may make a call of `path` to a service.
pub fn may_call(issuer: &str, path: &str) -> bool {
    if path == DELIVER { issuer.parse::<ServiceName>().is_ok() } else { issuer == GATEWAY }
}

impl<S> tower::Service<Request<Body>> for Verify<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if !is_open(&path) {
            let verified = self
                .key
                .verify(&path, request.headers(), SystemTime::now())
                .and_then(|issuer| if may_call(&issuer, &path) { Ok(issuer) } else { Err(Refusal::WrongIssuer) });
            match verified {
                Ok(issuer) => {
                    request.extensions_mut().insert(Issuer(issuer));
                }
                Err(refusal) => {
                    let count = REFUSED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(service = %self.service, method = %path, reason = refusal.as_str(), refused_calls = count, "call refused at a service port");
                    let status = Status::unauthenticated(format!(
                        "this is the {} service's internal port, which serves only kefu's gateway and services (the call had {}); call the gateway instead, with a bearer token",
                        self.service,
                        refusal.as_str()
                    ));
                    return Box::pin(async move { Ok(status_response(status)) });
                }
            }
        }
        let future = self.inner.call(request);
        Box::pin(future)
    }
}

/// A gRPC response carrying only `status`.
pub fn status_response(status: Status) -> Response<Body> {
    let (parts, ()) = status.into_http::<()>().into_parts();
    Response::from_parts(parts, Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(user: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(USER, HeaderValue::from_str(user).expect("ascii"));
        headers.insert(ROLES, HeaderValue::from_static("agent"));
        headers
    }

    const PATH: &str = "/kefu.claims.v1.Claims/ApproveClaim";

    fn signed(key: &InternalKey, user: &str, now: SystemTime) -> HeaderMap {
        let mut headers = headers(user);
        let assertion = key.sign(GATEWAY, PATH, &headers, now);
        headers.insert(ASSERTION, HeaderValue::from_str(&assertion).expect("ascii"));
        headers
    }

    #[test]
    fn a_signed_call_verifies_as_its_issuer() {
        let key = InternalKey::new(&"k".repeat(32));
        let now = SystemTime::now();
        assert_eq!(key.verify(PATH, &signed(&key, "A1024", now), now), Ok(GATEWAY.to_owned()));
    }

    #[test]
    fn a_changed_identity_method_key_or_time_is_refused() {
        let key = InternalKey::new(&"k".repeat(32));
        let now = SystemTime::now();
        let mut forged = signed(&key, "A1024", now);
        forged.insert(ROLES, HeaderValue::from_static("agent,supervisor"));
        assert_eq!(key.verify(PATH, &forged, now), Err(Refusal::BadSignature));
        let mut doubled = signed(&key, "A1024", now);
        doubled.append(ROLES, HeaderValue::from_static("supervisor"));
        assert_eq!(key.verify(PATH, &doubled, now), Err(Refusal::BadSignature));
        let other_method = "/kefu.settlement.v1.Settlement/ReverseLedgerEntry";
        assert_eq!(key.verify(other_method, &signed(&key, "A1024", now), now), Err(Refusal::BadSignature));
        let other_key = InternalKey::new(&"x".repeat(32));
        assert_eq!(other_key.verify(PATH, &signed(&key, "A1024", now), now), Err(Refusal::BadSignature));
        let later = now + LIFETIME + SKEW + Duration::from_secs(1);
        assert_eq!(key.verify(PATH, &signed(&key, "A1024", now), later), Err(Refusal::Expired));
        assert_eq!(key.verify(PATH, &headers("A1024"), now), Err(Refusal::Missing));
        let mut garbage = headers("A1024");
        garbage.insert(ASSERTION, HeaderValue::from_static("v1.gateway.notanumber.00"));
        assert_eq!(key.verify(PATH, &garbage, now), Err(Refusal::Malformed));
    }

    #[test]
    fn only_services_deliver_events_and_only_the_gateway_calls_public_methods() {
        assert!(may_call("claims", DELIVER));
        assert!(!may_call(GATEWAY, DELIVER));
        assert!(may_call(GATEWAY, PATH));
        assert!(!may_call("claims", PATH));
    }
}
