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
    server::{StartError, channel_to, serve, standard_routes},
};
use kefu_proto::intake::v1::intake_client::IntakeClient;
use tokio::net::TcpListener;
use tonic::service::Routes;

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
    let backends = ServiceName::ALL
        .into_iter()
        .map(|service| Ok((service, channel_to(config, service)?)))
        .collect::<Result<Vec<_>, StartError>>()?;
    // The Complaints API reaches intake over the same channel the forwarding uses.
    let intake =
        backends.iter().find(|(service, _)| *service == ServiceName::Intake).map(|(_, channel)| channel.clone());
    let intake =
        intake.ok_or_else(|| StartError::Config { service: ServiceName::Intake, message: "no channel".into() })?;
    let complaints = complaints::ComplaintsApi::new(policy, IntakeClient::new(intake));
    let local = standard_routes(Routes::new(complaints.into_server()), PUBLIC_SERVICES).await?.prepare();
    serve(forward::Dispatch::new(local, backends), listener, shutdown).await
}
