//! Claims (理赔部): compensates damaged and lost cargo by the company's fixed standards (`001 §10`).
//!
//! A cargo-damage complaint routed here opens a claim named `claims/{case_number}`. The code map:
//!
//! - [`compensation`]: the standards themselves — [`compensation::quote`], a pure function of the
//!   facts and the policy that says how much, by which rule, and why;
//! - [`policy`]: the standards' numbers and the authority limit, replaceable by `KEFU_CLAIMS_POLICY`;
//! - [`claim`]: the life of a claim — facts, investigation, offer, answer, approval — each rule in
//!   [`claim::Claim::apply`];
//! - [`evidence`]: photos and documents with their SHA-256, size and type limits;
//! - [`report`]: the monthly claims report and accident-cause analysis;
//! - [`store`]: the tables; [`api`]: `kefu.claims.v1.Claims`; [`error`]: failures → gRPC statuses.
//!
//! An approved claim queues, in the same transaction, `claim_approved` for settlement (the payout
//! and the responsible party's deduction) and `case_resolved` for intake (the customer is told).

pub mod api;
pub mod claim;
pub mod compensation;
pub mod convert;
pub mod error;
pub mod evidence;
pub mod policy;
pub mod report;
pub mod store;

use std::sync::Arc;

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    migrate::Migration,
    routed,
    server::{ServiceSpec, StartError, run_service},
};
use kefu_proto::claims::v1::claims_server;
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use policy::CompensationPolicy;

pub const NAME: ServiceName = ServiceName::Claims;
pub const SERVICE_NAME: &str = "kefu.claims.v1.Claims";
/// Records are named `claims/{case_number}`.
pub const COLLECTION: &str = "claims";

pub static MIGRATIONS: &[&Migration] = &[
    &routed::MIGRATION,
    &store::MIGRATION,
    &routed::MIGRATION_FIRST_COMPLAINT,
    &store::MIGRATION_HISTORY,
    &store::MIGRATION_FOUR_EYES,
    &store::MIGRATION_EVIDENCE_BY_UPLOADER,
];

/// Serves claims on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let policy = CompensationPolicy::load(config.claims_policy.as_deref())
        .map_err(|error| StartError::Config { service: NAME, message: error.to_string() })?;
    let policy = Arc::new(policy);
    let spec = ServiceSpec {
        name: NAME,
        migrations: MIGRATIONS,
        service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"],
        retentions: &[],
    };
    run_service(spec, config, clock, listener, shutdown, |context| {
        let api = api::ClaimsApi { context: context.clone(), policy, evidence_quota: config.limits.evidence };
        Routes::new(
            claims_server::ClaimsServer::new(api).max_decoding_message_size(kefu_kit::server::MAX_REQUEST_BYTES),
        )
        .add_service(routed::inbox(context, COLLECTION))
    })
    .await
}
