//! Inspection (监察部): investigates service failures, divides responsibility, fines, and escalates repeat complaints.
//!
//! Today inspection accepts the complaints the routing policy gives it — each becomes a record named
//! `cases/{case_number}`, and intake is told so — and shows them through `kefu.inspection.v1.Inspection`.
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
use kefu_proto::inspection::v1::{self as pb, inspection_server};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Inspection;
pub const SERVICE_NAME: &str = "kefu.inspection.v1.Inspection";
/// Records are named `cases/{case_number}`.
pub const COLLECTION: &str = "cases";

pub static MIGRATIONS: &[&Migration] = &[&routed::MIGRATION];

/// Serves inspection on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec =
        ServiceSpec { name: NAME, migrations: MIGRATIONS, service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"] };
    run_service(spec, config, clock, listener, shutdown, |context| {
        Routes::new(inspection_server::InspectionServer::new(InspectionApi { context: context.clone() }))
            .add_service(routed::inbox(context, COLLECTION))
    })
    .await
}

struct InspectionApi {
    context: ServiceContext,
}

#[tonic::async_trait]
impl inspection_server::Inspection for InspectionApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::Case>, Status> {
        let row = routed::get_by_name(&self.context.db, &request.into_inner().name, COLLECTION).await?;
        Ok(Response::new(to_proto(row)))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let request = request.into_inner();
        let (rows, next_page_token) =
            routed::list_page(&self.context.db, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListCasesResponse { cases: rows.into_iter().map(to_proto).collect(), next_page_token }))
    }
}

fn to_proto(row: routed::Model) -> pb::Case {
    pb::Case {
        name: format!("{COLLECTION}/{}", row.case_number),
        complaint: Some(row.to_proto()),
        accept_time: Some(to_timestamp(row.accept_time)),
    }
}
