//! `kefu.archives.v1.Archives`: every RPC in one list below, each handed to the room that serves it,
//! and what the rooms share — resource names, the clearance that hides a file, a refused read's
//! audit entry, and a case file in proto.
//!
//! The rooms, one file each:
//!
//! - `case_files.rs`: `GetCaseFile`, `SearchCaseFiles`, `ReadCaseFile`, `ClassifyCaseFile`, `SetLegalHold`;
//! - `destruction.rs`: `ListDueForDestruction`, `ProposeDestruction`, `DestroyCaseFile`,
//!   `ListDestructionRecords`;
//! - `access_requests.rs`: `CreateAccessRequest`, `GetAccessRequest`, `ListAccessRequests`, `ApproveAccessRequest`,
//!   `RefuseAccessRequest`, `ListBorrowingRegister`, and reading under an approved request;
//! - `customers.rs`: `CreateCustomerFile`, `ReadCustomerFile`, `ScoreCustomer`, `GetCustomerGrade`;
//! - `audit.rs`: `ListAuditEntries`, `VerifyAuditLog`.
//!
//! A room converts proto ⇄ domain, asks the rules ([`crate::custody`], [`crate::retention`],
//! [`crate::access`], [`crate::policy`]) and composes the queries of [`crate::store`] in one
//! transaction with the audit entry of what it did.

mod access_requests;
mod audit;
mod case_files;
mod customers;
mod destruction;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    error::FieldViolations,
    server::ServiceContext,
    time::{to_micros, to_timestamp},
};
use kefu_proto::archives::v1 as pb;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use tonic::{Request, Response, Status};

use crate::{
    audit::AuditKey,
    custody::{Location, Refusal},
    error::{Error, db},
    policy::Classification,
    store::{self, case_file, customer},
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
    pub audit_key: AuditKey,
    /// Moved along the chain after each call: every audited change has committed by then.
    pub anchor: crate::audit::Anchor,
}

type Answer<T> = Result<Response<T>, Status>;

/// The caller, as the gateway established them, and the request.
fn called<T>(request: Request<T>) -> (Caller, T) {
    (Caller::from_metadata(request.metadata()), request.into_inner())
}

impl From<Refusal> for Error {
    /// A refusal of the rules is a refusal of the caller (PERMISSION_DENIED) or of the file's state
    /// (FAILED_PRECONDITION), in the rules' words.
    fn from(refusal: Refusal) -> Error {
        Error::from(crate::access::Denial::from(refusal))
    }
}

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
    Error::Invalid(FieldViolations::of(field, description))
}

fn required_text(violations: &mut FieldViolations, field: &str, text: &str) {
    if text.trim().is_empty() {
        violations.add(field, "required");
    } else if text.chars().count() > MAX_TEXT {
        violations.add(field, format!("at most {MAX_TEXT} characters"));
    }
}

/// The reason a change must give (a classification, a hold, a proposal, a refusal).
fn reason_required(reason: &str) -> Result<(), Error> {
    let mut violations = FieldViolations::new();
    required_text(&mut violations, "reason", reason);
    Ok(violations.into_result()?)
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("no file named {name}"))
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

fn location_to_proto(location: Location) -> pb::Location {
    match location {
        Location::ServiceCenter => pb::Location::ServiceCenter,
        Location::Archives => pb::Location::Archives,
        Location::Destroyed => pb::Location::Destroyed,
    }
}

fn case_file_to_proto(file: &case_file::Model, now: DateTime<Utc>) -> pb::CaseFile {
    pb::CaseFile {
        name: format!("{CASE_FILES}{}", file.case_number),
        complaint: format!("complaints/{}", file.case_number),
        category: file.category.clone(),
        waybill_number: file.waybill_number.clone(),
        branch: file.branch.clone(),
        owner: file.owner.clone(),
        close_time: Some(to_timestamp(file.close_time)),
        archive_time: Some(to_timestamp(file.archive_time)),
        location: location_to_proto(file.kept().location(now)) as i32,
        classification: classification_to_proto(file.level()) as i32,
        content_sha256: file.content_sha256.clone(),
        retention_rule: file.retention_rule.clone(),
        retain_until: Some(to_timestamp(file.retain_until)),
        legal_hold: file.legal_hold,
        legal_hold_reason: file.legal_hold_reason.clone(),
        customer: file.customer.as_ref().map(|id| format!("{CUSTOMERS}{id}")).unwrap_or_default(),
    }
}

impl ArchivesApi {
    /// A room's result as the RPC's answer. Its transactions have ended, so the head file is
    /// moved on to any entry they appended.
    fn answer<T>(&self, result: Result<T, Error>) -> Answer<T> {
        self.anchor.wake();
        result.map(Response::new).map_err(Status::from)
    }

    fn now(&self) -> DateTime<Utc> {
        to_micros(self.context.clock.now())
    }

    async fn begin(&self) -> Result<DatabaseTransaction, Error> {
        store::begin(&self.context.db).await.map_err(db("opening a transaction"))
    }

    /// Appends `record` to the audit log within `tx`, as of `now`; `context` names the step in a failure.
    async fn audit(
        &self,
        tx: &impl ConnectionTrait,
        record: crate::audit::Record<'_>,
        now: DateTime<Utc>,
        context: &'static str,
    ) -> Result<(), Error> {
        crate::audit::append(tx, &self.audit_key, record, now).await.map_err(db(context))?;
        Ok(())
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
            .filter(|file| clearance.covers(file.level()))
            .ok_or_else(|| not_found(&format!("{CASE_FILES}{case_number}")))
    }

    /// The customer file `customer_id` if the caller's clearance covers it; NOT_FOUND otherwise, alike.
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
            .filter(|row| clearance.covers(row.level()))
            .ok_or_else(|| not_found(&format!("{CUSTOMERS}{customer_id}")))
    }

    /// The outcome of `read`, a read of `subject`; a refusal is first recorded by [`Self::refuse_read`].
    async fn refusal_audited<T>(
        &self,
        caller: &Caller,
        subject: &str,
        read: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match read.await {
            Ok(read) => Ok(read),
            Err(error) => Err(self.refuse_read(caller, subject, error).await),
        }
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
            let record = crate::audit::Record { actor: &caller.user, action: "read_refused", subject, detail: reason };
            self.audit(&tx, record, self.now(), "auditing a refusal").await?;
            tx.commit().await.map_err(db("auditing a refusal"))
        };
        if let Err(failure) = recorded.await {
            return failure;
        }
        tracing::warn!(user = %caller.user, file = %subject, "read refused");
        error
    }
}

/// Every RPC, in the order of the contract, each served by its room.
#[tonic::async_trait]
impl pb::archives_server::Archives for ArchivesApi {
    async fn get_case_file(&self, request: Request<pb::GetCaseFileRequest>) -> Answer<pb::CaseFile> {
        let (caller, request) = called(request);
        self.answer(self.get_case_file(&caller, request).await)
    }

    async fn search_case_files(
        &self,
        request: Request<pb::SearchCaseFilesRequest>,
    ) -> Answer<pb::SearchCaseFilesResponse> {
        let (caller, request) = called(request);
        self.answer(self.search_case_files(&caller, request).await)
    }

    async fn read_case_file(&self, request: Request<pb::ReadCaseFileRequest>) -> Answer<pb::CaseFileContent> {
        let (caller, request) = called(request);
        self.answer(self.read_case_file(&caller, request).await)
    }

    async fn classify_case_file(&self, request: Request<pb::ClassifyCaseFileRequest>) -> Answer<pb::CaseFile> {
        let (caller, request) = called(request);
        self.answer(self.classify_case_file(&caller, request).await)
    }

    async fn set_legal_hold(&self, request: Request<pb::SetLegalHoldRequest>) -> Answer<pb::CaseFile> {
        let (caller, request) = called(request);
        self.answer(self.set_legal_hold(&caller, request).await)
    }

    async fn list_due_for_destruction(
        &self,
        request: Request<pb::ListDueForDestructionRequest>,
    ) -> Answer<pb::ListDueForDestructionResponse> {
        let (caller, request) = called(request);
        self.answer(self.list_due_for_destruction(&caller, request).await)
    }

    async fn propose_destruction(
        &self,
        request: Request<pb::ProposeDestructionRequest>,
    ) -> Answer<pb::DestructionProposal> {
        let (caller, request) = called(request);
        self.answer(self.propose_destruction(&caller, request).await)
    }

    async fn destroy_case_file(&self, request: Request<pb::DestroyCaseFileRequest>) -> Answer<pb::DestructionRecord> {
        let (caller, request) = called(request);
        self.answer(self.destroy_case_file(&caller, request).await)
    }

    async fn list_destruction_records(
        &self,
        request: Request<pb::ListDestructionRecordsRequest>,
    ) -> Answer<pb::ListDestructionRecordsResponse> {
        let (caller, request) = called(request);
        self.answer(self.list_destruction_records(&caller, request).await)
    }

    async fn create_access_request(
        &self,
        request: Request<pb::CreateAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let (caller, request) = called(request);
        self.answer(self.create_access_request(&caller, request).await)
    }

    async fn get_access_request(&self, request: Request<pb::GetAccessRequestRequest>) -> Answer<pb::AccessRequest> {
        let (caller, request) = called(request);
        self.answer(self.get_access_request(&caller, request).await)
    }

    async fn list_access_requests(
        &self,
        request: Request<pb::ListAccessRequestsRequest>,
    ) -> Answer<pb::ListAccessRequestsResponse> {
        let (caller, request) = called(request);
        self.answer(self.list_access_requests(&caller, request).await)
    }

    async fn approve_access_request(
        &self,
        request: Request<pb::ApproveAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let (caller, request) = called(request);
        self.answer(self.approve_access_request(&caller, request).await)
    }

    async fn refuse_access_request(
        &self,
        request: Request<pb::RefuseAccessRequestRequest>,
    ) -> Answer<pb::AccessRequest> {
        let (caller, request) = called(request);
        self.answer(self.refuse_access_request(&caller, request).await)
    }

    async fn list_borrowing_register(
        &self,
        request: Request<pb::ListBorrowingRegisterRequest>,
    ) -> Answer<pb::ListBorrowingRegisterResponse> {
        let (caller, request) = called(request);
        self.answer(self.list_borrowing_register(&caller, request).await)
    }

    async fn create_customer_file(&self, request: Request<pb::CreateCustomerFileRequest>) -> Answer<pb::CustomerFile> {
        let (caller, request) = called(request);
        self.answer(self.create_customer_file(&caller, request).await)
    }

    async fn read_customer_file(&self, request: Request<pb::ReadCustomerFileRequest>) -> Answer<pb::CustomerFile> {
        let (caller, request) = called(request);
        self.answer(self.read_customer_file(&caller, request).await)
    }

    async fn score_customer(&self, request: Request<pb::ScoreCustomerRequest>) -> Answer<pb::CustomerGrade> {
        let (caller, request) = called(request);
        self.answer(self.score_customer(&caller, request).await)
    }

    async fn get_customer_grade(&self, request: Request<pb::GetCustomerGradeRequest>) -> Answer<pb::CustomerGrade> {
        let (caller, request) = called(request);
        self.answer(self.get_customer_grade(&caller, request).await)
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Answer<pb::ListAuditEntriesResponse> {
        let (caller, request) = called(request);
        self.answer(self.list_audit_entries(&caller, request).await)
    }

    async fn verify_audit_log(&self, request: Request<pb::VerifyAuditLogRequest>) -> Answer<pb::AuditVerification> {
        let (caller, request) = called(request);
        self.answer(self.verify_audit_log(&caller, request).await)
    }
}
