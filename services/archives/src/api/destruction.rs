//! The destruction room (`003 第25条`): the files due for destruction, a proposal by one member of
//! the archives, the destruction by another, its supervisor, and the records destruction leaves.

use kefu_kit::{
    caller::Caller,
    error::{FieldViolations, check_request_id, idempotency_key},
    paging,
    time::to_timestamp,
};
use kefu_proto::archives::v1 as pb;

use super::{
    ArchivesApi, CASE_FILES, DESTRUCTION_RECORDS, case_file_to_proto, case_number, reason_required, required_text,
};
use crate::{
    audit::Record,
    custody::{self, Duty},
    error::{Error, db},
    policy::Classification,
    retention,
    store::{self, destruction::NewDestruction, destruction_proposal, destruction_record},
};

fn destruction_to_proto(row: &destruction_record::Model) -> pb::DestructionRecord {
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

impl ArchivesApi {
    pub(super) async fn list_due_for_destruction(
        &self,
        caller: &Caller,
        request: pb::ListDueForDestructionRequest,
    ) -> Result<pb::ListDueForDestructionResponse, Error> {
        custody::archivist_only(caller, Duty::ListDueForDestruction)?;
        let limit = paging::page_size(request.page_size)?;
        let now = self.now();
        let max_level = Classification::clearance_of(caller).level();
        let rows = store::case_files::files_due_for_destruction(&self.context.db, now, max_level, limit)
            .await
            .map_err(db("listing files due for destruction"))?;
        Ok(pb::ListDueForDestructionResponse {
            case_files: rows.iter().map(|row| case_file_to_proto(row, now)).collect(),
        })
    }

    pub(super) async fn propose_destruction(
        &self,
        caller: &Caller,
        request: pb::ProposeDestructionRequest,
    ) -> Result<pb::DestructionProposal, Error> {
        custody::archivist_only(caller, Duty::ProposeDestruction)?;
        let number = case_number(&request.name, "name")?;
        reason_required(&request.reason)?;
        let name = format!("{CASE_FILES}{number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, caller).await?;
        let now = self.now();
        retention::may_propose_destruction(&file.kept(), now)?;
        let proposal = destruction_proposal::Model {
            case_number: number.clone(),
            proposed_by: caller.user.clone(),
            reason: request.reason.trim().to_owned(),
            propose_time: now,
        };
        store::destruction::propose_destruction(&tx, proposal.clone()).await.map_err(db("proposing a destruction"))?;
        let detail = format!("destruction proposed: {}", proposal.reason);
        let record = Record { actor: &caller.user, action: "destruction_proposed", subject: &name, detail };
        self.audit(&tx, record, now, "auditing a proposal").await?;
        tx.commit().await.map_err(db("proposing a destruction"))?;
        Ok(pb::DestructionProposal {
            case_file: name,
            proposed_by: proposal.proposed_by,
            reason: proposal.reason,
            propose_time: Some(to_timestamp(now)),
        })
    }

    /// Destroys a file on another member's proposal: empties its content, keeps its hash, and leaves
    /// a destruction record. A retry with the same `request_id` answers the same record.
    pub(super) async fn destroy_case_file(
        &self,
        caller: &Caller,
        request: pb::DestroyCaseFileRequest,
    ) -> Result<pb::DestructionRecord, Error> {
        custody::destruction_approver_only(caller)?;
        let number = case_number(&request.name, "name")?;
        let mut violations = FieldViolations::new();
        required_text(&mut violations, "reason", &request.reason);
        check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let name = format!("{CASE_FILES}{number}");
        let tx = self.begin().await?;
        let file = self.visible_case_file(&tx, &number, caller).await?;
        let earlier =
            store::destruction::destruction_of(&tx, &name).await.map_err(db("reading destruction records"))?;
        if let Some(record) = &earlier
            && idempotency_key(&request.request_id).is_some()
            && record.request_id.as_deref() == Some(request.request_id.as_str())
        {
            return Ok(destruction_to_proto(record));
        }
        let now = self.now();
        let proposal = store::destruction::proposal(&tx, &number).await.map_err(db("reading destruction proposals"))?;
        let earlier = earlier.map(|record| format!("{DESTRUCTION_RECORDS}{}", record.seq));
        let proposer = proposal.map(|proposal| proposal.proposed_by);
        retention::may_destroy(&file.kept(), earlier.as_deref(), proposer.as_deref(), caller, now)?;
        let emptied =
            store::case_files::empty_destroyed_file(&tx, &number, now).await.map_err(db("destroying a file"))?;
        if !emptied {
            return Err(Error::Conflict);
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
            proposer.unwrap_or_default(),
            request.reason.trim()
        );
        let audited = Record { actor: &caller.user, action: "destroyed", subject: &name, detail };
        self.audit(&tx, audited, now, "auditing a destruction").await?;
        tx.commit().await.map_err(db("destroying a file"))?;
        tracing::warn!(file = %name, rule = %file.retention_rule, "case file destroyed");
        Ok(destruction_to_proto(&record))
    }

    pub(super) async fn list_destruction_records(
        &self,
        caller: &Caller,
        request: pb::ListDestructionRecordsRequest,
    ) -> Result<pb::ListDestructionRecordsResponse, Error> {
        custody::archivist_only(caller, Duty::ListDestructionRecords)?;
        let page_size = paging::page_size(request.page_size)?;
        let after = paging::decode_token(&request.page_token, "destructions")?;
        let max_level = Classification::clearance_of(caller).level();
        let (rows, next) = store::destruction::destruction_page(&self.context.db, max_level, page_size, after)
            .await
            .map_err(db("listing destruction records"))?;
        Ok(pb::ListDestructionRecordsResponse {
            records: rows.iter().map(destruction_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, "destructions")).unwrap_or_default(),
        })
    }
}
