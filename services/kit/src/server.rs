//! Starting a service: its database, migrations and outbox relay ([`ServiceContext`]), and the one
//! gRPC server shape every kefu process uses — health (`grpc.health.v1`), reflection
//! (`grpc.reflection.v1`, and v1alpha for older clients), a tracing span per call, and graceful
//! shutdown with a time limit ([`serve`]).

use std::{convert::Infallible, sync::Arc, time::Duration};

use chrono_tz::Tz;
use http::{Request, Response};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::{body::Body, server::NamedService, service::Routes, transport::Server};

use crate::{
    clock::SharedClock,
    config::{Config, ServiceName},
    db,
    limits::Limits,
    migrate,
    migrate::Migration,
    observe::Observed,
    outbox::RelayWaker,
    readiness::Readiness,
    relay::Relay,
    shutdown::Shutdown,
    trust::{InternalKey, SignedChannel, Verify},
    upkeep::{self, Retention, Upkeep},
};

/// The largest request message any kefu service takes (claims' evidence: up to 4 MiB of content,
/// with room for the rest); the gateway reads no more than this either.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// How long in-flight calls may take to finish once shutdown is asked for.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{service}: database: {source}")]
    Database { service: ServiceName, source: sea_orm::DbErr },
    #[error("{service}: {message}")]
    Config { service: ServiceName, message: String },
    /// A problem of a part that is not a service (the gateway), or of every part alike.
    #[error("{part}: {message}")]
    Setup { part: &'static str, message: String },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// What every service's handlers share.
#[derive(Clone)]
pub struct ServiceContext {
    pub name: ServiceName,
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    pub time_zone: Tz,
    /// Call after committing an outbox row.
    pub relay: RelayWaker,
}

impl ServiceContext {
    /// Connects to the service's database and applies its migrations (the kit's outbox and
    /// inbox tables first).
    pub async fn open(
        name: ServiceName,
        config: &Config,
        clock: SharedClock,
        migrations: &[&Migration],
    ) -> Result<Self, StartError> {
        let database = |source| StartError::Database { service: name, source };
        let db = db::connect(config, name.as_str()).await.map_err(database)?;
        let mut all = vec![
            &crate::outbox::MIGRATION,
            &crate::inbox::MIGRATION_RECEIVE_TIME,
            &crate::outbox::MIGRATION_EVENT_ID_NOT_UNIQUE,
            &crate::outbox::MIGRATION_VACUUM_KEEPS_PAGES,
        ];
        all.extend_from_slice(migrations);
        let applied = migrate::run(&db, name.as_str(), &all).await.map_err(database)?;
        if !applied.is_empty() {
            tracing::info!(service = %name, ?applied, "migrations applied");
        }
        Ok(ServiceContext { name, db, clock, time_zone: config.time_zone, relay: RelayWaker::default() })
    }

    /// The relay that delivers this service's outbox, signing its deliveries as this service.
    pub fn relay(&self, config: &Config) -> Result<Relay, StartError> {
        let receivers = ServiceName::ALL
            .into_iter()
            .map(|service| Ok((service, signed_channel_to(config, service, self.name.as_str())?)))
            .collect::<Result<_, StartError>>()?;
        Ok(Relay::new(self.name, self.db.clone(), self.clock.clone(), self.relay.clone(), receivers))
    }
}

/// How kefu dials any of its parts (a service, the gateway): TCP_NODELAY, so a small request or
/// answer is never held for the peer's delayed ACK, and a 2-second connect timeout.
pub fn endpoint(url: &str) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true))
}

/// A channel to `service` where `config` says it is; connects on first use and reconnects as needed.
pub fn channel_to(config: &Config, service: ServiceName) -> Result<tonic::transport::Channel, StartError> {
    let url = &config.endpoint(service).url;
    Ok(endpoint(url)
        .map_err(|error| StartError::Config {
            service,
            message: format!("KEFU_{}_URL={url:?} is not a URL: {error}", service.as_str().to_uppercase()),
        })?
        .connect_lazy())
}

/// The installation's internal key, which every part of kefu needs to call or serve another.
pub fn internal_key(config: &Config, part: &'static str) -> Result<InternalKey, StartError> {
    match &config.internal_key {
        Some(secret) => Ok(InternalKey::new(secret.expose())),
        None => Err(StartError::Setup {
            part,
            message: "KEFU_INTERNAL_KEY is not set: every kefu process of one installation needs the same internal key (at least 32 characters, e.g. `openssl rand -hex 32`; in Kubernetes the Secret kefu-internal-key). `kefu up` makes its own.".into(),
        }),
    }
}

/// A channel to `service` whose calls are signed as `issuer` (see [`crate::trust`]).
pub fn signed_channel_to(
    config: &Config,
    service: ServiceName,
    issuer: &'static str,
) -> Result<SignedChannel, StartError> {
    Ok(SignedChannel::new(channel_to(config, service)?, internal_key(config, issuer)?, issuer))
}

/// Health and reflection for the named gRPC services, plus those services' routes; and the
/// [`Readiness`] that health reports.
pub async fn standard_routes(
    routes: Routes,
    part: &'static str,
    service_names: &[&str],
) -> Result<(Routes, Readiness), StartError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let readiness = Readiness::new(health, part, service_names).await;
    let reflection_names = |builder: tonic_reflection::server::Builder<'static>| {
        let mut builder = builder
            .register_encoded_file_descriptor_set(kefu_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(<tonic_health::pb::health_server::HealthServer<()> as NamedService>::NAME)
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for name in service_names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = reflection_names(tonic_reflection::server::Builder::configure()).build_v1()?;
    let reflection_v1alpha = reflection_names(tonic_reflection::server::Builder::configure()).build_v1alpha()?;
    Ok((routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha), readiness))
}

/// The most a `grpc-message` header may carry, percent-encoded, and a `grpc-status-details-bin`,
/// base64-encoded. HTTP/2 peers limit a header block (16 KiB by default): a status past that tears
/// down the whole connection, and with it the calls of every other caller sharing it.
pub const MAX_STATUS_MESSAGE: usize = 1_024;
pub const MAX_STATUS_DETAILS: usize = 8 * 1_024;

/// Keeps every error status a server sends small (see [`MAX_STATUS_MESSAGE`]): a message is cut,
/// details too large are dropped. Handlers already bound what they echo; this is the guarantee.
#[derive(Clone)]
pub struct BoundedStatus<S>(S);

impl<S> tower::Service<Request<Body>> for BoundedStatus<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let future = self.0.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            bound_status(response.headers_mut());
            Ok(response)
        })
    }
}

fn bound_status(headers: &mut http::HeaderMap) {
    let too_long = |name: &str, limit: usize| headers.get(name).is_some_and(|value| value.len() > limit);
    if !too_long("grpc-message", MAX_STATUS_MESSAGE) && !too_long("grpc-status-details-bin", MAX_STATUS_DETAILS) {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else { return };
    // Percent-encoding triples every byte but printable ASCII: cut by the encoded length.
    let mut message = String::new();
    let mut encoded = 0;
    for c in status.message().chars() {
        let cost = if c.is_ascii_graphic() && c != '%' || c == ' ' { 1 } else { 3 * c.len_utf8() };
        if encoded + cost > MAX_STATUS_MESSAGE - 16 {
            message.push('…');
            break;
        }
        encoded += cost;
        message.push(c);
    }
    let details =
        if status.details().len() * 4 / 3 <= MAX_STATUS_DETAILS { status.details().to_vec() } else { Vec::new() };
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    let _ = tonic::Status::with_details(status.code(), message, details.into()).add_header(headers);
}

/// Serves `service` on `listener` until `shutdown`. Draining, it reports `NOT_SERVING` through
/// `readiness` and goes on answering; stopping, it takes no new connections and lets calls in
/// flight finish (at most [`DRAIN_LIMIT`]). Every server of kefu is this one stack, read from the
/// outside in:
///
/// 1. the listener's connections ([`crate::limits::incoming`]): at most so many open, and so many
///    from one peer address, each closed if it makes no whole first request in time; then TLS,
///    where it is configured (the gateway's);
/// 2. HTTP/2 and calls (the builder): keep-alive, a connection's age, calls per connection with load
///    shedding (`RESOURCE_EXHAUSTED` at once, never a queue), a timeout per call (or the caller's
///    shorter `grpc-timeout`);
/// 3. the connection is marked served ([`crate::limits::Peer::mark_served`]): its handshake clock
///    stops;
/// 4. [`Observed`]: each call's span (exported as OpenTelemetry's where configured), its duration,
///    method and status, and the calls in flight;
/// 5. [`BoundedStatus`]: no error status too large for HTTP/2;
/// 6. `service`: the gateway's front door, or a service's door (`trust::Verify`) and its routes.
pub async fn serve<S>(
    service: S,
    listener: TcpListener,
    limits: &Limits,
    tls: Option<tonic::transport::ServerTlsConfig>,
    readiness: Readiness,
    shutdown: Shutdown,
    part: &'static str,
) -> Result<(), StartError>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let calls = u32::try_from(limits.calls_per_connection).unwrap_or(u32::MAX);
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        // At its age a connection is told to go (HTTP/2 GOAWAY): the client takes its next calls
        // to a new connection and the calls in flight finish, each within the call timeout. No
        // `max_connection_age_grace`: with it, tonic sends no GOAWAY at all and cuts the
        // connection at age + grace, failing every call in flight (82 of an hour's calls at 64
        // callers, docs/benchmarks.md, "eighth round").
        .max_connection_age(limits.max_connection_age)
        .max_concurrent_streams(calls)
        .concurrency_limit_per_connection(limits.calls_per_connection)
        .load_shed(true)
        .timeout(limits.call_timeout)
        .serve_with_incoming_shutdown(
            // The stack within a call, outermost first: the call's span and metrics, the bound on
            // error statuses, then the service (the gateway's front door, or a service's door and
            // its routes).
            tower::ServiceBuilder::new()
                .map_request(|request: Request<Body>| {
                    if let Some(peer) = crate::limits::Peer::of(&request) {
                        peer.mark_served();
                    }
                    request
                })
                .layer_fn(|inner| Observed::new(inner, part))
                .layer_fn(BoundedStatus)
                .service(service),
            crate::limits::incoming(listener, limits),
            shutdown.clone().wait(),
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(StartError::from),
        _ = shutdown.clone().draining() => readiness.drain().await,
    }
    tokio::select! {
        result = &mut server => return result.map_err(StartError::from),
        _ = shutdown.wait() => {}
    }
    match tokio::time::timeout(DRAIN_LIMIT, server).await {
        Ok(result) => result.map_err(StartError::from),
        Err(_) => {
            tracing::warn!("calls still in flight after {DRAIN_LIMIT:?}; stopping anyway");
            Ok(())
        }
    }
}

/// The gateway's TLS as `config` says, reading its files now: `None` for plaintext.
pub fn tls_config(config: &Config) -> Result<Option<tonic::transport::ServerTlsConfig>, StartError> {
    let Some(files) = &config.tls else { return Ok(None) };
    let read = |path: &std::path::Path, variable: &str| {
        std::fs::read(path).map_err(|error| StartError::Setup {
            part: "gateway",
            message: format!("{variable}={}: cannot read it: {error}", path.display()),
        })
    };
    let identity = tonic::transport::Identity::from_pem(
        read(&files.cert, "KEFU_TLS_CERT_FILE")?,
        read(&files.key, "KEFU_TLS_KEY_FILE")?,
    );
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(client_ca) = &files.client_ca {
        let ca = read(client_ca, "KEFU_TLS_CLIENT_CA_FILE")?;
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

/// Where a service starts: its name, its migrations, and the gRPC services it serves.
pub struct ServiceSpec {
    pub name: ServiceName,
    pub migrations: &'static [&'static Migration],
    /// The fully qualified names its health and reflection report.
    pub service_names: &'static [&'static str],
    /// What it prunes besides the inbox ([`crate::upkeep`]).
    pub retentions: &'static [&'static Retention],
}

/// What a service serves, and the jobs it runs beside its routes until shutdown (chasing overdue
/// cases, sending webhooks, …). Jobs are joined before the service returns: shutdown never cuts a
/// job's transaction short.
pub struct Served {
    routes: Routes,
    jobs: Vec<Job>,
}

type Job = Box<dyn FnOnce(Shutdown) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

impl Served {
    pub fn new(routes: Routes) -> Served {
        Served { routes, jobs: Vec::new() }
    }

    /// Runs `job` every `period` (see [`crate::shutdown::every`]); a failure is logged as `what` failed.
    pub fn every<F, Fut>(mut self, period: std::time::Duration, what: &'static str, job: F) -> Served
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        self.jobs.push(Box::new(move |shutdown| Box::pin(crate::shutdown::every(period, shutdown, what, job))));
        self
    }

    /// Runs `job` once, at start.
    pub fn once(mut self, job: impl Future<Output = ()> + Send + 'static) -> Served {
        self.jobs.push(Box::new(move |_| Box::pin(job)));
        self
    }

    /// Runs `job` until the shutdown it is given fires: a job that keeps its own time (the
    /// webhook sender, which waits longer the less it finds).
    pub fn until_shutdown<Fut>(mut self, job: impl FnOnce(Shutdown) -> Fut + Send + 'static) -> Served
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs.push(Box::new(move |shutdown| Box::pin(job(shutdown))));
        self
    }
}

impl From<Routes> for Served {
    fn from(routes: Routes) -> Served {
        Served::new(routes)
    }
}

/// Runs a service until `shutdown`: opens its database and migrates it, builds its routes and
/// jobs from the context, delivers its outbox in the background, and serves with health and
/// reflection. Returns once the server, the relay and every job have stopped.
pub async fn run_service<S: Into<Served>>(
    spec: ServiceSpec,
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
    serves: impl FnOnce(&ServiceContext) -> S,
) -> Result<(), StartError> {
    let key = internal_key(config, spec.name.as_str())?;
    let context = ServiceContext::open(spec.name, config, clock, spec.migrations).await?;
    let Served { routes, jobs } = serves(&context).into();
    let relay = context.relay(config)?;
    let upkeep = Arc::new(Upkeep::new(context.db.clone(), context.clock.clone(), spec.retentions));
    let mut tasks = vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(crate::shutdown::every(upkeep::EVERY, shutdown.clone(), "upkeep", move || {
            let upkeep = upkeep.clone();
            async move { upkeep.round().await.map_err(|error| crate::error::from_db("upkeep", error)) }
        })),
    ];
    tasks.extend(jobs.into_iter().map(|job| tokio::spawn(job(shutdown.clone()))));
    let part = spec.name.as_str();
    let (routes, readiness) = standard_routes(routes, part, spec.service_names).await?;
    if config.database_url.is_some() {
        tasks.push(tokio::spawn(readiness.clone().watch_database(context.db.clone(), part, shutdown.clone())));
    }
    if config.metrics_addr.is_some() {
        let db = context.db.clone();
        let clock = context.clock.clone();
        tasks.push(tokio::spawn(crate::shutdown::every(
            crate::metrics::SAMPLE_EVERY,
            shutdown.clone(),
            "sampling metrics",
            move || sample(db.clone(), clock.clone(), part),
        )));
    }
    let service = Verify::new(routes.prepare(), key, spec.name);
    let served = serve(service, listener, &config.limits, None, readiness, shutdown, part).await;
    for task in tasks {
        let _ = task.await;
    }
    served
}

/// Samples what the metrics read from a service's database: its outbox's backlog, its pool.
async fn sample(db: DatabaseConnection, clock: SharedClock, part: &'static str) -> Result<(), tonic::Status> {
    crate::metrics::pool_sampled(part, &db);
    let backlog = crate::outbox::backlog(&db, clock.now())
        .await
        .map_err(|error| crate::error::from_db("sampling the outbox", error))?;
    crate::metrics::outbox_sampled(part, &backlog);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;
    use crate::{SystemClock, shutdown::Shutdown};

    #[tokio::test]
    async fn a_service_returns_only_once_its_jobs_have_stopped() {
        let dir = tempfile::tempdir().expect("a directory");
        let data_dir = dir.path().display().to_string();
        let config = Config::from_lookup(|key| match key {
            "KEFU_DATA_DIR" => Some(data_dir.clone()),
            "KEFU_INTERNAL_KEY" => Some("k".repeat(40)),
            _ => None,
        })
        .expect("a configuration");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let (trigger, shutdown) = Shutdown::new();
        let finished = Arc::new(AtomicBool::new(false));
        let job = {
            let (finished, shutdown) = (finished.clone(), shutdown.clone());
            // A job still writing when shutdown is asked for: it takes a moment to finish.
            async move {
                shutdown.wait().await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                finished.store(true, Ordering::SeqCst);
            }
        };
        let spec = ServiceSpec { name: ServiceName::Claims, migrations: &[], service_names: &[], retentions: &[] };
        let clock: SharedClock = Arc::new(SystemClock);
        let service = tokio::spawn(async move {
            run_service(spec, &config, clock, listener, shutdown, |_| Served::new(Routes::default()).once(job)).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        trigger.trigger();
        service.await.expect("joined").expect("served");
        assert!(finished.load(Ordering::SeqCst), "the service returned before its job had finished");
    }
}
