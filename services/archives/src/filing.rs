//! Filing a closed case: intake's `case_closed` carries the case's whole story; archives seals it —
//! the encoded story and its SHA-256 — into a case file that no call changes afterwards, files it
//! under the customer whose phone it bears, and sets when it moves to the archives and how long
//! it is kept ([`crate::policy`]). The row is written by [`crate::store::case_files::file_case`].

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use kefu_kit::time::{from_timestamp, to_micros};
use kefu_proto::events::v1::CaseClosed;
use prost::Message;
use sea_orm::{ConnectionTrait, DbErr};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::{
    audit,
    policy::{self, Classification},
    store::{self, case_files::NewCaseFile},
};

/// The SHA-256 of a file's sealed content, in hex.
pub fn seal(content: &[u8]) -> String {
    kefu_kit::text::hex(&Sha256::digest(content))
}

/// Files the closed case within `tx`; a case filed before is left as it was sealed.
pub async fn file(
    tx: &impl ConnectionTrait,
    key: &crate::audit::AuditKey,
    closed: &CaseClosed,
    actor: &str,
    time_zone: Tz,
    now: DateTime<Utc>,
) -> Result<(), Status> {
    let complaint = closed.complaint.clone().unwrap_or_default();
    let case_number = kefu_kit::names::complaint(&complaint.complaint, "event.case_closed.complaint.complaint")
        .map_err(kefu_kit::error::FieldViolations::into_status)?
        .to_owned();
    let close_time = closed
        .close_time
        .as_ref()
        .and_then(from_timestamp)
        .map(to_micros)
        .ok_or_else(|| kefu_kit::error::invalid_field("event.case_closed.close_time", "required"))?;
    let db_error = |context: &'static str| move |e: DbErr| kefu_kit::error::from_db(context, e);
    if store::case_files::case_file(tx, &case_number).await.map_err(db_error("reading a case file"))?.is_some() {
        tracing::warn!(case_number, "case_closed for a case filed before; the sealed file stands");
        return Ok(());
    }
    let content = closed.encode_to_vec();
    let sha256 = seal(&content);
    let moved_money = closed.payments.iter().any(|payment| payment.amount_fen != 0);
    let rule = policy::retention_rule(&complaint.category, moved_money, closed.incident);
    let customer = match complaint.contact_phone.as_str() {
        "" => None,
        phone => store::customers::customer_by_phone(tx, phone)
            .await
            .map_err(db_error("finding the customer"))?
            .map(|c| c.customer_id),
    };
    let subject = store::case_files::name_of(&case_number);
    let new = NewCaseFile {
        case_number,
        category: complaint.category.clone(),
        waybill_number: complaint.waybill_number.clone(),
        branch: complaint.branch.clone(),
        owner: closed.owner.clone(),
        contact_phone: complaint.contact_phone.clone(),
        customer,
        close_time,
        archive_time: policy::moves_to_archives(close_time, time_zone),
        classification: Classification::Ordinary,
        content,
        content_sha256: sha256.clone(),
        retention_rule: rule.code.into(),
        retain_until: policy::retain_until(rule, close_time, time_zone),
    };
    store::case_files::file_case(tx, new).await.map_err(db_error("filing a case"))?;
    let record = audit::Record {
        actor,
        action: "filed",
        subject: &subject,
        detail: format!("sealed with sha256 {sha256}; kept under {}", rule.code),
    };
    audit::append(tx, key, record, now).await.map_err(db_error("auditing a filing"))?;
    Ok(())
}
