//! Trust between the parts of kefu. Callers prove who they are to the gateway (bearer tokens, see
//! the gateway's `identity`); the gateway and the services prove to each other that a call comes
//! from a kefu process with a **signed assertion**: the header `x-kefu-assertion`, an HMAC-SHA256
//! with the installation's internal key (`KEFU_INTERNAL_KEY`) over
//!
//! - the issuer: `gateway`, or the service making the call (`intake`, `claims`, …),
//! - the method called (`/kefu.claims.v1.Claims/ApproveClaim`), so it serves no other method,
//! - its expiry, [`LIFETIME`] after it was made,
//! - a nonce, once per call: a service remembers the nonces it took until they expire, so an
//!   assertion recorded off the wire and sent again is refused ([`Replays`]),
//! - the SHA-256 of the request's body (the whole gRPC message: for `EventInbox/Deliver`, every
//!   event with its id), so a recorded assertion carries no other request, and
//! - every identity key the call carries (`x-kefu-user`, `x-kefu-roles`, … see [`crate::caller`]),
//!   so no one can change who the call is for.
//!
//! Checking one takes two steps: the header (signature, expiry) before the body is read
//! ([`InternalKey::verify`]), then the body's digest and the nonce ([`InternalKey::accept`]).
//!
//! A service port ([`Verify`]) serves a call only with a valid assertion: public methods from the
//! gateway, `EventInbox/Deliver` from a service (whose events must name it as their source, see
//! [`crate::inbox`]). Anything else — a call straight to a service port, forged `x-kefu-*` headers,
//! a forged event — is `UNAUTHENTICATED` and changes nothing. Health and reflection stay open for
//! probes. Outgoing calls are signed by [`SignedChannel`].
//!
//! Why not mutual TLS: one shared secret from a Kubernetes Secret is all an operator manages,
//! `kefu up` makes its own at start, and signing costs a few microseconds per call. The assertion
//! is short-lived, bound to one method and one message, and used once; the NetworkPolicy in
//! `deploy/` keeps anyone but kefu from reaching the service ports at all. Where the traffic
//! between pods must also be private, a service mesh's mutual TLS (Linkerd, Istio) carries these
//! calls unchanged (docs/identity.md).

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

/// The installation's internal key, and the nonces of the assertions this part has taken.
#[derive(Clone)]
pub struct InternalKey {
    key: hmac::Key,
    replays: std::sync::Arc<Replays>,
}

/// An assertion whose header checked out: who signed it, and what is left to check against the
/// body ([`InternalKey::accept`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    nonce: u128,
    expiry: u64,
    digest: [u8; 32],
}

impl InternalKey {
    pub fn new(secret: &str) -> InternalKey {
        InternalKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            replays: std::sync::Arc::new(Replays::default()),
        }
    }

    /// A fresh random key, hex-encoded: what `kefu up` uses when `KEFU_INTERNAL_KEY` is unset.
    pub fn generate_secret() -> Result<String, String> {
        random_hex(32)
    }

    /// The assertion for a call of `path` by `issuer` carrying the identity keys in `headers` and
    /// the message `body` (its gRPC frame).
    pub fn sign(&self, issuer: &str, path: &str, headers: &HeaderMap, body: &[u8], now: SystemTime) -> String {
        let expiry = unix_seconds(now) + LIFETIME.as_secs();
        let nonce = next_nonce();
        let digest = sha256(body);
        let tag = hmac::sign(&self.key, &signed_bytes(issuer, path, expiry, nonce, &digest, headers));
        format!("v2.{issuer}.{expiry}.{nonce:032x}.{}.{}", hex(&digest), hex(tag.as_ref()))
    }

    /// The header's half of the check: the assertion of a call of `path` with these headers is
    /// signed with this key and not expired. The body and the nonce are [`InternalKey::accept`]'s.
    pub fn verify(&self, path: &str, headers: &HeaderMap, now: SystemTime) -> Result<Verified, Refusal> {
        let value = headers.get(ASSERTION).ok_or(Refusal::Missing)?.to_str().map_err(|_| Refusal::Malformed)?;
        let mut parts = value.split('.');
        let (Some("v2"), Some(issuer), Some(expiry), Some(nonce), Some(digest), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let expiry: u64 = expiry.parse().map_err(|_| Refusal::Malformed)?;
        let nonce = u128::from_str_radix(nonce, 16).map_err(|_| Refusal::Malformed)?;
        let digest: [u8; 32] = unhex(digest).and_then(|bytes| bytes.try_into().ok()).ok_or(Refusal::Malformed)?;
        let tag = unhex(tag).ok_or(Refusal::Malformed)?;
        hmac::verify(&self.key, &signed_bytes(issuer, path, expiry, nonce, &digest, headers), &tag)
            .map_err(|_| Refusal::BadSignature)?;
        let now = unix_seconds(now);
        if expiry + SKEW.as_secs() < now || expiry > now + LIFETIME.as_secs() + SKEW.as_secs() {
            return Err(Refusal::Expired);
        }
        Ok(Verified { issuer: issuer.to_owned(), nonce, expiry, digest })
    }

    /// The body's half: the message is the one signed, and the assertion was not taken before.
    /// Returns the issuer.
    pub fn accept(&self, verified: Verified, body: &[u8], now: SystemTime) -> Result<String, Refusal> {
        let digest = sha256(body);
        // The digest is no secret (it is in the header): a plain comparison does.
        if digest != verified.digest {
            return Err(Refusal::OtherMessage);
        }
        self.replays.first_use(verified.nonce, verified.expiry, unix_seconds(now))?;
        Ok(verified.issuer)
    }
}

/// The nonces of the assertions one part has taken, each until its assertion expires: an
/// assertion is good for one call. About 40 bytes a call for [`LIFETIME`] and [`SKEW`]: at 2,000
/// calls a second, some 7 MB.
#[derive(Default)]
pub struct Replays {
    seen: std::sync::Mutex<(std::collections::HashMap<u128, u64>, u64)>,
}

impl Replays {
    fn first_use(&self, nonce: u128, expiry: u64, now: u64) -> Result<(), Refusal> {
        let Ok(mut guard) = self.seen.lock() else { return Err(Refusal::Replayed) };
        let (seen, last_swept) = &mut *guard;
        // Once a second, the expired are forgotten (an expired assertion is refused anyway).
        if *last_swept < now {
            seen.retain(|_, until| *until + SKEW.as_secs() >= now);
            *last_swept = now;
        }
        if seen.insert(nonce, expiry).is_some() {
            return Err(Refusal::Replayed);
        }
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    digest
}

/// A nonce unique to this process's call: a random prefix drawn once, then a counter.
fn next_nonce() -> u128 {
    use std::sync::LazyLock;
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        let mut bytes = [0u8; 8];
        use ring::rand::SecureRandom;
        // Without the system's randomness, the time stands in: nonces must differ, not be secret.
        if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
            bytes =
                (SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos()) as u64).to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    (u128::from(*PREFIX) << 64) | u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Why an assertion was refused; the text is safe to log and to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    WrongIssuer,
    /// The body is not the one the assertion was made for.
    OtherMessage,
    /// The assertion was taken before.
    Replayed,
    /// The body could not be read whole, or is larger than any kefu message.
    Unreadable,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "no internal assertion",
            Refusal::Malformed => "a malformed internal assertion",
            Refusal::BadSignature => "an internal assertion whose signature does not match the call",
            Refusal::Expired => "an expired internal assertion",
            Refusal::WrongIssuer => "an internal assertion from a part of kefu that does not make this call",
            Refusal::OtherMessage => "an internal assertion made for another message",
            Refusal::Replayed => "an internal assertion already used",
            Refusal::Unreadable => "a message that could not be read whole",
        }
    }
}

fn signed_bytes(issuer: &str, path: &str, expiry: u64, nonce: u128, digest: &[u8; 32], headers: &HeaderMap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    for part in [
        b"kefu-assertion-v2".as_slice(),
        issuer.as_bytes(),
        path.as_bytes(),
        expiry.to_string().as_bytes(),
        &nonce.to_be_bytes(),
        digest,
    ] {
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
    type Future = tracing::instrument::Instrumented<
        Pin<Box<dyn Future<Output = Result<Response<Body>, tower::BoxError>> + Send>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The channel `poll_ready` made ready takes the call; a clone stays for the next one.
        let ready = self.channel.clone();
        let mut channel = std::mem::replace(&mut self.channel, ready);
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
        let (key, issuer) = (self.key.clone(), self.issuer);
        let call: Pin<Box<dyn Future<Output = Result<Response<Body>, tower::BoxError>> + Send>> =
            Box::pin(async move {
                // The assertion covers the message: read it (every kefu call is unary), sign, send.
                let (mut parts, body) = request.into_parts();
                let message = http_body_util::BodyExt::collect(body).await?.to_bytes();
                let assertion = key.sign(issuer, parts.uri.path(), &parts.headers, &message, SystemTime::now());
                if let Ok(value) = HeaderValue::try_from(assertion) {
                    parts.headers.insert(ASSERTION, value);
                }
                let request = Request::from_parts(parts, Body::new(http_body_util::Full::new(message)));
                tower::Service::call(&mut channel, request).await
            });
        tracing::Instrument::instrument(call, span)
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

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if is_open(&path) {
            return Box::pin(self.inner.call(request));
        }
        let refused = |service: ServiceName, path: &str, refusal: Refusal| {
            let count = REFUSED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(%service, method = %path, reason = refusal.as_str(), refused_calls = count, "call refused at a service port");
            status_response(Status::unauthenticated(format!(
                "this is the {service} service's internal port, which serves only kefu's gateway and services (the call had {}); call the gateway instead, with a bearer token",
                refusal.as_str()
            )))
        };
        let verified = self.key.verify(&path, request.headers(), SystemTime::now()).and_then(|verified| {
            if may_call(&verified.issuer, &path) { Ok(verified) } else { Err(Refusal::WrongIssuer) }
        });
        let verified = match verified {
            Ok(verified) => verified,
            Err(refusal) => {
                let response = refused(self.service, &path, refusal);
                return Box::pin(async move { Ok(response) });
            }
        };
        // The service `poll_ready` made ready takes the call; a clone stays for the next one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let (key, service) = (self.key.clone(), self.service);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let limited = http_body_util::Limited::new(body, crate::server::MAX_REQUEST_BYTES + 5);
            let accepted = match http_body_util::BodyExt::collect(limited).await {
                Ok(collected) => {
                    let message = collected.to_bytes();
                    key.accept(verified, &message, SystemTime::now()).map(|issuer| (issuer, message))
                }
                Err(_) => Err(Refusal::Unreadable),
            };
            match accepted {
                Ok((issuer, message)) => {
                    parts.extensions.insert(Issuer(issuer));
                    inner.call(Request::from_parts(parts, Body::new(http_body_util::Full::new(message)))).await
                }
                Err(refusal) => Ok(refused(service, &path, refusal)),
            }
        })
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
    const BODY: &[u8] = b"\0\0\0\0\x0eclaims/C-0001";

    fn signed(key: &InternalKey, user: &str, now: SystemTime) -> HeaderMap {
        let mut headers = headers(user);
        let assertion = key.sign(GATEWAY, PATH, &headers, BODY, now);
        headers.insert(ASSERTION, HeaderValue::from_str(&assertion).expect("ascii"));
        headers
    }

    fn check(
        key: &InternalKey,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<String, Refusal> {
        key.verify(path, headers, now).and_then(|verified| key.accept(verified, body, now))
    }

    #[test]
    fn a_signed_call_verifies_as_its_issuer() {
        let key = InternalKey::new(&"k".repeat(32));
        let now = SystemTime::now();
        assert_eq!(check(&key, PATH, &signed(&key, "A1024", now), BODY, now), Ok(GATEWAY.to_owned()));
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
        garbage.insert(ASSERTION, HeaderValue::from_static("v1.gateway.1.00"));
        assert_eq!(key.verify(PATH, &garbage, now), Err(Refusal::Malformed));
    }

    /// Issue 41: a recorded assertion approved another claim, and was good for 90 s. It now covers
    /// its message and is taken once.
    #[test]
    fn an_assertion_carries_one_message_once() {
        let key = InternalKey::new(&"k".repeat(32));
        let now = SystemTime::now();
        let headers = signed(&key, "A1024", now);
        let other = b"\0\0\0\0\x0eclaims/C-0002";
        assert_eq!(check(&key, PATH, &headers, other, now), Err(Refusal::OtherMessage));
        assert_eq!(check(&key, PATH, &headers, BODY, now), Ok(GATEWAY.to_owned()));
        assert_eq!(check(&key, PATH, &headers, BODY, now), Err(Refusal::Replayed));
        // A fresh assertion for the same message is another call.
        assert_eq!(check(&key, PATH, &signed(&key, "A1024", now), BODY, now), Ok(GATEWAY.to_owned()));
        // An expired nonce is forgotten, and its assertion refused as expired.
        let later = now + LIFETIME + SKEW + Duration::from_secs(2);
        assert_eq!(check(&key, PATH, &signed(&key, "A1024", later), BODY, later), Ok(GATEWAY.to_owned()));
        assert_eq!(key.replays.seen.lock().expect("not poisoned").0.len(), 1, "the expired were swept");
    }

    #[test]
    fn only_services_deliver_events_and_only_the_gateway_calls_public_methods() {
        assert!(may_call("claims", DELIVER));
        assert!(!may_call(GATEWAY, DELIVER));
        assert!(may_call(GATEWAY, PATH));
        assert!(!may_call("claims", PATH));
    }
}
