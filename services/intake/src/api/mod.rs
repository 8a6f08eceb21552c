//! `kefu.intake.v1.Intake`: the gRPC handlers, one file per room of the service center —
//!
//! - [`registration`]: taking a complaint or a request, and turning an inquiry into a complaint;
//! - [`cases`]: reading cases and every transition of their life (resolve, approve, reopen, wait,
//!   severity, duplicates, close, the deadline's explanation, chasing);
//! - [`visits`]: follow-up visits planned, recorded and signed;
//! - [`replies`]: the replies due and the attempts to deliver them;
//! - [`reports`]: the weekly and monthly summaries;
//! - webhooks live in `crate::webhooks::api`.
//!
//! Each handler checks its request (every offending field at once), then calls a rule through the
//! keeper or a read of the store, and converts the answer (`crate::convert`). No rule lives here.

mod cases;
mod registration;
mod replies;
mod reports;
mod visits;

use kefu_kit::{
    caller::Caller,
    error::{self, FieldViolations},
    server::ServiceContext,
    trace::TraceContext,
};
use kefu_proto::intake::v1::{self as pb, intake_server};
use sea_orm::{ConnectionTrait, DbBackend};
use tonic::{Request, Response, Status};

use crate::{
    complaint::Command, convert::to_proto, domain::MAX_TEXT, keeper::ComplaintKeeper, webhooks, writer::Writers,
};

pub const SERVICE_NAME: &str = "kefu.intake.v1.Intake";

type Reply<T> = Result<Response<T>, Status>;

pub struct IntakeApi {
    context: ServiceContext,
    keeper: ComplaintKeeper,
    writers: Writers,
    webhook_rules: webhooks::Rules,
}

impl IntakeApi {
    /// The API of intake in `context`, registering webhooks by `webhook_rules`; what it writes for
    /// them wakes the sender through `webhooks`.
    pub fn new(context: ServiceContext, webhook_rules: webhooks::Rules, webhooks: webhooks::Wake) -> Self {
        let keeper = ComplaintKeeper { time_zone: context.time_zone, webhooks };
        // SQLite has one connection. On PostgreSQL a second writer's transaction is in flight
        // while the first one's commits; more would make each one's batch smaller, not the
        // commits faster (docs/benchmarks.md, "sixth round").
        let writers = match context.db.get_database_backend() {
            DbBackend::Sqlite => 1,
            _ => 2,
        };
        let writers = Writers::start(context.db.clone(), writers, keeper.clone(), context.relay.clone());
        Self { context, keeper, writers, webhook_rules }
    }

    pub fn into_server(self) -> intake_server::IntakeServer<Self> {
        intake_server::IntakeServer::new(self)
    }

    /// Applies `command` to the complaint named `name` (checked before), once per `request_id`.
    async fn act(
        &self,
        case_number: &str,
        request_id: &str,
        caller: &Caller,
        trace: &TraceContext,
        command: Command,
    ) -> Reply<pb::Complaint> {
        let request_id = error::idempotency_key(request_id.trim());
        let complaint = self.keeper.act(&self.context, case_number, request_id, caller, trace, command).await?;
        Ok(Response::new(to_proto(complaint)))
    }
}

/// The caller, the trace and the message of a request.
fn parts<T>(request: Request<T>) -> (Caller, TraceContext, T) {
    let caller = Caller::from_metadata(request.metadata());
    let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
    (caller, trace, request.into_inner())
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

/// Checks a case name, a request id and the texts given, all violations at once; the case number.
fn check<'a>(name: &'a str, request_id: &str, texts: &[(&str, &str, bool)]) -> Result<&'a str, Status> {
    let mut violations = FieldViolations::new();
    let case_number = kefu_kit::names::complaint(name, "name").map_err(|more| violations.extend(more)).ok();
    error::check_request_id(&mut violations, "request_id", request_id);
    for (field, value, required) in texts {
        check_text(&mut violations, field, value, *required);
    }
    match case_number {
        Some(case_number) if violations.is_empty() => Ok(case_number),
        _ => Err(violations.into_status()),
    }
}

/// `complaints/{case_number}` in field `field` → the case number.
fn case_number<'a>(name: &'a str, field: &str) -> Result<&'a str, FieldViolations> {
    kefu_kit::names::complaint(name, field)
}

/// An optional `complaints/{case_number}` in field `field` (empty: none), as lists take it.
fn optional_case_number<'a>(name: &'a str, field: &str) -> Result<Option<&'a str>, crate::error::Error> {
    (!name.is_empty()).then(|| case_number(name, field)).transpose().map_err(Into::into)
}

/// `complaints/{case_number}/{collection}/{id}` → the case number and the id.
fn child_name<'a>(name: &'a str, collection: &str) -> Result<(&'a str, i64), FieldViolations> {
    let wrong = || FieldViolations::of("name", format!("expected complaints/{{case_number}}/{collection}/{{id}}"));
    let (complaint, id) = name.rsplit_once(&format!("/{collection}/")).ok_or_else(wrong)?;
    let case_number = kefu_kit::names::case_number_in(complaint, kefu_kit::names::COMPLAINTS).ok_or_else(wrong)?;
    Ok((case_number, id.parse().map_err(|_| wrong())?))
}

#[tonic::async_trait]
impl intake_server::Intake for IntakeApi {
    async fn register_complaint(&self, request: Request<pb::RegisterComplaintRequest>) -> Reply<pb::Complaint> {
        self.register_complaint(request).await
    }

    async fn create_request(&self, request: Request<pb::CreateRequestRequest>) -> Reply<pb::Complaint> {
        self.create_request(request).await
    }

    async fn get_complaint(&self, request: Request<pb::GetComplaintRequest>) -> Reply<pb::Complaint> {
        self.get_complaint(request).await
    }

    async fn list_complaints(&self, request: Request<pb::ListComplaintsRequest>) -> Reply<pb::ListComplaintsResponse> {
        self.list_complaints(request).await
    }

    async fn get_complaint_timeline(
        &self,
        request: Request<pb::GetComplaintTimelineRequest>,
    ) -> Reply<pb::ComplaintTimeline> {
        self.get_complaint_timeline(request).await
    }

    async fn close_complaint(&self, request: Request<pb::CloseComplaintRequest>) -> Reply<pb::Complaint> {
        self.close_complaint(request).await
    }

    async fn resolve_complaint(&self, request: Request<pb::ResolveComplaintRequest>) -> Reply<pb::Complaint> {
        self.resolve_complaint(request).await
    }

    async fn change_severity(&self, request: Request<pb::ChangeSeverityRequest>) -> Reply<pb::Complaint> {
        self.change_severity(request).await
    }

    async fn approve_outcome(&self, request: Request<pb::ApproveOutcomeRequest>) -> Reply<pb::Complaint> {
        self.approve_outcome(request).await
    }

    async fn reopen_complaint(&self, request: Request<pb::ReopenComplaintRequest>) -> Reply<pb::Complaint> {
        self.reopen_complaint(request).await
    }

    async fn wait_for_customer(&self, request: Request<pb::WaitForCustomerRequest>) -> Reply<pb::Complaint> {
        self.wait_for_customer(request).await
    }

    async fn resume_complaint(&self, request: Request<pb::ResumeComplaintRequest>) -> Reply<pb::Complaint> {
        self.resume_complaint(request).await
    }

    async fn explain_deadline(&self, request: Request<pb::ExplainDeadlineRequest>) -> Reply<pb::DeadlineExplanation> {
        self.explain_deadline(request).await
    }

    async fn chase_overdue(&self, request: Request<pb::ChaseOverdueRequest>) -> Reply<pb::ChaseOverdueResponse> {
        self.chase_overdue(request).await
    }

    async fn link_duplicate(&self, request: Request<pb::LinkDuplicateRequest>) -> Reply<pb::Complaint> {
        self.link_duplicate(request).await
    }

    async fn unlink_duplicate(&self, request: Request<pb::UnlinkDuplicateRequest>) -> Reply<pb::Complaint> {
        self.unlink_duplicate(request).await
    }

    async fn list_replies(&self, request: Request<pb::ListRepliesRequest>) -> Reply<pb::ListRepliesResponse> {
        self.list_replies(request).await
    }

    async fn record_reply_attempt(&self, request: Request<pb::RecordReplyAttemptRequest>) -> Reply<pb::Reply> {
        self.record_reply_attempt(request).await
    }

    async fn plan_visit(&self, request: Request<pb::PlanVisitRequest>) -> Reply<pb::Visit> {
        self.plan_visit(request).await
    }

    async fn record_visit(&self, request: Request<pb::RecordVisitRequest>) -> Reply<pb::Visit> {
        self.record_visit(request).await
    }

    async fn sign_visit(&self, request: Request<pb::SignVisitRequest>) -> Reply<pb::Visit> {
        self.sign_visit(request).await
    }

    async fn list_visits(&self, request: Request<pb::ListVisitsRequest>) -> Reply<pb::ListVisitsResponse> {
        self.list_visits(request).await
    }

    async fn get_complaint_summary(
        &self,
        request: Request<pb::GetComplaintSummaryRequest>,
    ) -> Reply<pb::ComplaintSummary> {
        self.get_complaint_summary(request).await
    }

    async fn get_visit_summary(&self, request: Request<pb::GetVisitSummaryRequest>) -> Reply<pb::VisitSummary> {
        self.get_visit_summary(request).await
    }

    async fn get_cargo_exception_report(
        &self,
        request: Request<pb::GetCargoExceptionReportRequest>,
    ) -> Reply<pb::CargoExceptionReport> {
        self.get_cargo_exception_report(request).await
    }

    async fn register_webhook(&self, request: Request<pb::RegisterWebhookRequest>) -> Reply<pb::Webhook> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(webhooks::api::register(&self.context, &self.webhook_rules, &caller, request).await?))
    }

    async fn list_webhooks(&self, request: Request<pb::ListWebhooksRequest>) -> Reply<pb::ListWebhooksResponse> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(webhooks::api::list(&self.context, &caller, request).await?))
    }

    async fn disable_webhook(&self, request: Request<pb::DisableWebhookRequest>) -> Reply<pb::Webhook> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(webhooks::api::disable(&self.context, &caller, request).await?))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Reply<pb::ListWebhookDeliveriesResponse> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(webhooks::api::list_deliveries(&self.context, &caller, request).await?))
    }

    async fn redeliver_webhook_delivery(
        &self,
        request: Request<pb::RedeliverWebhookDeliveryRequest>,
    ) -> Reply<pb::WebhookDelivery> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(webhooks::api::redeliver(&self.context, &self.keeper.webhooks, &caller, request).await?))
    }
}
