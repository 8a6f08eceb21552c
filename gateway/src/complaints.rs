//! `kefu.gateway.v1.Complaints`: the public complaint API. Creating a complaint applies the
//! routing policy to its category and hands it, with the route, to intake, which records it and
//! the handoff to the owner in one transaction. Reading goes to intake.

use kefu_kit::trust::SignedChannel;
use kefu_kit::{caller::Caller, config::ServiceName, error::FieldViolations, time::to_duration, trace::TraceContext};
use kefu_proto::{
    gateway::v1::{self as pb, complaints_server},
    intake::v1::{self as intake, intake_client::IntakeClient},
};
use tonic::{Request, Response, Status};

use crate::policy::RoutingPolicy;

pub const SERVICE_NAME: &str = "kefu.gateway.v1.Complaints";

pub struct ComplaintsApi {
    policy: RoutingPolicy,
    intake: IntakeClient<SignedChannel>,
}

impl ComplaintsApi {
    pub fn new(policy: RoutingPolicy, intake: IntakeClient<SignedChannel>) -> Self {
        Self { policy, intake }
    }

    pub fn into_server(self) -> complaints_server::ComplaintsServer<Self> {
        complaints_server::ComplaintsServer::new(self)
    }

    /// A request to intake carrying the caller's identity and trace context along.
    fn to_intake<T>(&self, metadata: &tonic::metadata::MetadataMap, message: T) -> Request<T> {
        let mut request = Request::new(message);
        Caller::from_metadata(metadata).write_metadata(request.metadata_mut());
        if let Some(trace) = TraceContext::from_metadata(metadata) {
            trace.write_metadata(request.metadata_mut());
        }
        request
    }
}

#[tonic::async_trait]
impl complaints_server::Complaints for ComplaintsApi {
    async fn create_complaint(
        &self,
        request: Request<pb::CreateComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (metadata, _, request) = request.into_parts();
        let complaint = request.complaint.unwrap_or_default();
        let route = self.policy.route(complaint.category.trim()).cloned();
        let mut register = intake::RegisterComplaintRequest {
            request_id: request.request_id,
            complaint: Some(complaint_to_intake(&complaint)),
            route: None,
            validate_only: false,
            from_request: request.from_request,
        };
        let Some(route) = route else {
            // No route, nothing stored. Ask intake what else is wrong, so the caller hears of
            // every offending field at once.
            let mut violations = FieldViolations::new();
            let category = complaint.category.trim();
            let known = self.policy.categories().collect::<Vec<_>>().join(", ");
            if category.is_empty() {
                violations.add("complaint.category", format!("required: one of {known}"));
            } else {
                violations.add("complaint.category", format!("unknown category {category:?}: use one of {known}"));
            }
            register.validate_only = true;
            if let Err(status) = self.intake.clone().register_complaint(self.to_intake(&metadata, register)).await {
                violations.extend(FieldViolations::from_status(&status).without("complaint.category"));
            }
            return Err(violations.into_status());
        };
        register.route = Some(intake::Route {
            owner: route.owner.as_str().into(),
            responsible_unit: route.responsible_unit.clone(),
            handling_time: Some(to_duration(route.handling_time)),
        });
        let created = self.intake.clone().register_complaint(self.to_intake(&metadata, register)).await?;
        Ok(Response::new(complaint_from_intake(created.into_inner())))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (metadata, _, request) = request.into_parts();
        let found = self
            .intake
            .clone()
            .get_complaint(self.to_intake(&metadata, intake::GetComplaintRequest { name: request.name }))
            .await?;
        Ok(Response::new(complaint_from_intake(found.into_inner())))
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Result<Response<pb::ListComplaintsResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let list = intake::ListComplaintsRequest {
            page_size: request.page_size,
            page_token: request.page_token,
            filter: request.filter,
        };
        let page = self.intake.clone().list_complaints(self.to_intake(&metadata, list)).await?.into_inner();
        Ok(Response::new(pb::ListComplaintsResponse {
            complaints: page.complaints.into_iter().map(complaint_from_intake).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

fn complaint_to_intake(complaint: &pb::Complaint) -> intake::Complaint {
    let contact = complaint.contact.clone().unwrap_or_default();
    intake::Complaint {
        category: complaint.category.clone(),
        waybill_number: complaint.waybill_number.clone(),
        // Both packages number their channels alike.
        channel: complaint.channel,
        description: complaint.description.clone(),
        customer_request: complaint.customer_request.clone(),
        contact: Some(intake::Contact { name: contact.name, phone: contact.phone }),
        branch: complaint.branch.clone(),
        // Both packages number their severities alike.
        severity: complaint.severity,
        ..Default::default()
    }
}

fn complaint_from_intake(complaint: intake::Complaint) -> pb::Complaint {
    let owner = match complaint.owner.parse::<ServiceName>() {
        Ok(ServiceName::Intake) => pb::Department::Intake,
        Ok(ServiceName::Inspection) => pb::Department::Inspection,
        Ok(ServiceName::Claims) => pb::Department::Claims,
        Ok(ServiceName::Settlement) => pb::Department::Settlement,
        Ok(ServiceName::Archives) => pb::Department::Archives,
        Err(_) => pb::Department::Unspecified,
    };
    let state = match intake::State::try_from(complaint.state) {
        Ok(intake::State::Routed) => pb::State::Routed,
        Ok(intake::State::Accepted) => pb::State::Accepted,
        Ok(intake::State::Resolved) => pb::State::Resolved,
        Ok(intake::State::Closed) => pb::State::Closed,
        Ok(intake::State::AwaitingApproval) => pb::State::AwaitingApproval,
        Ok(intake::State::Notified) => pb::State::Notified,
        Ok(intake::State::Reopened) => pb::State::Reopened,
        Ok(intake::State::Duplicate) => pb::State::Duplicate,
        Ok(intake::State::Unspecified) | Err(_) => pb::State::Unspecified,
    };
    let contact = complaint.contact.unwrap_or_default();
    pb::Complaint {
        name: complaint.name,
        category: complaint.category,
        waybill_number: complaint.waybill_number,
        channel: complaint.channel,
        description: complaint.description,
        customer_request: complaint.customer_request,
        contact: Some(pb::Contact { name: contact.name, phone: contact.phone }),
        branch: complaint.branch,
        owner: owner as i32,
        owner_reference: complaint.owner_reference,
        create_time: complaint.create_time,
        deadline: complaint.deadline,
        responsible_unit: complaint.responsible_unit,
        state: state as i32,
        received_by: complaint.received_by,
        resolution: complaint.resolution,
        resolve_time: complaint.resolve_time,
        incident: complaint.incident,
        first_complaint: complaint.first_complaint,
        escalated_to: complaint.escalated_to,
        severity: complaint.severity,
    }
}
