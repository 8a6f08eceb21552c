//! The audit log (`003 第27条`: a leak or suspected leak is reported at once, so every access is
//! audited). Append-only and chained: entry `n`'s seal is the HMAC-SHA256, under the audit key
//! ([`AuditKey`]: `KEFU_AUDIT_KEY`, kept out of the database), of entry `n − 1`'s seal and entry
//! `n`'s fields, and the head row holds the last sequence number and seal. An entry removed, altered
//! or cut off the end breaks the chain, and [`verify`] names where — and because the seal needs the
//! key, whoever can write the database cannot rewrite the log and recompute a chain that verifies.
//!
//! A log sealed before the key existed (plain SHA-256) is checked once at start and, if intact,
//! sealed anew with the key ([`adopt_key`]).
//!
//! Invariant: an entry is appended in the same transaction as what it records. Appending first
//! bumps the head row, which on PostgreSQL locks it until commit: entries are chained one at a time.
//!
//! The tables and their queries are [`crate::store::audit_log`]'s; the chain is checked by a walk
//! over the entries (`Walk`) that reads nothing itself.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use crate::store::{self, audit_log::entry};

/// What happened, before it is chained. Never personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub actor: &'a str,
    pub action: &'static str,
    pub subject: &'a str,
    pub detail: String,
}

/// The key the audit chain is sealed with.
#[derive(Clone)]
pub struct AuditKey(std::sync::Arc<Vec<u8>>);

impl AuditKey {
    pub fn new(secret: &str) -> AuditKey {
        AuditKey(std::sync::Arc::new(secret.as_bytes().to_vec()))
    }

    /// `KEFU_AUDIT_KEY`, or else the key file beside the SQLite files (`kefu_kit::keys`).
    pub fn load(config: &kefu_kit::Config) -> Result<AuditKey, String> {
        let secret =
            kefu_kit::keys::load(config, config.audit_key.as_ref(), "audit.key", "KEFU_AUDIT_KEY", "kefu-audit-key")?;
        Ok(AuditKey::new(&secret))
    }
}

/// How a chain is sealed: with the key, or (logs from before the key) plain SHA-256.
#[derive(Clone, Copy)]
enum Seal<'a> {
    Keyed(&'a AuditKey),
    Legacy,
}

/// The seal of an entry: each field length-prefixed, so no two entries seal alike by shifting text
/// from one field to the next.
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    seal: Seal<'_>,
    prev_hash: &str,
    seq: i64,
    time: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let seq = seq.to_string();
    let time = time.timestamp_micros().to_string();
    let fields = [prev_hash, &seq, &time, actor, action, subject, detail];
    match seal {
        Seal::Keyed(key) => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else { return String::new() };
            for field in fields {
                mac.update(&(field.len() as u64).to_be_bytes());
                mac.update(field.as_bytes());
            }
            kefu_kit::text::hex(&mac.finalize().into_bytes())
        }
        Seal::Legacy => {
            let mut hasher = Sha256::new();
            for field in fields {
                hasher.update((field.len() as u64).to_be_bytes());
                hasher.update(field.as_bytes());
            }
            kefu_kit::text::hex(&hasher.finalize())
        }
    }
}

/// The seal of an entry as stored, chained after `prev_hash`.
fn seal_of(seal: Seal<'_>, prev_hash: &str, row: &entry::Model) -> String {
    chain_hash(seal, prev_hash, row.seq, row.time, &row.actor, &row.action, &row.subject, &row.detail)
}

/// Appends `record` at `now` (microseconds) within `tx`; returns its sequence number.
pub async fn append(
    tx: &impl ConnectionTrait,
    key: &AuditKey,
    record: Record<'_>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let current = store::audit_log::advance_head(tx).await?;
    let seq = current.seq;
    let hash = chain_hash(
        Seal::Keyed(key),
        &current.hash,
        seq,
        now,
        record.actor,
        record.action,
        record.subject,
        &record.detail,
    );
    let sealed = entry::Model {
        seq,
        time: now,
        actor: record.actor.to_owned(),
        action: record.action.into(),
        subject: record.subject.to_owned(),
        detail: record.detail,
        prev_hash: current.hash,
        hash,
    };
    store::audit_log::write_entry(tx, sealed).await?;
    Ok(seq)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: i64,
    /// The first entry that does not chain, and why; `None` when the log is intact.
    pub broken: Option<(i64, String)>,
}

/// A walk along the chain, entry by entry, oldest first: each must follow the one before, and its
/// fields must give its seal. Reads nothing itself.
struct Walk<'a> {
    seal: Seal<'a>,
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
}

impl<'a> Walk<'a> {
    fn new(seal: Seal<'a>) -> Walk<'a> {
        Walk { seal, expected_seq: 1, prev_hash: String::new(), checked: 0 }
    }

    /// Checks the next entry; the verification that ends the walk when it does not chain.
    fn step(&mut self, row: entry::Model) -> Result<(), Verification> {
        let broken = |seq: i64, problem: String| Verification { checked: seq - 1, broken: Some((seq, problem)) };
        let expected_seq = self.expected_seq;
        if row.seq != expected_seq {
            return Err(broken(expected_seq, format!("entry {expected_seq} is missing")));
        }
        if row.prev_hash != self.prev_hash {
            return Err(broken(row.seq, format!("entry {} does not follow its predecessor's hash", row.seq)));
        }
        if row.hash != seal_of(self.seal, &self.prev_hash, &row) {
            return Err(broken(row.seq, format!("entry {} was altered: its fields do not give its hash", row.seq)));
        }
        self.prev_hash = row.hash;
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// The verification once every entry was checked, against the head (`None` if there is none):
    /// entries cut off the end leave a head that records more than the log holds.
    fn finish(self, head: Option<(i64, String)>) -> Verification {
        let (head_seq, head_hash) = head.unwrap_or((0, String::new()));
        let checked = self.checked;
        if head_seq != checked || head_hash != self.prev_hash {
            let problem = format!(
                "the log ends at entry {checked} but its head records entry {head_seq}: entries were cut off the end"
            );
            return Verification { checked, broken: Some((checked + 1, problem)) };
        }
        Verification { checked, broken: None }
    }
}

/// Walks the whole chain in batches and checks every link, its seal under `key`, and the head.
pub async fn verify(db: &impl ConnectionTrait, key: &AuditKey) -> Result<Verification, DbErr> {
    verify_sealed(db, Seal::Keyed(key)).await
}

async fn verify_sealed(db: &impl ConnectionTrait, seal: Seal<'_>) -> Result<Verification, DbErr> {
    const BATCH: u64 = 1000;
    let mut walk = Walk::new(seal);
    loop {
        let batch = store::audit_log::entries_from(db, walk.expected_seq, BATCH).await?;
        let done = (batch.len() as u64) < BATCH;
        for row in batch {
            if let Err(broken) = walk.step(row) {
                return Ok(broken);
            }
        }
        if done {
            break;
        }
    }
    let head = store::audit_log::head(db).await?.map(|head| (head.seq, head.hash));
    Ok(walk.finish(head))
}

/// Seals a log made before the audit key existed with the key, once: only if it verifies as it
/// was sealed then (plain SHA-256) and not already under the key. A broken log is left as it is,
/// for [`verify`] to report.
pub async fn adopt_key(db: &DatabaseConnection, key: &AuditKey) -> Result<bool, DbErr> {
    let tx = store::begin(db).await?;
    // Holds the head, as an append does, so no entry is added meanwhile.
    store::audit_log::hold_head(&tx).await?;
    let keyed = verify_sealed(&tx, Seal::Keyed(key)).await?;
    if keyed.broken.is_none() || verify_sealed(&tx, Seal::Legacy).await?.broken.is_some() {
        return Ok(false);
    }
    let rows = store::audit_log::every_entry(&tx).await?;
    let mut prev_hash = String::new();
    for row in rows {
        let hash = seal_of(Seal::Keyed(key), &prev_hash, &row);
        store::audit_log::reseal_entry(&tx, row.seq, prev_hash, hash.clone()).await?;
        prev_hash = hash;
    }
    store::audit_log::set_head_seal(&tx, prev_hash).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait};

    use super::*;
    use crate::store::audit_log::{HEAD, head};

    async fn log() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite in memory");
        kefu_kit::migrate::run(&db, "archives", &[&store::schema::MIGRATION_AUDIT]).await.expect("migrated");
        db
    }

    fn record(actor: &str) -> Record<'_> {
        Record { actor, action: "read", subject: "caseFiles/20261122-7K3M9Q", detail: "under accessRequests/1".into() }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_000_000 + second, 0).expect("a time")
    }

    #[tokio::test]
    async fn a_log_sealed_before_the_key_is_sealed_with_it_once_and_then_needs_it() {
        let db = log().await;
        // Three entries as archives sealed them before the key: plain SHA-256, chained.
        let mut prev = String::new();
        for seq in 1..=3 {
            let hash =
                chain_hash(Seal::Legacy, &prev, seq, at(seq), "A1024", "read", "caseFiles/20261122-7K3M9Q", "old");
            entry::Entity::insert(entry::ActiveModel {
                seq: Set(seq),
                time: Set(at(seq)),
                actor: Set("A1024".into()),
                action: Set("read".into()),
                subject: Set("caseFiles/20261122-7K3M9Q".into()),
                detail: Set("old".into()),
                prev_hash: Set(prev.clone()),
                hash: Set(hash.clone()),
            })
            .exec_without_returning(&db)
            .await
            .expect("inserted");
            prev = hash;
        }
        head::Entity::insert(head::ActiveModel { id: Set(HEAD), seq: Set(3), hash: Set(prev) })
            .exec_without_returning(&db)
            .await
            .expect("the head");
        let key = AuditKey::new(&"k".repeat(32));
        assert!(verify(&db, &key).await.expect("verified").broken.is_some(), "not under the key yet");

        assert!(adopt_key(&db, &key).await.expect("sealed"), "sealed with the key");
        assert_eq!(verify(&db, &key).await.expect("verified"), Verification { checked: 3, broken: None });
        assert!(!adopt_key(&db, &key).await.expect("checked"), "once");
        append(&db, &key, record("Q100"), at(10)).await.expect("appended");
        assert_eq!(verify(&db, &key).await.expect("verified").checked, 4);
        let other = AuditKey::new(&"x".repeat(32));
        assert_eq!(verify(&db, &other).await.expect("verified").broken.map(|(seq, _)| seq), Some(1), "another key");

        // A broken legacy log is never sealed: it stays broken for verify to report.
        let broken = log().await;
        append(&broken, &other, record("A1"), at(1)).await.expect("appended under another key");
        broken.execute_unprepared("UPDATE archive_audit SET actor = 'nobody'").await.expect("tampered");
        assert!(!adopt_key(&broken, &key).await.expect("checked"));
        assert!(verify(&broken, &key).await.expect("verified").broken.is_some());
    }

    /// Three entries sealed under `key`, chained as [`append`] chains them.
    fn chained(key: &AuditKey) -> Vec<entry::Model> {
        let mut prev_hash = String::new();
        let mut rows = Vec::new();
        for seq in 1..=3 {
            let hash = chain_hash(Seal::Keyed(key), &prev_hash, seq, at(seq), "A1024", "read", "caseFiles/1", "d");
            rows.push(entry::Model {
                seq,
                time: at(seq),
                actor: "A1024".into(),
                action: "read".into(),
                subject: "caseFiles/1".into(),
                detail: "d".into(),
                prev_hash: prev_hash.clone(),
                hash: hash.clone(),
            });
            prev_hash = hash;
        }
        rows
    }

    fn walked(key: &AuditKey, rows: Vec<entry::Model>, head: Option<(i64, String)>) -> Verification {
        let mut walk = Walk::new(Seal::Keyed(key));
        for row in rows {
            if let Err(broken) = walk.step(row) {
                return broken;
            }
        }
        walk.finish(head)
    }

    #[test]
    fn a_walk_names_the_first_altered_missing_or_cut_off_entry() {
        let key = AuditKey::new(&"k".repeat(32));
        let rows = chained(&key);
        let head = Some((3, rows[2].hash.clone()));
        assert_eq!(walked(&key, rows.clone(), head.clone()), Verification { checked: 3, broken: None });

        let mut altered = rows.clone();
        altered[1].actor = "nobody".into();
        let found = walked(&key, altered, head.clone()).broken.expect("broken");
        assert_eq!(found.0, 2);
        assert!(found.1.contains("altered"), "{}", found.1);

        let mut removed = rows.clone();
        removed.remove(1);
        let found = walked(&key, removed, head.clone()).broken.expect("broken");
        assert_eq!(found, (2, "entry 2 is missing".to_owned()));

        let cut = walked(&key, rows[..2].to_vec(), head);
        assert_eq!((cut.checked, cut.broken.map(|(seq, _)| seq)), (2, Some(3)), "the head remembers entry 3");

        let other = AuditKey::new(&"x".repeat(32));
        assert_eq!(walked(&other, rows, None).broken.map(|(seq, _)| seq), Some(1), "sealed under another key");
    }
}
