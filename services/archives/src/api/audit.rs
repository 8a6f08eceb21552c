//! The audit room (`003 第27条`): the hash-chained audit log of every access to the archives, read
//! page by page, and its verification — both for archivists cleared top secret only.

use kefu_kit::{caller::Caller, paging, time::to_timestamp};
use kefu_proto::archives::v1 as pb;

use super::ArchivesApi;
use crate::{
    audit, custody,
    error::{Error, db},
    store,
};

impl ArchivesApi {
    pub(super) async fn list_audit_entries(
        &self,
        caller: &Caller,
        request: pb::ListAuditEntriesRequest,
    ) -> Result<pb::ListAuditEntriesResponse, Error> {
        custody::auditor_only(caller)?;
        let page_size = paging::page_size(request.page_size)?;
        let after = paging::decode_token(&request.page_token, "audit")?;
        let (rows, next) = store::audit_log::audit_page(&self.context.db, page_size, after)
            .await
            .map_err(db("reading the audit log"))?;
        Ok(pb::ListAuditEntriesResponse {
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
        })
    }

    /// Walks the whole chain against the head file; a break is logged as well as answered, and
    /// the anchor walks it again to report it (the metric).
    pub(super) async fn verify_audit_log(
        &self,
        caller: &Caller,
        _request: pb::VerifyAuditLogRequest,
    ) -> Result<pb::AuditVerification, Error> {
        custody::auditor_only(caller)?;
        let verification = audit::verify(&self.context.db, &self.audit_key, self.anchor.file())
            .await
            .map_err(db("verifying the audit log"))?;
        if let Some((seq, problem)) = &verification.broken {
            tracing::error!(seq, %problem, "the audit log's hash chain is broken");
            self.anchor.recheck();
        }
        let intact = verification.broken.is_none();
        let (first_broken_seq, problem) = verification.broken.unwrap_or_default();
        Ok(pb::AuditVerification { intact, entries_checked: verification.checked, first_broken_seq, problem })
    }
}
