//! The audit log (`003 第27条`: a leak or suspected leak is reported at once, so every access is
//! audited). Append-only and hash-chained: entry `n`'s hash is the SHA-256 of entry `n − 1`'s hash
//! and entry `n`'s fields, and the head row holds the last sequence number and hash. An entry
//! removed, altered or cut off the end breaks the chain, and [`verify`] names where.
//!
//! Invariant: an entry is appended in the same transaction as what it records. Appending first
//! bumps the head row, which on PostgreSQL locks it until commit: entries are chained one at a time.

use chrono::{DateTime, Utc};
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

/// The hash of an entry: each field length-prefixed, so no two entries hash alike by shifting text
/// from one field to the next.
fn chain_hash(
    prev_hash: &str,
    seq: i64,
    time: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut hasher = Sha256::new();
    let seq = seq.to_string();
    let time = time.timestamp_micros().to_string();
    for field in [prev_hash, &seq, &time, actor, action, subject, detail] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    kefu_kit::text::hex(&hasher.finalize())
}

/// Appends `record` at `now` (microseconds) within `tx`; returns its sequence number.
pub async fn append(tx: &impl ConnectionTrait, record: Record<'_>, now: DateTime<Utc>) -> Result<i64, DbErr> {
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
    let hash = chain_hash(&current.hash, seq, now, record.actor, record.action, record.subject, &record.detail);
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

/// Walks the whole chain in batches and checks every link and the head.
pub async fn verify(db: &impl ConnectionTrait) -> Result<Verification, DbErr> {
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
            let hash = chain_hash(&prev_hash, row.seq, row.time, &row.actor, &row.action, &row.subject, &row.detail);
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
