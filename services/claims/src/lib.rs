//! Claims (理赔部): compensates damaged and lost cargo by the company's fixed standards.
//!
//! Today claims accepts the complaints the routing policy gives it — each becomes a record named
//! `claims/{case_number}`, and intake is told so — and shows them through `kefu.claims.v1.Claims`.
//! The department's own work on a case builds on that record.

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    migrate::Migration,
    routed,
    server::{ServiceContext, ServiceSpec, StartError, run_service},
    time::to_timestamp,
};
use kefu_proto::claims::v1::{self as pb, claims_server};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Claims;
pub const SERVICE_NAME: &str = "kefu.claims.v1.Claims";
/// Records are named `claims/{case_number}`.
pub const COLLECTION: &str = "claims";

pub static MIGRATIONS: &[&Migration] = &[&routed::MIGRATION];

/// Serves claims on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec =
        ServiceSpec { name: NAME, migrations: MIGRATIONS, service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"] };
    run_service(spec, config, clock, listener, shutdown, |context| {
        Routes::new(claims_server::ClaimsServer::new(ClaimsApi { context: context.clone() }))
            .add_service(routed::inbox(context, COLLECTION))
    })
    .await
}

struct ClaimsApi {
    context: ServiceContext,
}

#[tonic::async_trait]
impl claims_server::Claims for ClaimsApi {
    async fn get_claim(&self, request: Request<pb::GetClaimRequest>) -> Result<Response<pb::Claim>, Status> {
        let row = routed::get_by_name(&self.context.db, &request.into_inner().name, COLLECTION).await?;
        Ok(Response::new(to_proto(row)))
    }

    async fn list_claims(
        &self,
        request: Request<pb::ListClaimsRequest>,
    ) -> Result<Response<pb::ListClaimsResponse>, Status> {
        let request = request.into_inner();
        let (rows, next_page_token) =
            routed::list_page(&self.context.db, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListClaimsResponse { claims: rows.into_iter().map(to_proto).collect(), next_page_token }))
    }
}

fn to_proto(row: routed::Model) -> pb::Claim {
    pb::Claim {
        name: format!("{COLLECTION}/{}", row.case_number),
        complaint: Some(row.to_proto()),
        accept_time: Some(to_timestamp(row.accept_time)),
    }
}
