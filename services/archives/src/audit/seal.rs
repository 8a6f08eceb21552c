//! The operator's seal (`kefu audit seal`): the one way a chain that is not sealed with the audit
//! key, or is broken, becomes one that verifies. Archives never does it by itself: a chain that
//! verifies only as plain SHA-256 may be a log from before the key — or one an attacker rewrote.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use super::{AuditKey, Examination, Head, HeadFile, Record, Seal, Standing, append, examine, seal_of};
use crate::store::{self, audit_log::entry};

/// Who the seal's own entries name as their actor.
pub const SEALER: &str = "kefu audit seal";

/// What [`seal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// How many entries the log held before sealing.
    pub entries: i64,
    /// What the walk found before sealing.
    pub found: Examination,
    /// The head file's anchor before, if there was a readable one.
    pub anchor_before: Option<Head>,
    /// Entries sealed anew with the key (0: the chain was intact and nothing changed).
    pub resealed: i64,
    /// Sequence numbers no entry held, filled with an entry saying so.
    pub filled: Vec<i64>,
    /// The head now, as the head file records it.
    pub head: Head,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the audit log's database: {0}")]
    Database(#[from] DbErr),
    #[error("the head file {path}: {error}")]
    HeadFile { path: String, error: String },
    /// The chain is broken, not merely unsealed, and breaking it was not accepted.
    #[error("the audit chain is broken at entry {seq}: {problem}")]
    Broken { seq: i64, problem: String },
}

/// Seals the chain with `key` if it is not intact, and anchors its head in `file`.
///
/// - Intact: nothing changes; the head file is brought to the head if it lags.
/// - Unsealed (entries sealed with plain SHA-256, every link holding): every entry is sealed anew
///   with the key, as it stands.
/// - Broken: refused, unless `accept_broken`; then every entry is sealed anew as it stands, and
///   every sequence number no entry holds — up to the head row's and the head file's — gets an entry
///   saying it was missing, so the gap stays visible and the numbering does not move.
///
/// A seal appends an entry of its own (`chain_sealed`, with what it found), in the same transaction,
/// which holds the head row as an append does: no entry is appended meanwhile.
pub async fn seal(
    db: &DatabaseConnection,
    key: &AuditKey,
    file: &HeadFile,
    accept_broken: bool,
    now: DateTime<Utc>,
) -> Result<Sealed, SealError> {
    let file_error = |error: String| SealError::HeadFile { path: file.path().display().to_string(), error };
    let anchor_before = match file.read() {
        Ok(anchor) => anchor,
        Err(_) if accept_broken => None,
        Err(error) => return Err(file_error(format!("{error} (with --accept-broken it is written anew)"))),
    };
    let tx = db.begin().await?;
    store::audit_log::hold_head(&tx).await?;
    let found = examine(&tx, key, anchor_before.as_ref()).await?;
    let summary = match &found.standing {
        Standing::Intact => {
            drop(tx);
            if anchor_before.as_ref() != Some(&found.last) {
                file.write(&found.last).map_err(file_error)?;
            }
            let head = found.last.clone();
            let entries = found.checked;
            return Ok(Sealed { entries, found, anchor_before, resealed: 0, filled: Vec::new(), head });
        }
        Standing::Unsealed { through } => format!("entries 1–{through} were sealed without the audit key"),
        Standing::Broken { seq, problem } if accept_broken => format!("broken at entry {seq}: {problem}"),
        Standing::Broken { seq, problem } => return Err(SealError::Broken { seq: *seq, problem: problem.clone() }),
    };
    let rows = store::audit_log::every_entry(&tx).await?;
    let entries = rows.len() as i64;
    let head_row = store::audit_log::head(&tx).await?.map_or(0, |head| head.seq);
    let top =
        rows.last().map_or(0, |row| row.seq).max(head_row).max(anchor_before.as_ref().map_or(0, |anchor| anchor.seq));
    let mut rows = rows.into_iter().filter(|row| row.seq > 0).peekable();
    let (mut prev_hash, mut resealed, mut filled) = (String::new(), 0, Vec::new());
    for seq in 1..=top {
        match rows.next_if(|row| row.seq == seq) {
            Some(row) => {
                let hash = seal_of(Seal::Keyed(key), &prev_hash, &row);
                store::audit_log::reseal_entry(&tx, seq, prev_hash, hash.clone()).await?;
                prev_hash = hash;
                resealed += 1;
            }
            None => {
                let mut missing = entry::Model {
                    seq,
                    time: now,
                    actor: SEALER.into(),
                    action: "entry_missing".into(),
                    subject: "auditLog".into(),
                    detail: "no entry held this number when an operator sealed the chain".into(),
                    prev_hash: prev_hash.clone(),
                    hash: String::new(),
                };
                missing.hash = seal_of(Seal::Keyed(key), &prev_hash, &missing);
                prev_hash = missing.hash.clone();
                store::audit_log::insert_entry(&tx, missing).await?;
                filled.push(seq);
            }
        }
    }
    store::audit_log::set_head(&tx, top, prev_hash).await?;
    let detail = format!("entries 1–{top} sealed with the audit key by an operator; found: {summary}");
    let record = Record { actor: SEALER, action: "chain_sealed", subject: "auditLog", detail };
    append(&tx, key, record, now).await?;
    let head = store::audit_log::head(&tx)
        .await?
        .map(|head| Head { seq: head.seq, seal: head.hash })
        .ok_or_else(|| DbErr::RecordNotFound("the audit log's head".into()))?;
    tx.commit().await?;
    file.write(&head).map_err(file_error)?;
    Ok(Sealed { entries, found, anchor_before, resealed, filled, head })
}
