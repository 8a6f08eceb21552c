//! `kefu.archives.v1.Archives`: proto ⇄ the rules of [`crate::access`] and [`crate::policy`], and the
//! transactions that keep each read, approval, refusal, classification and destruction together
//! with its audit entry.

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{FieldViolations, check_request_id, idempotency_key},
    outbox, paging,
    server::ServiceContext,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
};
use kefu_proto::{
    archives::v1 as pb,
    events::v1::{CaseClosed, CustomerGraded, event::Payload},
    types::v1::CasePayment,
};
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use tonic::{Request, Response, Status};

use crate::{
    access::{self, Kind},
    audit,
    error::{Error, db},
    filing,
    policy::{self, Classification, Score},
    store::{
        self, access_request,
        access_requests::{Borrowing, NewAccessRequest},
        case_file, customer,
        customers::{NewCustomerFile, Opened},
        destruction::NewDestruction,
    },
};

pub const SERVICE_NAME: &str = "kefu.archives.v1.Archives";

const CASE_FILES: &str = "caseFiles/";
const CUSTOMERS: &str = "customers/";
const ACCESS_REQUESTS: &str = "accessRequests/";
const DESTRUCTION_RECORDS: &str = "destructionRecords/";
/// The longest purpose, reason or note accepted.
const MAX_TEXT: usize = 1000;

pub struct ArchivesApi {
    pub context: ServiceContext,
    pub audit_key: audit::AuditKey,
}

type Answer<T> = Result<Response<T>, Status>;

/// A file an access request may name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileName {
    Case(String),
    Customer(String),
}

impl FileName {
    fn parse(name: &str, field: &str) -> Result<FileName, FieldViolations> {
        let mut violations = FieldViolations::new();
        if let Some(number) = name.strip_prefix(CASE_FILES).filter(|id| is_code(id)) {
            return Ok(FileName::Case(number.to_owned()));
        }
        if let Some(id) = name.strip_prefix(CUSTOMERS).filter(|id| is_code(id)) {
            return Ok(FileName::Customer(id.to_owned()));
        }
        violations.add(field, "expected caseFiles/{case_number} or customers/{id}");
        Err(violations)
    }

    fn name(&self) -> String {
        match self {
            FileName::Case(number) => format!("{CASE_FILES}{number}"),
            FileName::Customer(id) => format!("{CUSTOMERS}{id}"),
        }
    }
}

/// Case numbers and customer numbers.
fn is_code(text: &str) -> bool {
    kefu_kit::text::is_code(text, 64)
}

fn case_number(name: &str, field: &str) -> Result<String, Error> {
    match FileName::parse(name, field)? {
        FileName::Case(number) => Ok(number),
        FileName::Customer(_) => Err(invalid(field, "expected caseFiles/{case_number}")),
    }
}

fn customer_id(name: &str, field: &str) -> Result<String, Error> {
    match FileName::parse(name, field)? {
        FileName::Customer(id) => Ok(id),
        FileName::Case(_) => Err(invalid(field, "expected customers/{id}")),
    }
}

fn numbered(name: &str, prefix: &str, field: &str) -> Result<i64, Error> {
    name.strip_prefix(prefix)
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(field, &format!("expected {prefix}{{n}}")))
}

fn invalid(field: &str, description: &str) -> Error {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    Error::Invalid(violations)
}

fn required_text(violations: &mut FieldViolations, field: &str, text: &str) {
    if text.trim().is_empty() {
        violations.add(field, "required");
    } else if text.chars().count() > MAX_TEXT {
        violations.add(field, format!("at most {MAX_TEXT} characters"));
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no file named {name}"))
}

fn archivist_only(caller: &Caller, what: &str) -> Result<(), Error> {
    if caller.department == policy::ARCHIVES_DEPARTMENT {
        Ok(())
    } else {
        Err(Error::Denied(format!("only the archives (department {}) may {what}", policy::ARCHIVES_DEPARTMENT)))
    }
}

fn level_of(level: i32) -> Classification {
    Classification::from_level(level).unwrap_or(Classification::TopSecret)
}

fn classification_to_proto(level: Classification) -> pb::Classification {
    match level {
        Classification::Ordinary => pb::Classification::Ordinary,
        Classification::Confidential => pb::Classification::Confidential,
        Classification::TopSecret => pb::Classification::TopSecret,
    }
}

fn classification_from_proto(value: i32) -> Option<Classification> {
    match pb::Classification::try_from(value).ok()? {
        pb::Classification::Ordinary => Some(Classification::Ordinary),
        pb::Classification::Confidential => Some(Classification::Confidential),
        pb::Classification::TopSecret => Some(Classification::TopSecret),
        pb::Classification::Unspecified => None,
    }
}

fn case_file_to_proto(file: &case_file::Model, now: DateTime<Utc>) -> pb::CaseFile {
    let location = if file.destroy_time.is_some() {
        pb::Location::Destroyed
    } else if now < file.archive_time {
        pb::Location::ServiceCenter
    } else {
        pb::Location::Archives
    };
    pb::CaseFile {
        name: format!("{CASE_FILES}{}", file.case_number),
        complaint: format!("complaints/{}", file.case_number),
        category: file.category.clone(),
        waybill_number: file.waybill_number.clone(),
        branch: file.branch.clone(),
        owner: file.owner.clone(),
        close_time: Some(to_timestamp(file.close_time)),
        archive_time: Some(to_timestamp(file.archive_time)),
        location: location as i32,
        classification: classification_to_proto(level_of(file.classification)) as i32,
        content_sha256: file.content_sha256.clone(),
        retention_rule: file.retention_rule.clone(),
        retain_until: Some(to_timestamp(file.retain_until)),
        legal_hold: file.legal_hold,
        legal_hold_reason: file.legal_hold_reason.clone(),
        customer: file.customer.as_ref().map(|id| format!("{CUSTOMERS}{id}")).unwrap_or_default(),
    }
}

fn kind_to_proto(kind: &str) -> pb::AccessKind {
    match kind {
        "copy" => pb::AccessKind::Copy,
        _ => pb::AccessKind::Read,
    }
}

/// An access request row as the rules see it.
fn access_from_row(row: &access_request::Model) -> Result<access::Request, Error> {
    row.request().map_err(|_| Error::Corrupt(format!("access request {ACCESS_REQUESTS}{} is unreadable", row.seq)))
}

fn access_to_proto(row: &access_request::Model, request: &access::Request) -> pb::AccessRequest {
    pb::AccessRequest {
        name: format!("{ACCESS_REQUESTS}{}", row.seq),
        file: row.file.clone(),
        kind: kind_to_proto(&row.kind) as i32,
        purpose: row.purpose.clone(),
        reason: row.reason.clone(),
        personal_data: row.personal_data,
        requester: row.requester.clone(),
        requester_department: row.requester_department.clone(),
        required_approvals: request.required.iter().map(|signature| signature.as_str().into()).collect(),
        approvals: request
            .approvals
            .iter()
            .map(|approval| pb::Approval {
                r#as: approval.signature.as_str().into(),
                approver: approval.approver.clone(),
                time: Some(to_timestamp(approval.time)),
            })
            .collect(),
        state: match request.state {
            access::State::Pending => pb::AccessState::Pending,
            access::State::Approved => pb::AccessState::Approved,
            access::State::Refused => pb::AccessState::Refused,
        } as i32,
        create_time: Some(to_timestamp(row.create_time)),
        expire_time: row.expire_time.map(to_timestamp),
        refusal_reason: row.refusal_reason.clone(),
        refused_by: row.refused_by.clone(),
    }
}

fn destruction_to_proto(row: &store::destruction_record::Model) -> pb::DestructionRecord {
    pb::DestructionRecord {
        name: format!("{DESTRUCTION_RECORDS}{}", row.seq),
        case_file: row.case_file.clone(),
        category: row.category.clone(),
        content_sha256: row.content_sha256.clone(),
        close_time: Some(to_timestamp(row.close_time)),
        retention_rule: row.retention_rule.clone(),
        retain_until: Some(to_timestamp(row.retain_until)),
        approved_by: row.approved_by.clone(),
        reason: row.reason.clone(),
        destroy_time: Some(to_timestamp(row.destroy_time)),
    }
}

fn grade_to_proto(row: &customer::Model) -> pb::CustomerGrade {
    pb::CustomerGrade {
        customer: format!("{CUSTOMERS}{}", row.customer_id),
        grade: row.grade.clone(),
        total: row.total,
        score: row.score_time.map(|_| pb::CustomerScore {
            profit_contribution: row.profit_contribution,
            order_amount: row.order_amount,
            cooperation_years: row.cooperation_years,
            credit: row.credit,
            prospects: row.prospects,
        }),
        scored_by: row.scored_by.clone(),
        score_time: row.score_time.map(to_timestamp),
    }
}

/// A customer's file without its cases; contacts masked unless `personal_data`.
fn customer_to_proto(row: &customer::Model, personal_data: bool) -> pb::CustomerFile {
    let phones: Vec<String> = serde_json::from_str(&row.phones).unwrap_or_default();
    let (contact_name, phones) = if personal_data {
        (row.contact_name.clone(), phones)
    } else {
        (access::mask_name(&row.contact_name), phones.iter().map(|phone| access::mask_phone(phone)).collect())
    };
    pb::CustomerFile {
        name: format!("{CUSTOMERS}{}", row.customer_id),
        contact_name,
        phones,
        company: row.company.clone(),
        customer_type: row.customer_type.clone(),
        classification: classification_to_proto(level_of(row.classification)) as i32,
        grade: Some(grade_to_proto(row)),
        cases: Vec::new(),
        payments: Vec::new(),
        create_time: Some(to_timestamp(row.create_time)),
    }
}

/// The scoring sheet's marks as the request gives them.
fn score_from_proto(score: pb::CustomerScore) -> Score {
    Score {
        profit_contribution: score.profit_contribution,
        order_amount: score.order_amount,
        cooperation_years: score.cooperation_years,
        credit: score.credit,
        prospects: score.prospects,
    }
}

/// What deciding an access request did: the audit entry's action and detail, and the refusal to
/// record, if it was refused.
struct Decision {
    action: &'static str,
    detail: String,
    refusal: Option<store::access_requests::Refusal>,
}

/// The sealed story of a file, checked against its hash.
fn unseal(file: &case_file::Model) -> Result<CaseClosed, Error> {
    let name = format!("{CASE_FILES}{}", file.case_number);
    let content = file.content.as_deref().ok_or_else(|| Error::Precondition(format!("{name} was destroyed")))?;
    if filing::seal(content) != file.content_sha256 {
        tracing::error!(file = %name, "a sealed case file no longer matches its hash");
        return Err(Error::Corrupt(format!("{name} no longer matches the hash it was sealed with; tell the archives")));
    }
    CaseClosed::decode(content).map_err(|_| Error::Corrupt(format!("{name} is unreadable; tell the archives")))
}

impl ArchivesApi {
    fn now(&self) -> DateTime<Utc> {
        to_micros(self.context.clock.now())
    }

    async fn begin(&self) -> Result<DatabaseTransaction, Error> {
        store::begin(&self.context.db).await.map_err(db("opening a transaction"))
    }

    /// The case file `case_number` if the caller's clearance covers it; NOT_FOUND otherwise, alike.
    async fn visible_case_file(
        &self,
        conn: &impl ConnectionTrait,
        case_number: &str,
        caller: &Caller,
    ) -> Result<case_file::Model, Error> {
        let clearance = Classification::clearance_of(caller);
        store::case_files::case_file(conn, case_number)
            .await
            .map_err(db("reading a case file"))?
            .filter(|file| clearance.covers(level_of(file.classification)))
            .ok_or_else(|| not_found(&format!("{CASE_FILES}{case_number}")))
    }

    async fn visible_customer(
        &self,
        conn: &impl ConnectionTrait,
        customer_id: &str,
        caller: &Caller,
    ) -> Result<customer::Model, Error> {
        let clearance = Classification::clearance_of(caller);
        store::customers::customer(conn, customer_id)
            .await
            .map_err(db("reading a customer file"))?
            .filter(|row| clearance.covers(level_of(row.classification)))
            .ok_or_else(|| not_found(&format!("{CUSTOMERS}{customer_id}")))
    }

    /// The classification of a file the caller may see (for an access request's signatures).
    async fn visible_level(
        &self,
        conn: &impl ConnectionTrait,
        file: &FileName,
        caller: &Caller,
    ) -> Result<Classification, Error> {
        Ok(match file {
            FileName::Case(number) => level_of(self.visible_case_file(conn, number, caller).await?.classification),
            FileName::Customer(id) => level_of(self.visible_customer(conn, id, caller).await?.classification),
        })
    }

    /// Records, in a transaction of its own, that a read was refused (a suspected leak is reported:
    /// `003 第27条`), and returns the refusal.
    async fn refuse_read(&self, caller: &Caller, subject: &str, error: Error) -> Error {
        let reason = match &error {
            Error::Denied(message) | Error::NotFound(message) | Error::Precondition(message) => message.clone(),
            _ => return error,
        };
        let recorded = async {
            let tx = self.begin().await?;
            let record = audit::Record { actor: &caller.user, action: "read_refused", subject, detail: reason };
            audit::append(&tx, &self.audit_key, record, self.now()).await.map_err(db("auditing a refusal"))?;
            tx.commit().await.map_err(db("auditing a refusal"))
        };
        if let Err(failure) = recorded.await {
            return failure;
        }
        tracing::warn!(user = %caller.user, file = %subject, "read refused");
        error
    }

    /// Checks the caller's access request for `file` and returns it; the caller must name one.
    async fn approved_access(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        file: &str,
        access_request: &str,
    ) -> Result<access_request::Model, Error> {
        if access_request.is_empty() {
            return Err(Error::Denied(format!(
                "reading {file} needs an approved access request (003 第20条): ask with CreateAccessRequest and \
                 name it in access_request"
            )));
        }
        let seq = numbered(access_request, ACCESS_REQUESTS, "access_request")?;
        let row = store::access_requests::access_request(conn, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(|| Error::Denied(format!("there is no access request {access_request}")))?;
        access_from_row(&row)?.permits(caller, file, self.now())?;
        Ok(row)
    }

    /// Enters a read in the borrowing register and the audit log.
    async fn register_read(
        &self,
        tx: &impl ConnectionTrait,
        caller: &Caller,
        file: &str,
        access: &access_request::Model,
        personal_data_shown: bool,
    ) -> Result<(), Error> {
        let now = self.now();
        let entry = Borrowing {
            time: now,
            file: file.to_owned(),
            reader: caller.user.clone(),
            reader_department: caller.department.clone(),
            kind: access.kind(),
            access_request: format!("{ACCESS_REQUESTS}{}", access.seq),
            purpose: access.purpose.clone(),
            personal_data_shown,
        };
        store::access_requests::register_read(tx, entry).await.map_err(db("writing the borrowing register"))?;
        let detail = format!(
            "under {ACCESS_REQUESTS}{}; personal data {}",
            access.seq,
            if personal_data_shown { "shown" } else { "masked" }
        );
        let action = if access.kind == "copy" { "copy" } else { "read" };
        audit::append(tx, &self.audit_key, audit::Record { actor: &caller.user, action, subject: file, detail }, now)
            .await
            .map_err(db("auditing a read"))?;
        Ok(())
    }

    async fn read_case_file_inner(
        &self,
        caller: &Caller,
        request: pb::ReadCaseFileRequest,
    ) -> Result<pb::CaseFileContent, Error> {
        let case_number = case_number(&request.name, "name")?;
        let name = format!("{CASE_FILES}{case_number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &case_number, caller).await?;
        if let Some(destroyed) = file.destroy_time {
            return Err(Error::Precondition(format!(
                "{name} was destroyed on {} under rule {}; its destruction record remains",
                destroyed.to_rfc3339(),
                file.retention_rule
            )));
        }
        let now = self.now();
        // Until they move, the closed case's documents are the working papers of the departments
        // that handled it.
        let working = now < file.archive_time
            && (policy::WORKING_DEPARTMENTS.contains(&caller.department.as_str()) || caller.department == file.owner);
        let personal_data_shown = if working && request.access_request.is_empty() {
            let detail = "working documents, before the move to the archives".to_owned();
            audit::append(
                &tx,
                &self.audit_key,
                audit::Record { actor: &caller.user, action: "read", subject: &name, detail },
                now,
            )
            .await
            .map_err(db("auditing a read"))?;
            true
        } else {
            let access = self.approved_access(&tx, caller, &name, &request.access_request).await?;
            self.register_read(&tx, caller, &name, &access, access.personal_data).await?;
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

    async fn read_customer_file_inner(
        &self,
        caller: &Caller,
        request: pb::ReadCustomerFileRequest,
    ) -> Result<pb::CustomerFile, Error> {
        let customer_id = customer_id(&request.name, "name")?;
        let name = format!("{CUSTOMERS}{customer_id}");
        let tx = self.begin().await?;
        let row = self.visible_customer(&tx, &customer_id, caller).await?;
        // Customer information is the company's secret (第18–19条): every read needs permission.
        let access = self.approved_access(&tx, caller, &name, &request.access_request).await?;
        self.register_read(&tx, caller, &name, &access, access.personal_data).await?;
        let clearance = Classification::clearance_of(caller);
        let files = store::case_files::files_of_customer(&tx, &customer_id, clearance.level())
            .await
            .map_err(db("reading a customer's cases"))?;
        tx.commit().await.map_err(db("recording a read"))?;
        let now = self.now();
        let payments: Vec<CasePayment> = files
            .iter()
            .filter(|file| file.destroy_time.is_none())
            .filter_map(|file| unseal(file).ok())
            .flat_map(|story| story.payments)
            .collect();
        Ok(pb::CustomerFile {
            cases: files.iter().map(|file| case_file_to_proto(file, now)).collect(),
            payments,
            ..customer_to_proto(&row, access.personal_data)
        })
    }

    /// Changes an access request with `change` (sign or refuse), once, from the state read.
    async fn decide(
        &self,
        caller: &Caller,
        name: &str,
        change: impl FnOnce(&mut access::Request) -> Result<Decision, Error>,
    ) -> Result<pb::AccessRequest, Error> {
        let seq = numbered(name, ACCESS_REQUESTS, "name")?;
        let tx = self.begin().await?;
        let row = store::access_requests::access_request(&tx, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(|| Error::NotFound(format!("no access request named {name}")))?;
        let mut request = access_from_row(&row)?;
        let Decision { action, detail, refusal } = change(&mut request)?;
        let written = store::access_requests::record_decision(&tx, &row, &request, refusal)
            .await
            .map_err(db("deciding an access request"))?;
        if !written {
            return Err(Error::Conflict);
        }
        let record = audit::Record { actor: &caller.user, action, subject: name, detail };
        audit::append(&tx, &self.audit_key, record, self.now()).await.map_err(db("auditing a decision"))?;
        tx.commit().await.map_err(db("deciding an access request"))?;
        let row = store::access_requests::access_request(&self.context.db, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(|| Error::NotFound(format!("no access request named {name}")))?;
        Ok(access_to_proto(&row, &access_from_row(&row)?))
    }
}

#[tonic::async_trait]
impl pb::archives_server::Archives for ArchivesApi {
    async fn get_case_file(&self, request: Request<pb::GetCaseFileRequest>) -> Answer<pb::CaseFile> {
        let caller = Caller::from_metadata(request.metadata());
        let number = case_number(&request.get_ref().name, "name")?;
        let file = self.visible_case_file(&self.context.db, &number, &caller).await?;
        Ok(Response::new(case_file_to_proto(&file, self.now())))
    }

    async fn search_case_files(
        &self,
        request: Request<pb::SearchCaseFilesRequest>,
    ) -> Answer<pb::SearchCaseFilesResponse> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
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
                .map_err(|status| violations.extend(FieldViolations::from_status(&status)))
                .unwrap_or_default()
        };
        let close_start = time(&request.close_start_time, "close_start_time");
        let close_end = time(&request.close_end_time, "close_end_time");
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
        violations.into_result()?;
        let search = store::case_files::Search {
            waybill_number: optional(&request.waybill_number),
            customer,
            category: optional(&request.category),
            branch: optional(&request.branch),
            close_start,
            close_end,
            max_level: Classification::clearance_of(&caller).level(),
        };
        // The token is bound to the search, so a page of one search does not continue another.
        let key = format!("{search:?}");
        let after = paging::decode_token(&request.page_token, &key)?;
        let (rows, next, total) = store::case_files::search(&self.context.db, &search, page_size, after)
            .await
            .map_err(|e| Status::from(db("searching case files")(e)))?;
        let now = self.now();
        Ok(Response::new(pb::SearchCaseFilesResponse {
            case_files: rows.iter().map(|row| case_file_to_proto(row, now)).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &key)).unwrap_or_default(),
            total_size: total as i64,
        }))
    }

    async fn read_case_file(&self, request: Request<pb::ReadCaseFileRequest>) -> Answer<pb::CaseFileContent> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let subject = request.name.clone();
        match self.read_case_file_inner(&caller, request).await {
            Ok(content) => Ok(Response::new(content)),
            Err(error) => Err(self.refuse_read(&caller, &subject, error).await.into()),
        }
    }

    async fn classify_case_file(&self, request: Request<pb::ClassifyCaseFileRequest>) -> Answer<pb::CaseFile> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        archivist_only(&caller, "classify files")?;
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        let level = classification_from_proto(request.classification);
        if level.is_none() {
            violations.add("classification", "required: ORDINARY, CONFIDENTIAL or TOP_SECRET");
        }
        required_text(&mut violations, "reason", &request.reason);
        violations.into_result()?;
        let Some(level) = level else { return Err(Status::internal("validated classification missing")) };
        let clearance = Classification::clearance_of(&caller);
        if !clearance.covers(level) {
            return Err(Error::Denied(format!("your clearance does not reach {}", level.as_str())).into());
        }
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, &caller).await?;
        let before = level_of(file.classification);
        store::case_files::classify(&tx, &number, level).await.map_err(db("classifying a file"))?;
        let detail = format!("{} → {}: {}", before.as_str(), level.as_str(), request.reason.trim());
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "classified", subject: &request.name, detail },
            self.now(),
        )
        .await
        .map_err(db("auditing a classification"))?;
        tx.commit().await.map_err(db("classifying a file"))?;
        let file = case_file::Model { classification: level.level(), ..file };
        Ok(Response::new(case_file_to_proto(&file, self.now())))
    }

    async fn set_legal_hold(&self, request: Request<pb::SetLegalHoldRequest>) -> Answer<pb::CaseFile> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        archivist_only(&caller, "place or lift legal holds")?;
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        required_text(&mut violations, "reason", &request.reason);
        violations.into_result()?;
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, &caller).await?;
        if file.destroy_time.is_some() {
            return Err(Error::Precondition(format!("{} was destroyed", request.name)).into());
        }
        let reason = if request.hold { request.reason.trim().to_owned() } else { String::new() };
        store::case_files::set_legal_hold(&tx, &number, request.hold, &reason)
            .await
            .map_err(db("setting a legal hold"))?;
        let detail = format!("{}: {}", if request.hold { "placed" } else { "lifted" }, request.reason.trim());
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "legal_hold", subject: &request.name, detail },
            self.now(),
        )
        .await
        .map_err(db("auditing a legal hold"))?;
        tx.commit().await.map_err(db("setting a legal hold"))?;
        let file = case_file::Model { legal_hold: request.hold, legal_hold_reason: reason, ..file };
        Ok(Response::new(case_file_to_proto(&file, self.now())))
    }

    async fn list_due_for_destruction(
        &self,
        request: Request<pb::ListDueForDestructionRequest>,
    ) -> Answer<pb::ListDueForDestructionResponse> {
        let caller = Caller::from_metadata(request.metadata());
        archivist_only(&caller, "list files due for destruction")?;
        let limit = paging::page_size(request.get_ref().page_size)?;
        let now = self.now();
        let rows = store::case_files::files_due_for_destruction(
            &self.context.db,
            now,
            Classification::clearance_of(&caller).level(),
            limit,
        )
        .await
        .map_err(|e| Status::from(db("listing files due for destruction")(e)))?;
        Ok(Response::new(pb::ListDueForDestructionResponse {
            case_files: rows.iter().map(|row| case_file_to_proto(row, now)).collect(),
        }))
    }

    async fn propose_destruction(
        &self,
        request: Request<pb::ProposeDestructionRequest>,
    ) -> Answer<pb::DestructionProposal> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        archivist_only(&caller, "propose destructions")?;
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        required_text(&mut violations, "reason", &request.reason);
        violations.into_result()?;
        let name = format!("{CASE_FILES}{number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, &caller).await?;
        if file.destroy_time.is_some() {
            return Err(Error::Precondition(format!("{name} was destroyed before")).into());
        }
        let now = self.now();
        may_be_destroyed(&file, &name, now)?;
        let proposal = store::destruction_proposal::Model {
            case_number: number.clone(),
            proposed_by: caller.user.clone(),
            reason: request.reason.trim().to_owned(),
            propose_time: now,
        };
        store::destruction::propose_destruction(&tx, proposal.clone()).await.map_err(db("proposing a destruction"))?;
        let detail = format!("destruction proposed: {}", proposal.reason);
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "destruction_proposed", subject: &name, detail },
            now,
        )
        .await
        .map_err(db("auditing a proposal"))?;
        tx.commit().await.map_err(db("proposing a destruction"))?;
        Ok(Response::new(pb::DestructionProposal {
            case_file: name,
            proposed_by: proposal.proposed_by,
            reason: proposal.reason,
            propose_time: Some(to_timestamp(now)),
        }))
    }

    async fn destroy_case_file(&self, request: Request<pb::DestroyCaseFileRequest>) -> Answer<pb::DestructionRecord> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        archivist_only(&caller, "destroy files")?;
        if !caller.is_supervisor() {
            return Err(Error::Denied(
                "a destruction is approved by the archives' supervisor (role supervisor)".into(),
            )
            .into());
        }
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        required_text(&mut violations, "reason", &request.reason);
        check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let name = format!("{CASE_FILES}{number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, &caller).await?;
        if let Some(record) =
            store::destruction::destruction_of(&tx, &name).await.map_err(db("reading destruction records"))?
        {
            if idempotency_key(&request.request_id).is_some()
                && record.request_id.as_deref() == Some(request.request_id.as_str())
            {
                return Ok(Response::new(destruction_to_proto(&record)));
            }
            return Err(Error::Precondition(format!(
                "{name} was destroyed before: {DESTRUCTION_RECORDS}{}",
                record.seq
            ))
            .into());
        }
        let now = self.now();
        may_be_destroyed(&file, &name, now)?;
        let proposal = store::destruction::proposal(&tx, &number)
            .await
            .map_err(db("reading destruction proposals"))?
            .ok_or_else(|| {
                Error::Precondition(format!(
                    "no one has proposed destroying {name}: a member of the archives proposes it (ProposeDestruction), and another destroys it"
                ))
            })?;
        if proposal.proposed_by == caller.user {
            return Err(Error::Denied(format!(
                "four eyes: {} proposed destroying {name}, so another supervisor of the archives destroys it",
                caller.user
            ))
            .into());
        }
        let emptied =
            store::case_files::empty_destroyed_file(&tx, &number, now).await.map_err(db("destroying a file"))?;
        if !emptied {
            return Err(Error::Conflict.into());
        }
        let record = NewDestruction {
            request_id: idempotency_key(&request.request_id).map(str::to_owned),
            case_file: name.clone(),
            category: file.category.clone(),
            content_sha256: file.content_sha256.clone(),
            close_time: file.close_time,
            retention_rule: file.retention_rule.clone(),
            retain_until: file.retain_until,
            approved_by: caller.user.clone(),
            reason: request.reason.trim().to_owned(),
            destroy_time: now,
        };
        let record = store::destruction::record_destruction(&tx, &number, record)
            .await
            .map_err(db("recording a destruction"))?
            .ok_or(Error::Conflict)?;
        let detail = format!(
            "content sha256 {} destroyed under rule {} (kept until {}), proposed by {}: {}",
            file.content_sha256,
            file.retention_rule,
            file.retain_until.to_rfc3339(),
            proposal.proposed_by,
            request.reason.trim()
        );
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "destroyed", subject: &name, detail },
            now,
        )
        .await
        .map_err(db("auditing a destruction"))?;
        tx.commit().await.map_err(db("destroying a file"))?;
        tracing::warn!(file = %name, rule = %file.retention_rule, "case file destroyed");
        Ok(Response::new(destruction_to_proto(&record)))
    }

    async fn list_destruction_records(
        &self,
        request: Request<pb::ListDestructionRecordsRequest>,
    ) -> Answer<pb::ListDestructionRecordsResponse> {
        let caller = Caller::from_metadata(request.metadata());
        archivist_only(&caller, "list destruction records")?;
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let after = paging::decode_token(&request.page_token, "destructions")?;
        let max_level = Classification::clearance_of(&caller).level();
        let (rows, next) = store::destruction::destruction_page(&self.context.db, max_level, page_size, after)
            .await
            .map_err(|e| Status::from(db("listing destruction records")(e)))?;
        Ok(Response::new(pb::ListDestructionRecordsResponse {
            records: rows.iter().map(destruction_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, "destructions")).unwrap_or_default(),
        }))
    }

    async fn create_access_request(
        &self,
        request: Request<pb::CreateAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let asked = request.access_request.unwrap_or_default();
        let mut violations = FieldViolations::new();
        let file = FileName::parse(&asked.file, "access_request.file").map_err(|more| violations.extend(more)).ok();
        let kind = match pb::AccessKind::try_from(asked.kind) {
            Ok(pb::AccessKind::Read) => Some(Kind::Read),
            Ok(pb::AccessKind::Copy) => Some(Kind::Copy),
            _ => {
                violations.add("access_request.kind", "required: READ or COPY");
                None
            }
        };
        required_text(&mut violations, "access_request.purpose", &asked.purpose);
        required_text(&mut violations, "access_request.reason", &asked.reason);
        check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let (Some(file), Some(kind)) = (file, kind) else { return Err(Status::internal("validated request missing")) };
        if caller.user == kefu_kit::caller::ANONYMOUS {
            return Err(Error::Denied("an access request names its requester: call with your identity".into()).into());
        }
        let request_id = idempotency_key(request.request_id.trim()).map(str::to_owned);
        if let Some(request_id) = &request_id
            && let Some(row) = store::access_requests::access_request_by_request_id(&self.context.db, request_id)
                .await
                .map_err(|e| Status::from(db("reading an access request")(e)))?
        {
            return Ok(Response::new(access_to_proto(&row, &access_from_row(&row)?)));
        }
        let tx = self.begin().await?;
        let level = self.visible_level(&tx, &file, &caller).await?;
        let required = access::required_signatures(&caller.department, level, kind);
        let now = self.now();
        let name = file.name();
        let new = NewAccessRequest {
            request_id: request_id.clone(),
            file: name.clone(),
            kind,
            purpose: asked.purpose.trim().to_owned(),
            reason: asked.reason.trim().to_owned(),
            personal_data: asked.personal_data,
            requester: caller.user.clone(),
            requester_department: caller.department.clone(),
            required: required.clone(),
            create_time: now,
        };
        let recorded =
            store::access_requests::record_access_request(&tx, new).await.map_err(db("recording an access request"))?;
        let Some(seq) = recorded else {
            // Another request with the same request id was recorded first: that one is the answer.
            drop(tx);
            let row = store::access_requests::access_request_by_request_id(
                &self.context.db,
                request_id.as_deref().unwrap_or_default(),
            )
            .await
            .map_err(|e| Status::from(db("reading an access request")(e)))?
            .ok_or(Error::Conflict)?;
            return Ok(Response::new(access_to_proto(&row, &access_from_row(&row)?)));
        };
        let subject = format!("{ACCESS_REQUESTS}{seq}");
        let needs: Vec<&str> = required.iter().map(|signature| signature.as_str()).collect();
        let detail = format!("{} of {name} for: {}; needs {}", kind.as_str(), asked.purpose.trim(), needs.join(", "));
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "access_requested", subject: &subject, detail },
            now,
        )
        .await
        .map_err(db("auditing an access request"))?;
        let row = store::access_requests::access_request(&tx, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or(Error::Conflict)?;
        tx.commit().await.map_err(db("recording an access request"))?;
        Ok(Response::new(access_to_proto(&row, &access_from_row(&row)?)))
    }

    async fn get_access_request(&self, request: Request<pb::GetAccessRequestRequest>) -> Answer<pb::AccessRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let name = &request.get_ref().name;
        let seq = numbered(name, ACCESS_REQUESTS, "name")?;
        let row = store::access_requests::access_request(&self.context.db, seq)
            .await
            .map_err(|e| Status::from(db("reading an access request")(e)))?
            .ok_or_else(|| Status::not_found(format!("no access request named {name}")))?;
        let asked = access_from_row(&row)?;
        let may_see = caller.user == row.requester
            || caller.department == policy::ARCHIVES_DEPARTMENT
            || asked.required.iter().any(|signature| signature.may_sign(&caller, &row.requester_department));
        // A request for a file above the caller's clearance names that file: it is answered as missing.
        let hidden = store::case_files::names_above(&self.context.db, Classification::clearance_of(&caller).level())
            .await
            .map_err(|e| Status::from(db("reading an access request")(e)))?;
        if !may_see || hidden.contains(&row.file) {
            return Err(Status::not_found(format!("no access request named {name}")));
        }
        Ok(Response::new(access_to_proto(&row, &asked)))
    }

    async fn approve_access_request(
        &self,
        request: Request<pb::ApproveAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let name = request.into_inner().name;
        let now = self.now();
        let approved = self
            .decide(&caller, &name, |asked| {
                let signed = asked.sign(&caller, now)?;
                let signed: Vec<&str> = signed.iter().map(|signature| signature.as_str()).collect();
                let outcome = match asked.state {
                    access::State::Approved => format!(
                        "; approved until {}",
                        asked.expire_time.map(|time| time.to_rfc3339()).unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                Ok(Decision {
                    action: "approved",
                    detail: format!("signed as {}{outcome}", signed.join(", ")),
                    refusal: None,
                })
            })
            .await?;
        Ok(Response::new(approved))
    }

    async fn refuse_access_request(
        &self,
        request: Request<pb::RefuseAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        required_text(&mut violations, "reason", &request.reason);
        violations.into_result()?;
        let reason = request.reason.trim().to_owned();
        let refused = self
            .decide(&caller, &request.name, |asked| {
                asked.refuse(&caller)?;
                let refusal =
                    store::access_requests::Refusal { reason: reason.clone(), refused_by: caller.user.clone() };
                Ok(Decision { action: "refused", detail: reason.clone(), refusal: Some(refusal) })
            })
            .await?;
        Ok(Response::new(refused))
    }

    async fn list_borrowing_register(
        &self,
        request: Request<pb::ListBorrowingRegisterRequest>,
    ) -> Answer<pb::ListBorrowingRegisterResponse> {
        let caller = Caller::from_metadata(request.metadata());
        archivist_only(&caller, "read the borrowing register")?;
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let file = Some(request.file.trim()).filter(|file| !file.is_empty());
        let after = paging::decode_token(&request.page_token, file.unwrap_or_default())?;
        let max_level = Classification::clearance_of(&caller).level();
        let (rows, next) = store::access_requests::borrowing_page(&self.context.db, file, max_level, page_size, after)
            .await
            .map_err(|e| Status::from(db("reading the borrowing register")(e)))?;
        Ok(Response::new(pb::ListBorrowingRegisterResponse {
            entries: rows
                .into_iter()
                .map(|row| pb::BorrowingEntry {
                    time: Some(to_timestamp(row.time)),
                    file: row.file,
                    reader: row.reader,
                    reader_department: row.reader_department,
                    kind: kind_to_proto(&row.kind) as i32,
                    access_request: row.access_request,
                    purpose: row.purpose,
                    personal_data_shown: row.personal_data_shown,
                })
                .collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, file.unwrap_or_default())).unwrap_or_default(),
        }))
    }

    async fn create_customer_file(&self, request: Request<pb::CreateCustomerFileRequest>) -> Answer<pb::CustomerFile> {
        let caller = Caller::from_metadata(request.metadata());
        if ![policy::SERVICE_DEPARTMENT, policy::ARCHIVES_DEPARTMENT].contains(&caller.department.as_str()) {
            return Err(Error::Denied(
                "customer files are kept by the service department and the archives (003 第18条)".into(),
            )
            .into());
        }
        let request = request.into_inner();
        let asked = request.customer_file.unwrap_or_default();
        let mut violations = FieldViolations::new();
        if !is_code(&request.customer_id) {
            violations.add("customer_id", "required: the customer number (letters, digits, '-', '_', at most 64)");
        }
        if asked.contact_name.trim().is_empty() || asked.contact_name.chars().count() > 128 {
            violations.add("customer_file.contact_name", "required, at most 128 characters");
        }
        let phones: Vec<String> = asked.phones.iter().map(|phone| phone.trim().to_owned()).collect();
        if phones.is_empty() {
            violations.add("customer_file.phones", "at least one phone");
        }
        for (index, phone) in phones.iter().enumerate() {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            if !(5..=20).contains(&digits) || !phone.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
                violations.add(format!("customer_file.phones[{index}]"), "5 to 20 digits, with '+', '-' or spaces");
            }
            if phones[..index].contains(phone) {
                violations.add(format!("customer_file.phones[{index}]"), "given twice");
            }
        }
        if asked.company.chars().count() > 128 || asked.customer_type.chars().count() > 32 {
            violations.add("customer_file.company", "at most 128 characters (customer_type at most 32)");
        }
        let level = match asked.classification {
            0 => Some(Classification::Ordinary),
            value => classification_from_proto(value),
        };
        if level.is_none() {
            violations.add("customer_file.classification", "ORDINARY, CONFIDENTIAL or TOP_SECRET");
        }
        check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let level = level.unwrap_or(Classification::Ordinary);
        let request_id = idempotency_key(request.request_id.trim()).map(str::to_owned);
        let tx = self.begin().await?;
        if let Some(existing) =
            store::customers::customer(&tx, &request.customer_id).await.map_err(db("reading a customer file"))?
        {
            if request_id.is_some() && existing.request_id == request_id {
                // The creator gave these details; they see them again.
                return Ok(Response::new(customer_to_proto(&existing, true)));
            }
            return Err(Error::AlreadyExists(format!("customers/{} has a file already", request.customer_id)).into());
        }
        for (index, phone) in phones.iter().enumerate() {
            if store::customers::customer_by_phone(&tx, phone).await.map_err(db("reading customer phones"))?.is_some() {
                let message = format!("customer_file.phones[{index}] belongs to another customer's file");
                return Err(Error::AlreadyExists(message).into());
            }
        }
        let now = self.now();
        let new = NewCustomerFile {
            customer_id: request.customer_id.clone(),
            request_id,
            contact_name: asked.contact_name.trim().to_owned(),
            phones: phones.clone(),
            company: asked.company.trim().to_owned(),
            customer_type: asked.customer_type.trim().to_owned(),
            classification: level,
            create_time: now,
        };
        match store::customers::open_customer_file(&tx, new).await.map_err(db("recording a customer file"))? {
            Opened::Opened => {}
            Opened::CustomerTaken => {
                return Err(
                    Error::AlreadyExists(format!("customers/{} has a file already", request.customer_id)).into()
                );
            }
            Opened::PhoneTaken => return Err(Error::Conflict.into()),
        }
        // The customer's earlier cases are filed under the new file.
        let linked = store::case_files::file_under_customer(&tx, &request.customer_id, &phones)
            .await
            .map_err(db("filing a customer's cases"))?;
        let name = format!("{CUSTOMERS}{}", request.customer_id);
        let detail = format!("{} phone(s); {} earlier case file(s) filed under it", phones.len(), linked);
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "customer_filed", subject: &name, detail },
            now,
        )
        .await
        .map_err(db("auditing a customer file"))?;
        let row = store::customers::customer(&tx, &request.customer_id).await.map_err(db("reading a customer file"))?;
        tx.commit().await.map_err(db("recording a customer file"))?;
        let row = row.ok_or(Error::Conflict)?;
        Ok(Response::new(customer_to_proto(&row, true)))
    }

    async fn read_customer_file(&self, request: Request<pb::ReadCustomerFileRequest>) -> Answer<pb::CustomerFile> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let subject = request.name.clone();
        match self.read_customer_file_inner(&caller, request).await {
            Ok(file) => Ok(Response::new(file)),
            Err(error) => Err(self.refuse_read(&caller, &subject, error).await.into()),
        }
    }

    async fn score_customer(&self, request: Request<pb::ScoreCustomerRequest>) -> Answer<pb::CustomerGrade> {
        let caller = Caller::from_metadata(request.metadata());
        if ![policy::SERVICE_DEPARTMENT, policy::ARCHIVES_DEPARTMENT].contains(&caller.department.as_str()) {
            return Err(Error::Denied("customers are graded by the service department (003 客户分级)".into()).into());
        }
        let request = request.into_inner();
        let customer_id = customer_id(&request.customer, "customer")?;
        let score = score_from_proto(request.score.unwrap_or_default());
        let mut violations = FieldViolations::new();
        for (part, max) in score.out_of_range() {
            violations.add(format!("score.{part}"), format!("from 0 to {max} on the scoring sheet"));
        }
        violations.into_result()?;
        let (total, grade) = (score.total(), score.grade());
        let tx = self.begin().await?;
        let row = self.visible_customer(&tx, &customer_id, &caller).await?;
        let now = self.now();
        store::customers::record_score(&tx, row.seq, &score, &caller.user, now)
            .await
            .map_err(db("scoring a customer"))?;
        let detail =
            format!("{total} points, grade {grade} (was {})", if row.grade.is_empty() { "none" } else { &row.grade });
        audit::append(
            &tx,
            &self.audit_key,
            audit::Record { actor: &caller.user, action: "scored", subject: &request.customer, detail },
            now,
        )
        .await
        .map_err(db("auditing a score"))?;
        let row = store::customers::customer(&tx, &customer_id)
            .await
            .map_err(db("reading a customer file"))?
            .ok_or(Error::Conflict)?;
        // Intake shortens the deadlines of the customer's next cases by their grade (A first).
        let phones = store::customers::phones_of(&tx, &customer_id).await.map_err(db("reading customer phones"))?;
        let graded = CustomerGraded { phones, grade: grade.to_owned(), score_time: Some(to_timestamp(now)) };
        let event =
            outbox::new_event(crate::NAME, now, &TraceContext::new_root(), &caller, Payload::CustomerGraded(graded));
        outbox::enqueue(&tx, ServiceName::Intake, &event, now).await.map_err(db("telling intake the grade"))?;
        tx.commit().await.map_err(db("scoring a customer"))?;
        self.context.relay.wake();
        Ok(Response::new(grade_to_proto(&row)))
    }

    async fn get_customer_grade(&self, request: Request<pb::GetCustomerGradeRequest>) -> Answer<pb::CustomerGrade> {
        let caller = Caller::from_metadata(request.metadata());
        let conn = &self.context.db;
        let row = match request.into_inner().key {
            Some(pb::get_customer_grade_request::Key::Customer(name)) => {
                let id = customer_id(&name, "customer")?;
                self.visible_customer(conn, &id, &caller).await?
            }
            Some(pb::get_customer_grade_request::Key::Phone(phone)) => {
                let row = store::customers::customer_by_phone(conn, phone.trim())
                    .await
                    .map_err(|e| Status::from(db("reading customer phones")(e)))?
                    .ok_or_else(|| Status::not_found("no customer file has this phone"))?;
                if !Classification::clearance_of(&caller).covers(level_of(row.classification)) {
                    return Err(Status::not_found("no customer file has this phone"));
                }
                row
            }
            None => return Err(invalid("customer", "give customer or phone").into()),
        };
        Ok(Response::new(grade_to_proto(&row)))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Answer<pb::ListAuditEntriesResponse> {
        let caller = Caller::from_metadata(request.metadata());
        auditor_only(&caller)?;
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let after = paging::decode_token(&request.page_token, "audit")?;
        let (rows, next) = store::audit_log::audit_page(&self.context.db, page_size, after)
            .await
            .map_err(|e| Status::from(db("reading the audit log")(e)))?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: rows
                .into_iter()
                .map(|row| pb::AuditEntry {
                    seq: row.seq,
                    time: Some(to_timestamp(row.time)),
                    actor: row.actor,
                    action: row.action,
                    subject: row.subject,
                    detail: row.detail,
                    hash: row.hash,
                })
                .collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, "audit")).unwrap_or_default(),
        }))
    }

    async fn verify_audit_log(&self, request: Request<pb::VerifyAuditLogRequest>) -> Answer<pb::AuditVerification> {
        let caller = Caller::from_metadata(request.metadata());
        auditor_only(&caller)?;
        let verification = audit::verify(&self.context.db, &self.audit_key)
            .await
            .map_err(|e| Status::from(db("verifying the audit log")(e)))?;
        if let Some((seq, problem)) = &verification.broken {
            tracing::error!(seq, %problem, "the audit log's hash chain is broken");
        }
        let (first_broken_seq, problem) = verification.broken.unwrap_or_default();
        Ok(Response::new(pb::AuditVerification {
            intact: first_broken_seq == 0,
            entries_checked: verification.checked,
            first_broken_seq,
            problem,
        }))
    }
}

/// The audit log is read by archivists cleared for everything it may mention.
fn auditor_only(caller: &Caller) -> Result<(), Status> {
    archivist_only(caller, "read the audit log")?;
    if Classification::clearance_of(caller) != Classification::TopSecret {
        return Err(Error::Denied("the audit log mentions every file: it needs top_secret clearance".into()).into());
    }
    Ok(())
}

/// Whether a file may be destroyed at `now`: never under legal hold, never before its retention ends.
fn may_be_destroyed(file: &case_file::Model, name: &str, now: DateTime<Utc>) -> Result<(), Status> {
    if file.legal_hold {
        return Err(Error::Precondition(format!(
            "{name} is under legal hold ({}); a held file is never destroyed — lift the hold first",
            file.legal_hold_reason
        ))
        .into());
    }
    if now < file.retain_until {
        return Err(Error::Precondition(format!(
            "{name} is kept until {} under rule {}",
            file.retain_until.to_rfc3339(),
            file.retention_rule
        ))
        .into());
    }
    Ok(())
}
