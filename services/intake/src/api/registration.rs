//! Taking a call: `RegisterComplaint` (also turning an inquiry or consultation into a complaint,
//! `from_request`) and `CreateRequest` for the other kinds of request. The rules of a new case are
//! in `crate::registration`; here the request is checked, a case number is drawn, and the
//! registration goes to the writers' group commit, which reads the customer's earlier complaints
//! and grade for a whole batch at once (`crate::writer`).

use kefu_kit::{
    caller::Caller,
    case_number,
    config::ServiceName,
    error::FieldViolations,
    time::{from_duration, to_micros},
    trace::TraceContext,
};
use kefu_proto::intake::v1 as pb;
use tonic::{Request, Response};

use super::{IntakeApi, Reply, check_text, parts};
use crate::{
    complaint::{Command, Complaint},
    convert::{channel_from_proto, severity_from_proto, to_proto},
    deadline::Rule,
    domain::{ComplaintFields, Kind, NewComplaint, Route, Severity},
    error::{Error, db},
    registration::Registration,
    requests, store,
    writer::{New, Written},
};

/// How often registration draws a new case number after a collision before giving up.
const CASE_NUMBER_DRAWS: usize = 8;

impl IntakeApi {
    pub(super) async fn register_complaint(
        &self,
        request: Request<pb::RegisterComplaintRequest>,
    ) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        if let Err(more) = crate::domain::check_request_id(&request.request_id) {
            violations.extend(more);
        }
        let complaint = request.complaint.unwrap_or_default();
        let contact = complaint.contact.clone().unwrap_or_default();
        let branch = caller.filing_branch(&complaint.branch)?;
        let fields = ComplaintFields {
            category: &complaint.category,
            waybill_number: &complaint.waybill_number,
            channel: channel_from_proto(complaint.channel),
            description: &complaint.description,
            customer_request: &complaint.customer_request,
            contact_name: &contact.name,
            contact_phone: &contact.phone,
            branch,
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
        let severity = severity_from_proto(complaint.severity).map_err(|more| violations.extend(more)).ok();
        let (Some(complaint), Some(route), Some(severity)) = (parsed, route, severity) else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        let registration = Registration {
            rule: Rule::for_category(&complaint.category, route.handling_time),
            complaint,
            kind: Kind::Complaint,
            severity,
            change: None,
            owner: route.owner,
            responsible_unit: route.responsible_unit,
            cause: String::new(),
        };
        let request_id = Some(request.request_id.trim().to_owned()).filter(|id| !id.is_empty());
        let from_request = request.from_request.trim();
        let complaint = if from_request.is_empty() {
            self.register(request_id, registration, &caller, &trace).await?
        } else {
            let case_number = kefu_kit::names::complaint(from_request, "from_request").map_err(|_| {
                Error::Invalid(FieldViolations::of(
                    "from_request",
                    "expected complaints/{case_number} of an inquiry or consultation",
                ))
            })?;
            let command = Command::Convert { into: Box::new(registration), from_request: from_request.to_owned() };
            self.keeper.act(&self.context, case_number, request_id.as_deref(), &caller, &trace, command).await?
        };
        Ok(Response::new(to_proto(own_branch(complaint, &caller)?)))
    }

    pub(super) async fn create_request(&self, request: Request<pb::CreateRequestRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        kefu_kit::error::check_request_id(&mut violations, "request_id", &request.request_id);
        let case = request.request.unwrap_or_default();
        let kind = match pb::Kind::try_from(case.kind) {
            Ok(pb::Kind::Inquiry) => Some(Kind::Inquiry),
            Ok(pb::Kind::Consultation) => Some(Kind::Consultation),
            Ok(pb::Kind::Suggestion) => Some(Kind::Suggestion),
            Ok(pb::Kind::ChangeRequest) => Some(Kind::ChangeRequest),
            _ => {
                violations.add(
                    "request.kind",
                    "INQUIRY, CONSULTATION, SUGGESTION or CHANGE_REQUEST; complaints are registered with kefu.gateway.v1.Complaints/CreateComplaint",
                );
                None
            }
        };
        let contact = case.contact.clone().unwrap_or_default();
        let fields = ComplaintFields {
            category: "",
            waybill_number: &case.waybill_number,
            channel: channel_from_proto(case.channel),
            description: &case.description,
            customer_request: &case.customer_request,
            contact_name: &contact.name,
            contact_phone: &contact.phone,
            branch: caller.filing_branch(&case.branch)?,
        };
        let parsed =
            kind.and_then(|kind| NewComplaint::parse_kind(fields, kind).map_err(|more| violations.extend(more)).ok());
        check_text(&mut violations, "request.cause", &case.cause, false);
        match (kind, &case.change) {
            (Some(Kind::ChangeRequest), Some(change)) => {
                if let Err(more) = requests::check_fields(change) {
                    violations.extend(more);
                }
            }
            (Some(Kind::ChangeRequest), None) => violations.add("request.change", "required: what is to change"),
            (_, Some(_)) => violations.add("request.change", "only a change request names changes"),
            _ => {}
        }
        // Every kind a request may be has its rule; a complaint's comes from the routing policy.
        let (Some(kind), Some(rule), Some(mut complaint)) = (kind, kind.and_then(Rule::for_kind), parsed) else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        let (owner, responsible_unit, change) = match case.change {
            Some(change) => {
                // Returning unclaimed cargo early or without the shipper's certificate is refused,
                // and nothing is recorded.
                requests::check_return(&change, self.context.clock.now(), self.context.time_zone)
                    .map_err(Error::Precondition)?;
                let routed = requests::route(&change);
                (routed.owner, routed.responsible_unit, Some((change, routed.summary)))
            }
            None => (ServiceName::Intake, "customer_service_center", None),
        };
        if let Some((_, summary)) = &change
            && complaint.customer_request.is_empty()
        {
            complaint.customer_request = summary.clone();
        }
        let registration = Registration {
            rule,
            complaint,
            kind,
            severity: Severity::General,
            change: change.map(|(change, _)| change),
            owner,
            responsible_unit: responsible_unit.into(),
            cause: case.cause.trim().to_owned(),
        };
        let request_id = Some(request.request_id.trim().to_owned()).filter(|id| !id.is_empty());
        let complaint = self.register(request_id, registration, &caller, &trace).await?;
        Ok(Response::new(to_proto(own_branch(complaint, &caller)?)))
    }

    /// Registers a new case under a fresh case number, committed in the writers' next batch
    /// (which also finds the customer's earlier complaints and grade). A retried `request_id`
    /// answers with the case it registered.
    async fn register(
        &self,
        request_id: Option<String>,
        registration: Registration,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<Complaint, Error> {
        let now = to_micros(self.context.clock.now());
        for _ in 0..CASE_NUMBER_DRAWS {
            let new = New {
                registration: registration.clone(),
                case_number: case_number::generate(now, self.context.time_zone),
                request_id: request_id.clone(),
                caller: caller.clone(),
                trace: trace.clone(),
                now,
            };
            let complaint = match self.writers.write(new).await? {
                Written::Committed(complaint) => *complaint,
                Written::Conflict => {
                    // Either an earlier call with the same request_id won, or the case number
                    // was drawn before: return the earlier complaint, or draw again.
                    if let Some(request_id) = &request_id
                        && let Some(existing) = store::by_request_id(&self.context.db, request_id)
                            .await
                            .map_err(db("looking up request_id"))?
                    {
                        return Ok(existing);
                    }
                    continue;
                }
            };
            tracing::info!(
                case_number = complaint.case_number,
                kind = %complaint.kind,
                category = %complaint.category,
                owner = %complaint.owner,
                trace_id = trace.trace_id(),
                "case registered"
            );
            return Ok(complaint);
        }
        Err(Error::Unavailable("could not draw an unused case number; retry with the same request_id"))
    }
}

/// A retried request answers with the case its `request_id` made; if a branch system reuses another
/// branch's `request_id`, that case is not its to see: refused, showing nothing of it.
fn own_branch(complaint: Complaint, caller: &Caller) -> Result<Complaint, Error> {
    if caller.cannot_see_branch(&complaint.branch) {
        return Err(Error::RequestIdTaken);
    }
    Ok(complaint)
}
