//! The gateway: the one address callers need.
//!
//! - [`identity`]: who is calling — the one place authentication will go;
//! - [`policy`]: the routing policy, complaint category → owning service;
//! - [`complaints`]: `kefu.gateway.v1.Complaints`, the public complaint API;
//! - [`forward`]: every call of a `kefu.<service>.v1` package goes, as it is, to that service.
//!
//! The gateway is stateless: it keeps nothing between calls, so any number of replicas can run.

pub mod complaints;
pub mod forward;
pub mod identity;
pub mod policy;

use kefu_kit::{
    Config, Shutdown,
    config::ServiceName,
    server::{StartError, serve, standard_routes},
};
use kefu_proto::intake::v1::intake_client::IntakeClient;
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Channel};

pub use policy::RoutingPolicy;

/// The public gRPC services the gateway's reflection lists: its own and those it forwards to.
pub const PUBLIC_SERVICES: &[&str] = &[
    complaints::SERVICE_NAME,
    "kefu.intake.v1.Intake",
    "kefu.inspection.v1.Inspection",
    "kefu.claims.v1.Claims",
    "kefu.settlement.v1.Settlement",
];

/// Serves the gateway on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    policy: RoutingPolicy,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let channel = |service: ServiceName| -> Result<Channel, StartError> {
        let url = &config.endpoint(service).url;
        Ok(Channel::from_shared(url.clone())
            .map_err(|error| StartError::Config {
                service,
                message: format!("KEFU_{}_URL={url:?} is not a URL: {error}", service.as_str().to_uppercase()),
            })?
            .connect_timeout(std::time::Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy())
    };
    let mut backends = Vec::new();
    for service in ServiceName::ALL {
        backends.push((service, channel(service)?));
    }
    let complaints = complaints::ComplaintsApi::new(policy, IntakeClient::new(channel(ServiceName::Intake)?));
    let local = standard_routes(Routes::new(complaints.into_server()), PUBLIC_SERVICES).await?.prepare();
    serve(forward::Dispatch::new(local, backends), listener, shutdown).await
}
