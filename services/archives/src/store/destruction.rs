//! Destruction (`003 第25条`): the proposals awaiting a second member of the archives, and the
//! record each destruction leaves, and every query that reads or changes them.

use chrono::{DateTime, Utc};
use kefu_kit::error::is_unique_violation;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::OnConflict,
};

/// The record a destruction leaves: what the file was, its hash, under which rule and by whom.
pub mod destruction_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_destructions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub request_id: Option<String>,
        #[sea_orm(unique)]
        pub case_file: String,
        pub category: String,
        pub content_sha256: String,
        pub close_time: DateTimeUtc,
        pub retention_rule: String,
        pub retain_until: DateTimeUtc,
        pub approved_by: String,
        pub reason: String,
        pub destroy_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A destruction proposed and not yet carried out: four eyes, the proposer does not destroy.
pub mod destruction_proposal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_destruction_proposals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub case_number: String,
        pub proposed_by: String,
        pub reason: String,
        pub propose_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use destruction_proposal::Column as P;

/// Records a proposal to destroy a file, replacing an earlier one for the same file.
pub async fn propose_destruction(
    tx: &impl ConnectionTrait,
    proposal: destruction_proposal::Model,
) -> Result<(), DbErr> {
    let active: destruction_proposal::ActiveModel = proposal.into();
    destruction_proposal::Entity::insert(active)
        .on_conflict(
            OnConflict::column(P::CaseNumber).update_columns([P::ProposedBy, P::Reason, P::ProposeTime]).to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// The proposal awaiting a second member of the archives to destroy the file, if any.
pub async fn proposal(
    db: &impl ConnectionTrait,
    case_number: &str,
) -> Result<Option<destruction_proposal::Model>, DbErr> {
    destruction_proposal::Entity::find_by_id(case_number.to_owned()).one(db).await
}

/// The record of a destroyed file, by the file's name (`caseFiles/{n}`).
pub async fn destruction_of(
    db: &impl ConnectionTrait,
    case_file: &str,
) -> Result<Option<destruction_record::Model>, DbErr> {
    destruction_record::Entity::find().filter(destruction_record::Column::CaseFile.eq(case_file)).one(db).await
}

/// What a destruction record keeps of the file it destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDestruction {
    pub request_id: Option<String>,
    /// The file's name, `caseFiles/{n}`.
    pub case_file: String,
    pub category: String,
    pub content_sha256: String,
    pub close_time: DateTime<Utc>,
    pub retention_rule: String,
    pub retain_until: DateTime<Utc>,
    pub approved_by: String,
    pub reason: String,
    pub destroy_time: DateTime<Utc>,
}

/// Records a destruction and closes its proposal (the file's `case_number`); the record as
/// written, or `None` when another request recorded the same destruction first.
pub async fn record_destruction(
    tx: &impl ConnectionTrait,
    case_number: &str,
    new: NewDestruction,
) -> Result<Option<destruction_record::Model>, DbErr> {
    let record = destruction_record::ActiveModel {
        request_id: Set(new.request_id),
        case_file: Set(new.case_file),
        category: Set(new.category),
        content_sha256: Set(new.content_sha256),
        close_time: Set(new.close_time),
        retention_rule: Set(new.retention_rule),
        retain_until: Set(new.retain_until),
        approved_by: Set(new.approved_by),
        reason: Set(new.reason),
        destroy_time: Set(new.destroy_time),
        ..Default::default()
    };
    let seq = match destruction_record::Entity::insert(record).exec(tx).await {
        Ok(result) => result.last_insert_id,
        Err(error) if is_unique_violation(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    destruction_proposal::Entity::delete_by_id(case_number.to_owned()).exec(tx).await?;
    destruction_record::Entity::find_by_id(seq).one(tx).await
}

/// One page of destruction records, newest first, without the files above `max_level`.
pub async fn destruction_page(
    db: &impl ConnectionTrait,
    max_level: i32,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<destruction_record::Model>, Option<i64>), DbErr> {
    let hidden = super::case_files::names_above(db, max_level).await?;
    let mut query = destruction_record::Entity::find()
        .filter(destruction_record::Column::CaseFile.is_not_in(hidden))
        .order_by_desc(destruction_record::Column::Seq)
        .limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(destruction_record::Column::Seq.lt(after));
    }
    Ok(kefu_kit::paging::take_page(query.all(db).await?, page_size, |row| row.seq))
}
