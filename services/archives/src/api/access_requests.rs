//! The access requests room (`003 第20条`, `第23条`): asking to read or copy a file, the signatures
//! that approve or refuse it, the borrowing register, and reading under an approved request.

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    error::{FieldViolations, check_request_id, idempotency_key},
    paging,
    time::to_timestamp,
    write::{self, Applied},
};
use kefu_proto::archives::v1 as pb;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{ACCESS_REQUESTS, ArchivesApi, FileName, numbered, reason_required, required_text};
use crate::{
    access::{self, Kind},
    audit::Record,
    custody::{self, Duty},
    error::{Error, db},
    policy::Classification,
    store::{
        self, access_request,
        access_requests::{Borrowing, NewAccessRequest, Refusal},
    },
};

fn kind_to_proto(kind: Kind) -> pb::AccessKind {
    match kind {
        Kind::Copy => pb::AccessKind::Copy,
        Kind::Read => pb::AccessKind::Read,
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
        kind: kind_to_proto(request.kind) as i32,
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

/// A stored request as the answer to a call.
fn answered(row: &access_request::Model) -> Result<pb::AccessRequest, Error> {
    Ok(access_to_proto(row, &access_from_row(row)?))
}

/// What deciding an access request did: the audit entry's action and detail, and the refusal to
/// record, if it was refused.
/// What a signatory does to an access request.
enum Decide {
    Sign,
    Refuse { reason: String },
}

/// An access request as kept: its row as read, the request as the rules see it, and the refusal
/// a decision records.
#[derive(Clone)]
struct Kept {
    row: access_request::Model,
    request: access::Request,
    refusal: Option<Refusal>,
}

/// The audit entry a decision leaves: archives' history of a request.
struct Decision {
    action: &'static str,
    detail: String,
}

/// How archives keeps an access request on the kit's one write path: read with its version,
/// signed or refused by `access::Request`'s rules (pure), saved over the version read (`ABORTED`
/// on a race), and its entry in the sealed audit log — archives' history — written in the same
/// transaction. The decision leaves no `case_steps`: the audit log is where archives records what
/// was done, and by whom.
struct AccessRequestKeeper<'a> {
    audit_key: &'a crate::audit::AuditKey,
    seq: i64,
}

impl write::Keeper for AccessRequestKeeper<'_> {
    type Aggregate = Kept;
    type Version = i32;
    type Command = Decide;
    type Effects = Decision;
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Kept, Option<i32>), Error> {
        let row = store::access_requests::access_request(tx, self.seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(|| Error::NotFound(format!("no access request named {key}")))?;
        let request = access_from_row(&row)?;
        let version = row.version;
        Ok((Kept { row, request, refusal: None }, Some(version)))
    }

    fn apply(
        &self,
        kept: &mut Kept,
        command: Decide,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Decision>, Error> {
        let decision = match command {
            Decide::Sign => {
                let signed = kept.request.sign(caller, now)?;
                let outcome = match kept.request.state {
                    access::State::Approved => format!(
                        "; approved until {}",
                        kept.request.expire_time.map(|time| time.to_rfc3339()).unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                Decision { action: "approved", detail: format!("signed as {}{outcome}", signed.as_str()) }
            }
            Decide::Refuse { reason } => {
                kept.request.refuse(caller)?;
                kept.refusal = Some(Refusal { reason: reason.clone(), refused_by: caller.user.clone() });
                Decision { action: "refused", detail: reason }
            }
        };
        Ok(Applied { steps: Vec::new(), effects: decision })
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        _before: &Kept,
        kept: &Kept,
        _version: Option<i32>,
        _now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        store::access_requests::record_decision(tx, &kept.row, &kept.request, kept.refusal.clone()).await
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Kept>,
        decision: Decision,
    ) -> Result<Vec<write::Message>, Error> {
        let record = Record {
            actor: &change.caller.user,
            action: decision.action,
            subject: change.key,
            detail: decision.detail,
        };
        crate::audit::append(tx, self.audit_key, record, change.now).await.map_err(db("auditing a decision"))?;
        Ok(Vec::new())
    }

    fn describe(&self, key: &str) -> String {
        format!("the access request {key}")
    }
}

impl ArchivesApi {
    pub(super) async fn create_access_request(
        &self,
        caller: &Caller,
        request: pb::CreateAccessRequestRequest,
    ) -> Result<pb::AccessRequest, Error> {
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
        let (Some(file), Some(kind)) = (file, kind) else {
            return Err(violations.into());
        };
        violations.into_result()?;
        access::requester_named(caller)?;
        let request_id = idempotency_key(request.request_id.trim()).map(str::to_owned);
        if let Some(request_id) = &request_id
            && let Some(row) = store::access_requests::access_request_by_request_id(&self.context.db, request_id)
                .await
                .map_err(db("reading an access request"))?
        {
            return answered(&row);
        }
        let tx = self.begin().await?;
        let level = self.visible_level(&tx, &file, caller).await?;
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
            let request_id = request_id.as_deref().unwrap_or_default();
            let row = store::access_requests::access_request_by_request_id(&self.context.db, request_id)
                .await
                .map_err(db("reading an access request"))?
                .ok_or(Error::Conflict)?;
            return answered(&row);
        };
        let subject = format!("{ACCESS_REQUESTS}{seq}");
        let needs: Vec<&str> = required.iter().map(|signature| signature.as_str()).collect();
        let detail = format!("{} of {name} for: {}; needs {}", kind.as_str(), asked.purpose.trim(), needs.join(", "));
        let record = Record { actor: &caller.user, action: "access_requested", subject: &subject, detail };
        self.audit(&tx, record, now, "auditing an access request").await?;
        let row = store::access_requests::access_request(&tx, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or(Error::Conflict)?;
        tx.commit().await.map_err(db("recording an access request"))?;
        answered(&row)
    }

    /// A request, to those who may see it; to anyone else, and to a caller not cleared for its
    /// file, as if there were none.
    pub(super) async fn get_access_request(
        &self,
        caller: &Caller,
        request: pb::GetAccessRequestRequest,
    ) -> Result<pb::AccessRequest, Error> {
        let name = &request.name;
        let seq = numbered(name, ACCESS_REQUESTS, "name")?;
        let missing = || Error::NotFound(format!("no access request named {name}"));
        let row = store::access_requests::access_request(&self.context.db, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(missing)?;
        let asked = access_from_row(&row)?;
        // A request for a file above the caller's clearance names that file: it is answered as missing.
        let hidden = store::case_files::names_above(&self.context.db, Classification::clearance_of(caller).level())
            .await
            .map_err(db("reading an access request"))?;
        if !asked.visible_to(caller) || hidden.contains(&row.file) {
            return Err(missing());
        }
        Ok(access_to_proto(&row, &asked))
    }

    pub(super) async fn list_access_requests(
        &self,
        caller: &Caller,
        request: pb::ListAccessRequestsRequest,
    ) -> Result<pb::ListAccessRequestsResponse, Error> {
        let page_size = paging::page_size(request.page_size)?;
        let scope = if request.awaiting_my_signature { "awaiting" } else { "all" };
        let after = paging::decode_token(&request.page_token, scope)?;
        let read = db("listing access requests");
        let (rows, next) = store::access_requests::access_request_page(
            &self.context.db,
            request.awaiting_my_signature,
            page_size,
            after,
        )
        .await
        .map_err(read)?;
        // As GetAccessRequest: only what the caller may see, and nothing naming a file above its clearance.
        let hidden = store::case_files::names_above(&self.context.db, Classification::clearance_of(caller).level())
            .await
            .map_err(db("listing access requests"))?;
        let mut shown = Vec::new();
        for row in &rows {
            let asked = access_from_row(row)?;
            let wanted = if request.awaiting_my_signature { asked.awaits(caller) } else { asked.visible_to(caller) };
            if wanted && !hidden.contains(&row.file) {
                shown.push(access_to_proto(row, &asked));
            }
        }
        Ok(pb::ListAccessRequestsResponse {
            access_requests: shown,
            next_page_token: next.map(|seq| paging::encode_token(seq, scope)).unwrap_or_default(),
        })
    }

    pub(super) async fn approve_access_request(
        &self,
        caller: &Caller,
        request: pb::ApproveAccessRequestRequest,
    ) -> Result<pb::AccessRequest, Error> {
        self.decide(caller, &request.name, Decide::Sign).await
    }

    pub(super) async fn refuse_access_request(
        &self,
        caller: &Caller,
        request: pb::RefuseAccessRequestRequest,
    ) -> Result<pb::AccessRequest, Error> {
        reason_required(&request.reason)?;
        self.decide(caller, &request.name, Decide::Refuse { reason: request.reason.trim().to_owned() }).await
    }

    pub(super) async fn list_borrowing_register(
        &self,
        caller: &Caller,
        request: pb::ListBorrowingRegisterRequest,
    ) -> Result<pb::ListBorrowingRegisterResponse, Error> {
        custody::archivist_only(caller, Duty::ReadBorrowingRegister)?;
        let page_size = paging::page_size(request.page_size)?;
        let file = Some(request.file.trim()).filter(|file| !file.is_empty());
        let after = paging::decode_token(&request.page_token, file.unwrap_or_default())?;
        let max_level = Classification::clearance_of(caller).level();
        let (rows, next) = store::access_requests::borrowing_page(&self.context.db, file, max_level, page_size, after)
            .await
            .map_err(db("reading the borrowing register"))?;
        Ok(pb::ListBorrowingRegisterResponse {
            entries: rows
                .into_iter()
                .map(|row| pb::BorrowingEntry {
                    time: Some(to_timestamp(row.time)),
                    kind: kind_to_proto(Kind::parse(&row.kind)) as i32,
                    file: row.file,
                    reader: row.reader,
                    reader_department: row.reader_department,
                    access_request: row.access_request,
                    purpose: row.purpose,
                    personal_data_shown: row.personal_data_shown,
                })
                .collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, file.unwrap_or_default())).unwrap_or_default(),
        })
    }

    /// Signs or refuses access request `name` on the kit's write path (see [`AccessRequestKeeper`]).
    async fn decide(&self, caller: &Caller, name: &str, command: Decide) -> Result<pb::AccessRequest, Error> {
        let seq = numbered(name, ACCESS_REQUESTS, "name")?;
        let keeper = AccessRequestKeeper { audit_key: &self.audit_key, seq };
        let trace = kefu_kit::trace::TraceContext::new_root();
        let request = write::Request { caller, trace: &trace, request_id: None };
        write::act(&keeper, &self.context, name, request, command).await?;
        let row = store::access_requests::access_request(&self.context.db, seq)
            .await
            .map_err(db("reading an access request"))?
            .ok_or_else(|| Error::NotFound(format!("no access request named {name}")))?;
        answered(&row)
    }

    /// The classification of a file the caller may see (for an access request's signatures).
    async fn visible_level(
        &self,
        conn: &impl ConnectionTrait,
        file: &FileName,
        caller: &Caller,
    ) -> Result<Classification, Error> {
        Ok(match file {
            FileName::Case(number) => self.visible_case_file(conn, number, caller).await?.level(),
            FileName::Customer(id) => self.visible_customer(conn, id, caller).await?.level(),
        })
    }

    /// The caller's approved access request for `file`, named in the call (`named`), checked by the
    /// rules of [`access::may_read`].
    pub(super) async fn approved_access(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        file: &str,
        named: &str,
    ) -> Result<access_request::Model, Error> {
        let row = match named {
            "" => None,
            named => {
                let seq = numbered(named, ACCESS_REQUESTS, "access_request")?;
                store::access_requests::access_request(conn, seq).await.map_err(db("reading an access request"))?
            }
        };
        let asked = row.as_ref().map(access_from_row).transpose()?;
        access::may_read(caller, file, named, asked.as_ref(), self.now())?;
        // The rules refuse a request that is not there, so there is one.
        row.ok_or_else(|| Error::Denied(format!("there is no access request {named}")))
    }

    /// Enters a read under `access` in the borrowing register and the audit log.
    pub(super) async fn register_read(
        &self,
        tx: &impl ConnectionTrait,
        caller: &Caller,
        file: &str,
        access: &access_request::Model,
    ) -> Result<(), Error> {
        let now = self.now();
        let kind = access.kind();
        let entry = Borrowing {
            time: now,
            file: file.to_owned(),
            reader: caller.user.clone(),
            reader_department: caller.department.clone(),
            kind,
            access_request: format!("{ACCESS_REQUESTS}{}", access.seq),
            purpose: access.purpose.clone(),
            personal_data_shown: access.personal_data,
        };
        store::access_requests::register_read(tx, entry).await.map_err(db("writing the borrowing register"))?;
        let detail = format!(
            "under {ACCESS_REQUESTS}{}; personal data {}",
            access.seq,
            if access.personal_data { "shown" } else { "masked" }
        );
        let action = if kind == Kind::Copy { "copy" } else { "read" };
        self.audit(tx, Record { actor: &caller.user, action, subject: file, detail }, now, "auditing a read").await
    }
}
