//! A case and its life: reading cases (one, a list, the timeline, the deadline's explanation), and
//! every transition the service center makes — resolve, approve, reopen, wait and resume, change
//! severity, link and unlink duplicates, close, chase the overdue. Each transition is a
//! [`Command`] applied on the write path; its rule is in `crate::complaint`.

use kefu_kit::{error::FieldViolations, paging};
use kefu_proto::intake::v1 as pb;
use tonic::{Request, Response};

use super::{IntakeApi, Reply, case_number, check, check_text, parts};
use crate::{
    closing,
    complaint::{Command, Complaint},
    convert::{explain, to_proto},
    domain::{self, Severity},
    error::{Error, db},
    store,
};

/// A complaint as `caller` may read it: the customer's name and phone masked unless the caller
/// sees them ([`kefu_kit::caller::Caller::sees_personal_data_of`]: the service center, the branch's
/// system, the owning department).
fn as_seen_by(caller: &kefu_kit::caller::Caller, mut complaint: pb::Complaint) -> pb::Complaint {
    if !caller.sees_personal_data_of(&complaint.owner)
        && let Some(contact) = complaint.contact.as_mut()
    {
        contact.name = kefu_kit::personal::mask_name(&contact.name);
        contact.phone = kefu_kit::personal::mask_phone(&contact.phone);
    }
    complaint
}

impl IntakeApi {
    /// The complaint named `name`, if the caller's branch may see it.
    async fn visible(&self, name: &str, caller: &kefu_kit::caller::Caller) -> Result<Complaint, Error> {
        let case_number = case_number(name, "name")?;
        store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(db("reading a complaint"))?
            .filter(|complaint| !caller.cannot_see_branch(&complaint.branch))
            .ok_or_else(|| Error::no_complaint(name))
    }

    pub(super) async fn get_complaint(&self, request: Request<pb::GetComplaintRequest>) -> Reply<pb::Complaint> {
        let (caller, _, request) = parts(request);
        Ok(Response::new(as_seen_by(&caller, to_proto(self.visible(&request.name, &caller).await?))))
    }

    pub(super) async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Reply<pb::ListComplaintsResponse> {
        let (caller, _, request) = parts(request);
        let page_size = paging::page_size(request.page_size)?;
        let mut terms = domain::parse_filter(&request.filter)
            .map_err(|message| Error::Invalid(FieldViolations::of("filter", message)))?;
        // A branch office's system lists its own branch's cases alone.
        if let Some(scope) = caller.branch_scope() {
            terms.push((domain::FilterField::Branch, scope.to_owned()));
        }
        // A search by phone finds only the cases whose phone the caller sees: a department's own,
        // where it does not see every customer's. No one learns whether a phone has complained
        // elsewhere.
        if !caller.sees_all_personal_data()
            && terms.iter().any(|(field, _)| *field == domain::FilterField::ContactPhone)
        {
            let own = caller.department.parse::<kefu_kit::config::ServiceName>().map_or("none", |owner| owner.as_str());
            terms.push((domain::FilterField::Owner, own.to_owned()));
        }
        let after = paging::decode_token(&request.page_token, &request.filter)?;
        let (rows, next) =
            store::list(&self.context.db, &terms, page_size, after).await.map_err(db("listing complaints"))?;
        Ok(Response::new(pb::ListComplaintsResponse {
            complaints: rows.into_iter().map(|row| as_seen_by(&caller, to_proto(row))).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &request.filter)).unwrap_or_default(),
        }))
    }

    pub(super) async fn get_complaint_timeline(
        &self,
        request: Request<pb::GetComplaintTimelineRequest>,
    ) -> Reply<pb::ComplaintTimeline> {
        let (caller, _, request) = parts(request);
        let complaint = self.visible(&request.name, &caller).await?;
        let (steps, payments) = closing::timeline(&self.context.db, &complaint).await?;
        Ok(Response::new(pb::ComplaintTimeline { complaint: request.name, steps, payments }))
    }

    pub(super) async fn explain_deadline(
        &self,
        request: Request<pb::ExplainDeadlineRequest>,
    ) -> Reply<pb::DeadlineExplanation> {
        let name = request.into_inner().name;
        let case_number = case_number(&name, "name").map_err(Error::from)?;
        let complaint = store::by_case_number(&self.context.db, case_number)
            .await
            .map_err(db("reading a complaint"))?
            .ok_or_else(|| Error::no_complaint(&name))?;
        Ok(Response::new(explain(&complaint, self.context.time_zone)))
    }

    pub(super) async fn close_complaint(&self, request: Request<pb::CloseComplaintRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, &request.request_id, &[("note", &request.note, false)])?;
        let request_id = kefu_kit::error::idempotency_key(request.request_id.trim()).map(str::to_owned);
        let command = Command::Close { note: request.note.trim().to_owned(), request_id };
        let reply = self.act(case_number, &request.request_id, &caller, &trace, command).await?;
        tracing::info!(case_number, "complaint closed");
        Ok(reply)
    }

    pub(super) async fn resolve_complaint(
        &self,
        request: Request<pb::ResolveComplaintRequest>,
    ) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let texts = [("resolution", request.resolution.as_str(), true), ("cause", request.cause.as_str(), false)];
        let case_number = check(&request.name, &request.request_id, &texts)?;
        let command = Command::Resolve {
            resolution: request.resolution.trim().to_owned(),
            cause: request.cause.trim().to_owned(),
        };
        self.act(case_number, &request.request_id, &caller, &trace, command).await
    }

    pub(super) async fn change_severity(&self, request: Request<pb::ChangeSeverityRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, "", &[("reason", &request.reason, true)])?;
        let to = match pb::Severity::try_from(request.severity) {
            Ok(pb::Severity::General) => Severity::General,
            Ok(pb::Severity::Serious) => Severity::Serious,
            Ok(pb::Severity::Critical) => Severity::Critical,
            _ => {
                return Err(FieldViolations::of("severity", "GENERAL, SERIOUS or CRITICAL").into_status());
            }
        };
        let command = Command::ChangeSeverity { to, reason: request.reason.trim().to_owned() };
        self.act(case_number, "", &caller, &trace, command).await
    }

    pub(super) async fn approve_outcome(&self, request: Request<pb::ApproveOutcomeRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number =
            check(&request.name, &request.request_id, &[("written_answer", &request.written_answer, true)])?;
        let command = Command::Approve { written_answer: request.written_answer.trim().to_owned() };
        self.act(case_number, &request.request_id, &caller, &trace, command).await
    }

    pub(super) async fn reopen_complaint(&self, request: Request<pb::ReopenComplaintRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, &request.request_id, &[("reason", &request.reason, true)])?;
        let command = Command::Reopen { reason: request.reason.trim().to_owned() };
        self.act(case_number, &request.request_id, &caller, &trace, command).await
    }

    pub(super) async fn wait_for_customer(&self, request: Request<pb::WaitForCustomerRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, "", &[("reason", &request.reason, true)])?;
        let command = Command::WaitForCustomer { reason: request.reason.trim().to_owned() };
        self.act(case_number, "", &caller, &trace, command).await
    }

    pub(super) async fn resume_complaint(&self, request: Request<pb::ResumeComplaintRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, "", &[("note", &request.note, false)])?;
        let command = Command::Resume { note: request.note.trim().to_owned() };
        self.act(case_number, "", &caller, &trace, command).await
    }

    pub(super) async fn link_duplicate(&self, request: Request<pb::LinkDuplicateRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        let case_number = case_number(&request.name, "name").map_err(|more| violations.extend(more)).ok();
        let original = case_number_of_original(&request.duplicate_of).map_err(|more| violations.extend(more)).ok();
        check_text(&mut violations, "reason", &request.reason, true);
        let (Some(case_number), Some(original)) = (case_number, original) else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        let original = store::by_case_number(&self.context.db, original)
            .await
            .map_err(db("reading a complaint"))?
            .ok_or_else(|| Error::no_complaint(&request.duplicate_of))?;
        let command = Command::LinkDuplicate { original: Box::new(original), reason: request.reason.trim().to_owned() };
        self.act(case_number, "", &caller, &trace, command).await
    }

    pub(super) async fn unlink_duplicate(&self, request: Request<pb::UnlinkDuplicateRequest>) -> Reply<pb::Complaint> {
        let (caller, trace, request) = parts(request);
        let case_number = check(&request.name, "", &[("reason", &request.reason, true)])?;
        let command = Command::UnlinkDuplicate { reason: request.reason.trim().to_owned() };
        self.act(case_number, "", &caller, &trace, command).await
    }

    pub(super) async fn chase_overdue(
        &self,
        _request: Request<pb::ChaseOverdueRequest>,
    ) -> Reply<pb::ChaseOverdueResponse> {
        let chased = self.keeper.chase_overdue(&self.context).await?;
        Ok(Response::new(pb::ChaseOverdueResponse { chased }))
    }
}

fn case_number_of_original(name: &str) -> Result<&str, FieldViolations> {
    case_number(name, "duplicate_of")
        .map_err(|_| FieldViolations::of("duplicate_of", "expected complaints/{case_number}"))
}
