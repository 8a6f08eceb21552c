//! `kefu.intake.v1.Intake`: proto ⇄ domain, and the registration transaction.

use kefu_kit::{
    caller::Caller,
    case_number,
    config::ServiceName,
    error::{self, FieldViolations},
    outbox, paging,
    server::ServiceContext,
    time::{from_duration, to_micros, to_timestamp},
    trace::TraceContext,
};
use kefu_proto::{
    events::v1::{CaseRouted, event::Payload},
    intake::v1::{self as pb, intake_server},
    types::v1::RoutedComplaint,
};
use sea_orm::{ConnectionTrait, DbBackend};
use tonic::{Request, Response, Status};

use crate::{
    closing,
    domain::{self, Channel, ComplaintFields, NewComplaint, Route, State},
    store,
    writer::{Registration, Writers, Written},
};

pub const SERVICE_NAME: &str = "kefu.intake.v1.Intake";

/// How often registration draws a new case number after a collision before giving up.
const CASE_NUMBER_DRAWS: usize = 8;

pub struct IntakeApi {
    context: ServiceContext,
    writers: Writers,
}

impl IntakeApi {
    pub fn new(context: ServiceContext) -> Self {
        // SQLite has one connection; PostgreSQL gains from a few transactions in flight.
        let writers = match context.db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 4,
        };
        let writers = Writers::start(context.db.clone(), writers);
        Self { context, writers }
    }

    pub fn into_server(self) -> intake_server::IntakeServer<Self> {
        intake_server::IntakeServer::new(self)
    }

    async fn register(
        &self,
        request_id: Option<String>,
        complaint: NewComplaint,
        route: Route,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<store::Model, Status> {
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let deadline = to_micros(now + route.handling_time);
        let owned_here = route.owner == ServiceName::Intake;
        // 二次投诉: the same customer about the same waybill and category again (001 §8 4.10).
        let first_complaint = if complaint.contact_phone.is_empty() {
            None
        } else {
            store::first_of_same_event(db, &complaint.waybill_number, &complaint.category, &complaint.contact_phone)
                .await
                .map_err(|e| error::from_db("looking for an earlier complaint", e))?
                .map(|first| format!("complaints/{}", first.case_number))
        };
        for _ in 0..CASE_NUMBER_DRAWS {
            let case_number = case_number::generate(now, self.context.time_zone);
            let row = store::Model {
                seq: 0,
                case_number: case_number.clone(),
                request_id: request_id.clone(),
                category: complaint.category.clone(),
                waybill_number: complaint.waybill_number.clone(),
                channel: complaint.channel.as_str().into(),
                description: complaint.description.clone(),
                customer_request: complaint.customer_request.clone(),
                contact_name: complaint.contact_name.clone(),
                contact_phone: complaint.contact_phone.clone(),
                branch: complaint.branch.clone(),
                owner: route.owner.as_str().into(),
                responsible_unit: route.responsible_unit.clone(),
                // The service center answers what it owns itself: it holds the case at once.
                owner_reference: owned_here.then(|| format!("complaints/{case_number}")),
                state: if owned_here { State::Accepted } else { State::Routed }.as_str().into(),
                create_time: now,
                deadline,
                accept_time: owned_here.then_some(now),
                received_by: caller.user.clone(),
                received_by_department: caller.department.clone(),
                resolution: None,
                resolve_time: None,
                first_complaint: first_complaint.clone(),
                incident: false,
                escalated_to: String::new(),
                owner_story: None,
                close_time: None,
                closed_by: None,
                close_note: None,
                close_request_id: None,
            };
            let handoff = (!owned_here).then(|| {
                let event = outbox::new_event(
                    ServiceName::Intake,
                    now,
                    trace,
                    caller,
                    Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(&row)) }),
                );
                (route.owner, event)
            });
            match self.writers.write(Registration { row: row.clone(), handoff }).await? {
                Written::Committed => {}
                Written::Conflict => {
                    // Either an earlier call with the same request_id won, or the case number
                    // was drawn before: return the earlier complaint, or draw again.
                    if let Some(request_id) = &request_id
                        && let Some(existing) = store::by_request_id(db, request_id)
                            .await
                            .map_err(|e| error::from_db("looking up request_id", e))?
                    {
                        return Ok(existing);
                    }
                    continue;
                }
            }
            self.context.relay.wake();
            tracing::info!(
                case_number,
                category = %complaint.category,
                owner = %route.owner,
                trace_id = trace.trace_id(),
                "complaint registered"
            );
            return Ok(row);
        }
        Err(Status::unavailable("could not draw an unused case number; retry with the same request_id"))
    }
}

#[tonic::async_trait]
impl intake_server::Intake for IntakeApi {
    async fn register_complaint(
        &self,
        request: Request<pb::RegisterComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let caller = Caller::from_metadata(request.metadata());
        let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
        let request = request.into_inner();

        let mut violations = FieldViolations::new();
        if let Err(more) = domain::check_request_id(&request.request_id) {
            violations.extend(more);
        }
        let complaint = request.complaint.unwrap_or_default();
        let contact = complaint.contact.clone().unwrap_or_default();
        let fields = ComplaintFields {
            category: &complaint.category,
            waybill_number: &complaint.waybill_number,
            channel: channel_from_proto(complaint.channel),
            description: &complaint.description,
            customer_request: &complaint.customer_request,
            contact_name: &contact.name,
            contact_phone: &contact.phone,
            branch: &complaint.branch,
        };
        let parsed = NewComplaint::parse(fields).map_err(|more| violations.extend(more)).ok();
        if request.validate_only {
            violations.into_result()?;
            return Ok(Response::new(pb::Complaint::default()));
        }
        let route = request.route.unwrap_or_default();
        let route =
            Route::parse(&route.owner, &route.responsible_unit, route.handling_time.as_ref().and_then(from_duration))
                .map_err(|more| violations.extend(more))
                .ok();
        violations.into_result()?;
        let (Some(complaint), Some(route)) = (parsed, route) else {
            return Err(Status::internal("validated complaint missing"));
        };
        let request_id = Some(request.request_id.trim().to_owned()).filter(|id| !id.is_empty());
        let row = self.register(request_id, complaint, route, &caller, &trace).await?;
        Ok(Response::new(to_proto(row)))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let name = request.into_inner().name;
        let case_number = parse_name(&name)?;
        let row = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .ok_or_else(|| Status::not_found(format!("no complaint named {name}")))?;
        Ok(Response::new(to_proto(row)))
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Result<Response<pb::ListComplaintsResponse>, Status> {
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let terms = domain::parse_filter(&request.filter).map_err(|message| error::invalid_field("filter", message))?;
        let after = paging::decode_token(&request.page_token, &request.filter)?;
        let (rows, next) = store::list(&self.context.db, &terms, page_size, after)
            .await
            .map_err(|e| error::from_db("listing complaints", e))?;
        Ok(Response::new(pb::ListComplaintsResponse {
            complaints: rows.into_iter().map(to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &request.filter)).unwrap_or_default(),
        }))
    }

    async fn get_complaint_timeline(
        &self,
        request: Request<pb::GetComplaintTimelineRequest>,
    ) -> Result<Response<pb::ComplaintTimeline>, Status> {
        let name = request.into_inner().name;
        let case_number = parse_name(&name)?;
        let row = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .ok_or_else(|| Status::not_found(format!("no complaint named {name}")))?;
        let (steps, payments) = closing::timeline(&row);
        Ok(Response::new(pb::ComplaintTimeline { complaint: name, steps, payments }))
    }

    async fn close_complaint(
        &self,
        request: Request<pb::CloseComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let caller = Caller::from_metadata(request.metadata());
        let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let case_number =
            parse_name(&request.name).map_err(|status| violations.extend(FieldViolations::from_status(&status))).ok();
        if request.note.chars().count() > closing::MAX_NOTE {
            violations.add("note", format!("at most {} characters", closing::MAX_NOTE));
        }
        error::check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let Some(case_number) = case_number else { return Err(Status::internal("validated name missing")) };
        let request_id = error::idempotency_key(request.request_id.trim());
        let row = closing::close(&self.context, case_number, request.note.trim(), request_id, &caller, &trace).await?;
        Ok(Response::new(to_proto(row)))
    }
}

/// The facts of a complaint as its owner receives them, from the recorded row.
pub fn routed_complaint(row: &store::Model) -> RoutedComplaint {
    RoutedComplaint {
        complaint: format!("complaints/{}", row.case_number),
        category: row.category.clone(),
        waybill_number: row.waybill_number.clone(),
        channel: row.channel.clone(),
        description: row.description.clone(),
        customer_request: row.customer_request.clone(),
        contact_name: row.contact_name.clone(),
        contact_phone: row.contact_phone.clone(),
        branch: row.branch.clone(),
        responsible_unit: row.responsible_unit.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        deadline: Some(to_timestamp(row.deadline)),
        received_by: row.received_by.clone(),
        first_complaint: row.first_complaint.clone().unwrap_or_default(),
    }
}

/// `complaints/{case_number}` → the case number.
pub fn parse_name(name: &str) -> Result<&str, Status> {
    name.strip_prefix("complaints/").filter(|number| case_number::is_well_formed(number)).ok_or_else(|| {
        error::invalid_field("name", "expected complaints/{case_number}, e.g. complaints/20261122-7K3M9Q")
    })
}

fn channel_from_proto(channel: i32) -> Option<Channel> {
    match pb::Channel::try_from(channel).ok()? {
        pb::Channel::Unspecified => Some(Channel::Unspecified),
        pb::Channel::Phone => Some(Channel::Phone),
        pb::Channel::Letter => Some(Channel::Letter),
        pb::Channel::InPerson => Some(Channel::InPerson),
        pb::Channel::Online => Some(Channel::Online),
    }
}

fn channel_to_proto(channel: &str) -> pb::Channel {
    match channel.parse::<Channel>() {
        Ok(Channel::Phone) => pb::Channel::Phone,
        Ok(Channel::Letter) => pb::Channel::Letter,
        Ok(Channel::InPerson) => pb::Channel::InPerson,
        Ok(Channel::Online) => pb::Channel::Online,
        Ok(Channel::Unspecified) | Err(()) => pb::Channel::Unspecified,
    }
}

fn to_proto(row: store::Model) -> pb::Complaint {
    pb::Complaint {
        name: format!("complaints/{}", row.case_number),
        category: row.category,
        waybill_number: row.waybill_number,
        channel: channel_to_proto(&row.channel) as i32,
        description: row.description,
        customer_request: row.customer_request,
        contact: Some(pb::Contact { name: row.contact_name, phone: row.contact_phone }),
        branch: row.branch,
        owner: row.owner,
        responsible_unit: row.responsible_unit,
        owner_reference: row.owner_reference.unwrap_or_default(),
        state: match row.state.parse::<State>() {
            Ok(State::Routed) => pb::State::Routed,
            Ok(State::Accepted) => pb::State::Accepted,
            Ok(State::Resolved) => pb::State::Resolved,
            Ok(State::Closed) => pb::State::Closed,
            Err(()) => pb::State::Unspecified,
        } as i32,
        create_time: Some(to_timestamp(row.create_time)),
        deadline: Some(to_timestamp(row.deadline)),
        accept_time: row.accept_time.map(to_timestamp),
        received_by: row.received_by,
        resolution: row.resolution.unwrap_or_default(),
        resolve_time: row.resolve_time.map(to_timestamp),
        incident: row.incident,
        first_complaint: row.first_complaint.unwrap_or_default(),
        escalated_to: row.escalated_to.split(',').filter(|to| !to.is_empty()).map(str::to_owned).collect(),
        close_time: row.close_time.map(to_timestamp),
        closed_by: row.closed_by.unwrap_or_default(),
    }
}
