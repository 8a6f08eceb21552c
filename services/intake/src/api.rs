//! `kefu.intake.v1.Intake`: proto ⇄ domain, and the registration transaction.

use chrono::{DateTime, Duration, Utc};
use kefu_kit::{
    caller::Caller,
    case_number,
    config::ServiceName,
    error::{self, FieldViolations},
    history::Step,
    outbox, paging,
    report::{Month, Week},
    server::ServiceContext,
    time::{from_duration, to_duration, to_micros, to_timestamp},
    trace::TraceContext,
};
use kefu_proto::{
    events::v1::{CaseRouted, event::Payload},
    intake::v1::{self as pb, intake_server},
    types::v1::RoutedComplaint,
};
use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend};
use tonic::{Request, Response, Status};

use crate::{
    closing,
    deadline::{self, Rule},
    domain::{self, Channel, ComplaintFields, Kind, NewComplaint, Route, Severity, State},
    grades,
    lifecycle::{self, Change},
    replies, reports, requests, store, visits, webhooks,
    writer::{Registration, Writers, Written},
};

/// The longest reason, note, answer or outcome accepted.
pub const MAX_TEXT: usize = 2000;

/// How long after an earlier complaint a complaint by another channel about the same waybill and
/// category, while the first is still open, counts as the same complaint (a duplicate) rather
/// than a second complaint (二次投诉).
pub const DUPLICATE_WINDOW: Duration = Duration::hours(24);

/// What intake registers: the checked request, where it goes, and the rule of its deadline.
pub struct Intake {
    pub complaint: NewComplaint,
    pub kind: Kind,
    pub severity: Severity,
    pub change: Option<pb::ChangeRequest>,
    pub owner: ServiceName,
    pub responsible_unit: String,
    pub rule: Rule,
    /// The cause, when it is known at intake (a consignee's refusal, say).
    pub cause: String,
}

pub const SERVICE_NAME: &str = "kefu.intake.v1.Intake";

/// How often registration draws a new case number after a collision before giving up.
const CASE_NUMBER_DRAWS: usize = 8;

pub struct IntakeApi {
    context: ServiceContext,
    writers: Writers,
    webhook_rules: crate::webhooks::Rules,
}

impl IntakeApi {
    pub fn new(context: ServiceContext, webhook_rules: crate::webhooks::Rules) -> Self {
        // SQLite has one connection; PostgreSQL gains from a few transactions in flight.
        let writers = match context.db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 4,
        };
        let writers = Writers::start(context.db.clone(), writers, context.time_zone);
        Self { context, writers, webhook_rules }
    }

    pub fn into_server(self) -> intake_server::IntakeServer<Self> {
        intake_server::IntakeServer::new(self)
    }

    async fn register(
        &self,
        request_id: Option<String>,
        intake: Intake,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<store::Model, Status> {
        let db = &self.context.db;
        let time_zone = self.context.time_zone;
        let now = to_micros(self.context.clock.now());
        let complaint = &intake.complaint;
        let owned_here = intake.owner == ServiceName::Intake;
        let db_error = |context: &'static str| move |e| error::from_db(context, e);
        // The same customer about the same waybill and category before (001 §8 4.10): by another
        // channel while the first is open, the same complaint; otherwise a second complaint (二次投诉).
        let earlier = if complaint.contact_phone.is_empty() || intake.kind != Kind::Complaint {
            Vec::new()
        } else {
            store::same_event(db, &complaint.waybill_number, &complaint.category, &complaint.contact_phone)
                .await
                .map_err(db_error("looking for an earlier complaint"))?
        };
        let duplicate_of = earlier
            .iter()
            .rev()
            .find(|first| {
                first.channel != complaint.channel.as_str()
                    && first.state.parse::<State>().is_ok_and(State::is_open)
                    && now - first.create_time <= DUPLICATE_WINDOW
            })
            .cloned();
        let first_complaint = match &duplicate_of {
            Some(_) => None,
            None => earlier.first().map(|first| format!("complaints/{}", first.case_number)),
        };
        let grade =
            grades::of_phone(db, &complaint.contact_phone).await.map_err(db_error("reading the customer's grade"))?;
        for _ in 0..CASE_NUMBER_DRAWS {
            let case_number = case_number::generate(now, time_zone);
            let mut row = new_row(&case_number, request_id.clone(), &intake, caller, now);
            row.first_complaint = first_complaint.clone();
            row.customer_grade = grade.clone();
            lifecycle::start_deadline(&mut row, &intake.rule, now, time_zone);
            let mut steps = vec![(
                case_number.clone(),
                Step {
                    action: "registered",
                    actor: caller.user.clone(),
                    time: now,
                    detail: registered_detail(&row, time_zone),
                },
            )];
            if let Some(first) = &first_complaint {
                steps.push((
                    case_number.clone(),
                    Step {
                        action: "second_complaint",
                        actor: "intake".into(),
                        time: now,
                        detail: format!(
                            "the customer complained of waybill {} in {} before: {first} (二次投诉)",
                            row.waybill_number, row.category
                        ),
                    },
                ));
            }
            if let Some(original) = &duplicate_of {
                let linked = lifecycle::linked(&row, original, "intake", "found at registration", now);
                steps.extend(linked.steps.into_iter().map(|step| (case_number.clone(), step)));
                steps.extend(linked.other_steps);
                row = linked.row;
                row.handed_off = false;
            }
            let handoff = (!owned_here && row.handed_off).then(|| {
                let event = outbox::new_event(
                    ServiceName::Intake,
                    now,
                    trace,
                    caller,
                    Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(&row)) }),
                );
                (intake.owner, event)
            });
            let replies = vec![replies::acknowledgement(&row, time_zone)];
            match self.writers.write(Registration { row: row.clone(), handoff, steps, replies }).await? {
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
                kind = %row.kind,
                category = %row.category,
                owner = %row.owner,
                trace_id = trace.trace_id(),
                "case registered"
            );
            return Ok(row);
        }
        Err(Status::unavailable("could not draw an unused case number; retry with the same request_id"))
    }

    /// An inquiry or consultation turns into a complaint, keeping its case number and history.
    async fn convert(
        &self,
        from_request: &str,
        request_id: Option<&str>,
        intake: Intake,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<store::Model, Status> {
        let case_number = parse_name(from_request).map_err(|_| {
            error::invalid_field("from_request", "expected complaints/{case_number} of an inquiry or consultation")
        })?;
        lifecycle::act(&self.context, case_number, request_id, caller, trace, |row, now| {
            if caller.cannot_see_branch(&row.branch) {
                return Err(Status::not_found(format!("no complaint named {from_request}")));
            }
            let kind = lifecycle::kind(row);
            if !matches!(kind, Kind::Inquiry | Kind::Consultation) {
                return Err(Status::failed_precondition(format!(
                    "{from_request} is a {}: only an inquiry or a consultation turns into a complaint",
                    kind.as_str()
                )));
            }
            if matches!(lifecycle::state(row)?, State::Closed | State::Duplicate) {
                return Err(Status::failed_precondition(format!(
                    "{from_request} is {}: register a new complaint instead",
                    row.state
                )));
            }
            let owned_here = intake.owner == ServiceName::Intake;
            let mut fresh = new_row(&row.case_number, row.request_id.clone(), &intake, caller, now.time);
            fresh.seq = row.seq;
            fresh.version = row.version;
            fresh.create_time = row.create_time;
            fresh.channel = row.channel.clone();
            fresh.received_by = row.received_by.clone();
            fresh.received_by_department = row.received_by_department.clone();
            fresh.customer_grade = row.customer_grade.clone();
            if fresh.contact_phone.is_empty() {
                fresh.contact_name = row.contact_name.clone();
                fresh.contact_phone = row.contact_phone.clone();
            }
            if fresh.branch.is_empty() {
                fresh.branch = row.branch.clone();
            }
            lifecycle::start_deadline(&mut fresh, &intake.rule, now.time, now.time_zone);
            let detail = format!(
                "the {} turned into a complaint: {} — {}",
                kind.as_str(),
                registered_detail(&fresh, now.time_zone),
                row.resolution.as_deref().map(|answer| format!("answered before: {answer}")).unwrap_or_default()
            );
            let mut change = Change::for_owner(fresh).step("converted", &now.caller.user, now.time, detail);
            if !owned_here {
                change.events.push((
                    intake.owner,
                    Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(&change.row)) }),
                ));
            }
            change.replies.push(replies::acknowledgement(&change.row, now.time_zone));
            Ok(change)
        })
        .await
    }

    async fn act(
        &self,
        name: &str,
        request_id: &str,
        caller: &Caller,
        trace: &TraceContext,
        rule: impl FnOnce(&store::Model, &lifecycle::Now<'_>) -> Result<Change, Status>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let case_number = parse_name(name)?;
        let row =
            lifecycle::act(&self.context, case_number, error::idempotency_key(request_id.trim()), caller, trace, rule)
                .await?;
        Ok(Response::new(to_proto(row)))
    }
}

/// A new case's row, before its deadline is started.
fn new_row(
    case_number: &str,
    request_id: Option<String>,
    intake: &Intake,
    caller: &Caller,
    now: DateTime<Utc>,
) -> store::Model {
    let complaint = &intake.complaint;
    let owned_here = intake.owner == ServiceName::Intake;
    store::Model {
        seq: 0,
        case_number: case_number.to_owned(),
        request_id,
        category: complaint.category.clone(),
        waybill_number: complaint.waybill_number.clone(),
        channel: complaint.channel.as_str().into(),
        description: complaint.description.clone(),
        customer_request: complaint.customer_request.clone(),
        contact_name: complaint.contact_name.clone(),
        contact_phone: complaint.contact_phone.clone(),
        branch: complaint.branch.clone(),
        owner: intake.owner.as_str().into(),
        responsible_unit: intake.responsible_unit.clone(),
        // The service center answers what it owns itself: it holds the case at once.
        owner_reference: owned_here.then(|| format!("complaints/{case_number}")),
        state: if owned_here { State::Accepted } else { State::Routed }.as_str().into(),
        create_time: now,
        deadline: now,
        accept_time: owned_here.then_some(now),
        received_by: caller.user.clone(),
        received_by_department: caller.department.clone(),
        resolution: None,
        resolve_time: None,
        first_complaint: None,
        incident: false,
        escalated_to: String::new(),
        owner_story: None,
        close_time: None,
        closed_by: None,
        close_note: None,
        close_request_id: None,
        kind: intake.kind.as_str().into(),
        severity: intake.severity.as_str().into(),
        change_request: intake.change.as_ref().map(Message::encode_to_vec),
        deadline_start: now,
        deadline_rule: String::new(),
        deadline_allowed_secs: 0,
        deadline_counting: String::new(),
        paused_secs: 0,
        waiting_since: None,
        waiting_reason: None,
        customer_grade: String::new(),
        duplicate_of: None,
        handed_off: !owned_here,
        approve_time: None,
        approved_by: None,
        written_answer: None,
        notify_time: None,
        reopen_count: 0,
        cause: intake.cause.clone(),
        chase_at: None,
        version: 0,
    }
}

/// The registration step in words (no personal data).
fn registered_detail(row: &store::Model, time_zone: chrono_tz::Tz) -> String {
    let kind = if row.kind == Kind::Complaint.as_str() { row.category.clone() } else { row.kind.clone() };
    format!(
        "{kind} ({}) by {} at branch {}, to {} ({}); deadline {}",
        row.severity,
        row.channel,
        if row.branch.is_empty() { "-" } else { &row.branch },
        row.owner,
        row.responsible_unit,
        row.deadline.with_timezone(&time_zone).format("%Y-%m-%d %H:%M")
    )
}

/// Checks a free text: required or not, at most [`MAX_TEXT`] characters.
fn check_text(violations: &mut FieldViolations, field: &str, value: &str, required: bool) {
    if required && value.trim().is_empty() {
        violations.add(field, "required");
    }
    if value.chars().count() > MAX_TEXT {
        violations.add(field, format!("at most {MAX_TEXT} characters"));
    }
}

/// Checks a case name and a request id, and the texts given; all violations at once.
fn check(name: &str, request_id: &str, texts: &[(&str, &str, bool)]) -> Result<(), Status> {
    let mut violations = FieldViolations::new();
    if let Err(status) = parse_name(name) {
        violations.extend(FieldViolations::from_status(&status));
    }
    error::check_request_id(&mut violations, "request_id", request_id);
    for (field, value, required) in texts {
        check_text(&mut violations, field, value, *required);
    }
    violations.into_result()
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
        violations.into_result()?;
        let (Some(complaint), Some(route), Some(severity)) = (parsed, route, severity) else {
            return Err(Status::internal("validated complaint missing"));
        };
        let intake = Intake {
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
        let row = if request.from_request.trim().is_empty() {
            self.register(request_id, intake, &caller, &trace).await?
        } else {
            self.convert(request.from_request.trim(), request_id.as_deref(), intake, &caller, &trace).await?
        };
        Ok(Response::new(to_proto(own_branch(row, &caller)?)))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let caller = Caller::from_metadata(request.metadata());
        let name = request.into_inner().name;
        let case_number = parse_name(&name)?;
        let row = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .filter(|row| !caller.cannot_see_branch(&row.branch))
            .ok_or_else(|| Status::not_found(format!("no complaint named {name}")))?;
        Ok(Response::new(to_proto(row)))
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Result<Response<pb::ListComplaintsResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let mut terms =
            domain::parse_filter(&request.filter).map_err(|message| error::invalid_field("filter", message))?;
        // A branch office's system lists its own branch's cases alone.
        if let Some(scope) = caller.branch_scope() {
            terms.push((domain::FilterField::Branch, scope.to_owned()));
        }
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
        let caller = Caller::from_metadata(request.metadata());
        let name = request.into_inner().name;
        let case_number = parse_name(&name)?;
        let row = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .filter(|row| !caller.cannot_see_branch(&row.branch))
            .ok_or_else(|| Status::not_found(format!("no complaint named {name}")))?;
        let (steps, payments) = closing::timeline(&self.context.db, &row).await?;
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

    async fn create_request(
        &self,
        request: Request<pb::CreateRequestRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let caller = Caller::from_metadata(request.metadata());
        let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        error::check_request_id(&mut violations, "request_id", &request.request_id);
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
        violations.into_result()?;
        let (Some(kind), Some(complaint)) = (kind, parsed) else {
            return Err(Status::internal("validated request missing"));
        };
        let (owner, responsible_unit, change) = match case.change {
            Some(change) => {
                // Returning unclaimed cargo early or without the shipper's certificate is refused,
                // and nothing is recorded.
                requests::check_return(&change, self.context.clock.now(), self.context.time_zone)
                    .map_err(Status::failed_precondition)?;
                let routed = requests::route(&change);
                (routed.owner, routed.responsible_unit, Some((change, routed.summary)))
            }
            None => (ServiceName::Intake, "customer_service_center", None),
        };
        let mut complaint = complaint;
        if let Some((_, summary)) = &change
            && complaint.customer_request.is_empty()
        {
            complaint.customer_request = summary.clone();
        }
        let intake = Intake {
            rule: Rule::for_kind(kind).ok_or_else(|| Status::internal("a request kind without a deadline rule"))?,
            complaint,
            kind,
            severity: Severity::General,
            change: change.map(|(change, _)| change),
            owner,
            responsible_unit: responsible_unit.into(),
            cause: case.cause.trim().to_owned(),
        };
        let request_id = Some(request.request_id.trim().to_owned()).filter(|id| !id.is_empty());
        let row = self.register(request_id, intake, &caller, &trace).await?;
        Ok(Response::new(to_proto(own_branch(row, &caller)?)))
    }

    async fn resolve_complaint(
        &self,
        request: Request<pb::ResolveComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(
            &request.name,
            &request.request_id,
            &[("resolution", &request.resolution, true), ("cause", &request.cause, false)],
        )?;
        self.act(&request.name, &request.request_id, &caller, &trace, |row, now| {
            lifecycle::resolve_here(row, request.resolution.trim(), request.cause.trim(), now)
        })
        .await
    }

    async fn change_severity(
        &self,
        request: Request<pb::ChangeSeverityRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, "", &[("reason", &request.reason, true)])?;
        let severity = match pb::Severity::try_from(request.severity) {
            Ok(pb::Severity::General) => Severity::General,
            Ok(pb::Severity::Serious) => Severity::Serious,
            Ok(pb::Severity::Critical) => Severity::Critical,
            _ => return Err(error::invalid_field("severity", "GENERAL, SERIOUS or CRITICAL")),
        };
        self.act(&request.name, "", &caller, &trace, |row, now| {
            lifecycle::change_severity(row, severity, request.reason.trim(), now)
        })
        .await
    }

    async fn approve_outcome(
        &self,
        request: Request<pb::ApproveOutcomeRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, &request.request_id, &[("written_answer", &request.written_answer, true)])?;
        self.act(&request.name, &request.request_id, &caller, &trace, |row, now| {
            lifecycle::approve(row, request.written_answer.trim(), now)
        })
        .await
    }

    async fn reopen_complaint(
        &self,
        request: Request<pb::ReopenComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, &request.request_id, &[("reason", &request.reason, true)])?;
        self.act(&request.name, &request.request_id, &caller, &trace, |row, now| {
            lifecycle::reopen(row, request.reason.trim(), now)
        })
        .await
    }

    async fn wait_for_customer(
        &self,
        request: Request<pb::WaitForCustomerRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, "", &[("reason", &request.reason, true)])?;
        self.act(&request.name, "", &caller, &trace, |row, now| {
            lifecycle::wait_for_customer(row, request.reason.trim(), now)
        })
        .await
    }

    async fn resume_complaint(
        &self,
        request: Request<pb::ResumeComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, "", &[("note", &request.note, false)])?;
        self.act(&request.name, "", &caller, &trace, |row, now| lifecycle::resume(row, request.note.trim(), now)).await
    }

    async fn explain_deadline(
        &self,
        request: Request<pb::ExplainDeadlineRequest>,
    ) -> Result<Response<pb::DeadlineExplanation>, Status> {
        let name = request.into_inner().name;
        let case_number = parse_name(&name)?;
        let row = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .ok_or_else(|| Status::not_found(format!("no complaint named {name}")))?;
        Ok(Response::new(explain(&row, self.context.time_zone)))
    }

    async fn chase_overdue(
        &self,
        _request: Request<pb::ChaseOverdueRequest>,
    ) -> Result<Response<pb::ChaseOverdueResponse>, Status> {
        let chased = lifecycle::chase_overdue(&self.context).await?;
        Ok(Response::new(pb::ChaseOverdueResponse { chased }))
    }

    async fn link_duplicate(
        &self,
        request: Request<pb::LinkDuplicateRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        if let Err(status) = parse_name(&request.name) {
            violations.extend(FieldViolations::from_status(&status));
        }
        let original = parse_name(&request.duplicate_of)
            .map_err(|_| violations.add("duplicate_of", "expected complaints/{case_number}"))
            .ok();
        check_text(&mut violations, "reason", &request.reason, true);
        violations.into_result()?;
        let original = store::by_case_number(&self.context.db, original.unwrap_or_default())
            .await
            .map_err(|e| error::from_db("reading a complaint", e))?
            .ok_or_else(|| Status::not_found(format!("no complaint named {}", request.duplicate_of)))?;
        self.act(&request.name, "", &caller, &trace, |row, now| {
            lifecycle::link_duplicate(row, &original, request.reason.trim(), now)
        })
        .await
    }

    async fn unlink_duplicate(
        &self,
        request: Request<pb::UnlinkDuplicateRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let (caller, trace, request) = parts(request);
        check(&request.name, "", &[("reason", &request.reason, true)])?;
        self.act(&request.name, "", &caller, &trace, |row, now| {
            lifecycle::unlink_duplicate(row, request.reason.trim(), now)
        })
        .await
    }

    async fn list_replies(
        &self,
        request: Request<pb::ListRepliesRequest>,
    ) -> Result<Response<pb::ListRepliesResponse>, Status> {
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let case_number = if request.complaint.is_empty() {
            None
        } else {
            Some(
                parse_name(&request.complaint)
                    .map_err(|_| error::invalid_field("complaint", "expected complaints/{case_number}"))?,
            )
        };
        let filter = format!("{}|{}", request.complaint, request.due_only);
        let after = paging::decode_token(&request.page_token, &filter)?;
        let due_by = request.due_only.then(|| to_micros(self.context.clock.now()));
        let (rows, next) = replies::list(&self.context.db, case_number, due_by, page_size, after)
            .await
            .map_err(|e| error::from_db("listing replies", e))?;
        Ok(Response::new(pb::ListRepliesResponse {
            replies: rows.into_iter().map(reply_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &filter)).unwrap_or_default(),
        }))
    }

    async fn plan_visit(&self, request: Request<pb::PlanVisitRequest>) -> Result<Response<pb::Visit>, Status> {
        let (caller, trace, request) = parts(request);
        let visit = request.visit.unwrap_or_default();
        let mut violations = FieldViolations::new();
        let case_number =
            parse_name(&request.parent).map_err(|_| violations.add("parent", "expected complaints/{case_number}")).ok();
        error::check_request_id(&mut violations, "request_id", &request.request_id);
        let method = visit_method(visit.method);
        if method.is_none() {
            violations.add("visit.method", "VISIT_PHONE, VISIT_EMAIL, VISIT_IN_PERSON or VISIT_INSTANT_MESSAGE");
        }
        let plan_time = visit.plan_time.as_ref().and_then(kefu_kit::time::from_timestamp).map(to_micros);
        if plan_time.is_none() {
            violations.add("visit.plan_time", "required: when the visit is to be made");
        }
        check_text(&mut violations, "visit.purpose", &visit.purpose, true);
        if visit.visitor.chars().count() > 128 {
            violations.add("visit.visitor", "at most 128 characters");
        }
        violations.into_result()?;
        let (Some(case_number), Some(method), Some(plan_time)) = (case_number, method, plan_time) else {
            return Err(Status::internal("validated visit missing"));
        };
        let db_error = |context: &'static str| move |e| error::from_db(context, e);
        let key = error::idempotency_key(request.request_id.trim()).map(|id| format!("{case_number}/{id}"));
        if let Some(key) = &key
            && let Some(planned) =
                visits::by_request_id(&self.context.db, key).await.map_err(db_error("reading visits"))?
        {
            return Ok(Response::new(visit_to_proto(planned)));
        }
        let now = to_micros(self.context.clock.now());
        if method == "in_person" && plan_time < now + visits::IN_PERSON_NOTICE {
            return Err(Status::failed_precondition(
                "a face-to-face visit is announced 3 days ahead (003 第4条): plan it at least 3 days from now",
            ));
        }
        let plan = visits::NewVisit {
            request_id: key.clone(),
            method: method.into(),
            visitor: visit.visitor.trim().into(),
            plan_time,
            purpose: visit.purpose.trim().into(),
        };
        let detail = format!(
            "by {method} on {}: {}",
            plan_time.with_timezone(&self.context.time_zone).format("%Y-%m-%d %H:%M"),
            plan.purpose
        );
        lifecycle::act(&self.context, case_number, None, &caller, &trace, |row, now| {
            let mut change = Change::for_owner(row.clone()).step("visit_planned", &now.caller.user, now.time, detail);
            change.visits.push(plan);
            Ok(change)
        })
        .await?;
        let planned = match &key {
            Some(key) => visits::by_request_id(&self.context.db, key).await,
            None => visits::list(&self.context.db, Some(case_number), 500, None)
                .await
                .map(|(rows, _)| rows.into_iter().last()),
        }
        .map_err(db_error("reading visits"))?
        .ok_or_else(|| Status::internal("the planned visit is missing"))?;
        Ok(Response::new(visit_to_proto(planned)))
    }

    async fn record_visit(&self, request: Request<pb::RecordVisitRequest>) -> Result<Response<pb::Visit>, Status> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        let name = parse_child_name(&request.name, "visits")
            .map_err(|status| violations.extend(FieldViolations::from_status(&status)))
            .ok();
        let service = satisfaction(request.service_satisfaction);
        if service.is_none() {
            violations.add("service_satisfaction", "VERY_GOOD, GOOD, FAIR, POOR or VERY_POOR (好/较好/一般/差/很差)");
        }
        let product = satisfaction(request.product_satisfaction);
        if product.is_none() {
            violations.add("product_satisfaction", "VERY_GOOD, GOOD, FAIR, POOR or VERY_POOR (好/较好/一般/差/很差)");
        }
        check_text(&mut violations, "opinions", &request.opinions, false);
        check_text(&mut violations, "counter_measures", &request.counter_measures, false);
        violations.into_result()?;
        let (Some((case_number, seq)), Some(service), Some(product)) = (name, service, product) else {
            return Err(Status::internal("validated visit missing"));
        };
        let acting = lifecycle::begin(&self.context, case_number, &caller).await?;
        let visit = visits::get(&acting.tx, case_number, seq)
            .await
            .map_err(|e| error::from_db("reading a visit", e))?
            .ok_or_else(|| Status::not_found(format!("no visit named {}", request.name)))?;
        if visit.state != visits::PLANNED {
            return Err(Status::failed_precondition(format!("{} was {} before", request.name, visit.state)));
        }
        let reopen =
            visits::unsatisfied(service) && matches!(lifecycle::state(&acting.row)?, State::Resolved | State::Notified);
        let recorded = visits::Model {
            state: visits::RECORDED.into(),
            service_satisfaction: service.into(),
            product_satisfaction: product.into(),
            opinions: request.opinions.trim().into(),
            counter_measures: request.counter_measures.trim().into(),
            visit_time: Some(acting.now.time),
            recorded_by: caller.user.clone(),
            reopened: reopen,
            ..visit
        };
        if !visits::update(&acting.tx, &recorded, visits::PLANNED)
            .await
            .map_err(|e| error::from_db("recording a visit", e))?
        {
            return Err(Status::aborted("the visit changed at the same moment; read it and retry"));
        }
        let detail = format!("service {service}, product {product}: {}", recorded.opinions);
        let change = if reopen {
            let reason =
                format!("follow-up visit: the customer is not satisfied (service {service}): {}", recorded.opinions);
            lifecycle::reopen(&acting.row, &reason, &acting.now)?
        } else {
            Change::for_owner(acting.row.clone())
        };
        let change = change.step("visited", &caller.user, acting.now.time, detail);
        acting.finish(&self.context, change, None, &trace).await?;
        Ok(Response::new(visit_to_proto(recorded)))
    }

    async fn sign_visit(&self, request: Request<pb::SignVisitRequest>) -> Result<Response<pb::Visit>, Status> {
        let (caller, _, request) = parts(request);
        let (case_number, seq) = parse_child_name(&request.name, "visits")?;
        if !caller.is_supervisor() {
            return Err(Status::permission_denied("a visit record is signed by a supervisor (role supervisor)"));
        }
        let db_error = |context: &'static str| move |e| error::from_db(context, e);
        let visit = visits::get(&self.context.db, case_number, seq)
            .await
            .map_err(db_error("reading a visit"))?
            .ok_or_else(|| Status::not_found(format!("no visit named {}", request.name)))?;
        if visit.state != visits::RECORDED {
            return Err(Status::failed_precondition(format!(
                "{} is {}: only a recorded visit is signed",
                request.name, visit.state
            )));
        }
        let signed = visits::Model {
            state: visits::SIGNED.into(),
            signed_by: caller.user.clone(),
            sign_time: Some(to_micros(self.context.clock.now())),
            ..visit
        };
        if !visits::update(&self.context.db, &signed, visits::RECORDED).await.map_err(db_error("signing a visit"))? {
            return Err(Status::aborted("the visit changed at the same moment; read it and retry"));
        }
        Ok(Response::new(visit_to_proto(signed)))
    }

    async fn list_visits(
        &self,
        request: Request<pb::ListVisitsRequest>,
    ) -> Result<Response<pb::ListVisitsResponse>, Status> {
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let case_number = if request.parent.is_empty() {
            None
        } else {
            Some(
                parse_name(&request.parent)
                    .map_err(|_| error::invalid_field("parent", "expected complaints/{case_number}"))?,
            )
        };
        let after = paging::decode_token(&request.page_token, &request.parent)?;
        let (rows, next) = visits::list(&self.context.db, case_number, page_size, after)
            .await
            .map_err(|e| error::from_db("listing visits", e))?;
        Ok(Response::new(pb::ListVisitsResponse {
            visits: rows.into_iter().map(visit_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &request.parent)).unwrap_or_default(),
        }))
    }

    async fn get_complaint_summary(
        &self,
        request: Request<pb::GetComplaintSummaryRequest>,
    ) -> Result<Response<pb::ComplaintSummary>, Status> {
        let week =
            Week::parse(&request.into_inner().week, self.context.time_zone).map_err(FieldViolations::into_status)?;
        let summary = reports::complaint_summary(&self.context.db, &week.label, week.start, week.end)
            .await
            .map_err(|e| error::from_db("summarizing the week", e))?;
        Ok(Response::new(summary))
    }

    async fn get_visit_summary(
        &self,
        request: Request<pb::GetVisitSummaryRequest>,
    ) -> Result<Response<pb::VisitSummary>, Status> {
        let week =
            Week::parse(&request.into_inner().week, self.context.time_zone).map_err(FieldViolations::into_status)?;
        let summary = reports::visit_summary(&self.context.db, &week.label, week.start, week.end)
            .await
            .map_err(|e| error::from_db("summarizing the week's visits", e))?;
        Ok(Response::new(summary))
    }

    async fn get_cargo_exception_report(
        &self,
        request: Request<pb::GetCargoExceptionReportRequest>,
    ) -> Result<Response<pb::CargoExceptionReport>, Status> {
        let month =
            Month::parse(&request.into_inner().month, self.context.time_zone).map_err(FieldViolations::into_status)?;
        let report = reports::cargo_exceptions(&self.context.db, &month.label, month.start, month.end)
            .await
            .map_err(|e| error::from_db("counting refused and mis-delivered cargo", e))?;
        Ok(Response::new(report))
    }

    async fn register_webhook(
        &self,
        request: Request<pb::RegisterWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let (caller, _, request) = parts(request);
        webhooks::api::register(&self.context, &self.webhook_rules, &caller, request).await.map(Response::new)
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let (caller, _, request) = parts(request);
        webhooks::api::list(&self.context, &caller, request).await.map(Response::new)
    }

    async fn disable_webhook(
        &self,
        request: Request<pb::DisableWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let (caller, _, request) = parts(request);
        webhooks::api::disable(&self.context, &caller, request).await.map(Response::new)
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let (caller, _, request) = parts(request);
        webhooks::api::list_deliveries(&self.context, &caller, request).await.map(Response::new)
    }

    async fn redeliver_webhook_delivery(
        &self,
        request: Request<pb::RedeliverWebhookDeliveryRequest>,
    ) -> Result<Response<pb::WebhookDelivery>, Status> {
        let (caller, _, request) = parts(request);
        webhooks::api::redeliver(&self.context, &caller, request).await.map(Response::new)
    }

    async fn record_reply_attempt(
        &self,
        request: Request<pb::RecordReplyAttemptRequest>,
    ) -> Result<Response<pb::Reply>, Status> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        let name = parse_child_name(&request.name, "replies")
            .map_err(|status| violations.extend(FieldViolations::from_status(&status)))
            .ok();
        check_text(&mut violations, "note", &request.note, false);
        violations.into_result()?;
        let Some((case_number, seq)) = name else { return Err(Status::internal("validated name missing")) };
        let acting = lifecycle::begin(&self.context, case_number, &caller).await?;
        let reply = replies::get(&acting.tx, case_number, seq)
            .await
            .map_err(|e| error::from_db("reading a reply", e))?
            .ok_or_else(|| Status::not_found(format!("no reply named {}", request.name)))?;
        if reply.state == replies::DELIVERED {
            return Err(Status::failed_precondition(format!("{} was delivered before", request.name)));
        }
        let recorded = replies::record_attempt(
            &acting.tx,
            &reply,
            request.reached,
            request.note.trim(),
            acting.now.time,
            acting.now.time_zone,
        )
        .await
        .map_err(|e| error::from_db("recording a reply attempt", e))?;
        let told = request.reached && reply.purpose == replies::Purpose::Result.as_str();
        match told.then(|| lifecycle::notified(&acting.row, &caller.user, &acting.now)).flatten() {
            Some(change) => {
                acting.finish(&self.context, change, None, &trace).await?;
            }
            None => acting.tx.commit().await.map_err(|e| error::from_db("recording a reply attempt", e))?,
        }
        Ok(Response::new(reply_to_proto(recorded)))
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
    kefu_kit::names::complaint(name, "name").map_err(FieldViolations::into_status)
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
            Ok(State::AwaitingApproval) => pb::State::AwaitingApproval,
            Ok(State::Resolved) => pb::State::Resolved,
            Ok(State::Notified) => pb::State::Notified,
            Ok(State::Reopened) => pb::State::Reopened,
            Ok(State::Duplicate) => pb::State::Duplicate,
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
        kind: kind_to_proto(&row.kind) as i32,
        severity: severity_to_proto(&row.severity) as i32,
        change: row.change_request.as_deref().and_then(|bytes| pb::ChangeRequest::decode(bytes).ok()),
        waiting_since: row.waiting_since.map(to_timestamp),
        duplicate_of: row.duplicate_of.unwrap_or_default(),
        approve_time: row.approve_time.map(to_timestamp),
        approved_by: row.approved_by.unwrap_or_default(),
        written_answer: row.written_answer.unwrap_or_default(),
        notify_time: row.notify_time.map(to_timestamp),
        reopen_count: row.reopen_count,
        customer_grade: row.customer_grade,
        cause: row.cause,
    }
}

/// The caller, the trace and the message of a request.
fn parts<T>(request: Request<T>) -> (Caller, TraceContext, T) {
    let caller = Caller::from_metadata(request.metadata());
    let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
    (caller, trace, request.into_inner())
}

fn severity_from_proto(severity: i32) -> Result<Severity, FieldViolations> {
    match pb::Severity::try_from(severity) {
        Ok(pb::Severity::Unspecified | pb::Severity::General) => Ok(Severity::General),
        Ok(pb::Severity::Serious) => Ok(Severity::Serious),
        Ok(pb::Severity::Critical) => Ok(Severity::Critical),
        Err(_) => {
            let mut violations = FieldViolations::new();
            violations.add("complaint.severity", "GENERAL, SERIOUS or CRITICAL");
            Err(violations)
        }
    }
}

/// `complaints/{case_number}/{collection}/{id}` → the case number and the id.
fn parse_child_name<'a>(name: &'a str, collection: &str) -> Result<(&'a str, i64), Status> {
    let wrong = || error::invalid_field("name", format!("expected complaints/{{case_number}}/{collection}/{{id}}"));
    let (complaint, id) = name.rsplit_once(&format!("/{collection}/")).ok_or_else(wrong)?;
    let case_number = parse_name(complaint).map_err(|_| wrong())?;
    Ok((case_number, id.parse().map_err(|_| wrong())?))
}

fn visit_method(method: i32) -> Option<&'static str> {
    match pb::VisitMethod::try_from(method).ok()? {
        pb::VisitMethod::VisitPhone => Some("phone"),
        pb::VisitMethod::VisitEmail => Some("email"),
        pb::VisitMethod::VisitInPerson => Some("in_person"),
        pb::VisitMethod::VisitInstantMessage => Some("instant_message"),
        pb::VisitMethod::Unspecified => None,
    }
}

fn satisfaction(level: i32) -> Option<&'static str> {
    match pb::Satisfaction::try_from(level).ok()? {
        pb::Satisfaction::VeryGood => Some("very_good"),
        pb::Satisfaction::Good => Some("good"),
        pb::Satisfaction::Fair => Some("fair"),
        pb::Satisfaction::Poor => Some("poor"),
        pb::Satisfaction::VeryPoor => Some("very_poor"),
        pb::Satisfaction::Unspecified => None,
    }
}

fn visit_to_proto(row: visits::Model) -> pb::Visit {
    let method = match row.method.as_str() {
        "phone" => pb::VisitMethod::VisitPhone,
        "email" => pb::VisitMethod::VisitEmail,
        "in_person" => pb::VisitMethod::VisitInPerson,
        "instant_message" => pb::VisitMethod::VisitInstantMessage,
        _ => pb::VisitMethod::Unspecified,
    };
    let level = |text: &str| match text {
        "very_good" => pb::Satisfaction::VeryGood,
        "good" => pb::Satisfaction::Good,
        "fair" => pb::Satisfaction::Fair,
        "poor" => pb::Satisfaction::Poor,
        "very_poor" => pb::Satisfaction::VeryPoor,
        _ => pb::Satisfaction::Unspecified,
    };
    let state = match row.state.as_str() {
        visits::PLANNED => pb::VisitState::Planned,
        visits::RECORDED => pb::VisitState::Recorded,
        visits::SIGNED => pb::VisitState::Signed,
        _ => pb::VisitState::Unspecified,
    };
    pb::Visit {
        name: format!("complaints/{}/visits/{}", row.case_number, row.seq),
        method: method as i32,
        visitor: row.visitor,
        plan_time: Some(to_timestamp(row.plan_time)),
        purpose: row.purpose,
        state: state as i32,
        service_satisfaction: level(&row.service_satisfaction) as i32,
        product_satisfaction: level(&row.product_satisfaction) as i32,
        opinions: row.opinions,
        counter_measures: row.counter_measures,
        visit_time: row.visit_time.map(to_timestamp),
        recorded_by: row.recorded_by,
        signed_by: row.signed_by,
        sign_time: row.sign_time.map(to_timestamp),
        reopened: row.reopened,
    }
}

fn reply_to_proto(row: replies::Model) -> pb::Reply {
    let purpose = match row.purpose.as_str() {
        "acknowledgement" => pb::ReplyPurpose::Acknowledgement,
        "result" => pb::ReplyPurpose::Result,
        "chase" => pb::ReplyPurpose::Chase,
        "overdue_notice" => pb::ReplyPurpose::OverdueNotice,
        _ => pb::ReplyPurpose::Unspecified,
    };
    let state = match row.state.as_str() {
        replies::PENDING => pb::ReplyState::Pending,
        replies::DELIVERED => pb::ReplyState::Delivered,
        replies::UNREACHED => pb::ReplyState::Unreached,
        _ => pb::ReplyState::Unspecified,
    };
    pb::Reply {
        name: format!("complaints/{}/replies/{}", row.case_number, row.seq),
        purpose: purpose as i32,
        recipient: row.recipient,
        channel: row.channel,
        text: row.text,
        state: state as i32,
        attempts: row.attempts,
        due_time: Some(to_timestamp(row.due_time)),
        deliver_time: row.deliver_time.map(to_timestamp),
        create_time: Some(to_timestamp(row.create_time)),
        last_note: row.last_note,
    }
}

/// How the case's deadline was computed.
pub fn explain(row: &store::Model, time_zone: chrono_tz::Tz) -> pb::DeadlineExplanation {
    let name = format!("complaints/{}", row.case_number);
    if row.deadline_rule.is_empty() {
        return pb::DeadlineExplanation {
            complaint: name,
            deadline: Some(to_timestamp(row.deadline)),
            rule: "registration time plus the routing policy's handling time (registered before rules were kept)"
                .into(),
            working_hours: false,
            steps: vec![],
            paused: Some(to_duration(Duration::zero())),
        };
    }
    let computed = lifecycle::computed_deadline(row, time_zone);
    let mut steps = computed.steps;
    let local = |time: DateTime<Utc>| time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string();
    if computed.deadline != row.deadline {
        steps.push(format!("moved by {} to {} (see the timeline)", row.owner, local(row.deadline)));
    }
    if let Some(since) = row.waiting_since {
        steps.push(format!(
            "waiting on the customer since {}: the deadline is paused, and the time waited is added when the case resumes",
            local(since)
        ));
    }
    let rule = lifecycle::rule(row);
    pb::DeadlineExplanation {
        complaint: name,
        deadline: Some(to_timestamp(row.deadline)),
        rule: rule.name,
        working_hours: rule.counting == deadline::Counting::WorkingHours,
        steps,
        paused: Some(to_duration(Duration::seconds(row.paused_secs))),
    }
}

fn kind_to_proto(kind: &str) -> pb::Kind {
    match kind.parse::<Kind>() {
        Ok(Kind::Complaint) => pb::Kind::Complaint,
        Ok(Kind::Inquiry) => pb::Kind::Inquiry,
        Ok(Kind::Consultation) => pb::Kind::Consultation,
        Ok(Kind::Suggestion) => pb::Kind::Suggestion,
        Ok(Kind::ChangeRequest) => pb::Kind::ChangeRequest,
        Err(()) => pb::Kind::Unspecified,
    }
}

fn severity_to_proto(severity: &str) -> pb::Severity {
    match severity.parse::<Severity>() {
        Ok(Severity::General) => pb::Severity::General,
        Ok(Severity::Serious) => pb::Severity::Serious,
        Ok(Severity::Critical) => pb::Severity::Critical,
        Err(()) => pb::Severity::Unspecified,
    }
}

/// A retried request answers with the case its `request_id` made; if a branch system reuses another
/// branch's `request_id`, that case is not its to see: refused, showing nothing of it.
fn own_branch(row: store::Model, caller: &Caller) -> Result<store::Model, Status> {
    if caller.cannot_see_branch(&row.branch) {
        return Err(Status::already_exists(
            "this request_id was used before, for another case: send a fresh one (a UUID)",
        ));
    }
    Ok(row)
}
