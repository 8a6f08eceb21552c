//! The gateway: the one address callers need.
//!
//! - [`identity`]: who is calling — kefu tokens, single sign-on JWTs, the bootstrap secret, kefu's
//!   own services; [`tokens`] (`kefu.gateway.v1.Tokens`, and every replica's cache of them) and
//!   [`oidc`];
//! - [`access`]: the access table, who may call which RPC, deny by default;
//! - [`rate`]: calls per second per subject; [`refusals`]: refused calls per second per peer
//!   address, and their log lines;
//! - [`guard`]: every request read once against its contract: well-formed, UTF-8, no control characters;
//! - [`policy`]: the routing policy, complaint category → owning service;
//! - [`complaints`]: `kefu.gateway.v1.Complaints`, the public complaint API;
//! - [`forward`]: every call of a `kefu.<service>.v1` package goes, as it is, to that service.
//!
//! The gateway keeps nothing between calls but the tokens, in its own database (a `gateway` schema
//! or file, like a service's), so any number of replicas can run on one database.

pub mod access;
pub mod complaints;
pub mod forward;
pub mod guard;
pub mod identity;
pub mod oidc;
pub mod policy;
pub mod rate;
pub mod refusals;
pub mod tokens;

use std::sync::Arc;

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    server::{StartError, internal_key, serve, signed_channel_to, standard_routes, tls_config},
    trust,
};
use kefu_proto::intake::v1::intake_client::IntakeClient;
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use access::AccessTable;
pub use policy::RoutingPolicy;

/// The public gRPC services the gateway's reflection lists: its own and those it forwards to.
pub const PUBLIC_SERVICES: &[&str] = &[
    complaints::SERVICE_NAME,
    tokens::SERVICE_NAME,
    "kefu.intake.v1.Intake",
    "kefu.inspection.v1.Inspection",
    "kefu.claims.v1.Claims",
    "kefu.settlement.v1.Settlement",
    "kefu.archives.v1.Archives",
];

/// Serves the gateway on `listener` until `shutdown`. Its clock is the system's: it keeps no
/// business time, and credentials expire in real time.
pub async fn run(
    config: &Config,
    policy: RoutingPolicy,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let gateway_error = |message: String| StartError::Setup { part: "gateway", message };
    let access =
        AccessTable::load(config.access_policy.as_deref()).map_err(|error| gateway_error(error.to_string()))?;
    let key = internal_key(config, trust::GATEWAY)?;
    let tls = tls_config(config)?;
    let backends = ServiceName::ALL
        .into_iter()
        .map(|service| Ok((service, signed_channel_to(config, service, trust::GATEWAY)?)))
        .collect::<Result<Vec<_>, StartError>>()?;
    // The Complaints API reaches intake over the same channel the forwarding uses.
    let intake =
        backends.iter().find(|(service, _)| *service == ServiceName::Intake).map(|(_, channel)| channel.clone());
    let intake = intake.ok_or_else(|| gateway_error("no channel to intake".into()))?;
    let db = tokens::open(config).await.map_err(|error| gateway_error(format!("gateway database: {error}")))?;
    let cache = tokens::TokenCache::load(db.clone())
        .await
        .map_err(|error| gateway_error(format!("reading the tokens: {error}")))?;
    let oidc = match &config.oidc {
        Some(oidc) => Some(oidc::Oidc::load(oidc.clone()).map_err(gateway_error)?),
        None => None,
    };
    let oidc = oidc.map(Arc::new);
    // Credentials expire in real time, whatever the business clock of the services says (tests
    // move that one by months and years).
    let real_time: SharedClock = Arc::new(kefu_kit::SystemClock);
    let authenticator = identity::Authenticator::new(
        cache.clone(),
        config.bootstrap_token.as_ref().map(|secret| secret.expose()),
        oidc.clone(),
        key,
        real_time.clone(),
    );
    let complaints = complaints::ComplaintsApi::new(policy, IntakeClient::new(intake));
    let db_for_readiness = db.clone();
    let access = Arc::new(access);
    let tokens_api = tokens::TokensApi::new(db, cache.clone(), real_time, access.clone());
    let routes = Routes::new(complaints.into_server()).add_service(tokens_api.into_server());
    let (local, readiness) = standard_routes(routes, "gateway", PUBLIC_SERVICES).await?;
    // Every replica rereads the tokens, and the issuer's keys if they changed, in the background.
    let mut refreshers = vec![tokio::spawn(cache.keep_fresh(shutdown.clone()))];
    if config.database_url.is_some() {
        refreshers.push(tokio::spawn(readiness.clone().watch_database(db_for_readiness, "gateway", shutdown.clone())));
    }
    if let Some(oidc) = oidc {
        refreshers.push(tokio::spawn(oidc.keep_fresh(shutdown.clone())));
    }
    let limiter = rate::RateLimiter::new(config.limits.rate_per_principal);
    let refusals = refusals::Refusals::new(config.limits.refusals_per_peer);
    let dispatch = forward::Dispatch::new(
        local.prepare(),
        backends,
        Arc::new(authenticator),
        access,
        Arc::new(limiter),
        Arc::new(refusals),
    );
    let served = serve(dispatch, listener, &config.limits, tls, readiness, shutdown, "gateway").await;
    futures_util::future::join_all(refreshers).await;
    served
}
