//! The sender: it reads the due deliveries (by the state and time index) of the endpoints not being
//! posted to, and posts them, each endpoint in a task of its own — one at a time per endpoint, in
//! the order they were written — so that a slow or dead endpoint holds up nobody else. It looks
//! every [`POLL_EVERY`] while it finds deliveries or is woken by new ones ([`super::Wake`]); each
//! look that finds none doubles the wait, up to [`IDLE_POLL_MAX`], so an idle intake is idle.
//!
//! Each attempt is recorded with what the endpoint answered; a failure is tried again after
//! [`super::backoff`], for [`super::RETRY_FOR`], and the endpoint's other deliveries wait until
//! then too.
//!
//! Several replicas of intake may send: each delivery is claimed before its attempt
//! ([`store::claim`]), so one replica posts it, and another takes it over if that one dies.
//!
//! Times of attempts and retries are the service's clock (injected in tests); the timeout of one
//! POST is real time.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use kefu_kit::{error, server::ServiceContext, time::to_micros};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use sea_orm::TransactionTrait;
use tonic::Status;

use super::{
    address::{self, Allowed, GuardedResolver},
    backoff, signature, store,
};

/// How soon the sender looks for due deliveries after a look that found some, or after it was
/// woken by deliveries written.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// How long the sender waits at most between two looks: when nothing has been written in this
/// process, only retries falling due and deliveries written by another replica are there to find.
pub const IDLE_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// How long past the timeout a claimed delivery waits before another replica may take it: only
/// when the replica that claimed it died before recording the attempt.
const CLAIM_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// Due deliveries read in one round at most.
const ROUND: u64 = 500;

/// The header with the delivery id, the same on every attempt.
pub const DELIVERY_HEADER: &str = "kefu-delivery";
/// The header naming the event.
pub const EVENT_HEADER: &str = "kefu-event";
/// The header with `t=<unix seconds>,sha256=<hex>`: HMAC-SHA256 with the endpoint's secret over the
/// time, a dot and the body (see `webhooks::signature`).
pub const SIGNATURE_HEADER: &str = "kefu-signature";

pub struct Sender {
    context: ServiceContext,
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    /// Where webhooks may go.
    allowed: Arc<Allowed>,
    /// Opens the endpoints' sealed secrets.
    secrets: super::sealed::SecretBox,
    /// How long one POST may take, connecting included.
    timeout: std::time::Duration,
    /// Endpoints with a task posting to them now.
    busy: Arc<Mutex<HashSet<String>>>,
    /// What wakes the sender: deliveries written, and an endpoint's task ended.
    wake: super::Wake,
}

/// What became of one POST.
enum Outcome {
    Answered(u16),
    Unreached(String),
}

impl Sender {
    /// A sender posting with `tls` to `https://` endpoints, to `http://` ones in the clear.
    pub fn new(
        context: ServiceContext,
        timeout: std::time::Duration,
        tls: ClientConfig,
        rules: super::Rules,
        wake: super::Wake,
    ) -> Arc<Sender> {
        let allowed = rules.allowed;
        let mut connector = HttpConnector::new_with_resolver(GuardedResolver::new(allowed.clone()));
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let connector =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Arc::new(Sender { context, client, allowed, secrets: rules.secrets, timeout, busy: Arc::default(), wake })
    }

    /// Looks for due deliveries until `shutdown`: within [`POLL_EVERY`] of a look that found some
    /// or of a wake, after twice the last wait (at most [`IDLE_POLL_MAX`]) of one that found none.
    pub async fn run(self: Arc<Self>, shutdown: kefu_kit::shutdown::Shutdown) {
        let mut wait = POLL_EVERY;
        loop {
            let found = match self.round().await {
                Ok(found) => found,
                Err(error) => {
                    kefu_kit::shutdown::job_failed("sending webhooks", Some(error));
                    false
                }
            };
            wait = next_wait(wait, found);
            tokio::select! {
                () = shutdown.clone().wait() => return,
                () = self.wake.woken() => {
                    // Woken in the writing transaction: look once it has had time to commit.
                    wait = POLL_EVERY;
                    tokio::select! {
                        () = shutdown.clone().wait() => return,
                        () = tokio::time::sleep(POLL_EVERY) => {}
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts a task for every endpoint with due deliveries and no task running. Whether it found
    /// any.
    pub async fn round(self: &Arc<Self>) -> Result<bool, Status> {
        let now = to_micros(self.context.clock.now());
        let busy: Vec<String> =
            self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect();
        let due = store::due(&self.context.db, now, ROUND, &busy)
            .await
            .map_err(|e| error::from_db("finding due webhook deliveries", e))?;
        let found = !due.is_empty();
        let mut by_endpoint: Vec<(String, Vec<store::delivery::Model>)> = Vec::new();
        for delivery in due {
            match by_endpoint.iter_mut().find(|(webhook_id, _)| *webhook_id == delivery.webhook_id) {
                Some((_, deliveries)) => deliveries.push(delivery),
                None => by_endpoint.push((delivery.webhook_id.clone(), vec![delivery])),
            }
        }
        for (webhook_id, deliveries) in by_endpoint {
            let Some(claim) = Claim::take(&self.busy, &webhook_id) else { continue };
            let sender = Arc::clone(self);
            tokio::spawn(async move {
                sender.deliver_to(&webhook_id, deliveries).await;
                drop(claim);
                // The endpoint's deliveries written while it was busy go next.
                sender.wake.wake();
            });
        }
        Ok(found)
    }

    /// Posts `deliveries` to their endpoint in order, until one fails.
    async fn deliver_to(&self, webhook_id: &str, deliveries: Vec<store::delivery::Model>) {
        let endpoint = match store::endpoint_by_id(&self.context.db, webhook_id).await {
            Ok(Some(endpoint)) if endpoint.active => endpoint,
            Ok(_) => return,
            Err(error) => {
                kefu_kit::error::log_db("webhooks: reading an endpoint", &error);
                return;
            }
        };
        for delivery in deliveries {
            match self.attempt(&endpoint, delivery).await {
                Ok(None) => {}
                Ok(Some(_)) => return,
                Err(error) => {
                    kefu_kit::error::log_db("webhooks: recording an attempt", &error);
                    return;
                }
            }
        }
    }

    /// Posts one delivery and records the attempt. On failure, returns when the endpoint is tried
    /// next: its other deliveries wait until then too, so that a dead endpoint's backlog is not
    /// tried (and does not fill the rounds) meanwhile.
    async fn attempt(
        &self,
        endpoint: &store::endpoint::Model,
        delivery: store::delivery::Model,
    ) -> Result<Option<DateTime<Utc>>, sea_orm::DbErr> {
        let attempt_time = to_micros(self.context.clock.now());
        let lease = chrono::Duration::from_std(self.timeout).unwrap_or_default() + CLAIM_MARGIN;
        if !store::claim(&self.context.db, &delivery, attempt_time, attempt_time + lease).await? {
            return Ok(None);
        }
        let started = Instant::now();
        let outcome = self.post(endpoint, &delivery).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, error) = match &outcome {
            Outcome::Answered(status) if (200..300).contains(status) => (*status, String::new()),
            Outcome::Answered(status) => (*status, format!("answered HTTP {status}; 2xx expected")),
            Outcome::Unreached(why) => (0, why.clone()),
        };
        let delivered = error.is_empty();
        let mut after = delivery.clone();
        after.attempts += 1;
        let next = attempt_time + backoff(after.attempts);
        if delivered {
            after.state = store::SUCCEEDED.into();
            after.deliver_time = Some(attempt_time);
        } else {
            if next > after.retry_until {
                after.state = store::FAILED.into();
            } else {
                after.next_attempt_time = next;
            }
        }
        let attempt = store::attempt::Model {
            seq: 0,
            delivery_seq: delivery.seq,
            number: after.attempts,
            attempt_time,
            status_code: i32::from(status_code),
            error,
            duration_ms,
        };
        let tx = self.context.db.begin().await?;
        let recorded = store::record_attempt(&tx, &after, attempt).await?;
        if !delivered {
            store::defer(&tx, &endpoint.id, next).await?;
        }
        tx.commit().await?;
        kefu_kit::metrics::webhook_delivery(delivered);
        if delivered {
            tracing::info!(webhook = %endpoint.id, delivery = %delivery.delivery_id, event = %delivery.event, "webhook delivered");
        } else {
            tracing::warn!(
                webhook = %endpoint.id, delivery = %delivery.delivery_id, attempts = after.attempts, state = %after.state,
                status = status_code, "webhook delivery failed"
            );
        }
        Ok((recorded && !delivered).then_some(next))
    }

    async fn post(&self, endpoint: &store::endpoint::Model, delivery: &store::delivery::Model) -> Outcome {
        // An address in the URL is checked here; a name, each time it resolves (GuardedResolver).
        let host = endpoint.url.parse::<http::Uri>().ok().and_then(|uri| uri.host().map(str::to_owned));
        let literal = host.as_deref().map(|host| host.trim_start_matches('[').trim_end_matches(']'));
        if let Some(ip) = literal.and_then(|host| host.parse::<std::net::IpAddr>().ok())
            && !self.allowed.permits(ip)
        {
            return Outcome::Unreached(Failure::NotAllowed.to_string());
        }
        let Some(secret) = self.secrets.open(&endpoint.id, &endpoint.secret) else {
            tracing::error!(webhook = %endpoint.id, "the endpoint's secret does not open with this webhook key");
            return Outcome::Unreached(
                "not sent: the endpoint's secret does not open with the webhook key (KEFU_WEBHOOK_KEY changed?)".into(),
            );
        };
        let signed_at = self.context.clock.now().timestamp();
        let request = http::Request::post(endpoint.url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("kefu-webhooks/", env!("CARGO_PKG_VERSION")))
            .header(DELIVERY_HEADER, delivery.delivery_id.as_str())
            .header(EVENT_HEADER, delivery.event.as_str())
            .header(SIGNATURE_HEADER, signature(&secret, signed_at, delivery.body.as_bytes()))
            .body(Full::new(Bytes::from(delivery.body.clone())));
        let request = match request {
            Ok(request) => request,
            Err(_) => return Outcome::Unreached(Failure::BadUrl.to_string()),
        };
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Outcome::Unreached(format!("no answer within {:?}", self.timeout)),
            Ok(Err(error)) => {
                let failure = Failure::of(&chain(&error));
                tracing::debug!(webhook = %endpoint.id, error = %chain(&error), "webhook connection failed");
                Outcome::Unreached(failure.to_string())
            }
            Ok(Ok(response)) => Outcome::Answered(response.status().as_u16()),
        }
    }
}

/// The TLS of `https://` endpoints: Mozilla's roots (compiled in, so a container needs no CA
/// bundle) and the CA certificates of `ca_file` (PEM), if given.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let shown = path.display();
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("KEFU_WEBHOOK_CA_FILE={shown}: cannot read it: {error}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("KEFU_WEBHOOK_CA_FILE={shown}: not PEM certificates: {error}"))?;
        if certificates.is_empty() {
            return Err(format!("KEFU_WEBHOOK_CA_FILE={shown}: no CERTIFICATE in it; expected PEM CA certificates"));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| format!("KEFU_WEBHOOK_CA_FILE={shown}: a certificate is not usable: {error}"))?;
        }
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|error| format!("TLS for webhooks: {error}"))
}

/// Why a POST did not get an answer, as the attempt record keeps it: a short category, never the
/// raw socket error (which would make the record a port scanner's report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NotAllowed,
    NoSuchHost,
    Certificate,
    Refused,
    Closed,
    BadUrl,
    Unreachable,
}

impl Failure {
    fn of(error: &str) -> Failure {
        let error = error.to_ascii_lowercase();
        if error.contains(address::NOT_ALLOWED) {
            Failure::NotAllowed
        } else if error.contains("certificate") || error.contains("tls") || error.contains("handshake") {
            Failure::Certificate
        } else if error.contains("dns") || error.contains("lookup") || error.contains("resolve") {
            Failure::NoSuchHost
        } else if error.contains("refused") {
            Failure::Refused
        } else if error.contains("reset") || error.contains("closed") || error.contains("eof") {
            Failure::Closed
        } else {
            Failure::Unreachable
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failure::NotAllowed => "not sent: the host is an internal address (KEFU_WEBHOOK_ALLOW_PRIVATE)",
            Failure::NoSuchHost => "the host name does not resolve",
            Failure::Certificate => "TLS failed: the server's certificate is not trusted, or the handshake failed",
            Failure::Refused => "the connection was refused",
            Failure::Closed => "the connection was closed before an answer",
            Failure::BadUrl => "the URL cannot be requested",
            Failure::Unreachable => "the endpoint could not be reached",
        })
    }
}

/// An error with its causes, as one line ("client error (Connect): tcp connect error: Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// An endpoint marked busy while its task runs; unmarked when the task ends, even by a panic.
struct Claim {
    busy: Arc<Mutex<HashSet<String>>>,
    webhook_id: String,
}

impl Claim {
    fn take(busy: &Arc<Mutex<HashSet<String>>>, webhook_id: &str) -> Option<Claim> {
        let mut set = busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set.insert(webhook_id.to_owned()).then(|| Claim { busy: Arc::clone(busy), webhook_id: webhook_id.to_owned() })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set.remove(&self.webhook_id);
    }
}

/// How long the sender waits before it looks again: [`POLL_EVERY`] after a look that found
/// deliveries, twice the last wait after one that found none, at most [`IDLE_POLL_MAX`].
fn next_wait(last: std::time::Duration, found: bool) -> std::time::Duration {
    if found { POLL_EVERY } else { (last * 2).min(IDLE_POLL_MAX) }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use chrono::{Duration, TimeZone, Utc};
    use kefu_kit::{Config, ManualClock, server::ServiceContext};

    use super::{IDLE_POLL_MAX, POLL_EVERY, next_wait, store, tls_config};

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/webhook-tls").join(name)
    }

    #[test]
    fn an_idle_sender_looks_less_and_less_often() {
        assert_eq!(next_wait(POLL_EVERY, false), POLL_EVERY * 2);
        assert_eq!(next_wait(POLL_EVERY * 16, false), IDLE_POLL_MAX, "at most every five seconds");
        assert_eq!(next_wait(IDLE_POLL_MAX, false), IDLE_POLL_MAX);
        assert_eq!(next_wait(IDLE_POLL_MAX, true), POLL_EVERY, "deliveries found: look again soon");
    }

    #[test]
    fn a_ca_file_is_read_and_a_bad_one_is_named() {
        assert!(tls_config(None).is_ok());
        assert!(tls_config(Some(&fixture("ca.pem"))).is_ok());
        let missing = tls_config(Some(&fixture("missing.pem"))).expect_err("no such file");
        assert!(missing.starts_with("KEFU_WEBHOOK_CA_FILE=") && missing.contains("cannot read"), "{missing}");
        let not_certificates = tls_config(Some(&fixture("README.md"))).expect_err("no certificate");
        assert!(not_certificates.contains("no CERTIFICATE"), "{not_certificates}");
    }

    /// Two replicas reading the same due delivery: one posts it; the other takes it over only when
    /// the first never recorded its attempt. On a real SQLite database.
    #[tokio::test]
    async fn a_delivery_is_claimed_by_one_replica_at_a_time() {
        let dir = tempfile::tempdir().expect("a directory");
        let data_dir = dir.path().display().to_string();
        let config = Config::from_lookup(|key| (key == "KEFU_DATA_DIR").then(|| data_dir.clone())).expect("config");
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).single().expect("a time");
        let clock = Arc::new(ManualClock::new(now));
        let context = ServiceContext::open(crate::NAME, &config, clock, crate::MIGRATIONS).await.expect("opened");
        let delivery = store::delivery::Model {
            seq: 0,
            delivery_id: "0193a3c4-0000-7000-8000-000000000001".into(),
            webhook_id: "0193a3c4-0000-7000-8000-000000000002".into(),
            event: "registered".into(),
            case_number: "20261123-7K3M9Q".into(),
            body: "{}".into(),
            state: store::PENDING.into(),
            attempts: 0,
            next_attempt_time: now,
            retry_until: now + Duration::days(1),
            create_time: now,
            deliver_time: None,
        };
        store::insert_deliveries(&context.db, vec![delivery]).await.expect("inserted");
        let read = store::due(&context.db, now, 10, &[]).await.expect("due");
        assert_eq!(read.len(), 1);
        let lease = now + Duration::minutes(2);
        assert!(store::claim(&context.db, &read[0], now, lease).await.expect("claim"), "the first replica");
        assert!(!store::claim(&context.db, &read[0], now, lease).await.expect("claim"), "not the second");
        assert!(store::due(&context.db, now, 10, &[]).await.expect("due").is_empty());
        // The first replica died mid-attempt: at the end of its lease the delivery is due again.
        let later = store::due(&context.db, lease, 10, &[]).await.expect("due");
        assert_eq!(later.len(), 1);
        assert!(store::claim(&context.db, &later[0], lease, lease + Duration::minutes(2)).await.expect("claim"));
    }
}
