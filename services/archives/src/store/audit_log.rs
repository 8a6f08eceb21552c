//! The audit log's tables: the entries, append-only, and the head row holding the last entry's
//! sequence number and seal, and every query that reads or changes them. How entries are sealed
//! and checked is [`crate::audit`]'s.

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};

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

/// The head's one row.
pub const HEAD: i32 = 1;

/// Takes the next sequence number: bumps the head (made at zero the first time), which on
/// PostgreSQL holds its row until commit, so entries are chained one at a time. Returns the head
/// as bumped: the new entry's sequence number and the previous entry's seal.
pub async fn advance_head(tx: &impl ConnectionTrait) -> Result<head::Model, DbErr> {
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
    head::Entity::find_by_id(HEAD).one(tx).await?.ok_or_else(|| DbErr::RecordNotFound("the audit log's head".into()))
}

/// Writes a sealed entry and moves the head's seal to it.
pub async fn write_entry(tx: &impl ConnectionTrait, sealed: entry::Model) -> Result<(), DbErr> {
    let hash = sealed.hash.clone();
    insert_entry(tx, sealed).await?;
    set_head_seal(tx, hash).await
}

/// Sets the seal the head records.
pub async fn set_head_seal(tx: &impl ConnectionTrait, hash: String) -> Result<(), DbErr> {
    head::Entity::update_many()
        .col_expr(head::Column::Hash, Expr::value(hash))
        .filter(head::Column::Id.eq(HEAD))
        .exec(tx)
        .await?;
    Ok(())
}

/// Sets the head row to `seq` and `hash`, making it if there is none (an operator's seal).
pub async fn set_head(tx: &impl ConnectionTrait, seq: i64, hash: String) -> Result<(), DbErr> {
    head::Entity::insert(head::ActiveModel { id: Set(HEAD), seq: Set(seq), hash: Set(hash) })
        .on_conflict(
            OnConflict::column(head::Column::Id).update_columns([head::Column::Seq, head::Column::Hash]).to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// Writes an entry without moving the head.
pub async fn insert_entry(tx: &impl ConnectionTrait, sealed: entry::Model) -> Result<(), DbErr> {
    entry::Entity::insert(entry::ActiveModel {
        seq: Set(sealed.seq),
        time: Set(sealed.time),
        actor: Set(sealed.actor),
        action: Set(sealed.action),
        subject: Set(sealed.subject),
        detail: Set(sealed.detail),
        prev_hash: Set(sealed.prev_hash),
        hash: Set(sealed.hash),
    })
    .exec_without_returning(tx)
    .await?;
    Ok(())
}

/// Holds the head, as an append does, so that no entry is appended until `tx` ends.
pub async fn hold_head(tx: &impl ConnectionTrait) -> Result<(), DbErr> {
    head::Entity::update_many()
        .col_expr(head::Column::Seq, Expr::col(head::Column::Seq).into())
        .filter(head::Column::Id.eq(HEAD))
        .exec(tx)
        .await?;
    Ok(())
}

/// The head, if any entry was ever appended.
pub async fn head(db: &impl ConnectionTrait) -> Result<Option<head::Model>, DbErr> {
    head::Entity::find_by_id(HEAD).one(db).await
}

/// Up to `limit` entries from sequence number `first` on, oldest first.
pub async fn entries_from(db: &impl ConnectionTrait, first: i64, limit: u64) -> Result<Vec<entry::Model>, DbErr> {
    entry::Entity::find()
        .filter(entry::Column::Seq.gte(first))
        .order_by_asc(entry::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Every entry, oldest first.
pub async fn every_entry(db: &impl ConnectionTrait) -> Result<Vec<entry::Model>, DbErr> {
    entry::Entity::find().order_by_asc(entry::Column::Seq).all(db).await
}

/// Seals an entry anew (its link to the previous seal and its own seal).
pub async fn reseal_entry(tx: &impl ConnectionTrait, seq: i64, prev_hash: String, hash: String) -> Result<(), DbErr> {
    entry::Entity::update_many()
        .col_expr(entry::Column::PrevHash, Expr::value(prev_hash))
        .col_expr(entry::Column::Hash, Expr::value(hash))
        .filter(entry::Column::Seq.eq(seq))
        .exec(tx)
        .await?;
    Ok(())
}

/// One page of entries, oldest first, after `after`.
pub async fn audit_page(
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
