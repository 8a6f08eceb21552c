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

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{ColumnDef, Expr, OnConflict, Table},
};
use sha2::{Digest, Sha256};

use kefu_kit::migrate::{Migration, SchemaStatement};

pub mod entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_audit")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub time: DateTimeUtc,
        pub actor: String,
        pub action: String,
        pub subject: String,
        pub detail: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod head {
    use sea_orm::entity::prelude::*;

    /// One row: the last entry's sequence number and hash.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_audit_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION: Migration = Migration {
    name: "archives_0002_audit",
    statements: || {
        use entry::Column as E;
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(entry::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(E::Seq).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(E::Time).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(E::Actor).string_len(128).not_null())
                    .col(ColumnDef::new(E::Action).string_len(32).not_null())
                    .col(ColumnDef::new(E::Subject).string_len(128).not_null())
                    .col(ColumnDef::new(E::Detail).text().not_null())
                    .col(ColumnDef::new(E::PrevHash).string_len(64).not_null())
                    .col(ColumnDef::new(E::Hash).string_len(64).not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(head::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(head::Column::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(head::Column::Seq).big_integer().not_null())
                    .col(ColumnDef::new(head::Column::Hash).string_len(64).not_null())
                    .to_owned(),
            ),
        ]
    },
};

/// What happened, before it is chained. Never personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub actor: &'a str,
    pub action: &'static str,
    pub subject: &'a str,
    pub detail: String,
}

const HEAD: i32 = 1;

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

/// Appends `record` at `now` (microseconds) within `tx`; returns its sequence number.
pub async fn append(
    tx: &impl ConnectionTrait,
    key: &AuditKey,
    record: Record<'_>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    head::Entity::insert(head::ActiveModel { id: Set(HEAD), seq: Set(0), hash: Set(String::new()) })
        .on_conflict(OnConflict::column(head::Column::Id).do_nothing().to_owned())
        .do_nothing()
        .exec_without_returning(tx)
        .await?;
    head::Entity::update_many()
        .col_expr(head::Column::Seq, Expr::col(head::Column::Seq).add(1))
        .filter(head::Column::Id.eq(HEAD))
        .exec(tx)
        .await?;
    let current = head::Entity::find_by_id(HEAD)
        .one(tx)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the audit log's head".into()))?;
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
    entry::Entity::insert(entry::ActiveModel {
        seq: Set(seq),
        time: Set(now),
        actor: Set(record.actor.to_owned()),
        action: Set(record.action.into()),
        subject: Set(record.subject.to_owned()),
        detail: Set(record.detail),
        prev_hash: Set(current.hash),
        hash: Set(hash.clone()),
    })
    .exec_without_returning(tx)
    .await?;
    head::Entity::update_many()
        .col_expr(head::Column::Hash, Expr::value(hash))
        .filter(head::Column::Id.eq(HEAD))
        .exec(tx)
        .await?;
    Ok(seq)
}

/// One page of entries, oldest first, after `after`.
pub async fn page(
    db: &impl ConnectionTrait,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<entry::Model>, Option<i64>), DbErr> {
    let mut query = entry::Entity::find().order_by_asc(entry::Column::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(entry::Column::Seq.gt(after));
    }
    Ok(kefu_kit::paging::take_page(query.all(db).await?, page_size, |row| row.seq))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: i64,
    /// The first entry that does not chain, and why; `None` when the log is intact.
    pub broken: Option<(i64, String)>,
}

/// Walks the whole chain in batches and checks every link, its seal under `key`, and the head.
pub async fn verify(db: &impl ConnectionTrait, key: &AuditKey) -> Result<Verification, DbErr> {
    verify_sealed(db, Seal::Keyed(key)).await
}

async fn verify_sealed(db: &impl ConnectionTrait, seal: Seal<'_>) -> Result<Verification, DbErr> {
    const BATCH: u64 = 1000;
    let mut expected_seq = 1;
    let mut prev_hash = String::new();
    let mut checked = 0;
    let broken = |seq: i64, problem: String| Ok(Verification { checked: seq - 1, broken: Some((seq, problem)) });
    loop {
        let batch = entry::Entity::find()
            .filter(entry::Column::Seq.gte(expected_seq))
            .order_by_asc(entry::Column::Seq)
            .limit(BATCH)
            .all(db)
            .await?;
        let done = (batch.len() as u64) < BATCH;
        for row in batch {
            if row.seq != expected_seq {
                return broken(expected_seq, format!("entry {expected_seq} is missing"));
            }
            if row.prev_hash != prev_hash {
                return broken(row.seq, format!("entry {} does not follow its predecessor's hash", row.seq));
            }
            let hash =
                chain_hash(seal, &prev_hash, row.seq, row.time, &row.actor, &row.action, &row.subject, &row.detail);
            if row.hash != hash {
                return broken(row.seq, format!("entry {} was altered: its fields do not give its hash", row.seq));
            }
            prev_hash = row.hash;
            expected_seq += 1;
            checked += 1;
        }
        if done {
            break;
        }
    }
    let head = head::Entity::find_by_id(HEAD).one(db).await?;
    let (head_seq, head_hash) = head.map(|head| (head.seq, head.hash)).unwrap_or((0, String::new()));
    if head_seq != checked || head_hash != prev_hash {
        return broken(
            checked + 1,
            format!(
                "the log ends at entry {checked} but its head records entry {head_seq}: entries were cut off the end"
            ),
        );
    }
    Ok(Verification { checked, broken: None })
}

/// Seals a log made before the audit key existed with the key, once: only if it verifies as it
/// was sealed then (plain SHA-256) and not already under the key. A broken log is left as it is,
/// for [`verify`] to report.
pub async fn adopt_key(db: &sea_orm::DatabaseConnection, key: &AuditKey) -> Result<bool, DbErr> {
    use sea_orm::TransactionTrait;
    let tx = db.begin().await?;
    // Holds the head, as an append does, so no entry is added meanwhile.
    head::Entity::update_many()
        .col_expr(head::Column::Seq, Expr::col(head::Column::Seq).into())
        .filter(head::Column::Id.eq(HEAD))
        .exec(&tx)
        .await?;
    let keyed = verify_sealed(&tx, Seal::Keyed(key)).await?;
    if keyed.broken.is_none() || verify_sealed(&tx, Seal::Legacy).await?.broken.is_some() {
        return Ok(false);
    }
    let rows = entry::Entity::find().order_by_asc(entry::Column::Seq).all(&tx).await?;
    let mut prev_hash = String::new();
    for row in rows {
        let hash = chain_hash(
            Seal::Keyed(key),
            &prev_hash,
            row.seq,
            row.time,
            &row.actor,
            &row.action,
            &row.subject,
            &row.detail,
        );
        entry::Entity::update_many()
            .col_expr(entry::Column::PrevHash, Expr::value(prev_hash.clone()))
            .col_expr(entry::Column::Hash, Expr::value(hash.clone()))
            .filter(entry::Column::Seq.eq(row.seq))
            .exec(&tx)
            .await?;
        prev_hash = hash;
    }
    head::Entity::update_many()
        .col_expr(head::Column::Hash, Expr::value(prev_hash))
        .filter(head::Column::Id.eq(HEAD))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

    use super::*;

    async fn log() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite in memory");
        kefu_kit::migrate::run(&db, "archives", &[&MIGRATION]).await.expect("migrated");
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
}
