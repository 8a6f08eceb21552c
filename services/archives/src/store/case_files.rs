//! The case files table: one sealed file per closed case, with its classification, retention and
//! legal hold, and every query that reads or changes it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    UpdateMany,
    sea_query::{Expr, OnConflict},
};

use crate::{custody, policy::Classification};

pub mod case_file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_case_files")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub case_number: String,
        pub category: String,
        pub waybill_number: String,
        pub branch: String,
        pub owner: String,
        /// Personal data, kept to file the case under its customer: never logged.
        pub contact_phone: String,
        pub customer: Option<String>,
        pub close_time: DateTimeUtc,
        pub archive_time: DateTimeUtc,
        /// [`crate::policy::Classification`] as its level.
        pub classification: i32,
        /// The encoded `kefu.events.v1.CaseClosed`; `None` once destroyed.
        pub content: Option<Vec<u8>>,
        pub content_sha256: String,
        pub retention_rule: String,
        pub retain_until: DateTimeUtc,
        pub legal_hold: bool,
        pub legal_hold_reason: String,
        pub destroy_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use case_file::Column as F;

/// The name a case file goes by in the API, the audit log and the registers.
pub fn name_of(case_number: &str) -> String {
    format!("caseFiles/{case_number}")
}

impl case_file::Model {
    pub fn name(&self) -> String {
        name_of(&self.case_number)
    }

    /// The file as the rules of its keeping see it.
    pub fn kept(&self) -> custody::CaseFile {
        custody::CaseFile {
            name: self.name(),
            owner: self.owner.clone(),
            archive_time: self.archive_time,
            classification: self.level(),
            retention_rule: self.retention_rule.clone(),
            retain_until: self.retain_until,
            legal_hold: self.legal_hold,
            legal_hold_reason: self.legal_hold_reason.clone(),
            destroy_time: self.destroy_time,
        }
    }

    /// Its classification; a level not understood is read as the highest, so it is hidden rather than shown.
    pub fn level(&self) -> Classification {
        Classification::from_level(self.classification).unwrap_or(Classification::TopSecret)
    }
}

pub async fn case_file(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<case_file::Model>, DbErr> {
    case_file::Entity::find().filter(F::CaseNumber.eq(case_number)).one(db).await
}

/// A closed case as it is sealed, before the table gives it a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCaseFile {
    pub case_number: String,
    pub category: String,
    pub waybill_number: String,
    pub branch: String,
    pub owner: String,
    pub contact_phone: String,
    pub customer: Option<String>,
    pub close_time: DateTime<Utc>,
    pub archive_time: DateTime<Utc>,
    pub classification: Classification,
    pub content: Vec<u8>,
    pub content_sha256: String,
    pub retention_rule: String,
    pub retain_until: DateTime<Utc>,
}

/// Files a sealed case, not held and not destroyed; a case filed before is left as it was sealed.
pub async fn file_case(tx: &impl ConnectionTrait, new: NewCaseFile) -> Result<(), DbErr> {
    case_file::Entity::insert(case_file::ActiveModel {
        case_number: Set(new.case_number),
        category: Set(new.category),
        waybill_number: Set(new.waybill_number),
        branch: Set(new.branch),
        owner: Set(new.owner),
        contact_phone: Set(new.contact_phone),
        customer: Set(new.customer),
        close_time: Set(new.close_time),
        archive_time: Set(new.archive_time),
        classification: Set(new.classification.level()),
        content: Set(Some(new.content)),
        content_sha256: Set(new.content_sha256),
        retention_rule: Set(new.retention_rule),
        retain_until: Set(new.retain_until),
        legal_hold: Set(false),
        legal_hold_reason: Set(String::new()),
        destroy_time: Set(None),
        ..Default::default()
    })
    .on_conflict(OnConflict::column(F::CaseNumber).do_nothing().to_owned())
    .do_nothing()
    .exec_without_returning(tx)
    .await?;
    Ok(())
}

/// What a search asks for; every term is optional.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub waybill_number: Option<String>,
    pub customer: Option<String>,
    pub category: Option<String>,
    pub branch: Option<String>,
    pub close_start: Option<DateTime<Utc>>,
    pub close_end: Option<DateTime<Utc>>,
    /// The caller's clearance: files above it are left out.
    pub max_level: i32,
}

fn search_query(search: &Search) -> Select<case_file::Entity> {
    let mut query = case_file::Entity::find().filter(F::Classification.lte(search.max_level));
    if let Some(waybill) = &search.waybill_number {
        query = query.filter(F::WaybillNumber.eq(waybill.as_str()));
    }
    if let Some(customer) = &search.customer {
        query = query.filter(F::Customer.eq(customer.as_str()));
    }
    if let Some(category) = &search.category {
        query = query.filter(F::Category.eq(category.as_str()));
    }
    if let Some(branch) = &search.branch {
        query = query.filter(F::Branch.eq(branch.as_str()));
    }
    if let Some(start) = search.close_start {
        query = query.filter(F::CloseTime.gte(start));
    }
    if let Some(end) = search.close_end {
        query = query.filter(F::CloseTime.lt(end));
    }
    query
}

/// One page of matching files, newest first, the position to continue from, and how many match.
pub async fn search(
    db: &impl ConnectionTrait,
    search: &Search,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<case_file::Model>, Option<i64>, u64), DbErr> {
    let total = search_query(search).count(db).await?;
    let mut query = search_query(search).order_by_desc(F::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(F::Seq.lt(after));
    }
    let rows = query.all(db).await?;
    let (rows, next) = kefu_kit::paging::take_page(rows, page_size, |row| row.seq);
    Ok((rows, next, total))
}

/// The files of a customer that a caller cleared to `max_level` may see, destroyed ones included.
pub async fn files_of_customer(
    db: &impl ConnectionTrait,
    customer_id: &str,
    max_level: i32,
) -> Result<Vec<case_file::Model>, DbErr> {
    case_file::Entity::find().filter(F::Customer.eq(customer_id)).filter(F::Classification.lte(max_level)).all(db).await
}

/// Files whose retention ended by `now`, not held and not destroyed, that a caller of `max_level`
/// may see, those kept longest past their period first.
pub async fn files_due_for_destruction(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    max_level: i32,
    limit: u64,
) -> Result<Vec<case_file::Model>, DbErr> {
    case_file::Entity::find()
        .filter(F::RetainUntil.lte(now))
        .filter(F::LegalHold.eq(false))
        .filter(F::DestroyTime.is_null())
        .filter(F::Classification.lte(max_level))
        .order_by_asc(F::RetainUntil)
        .limit(limit)
        .all(db)
        .await
}

/// The names (`caseFiles/{n}`) of the case files classified above `max_level`: every list that
/// names files leaves these out for a caller cleared to `max_level`.
pub async fn names_above(db: &impl ConnectionTrait, max_level: i32) -> Result<Vec<String>, DbErr> {
    let numbers: Vec<String> = case_file::Entity::find()
        .select_only()
        .column(F::CaseNumber)
        .filter(F::Classification.gt(max_level))
        .into_tuple()
        .all(db)
        .await?;
    Ok(numbers.into_iter().map(|number| name_of(&number)).collect())
}

/// An update of the one file `case_number`.
fn update_file(case_number: &str) -> UpdateMany<case_file::Entity> {
    case_file::Entity::update_many().filter(F::CaseNumber.eq(case_number))
}

/// Classifies a file at `level` (第22条).
pub async fn classify(tx: &impl ConnectionTrait, case_number: &str, level: Classification) -> Result<(), DbErr> {
    update_file(case_number).col_expr(F::Classification, Expr::value(level.level())).exec(tx).await?;
    Ok(())
}

/// Places a legal hold for `reason`, or lifts it (`hold` false, the reason emptied).
pub async fn set_legal_hold(
    tx: &impl ConnectionTrait,
    case_number: &str,
    hold: bool,
    reason: &str,
) -> Result<(), DbErr> {
    update_file(case_number)
        .col_expr(F::LegalHold, Expr::value(hold))
        .col_expr(F::LegalHoldReason, Expr::value(reason.to_owned()))
        .exec(tx)
        .await?;
    Ok(())
}

/// Empties a file's content at `now`, keeping its hash, if it is neither held nor destroyed
/// already; whether it was.
pub async fn empty_destroyed_file(
    tx: &impl ConnectionTrait,
    case_number: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let emptied = update_file(case_number)
        .col_expr(F::Content, Expr::value(Option::<Vec<u8>>::None))
        .col_expr(F::DestroyTime, Expr::value(Some(now)))
        .filter(F::LegalHold.eq(false))
        .filter(F::DestroyTime.is_null())
        .exec(tx)
        .await?;
    Ok(emptied.rows_affected == 1)
}

/// Files the earlier cases that bear any of `phones` under the customer; how many.
pub async fn file_under_customer(
    tx: &impl ConnectionTrait,
    customer_id: &str,
    phones: &[String],
) -> Result<u64, DbErr> {
    let linked = case_file::Entity::update_many()
        .col_expr(F::Customer, Expr::value(Some(customer_id.to_owned())))
        .filter(F::ContactPhone.is_in(phones.iter().cloned()))
        .exec(tx)
        .await?;
    Ok(linked.rows_affected)
}
