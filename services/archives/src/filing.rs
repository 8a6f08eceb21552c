//! Filing a closed case: intake's `case_closed` carries the case's whole story; archives seals it —
//! the encoded story and its SHA-256 — into a case file that no call changes afterwards, files it
//! under the customer whose phone it bears, and sets when it moves to the archives and how long
//! it is kept.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use kefu_kit::time::{from_timestamp, to_micros};
use kefu_proto::events::v1::CaseClosed;
use prost::Message;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, sea_query::OnConflict};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::{
    audit,
    policy::{self, Classification},
    store::{self, case_file},
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
    let case_number = complaint
        .complaint
        .strip_prefix("complaints/")
        .filter(|number| !number.is_empty())
        .ok_or_else(|| {
            kefu_kit::error::invalid_field("event.case_closed.complaint.complaint", "expected complaints/{case_number}")
        })?
        .to_owned();
    let close_time = closed
        .close_time
        .as_ref()
        .and_then(from_timestamp)
        .map(to_micros)
        .ok_or_else(|| kefu_kit::error::invalid_field("event.case_closed.close_time", "required"))?;
    let db_error = |context: &'static str| move |e: DbErr| kefu_kit::error::from_db(context, e);
    if store::case_file(tx, &case_number).await.map_err(db_error("reading a case file"))?.is_some() {
        tracing::warn!(case_number, "case_closed for a case filed before; the sealed file stands");
        return Ok(());
    }
    let content = closed.encode_to_vec();
    let sha256 = seal(&content);
    let moved_money = closed.payments.iter().any(|payment| payment.amount_fen != 0);
    let rule = policy::retention_rule(&complaint.category, moved_money, closed.incident);
    let customer = match complaint.contact_phone.as_str() {
        "" => None,
        phone => {
            store::customer_by_phone(tx, phone).await.map_err(db_error("finding the customer"))?.map(|c| c.customer_id)
        }
    };
    let subject = format!("caseFiles/{case_number}");
    case_file::Entity::insert(case_file::ActiveModel {
        case_number: Set(case_number),
        category: Set(complaint.category.clone()),
        waybill_number: Set(complaint.waybill_number.clone()),
        branch: Set(complaint.branch.clone()),
        owner: Set(closed.owner.clone()),
        contact_phone: Set(complaint.contact_phone.clone()),
        customer: Set(customer),
        close_time: Set(close_time),
        archive_time: Set(policy::moves_to_archives(close_time, time_zone)),
        classification: Set(Classification::Ordinary.level()),
        content: Set(Some(content)),
        content_sha256: Set(sha256.clone()),
        retention_rule: Set(rule.code.into()),
        retain_until: Set(policy::retain_until(rule, close_time, time_zone)),
        legal_hold: Set(false),
        legal_hold_reason: Set(String::new()),
        destroy_time: Set(None),
        ..Default::default()
    })
    .on_conflict(OnConflict::column(case_file::Column::CaseNumber).do_nothing().to_owned())
    .do_nothing()
    .exec_without_returning(tx)
    .await
    .map_err(db_error("filing a case"))?;
    let record = audit::Record {
        actor,
        action: "filed",
        subject: &subject,
        detail: format!("sealed with sha256 {sha256}; kept under {}", rule.code),
    };
    audit::append(tx, key, record, now).await.map_err(db_error("auditing a filing"))?;
    Ok(())
}
