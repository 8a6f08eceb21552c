//! The case files room: finding a sealed case file (get, search), reading its story under an
//! approved access request or as working documents, classifying it, and placing or lifting a
//! legal hold.

use kefu_kit::{caller::Caller, error::FieldViolations, paging};
use kefu_proto::{archives::v1 as pb, events::v1::CaseClosed};
use prost::Message;

use super::{
    ArchivesApi, CASE_FILES, case_file_to_proto, case_number, classification_from_proto, customer_id, reason_required,
    required_text,
};
use crate::{
    access,
    audit::Record,
    custody::{self, Duty},
    error::{Error, db},
    filing,
    policy::Classification,
    retention,
    store::{self, case_file},
};

/// The sealed story of a file, checked against its hash.
pub(super) fn unseal(file: &case_file::Model) -> Result<CaseClosed, Error> {
    let name = format!("{CASE_FILES}{}", file.case_number);
    let content = file.content.as_deref().ok_or_else(|| Error::Precondition(format!("{name} was destroyed")))?;
    if filing::seal(content) != file.content_sha256 {
        tracing::error!(file = %name, "a sealed case file no longer matches its hash");
        return Err(Error::Corrupt(format!("{name} no longer matches the hash it was sealed with; tell the archives")));
    }
    CaseClosed::decode(content).map_err(|_| Error::Corrupt(format!("{name} is unreadable; tell the archives")))
}

impl ArchivesApi {
    pub(super) async fn get_case_file(
        &self,
        caller: &Caller,
        request: pb::GetCaseFileRequest,
    ) -> Result<pb::CaseFile, Error> {
        let number = case_number(&request.name, "name")?;
        let file = self.visible_case_file(&self.context.db, &number, caller).await?;
        Ok(case_file_to_proto(&file, self.now()))
    }

    pub(super) async fn search_case_files(
        &self,
        caller: &Caller,
        request: pb::SearchCaseFilesRequest,
    ) -> Result<pb::SearchCaseFilesResponse, Error> {
        let page_size = paging::page_size(request.page_size)?;
        let mut violations = FieldViolations::new();
        let customer = match request.customer.as_str() {
            "" => None,
            name => customer_id(name, "customer")
                .map_err(|error| {
                    if let Error::Invalid(more) = error {
                        violations.extend(more)
                    }
                })
                .ok(),
        };
        let mut time = |timestamp: &Option<prost_types::Timestamp>, field: &str| {
            kefu_kit::time::optional_time(timestamp.as_ref(), field)
                .map_err(|more| violations.extend(more))
                .unwrap_or_default()
        };
        let close_start = time(&request.close_start_time, "close_start_time");
        let close_end = time(&request.close_end_time, "close_end_time");
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
        if optional(&request.branch).is_some_and(|branch| !kefu_kit::text::is_branch(&branch)) {
            violations.add("branch", format!("{}, or empty", kefu_kit::text::BRANCH_RULE));
        }
        violations.into_result()?;
        let search = store::case_files::Search {
            waybill_number: optional(&request.waybill_number),
            customer,
            category: optional(&request.category),
            branch: optional(&request.branch),
            close_start,
            close_end,
            max_level: Classification::clearance_of(caller).level(),
        };
        // The token is bound to the search, so a page of one search does not continue another.
        let key = format!("{search:?}");
        let after = paging::decode_token(&request.page_token, &key)?;
        let (rows, next, total) = store::case_files::search(&self.context.db, &search, page_size, after)
            .await
            .map_err(db("searching case files"))?;
        let now = self.now();
        Ok(pb::SearchCaseFilesResponse {
            case_files: rows.iter().map(|row| case_file_to_proto(row, now)).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &key)).unwrap_or_default(),
            total_size: total as i64,
        })
    }

    /// Reads a file's story; a refusal is audited in a transaction of its own.
    pub(super) async fn read_case_file(
        &self,
        caller: &Caller,
        request: pb::ReadCaseFileRequest,
    ) -> Result<pb::CaseFileContent, Error> {
        let subject = request.name.clone();
        self.refusal_audited(caller, &subject, self.read_sealed_story(caller, request)).await
    }

    async fn read_sealed_story(
        &self,
        caller: &Caller,
        request: pb::ReadCaseFileRequest,
    ) -> Result<pb::CaseFileContent, Error> {
        let case_number = case_number(&request.name, "name")?;
        let name = format!("{CASE_FILES}{case_number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &case_number, caller).await?;
        let kept = file.kept();
        kept.may_be_read()?;
        let now = self.now();
        let personal_data_shown = if kept.is_working_document_of(caller, now) && request.access_request.is_empty() {
            let detail = "working documents, before the move to the archives".to_owned();
            let record = Record { actor: &caller.user, action: "read", subject: &name, detail };
            self.audit(&tx, record, now, "auditing a read").await?;
            true
        } else {
            let access = self.approved_access(&tx, caller, &name, &request.access_request).await?;
            self.register_read(&tx, caller, &name, &access).await?;
            access.personal_data
        };
        let mut story = unseal(&file)?;
        if !personal_data_shown && let Some(complaint) = story.complaint.as_mut() {
            complaint.contact_name = access::mask_name(&complaint.contact_name);
            complaint.contact_phone = access::mask_phone(&complaint.contact_phone);
        }
        tx.commit().await.map_err(db("recording a read"))?;
        Ok(pb::CaseFileContent {
            file: Some(case_file_to_proto(&file, now)),
            complaint: story.complaint,
            owner_reference: story.owner_reference,
            resolution: story.resolution,
            accept_time: story.accept_time,
            resolve_time: story.resolve_time,
            closed_by: story.closed_by,
            incident: story.incident,
            escalated_to: story.escalated_to,
            steps: story.steps,
            payments: story.payments,
            personal_data_shown,
        })
    }

    pub(super) async fn classify_case_file(
        &self,
        caller: &Caller,
        request: pb::ClassifyCaseFileRequest,
    ) -> Result<pb::CaseFile, Error> {
        custody::archivist_only(caller, Duty::Classify)?;
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        let level = classification_from_proto(request.classification);
        if level.is_none() {
            violations.add("classification", "required: ORDINARY, CONFIDENTIAL or TOP_SECRET");
        }
        required_text(&mut violations, "reason", &request.reason);
        let Some(level) = level else { return Err(violations.into()) };
        violations.into_result()?;
        custody::may_classify_as(caller, level)?;
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, caller).await?;
        let before = file.level();
        store::case_files::classify(&tx, &number, level).await.map_err(db("classifying a file"))?;
        let detail = format!("{} → {}: {}", before.as_str(), level.as_str(), request.reason.trim());
        let record = Record { actor: &caller.user, action: "classified", subject: &request.name, detail };
        self.audit(&tx, record, self.now(), "auditing a classification").await?;
        tx.commit().await.map_err(db("classifying a file"))?;
        let file = case_file::Model { classification: level.level(), ..file };
        Ok(case_file_to_proto(&file, self.now()))
    }

    pub(super) async fn set_legal_hold(
        &self,
        caller: &Caller,
        request: pb::SetLegalHoldRequest,
    ) -> Result<pb::CaseFile, Error> {
        custody::archivist_only(caller, Duty::LegalHold)?;
        let number = case_number(&request.name, "name")?;
        reason_required(&request.reason)?;
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, caller).await?;
        retention::may_hold(&file.kept())?;
        let reason = if request.hold { request.reason.trim().to_owned() } else { String::new() };
        store::case_files::set_legal_hold(&tx, &number, request.hold, &reason)
            .await
            .map_err(db("setting a legal hold"))?;
        let detail = format!("{}: {}", if request.hold { "placed" } else { "lifted" }, request.reason.trim());
        let record = Record { actor: &caller.user, action: "legal_hold", subject: &request.name, detail };
        self.audit(&tx, record, self.now(), "auditing a legal hold").await?;
        tx.commit().await.map_err(db("setting a legal hold"))?;
        let file = case_file::Model { legal_hold: request.hold, legal_hold_reason: reason, ..file };
        Ok(case_file_to_proto(&file, self.now()))
    }
}
