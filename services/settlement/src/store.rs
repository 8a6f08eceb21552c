//! Settlement's own tables beside the ledger: waybills (the record as JSON, with a version for
//! optimistic writes and the remittance due time as a column, indexed, so late remittances are
//! found without reading every waybill), the money events received (for reconciliation), and the
//! outcomes of routed cases.

use chrono::{DateTime, Utc};
use kefu_kit::{
    migrate::{Migration, SchemaStatement},
    routed,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{ColumnDef, Expr, Index, OnConflict, Query, Table},
};

use crate::waybill::Waybill;

pub mod waybill_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "settlement_waybills")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub number: String,
        pub record: String,
        pub version: i32,
        /// Set while COD is owed to the shipper and not remitted.
        pub remit_due_time: Option<DateTimeUtc>,
        /// The late_remittance complaint filed, `complaints/{case_number}`.
        pub late_complaint: Option<String>,
        pub create_time: DateTimeUtc,
        /// Set while a change request waits for a supervisor: when the oldest was asked.
        pub change_pending_since: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod receipt {
    use sea_orm::entity::prelude::*;

    /// One ledger effect an event asked for: the event, the origin and the money it named.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "settlement_receipts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub event_id: String,
        pub origin: String,
        pub amount_fen: i64,
        pub receive_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod resolution {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "settlement_resolutions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub case_number: String,
        pub resolution: String,
        pub resolved_by: String,
        pub resolve_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Change requests waiting for a supervisor, found without reading every waybill. A waybill
/// whose request was asked before this migration joins the queue when it is next changed.
pub static MIGRATION_PENDING_CHANGES: Migration = Migration {
    name: "settlement_0004_waybills_pending_changes",
    statements: || {
        vec![
            SchemaStatement::Alter(
                Table::alter()
                    .table(waybill_row::Entity)
                    .add_column(
                        ColumnDef::new(waybill_row::Column::ChangePendingSince).timestamp_with_time_zone().null(),
                    )
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("settlement_waybills_change_pending")
                    .table(waybill_row::Entity)
                    .col(waybill_row::Column::ChangePendingSince)
                    .to_owned(),
            ),
        ]
    },
};

pub static MIGRATION: Migration = Migration {
    name: "settlement_0002_waybills",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(waybill_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(waybill_row::Column::Number).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(waybill_row::Column::Record).text().not_null())
                    .col(ColumnDef::new(waybill_row::Column::Version).integer().not_null())
                    .col(ColumnDef::new(waybill_row::Column::RemitDueTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(waybill_row::Column::LateComplaint).string_len(48).null())
                    .col(ColumnDef::new(waybill_row::Column::CreateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("settlement_waybills_remit_due")
                    .table(waybill_row::Entity)
                    .col(waybill_row::Column::RemitDueTime)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(receipt::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(receipt::Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(receipt::Column::EventId).string_len(64).not_null())
                    .col(ColumnDef::new(receipt::Column::Origin).string_len(160).not_null())
                    .col(ColumnDef::new(receipt::Column::AmountFen).big_integer().not_null())
                    .col(ColumnDef::new(receipt::Column::ReceiveTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(resolution::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(resolution::Column::CaseNumber).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(resolution::Column::Resolution).text().not_null())
                    .col(ColumnDef::new(resolution::Column::ResolvedBy).string_len(128).not_null())
                    .col(ColumnDef::new(resolution::Column::ResolveTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("settlement_routed_cases_waybill")
                    .table(routed::Entity)
                    .col(routed::Column::WaybillNumber)
                    .to_owned(),
            ),
        ]
    },
};

/// Whether an insert that does nothing on conflict inserted its row (the transaction stays usable).
fn inserted_once(result: Result<u64, DbErr>) -> Result<bool, DbErr> {
    match result {
        Ok(rows) => Ok(rows > 0),
        Err(DbErr::RecordNotInserted) => Ok(false),
        Err(error) => Err(error),
    }
}

fn decode(row: &waybill_row::Model) -> Result<Waybill, DbErr> {
    serde_json::from_str(&row.record)
        .map_err(|error| DbErr::Custom(format!("waybill {} has an unreadable record: {error}", row.number)))
}

fn encode(waybill: &Waybill) -> Result<String, DbErr> {
    serde_json::to_string(waybill).map_err(|error| DbErr::Custom(format!("encoding a waybill: {error}")))
}

/// The column that makes a waybill's late remittance findable: its due time while it is owed.
fn remit_due(waybill: &Waybill) -> Option<DateTime<Utc>> {
    if waybill.cod_owed() && waybill.cod.remit_time.is_none() { waybill.cod.remit_due_time } else { None }
}

/// The column that makes a waybill's waiting change requests findable: the oldest one's time.
fn change_pending(waybill: &Waybill) -> Option<DateTime<Utc>> {
    waybill
        .change_requests
        .iter()
        .filter(|request| request.state == crate::waybill::ChangeState::Pending)
        .map(|request| request.request_time)
        .min()
}

/// A waybill with its version and its late complaint, if any.
pub struct Stored {
    pub waybill: Waybill,
    pub version: i32,
    pub late_complaint: Option<String>,
}

impl Stored {
    fn of(row: waybill_row::Model) -> Result<Stored, DbErr> {
        Ok(Stored { waybill: decode(&row)?, version: row.version, late_complaint: row.late_complaint })
    }
}

pub async fn load(db: &impl ConnectionTrait, number: &str) -> Result<Option<Stored>, DbErr> {
    waybill_row::Entity::find_by_id(number.to_owned()).one(db).await?.map(Stored::of).transpose()
}

/// Inserts a new waybill; false if the number is taken.
pub async fn insert(db: &impl ConnectionTrait, waybill: &Waybill) -> Result<bool, DbErr> {
    let row = waybill_row::ActiveModel {
        number: Set(waybill.number.clone()),
        record: Set(encode(waybill)?),
        version: Set(1),
        remit_due_time: Set(remit_due(waybill)),
        late_complaint: Set(None),
        create_time: Set(waybill.create_time),
        change_pending_since: Set(change_pending(waybill)),
    };
    let inserted = waybill_row::Entity::insert(row)
        .on_conflict(OnConflict::column(waybill_row::Column::Number).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    inserted_once(inserted)
}

/// Writes `waybill` if it is still at `version`; false if another request changed it first.
pub async fn save(db: &impl ConnectionTrait, waybill: &Waybill, version: i32) -> Result<bool, DbErr> {
    let result = waybill_row::Entity::update_many()
        .col_expr(waybill_row::Column::Record, Expr::value(encode(waybill)?))
        .col_expr(waybill_row::Column::Version, Expr::value(version + 1))
        .col_expr(waybill_row::Column::RemitDueTime, Expr::value(remit_due(waybill)))
        .col_expr(waybill_row::Column::ChangePendingSince, Expr::value(change_pending(waybill)))
        .filter(waybill_row::Column::Number.eq(&waybill.number))
        .filter(waybill_row::Column::Version.eq(version))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Waybills with a change request waiting for a supervisor, the longest waiting first.
pub async fn pending_changes(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Stored>, DbErr> {
    waybill_row::Entity::find()
        .filter(waybill_row::Column::ChangePendingSince.is_not_null())
        .order_by_asc(waybill_row::Column::ChangePendingSince)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(Stored::of)
        .collect()
}

/// Waybills whose COD was due before `now` and is not remitted, oldest due first; with
/// `unreported`, only those without a late complaint yet.
pub async fn late(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    unreported: bool,
    limit: u64,
) -> Result<Vec<Stored>, DbErr> {
    let mut query = waybill_row::Entity::find()
        .filter(waybill_row::Column::RemitDueTime.lt(now))
        .order_by_asc(waybill_row::Column::RemitDueTime)
        .limit(limit);
    if unreported {
        query = query.filter(waybill_row::Column::LateComplaint.is_null());
    }
    query.all(db).await?.into_iter().map(Stored::of).collect()
}

/// Every waybill, for reconciliation and the month's summary.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<Waybill>, DbErr> {
    waybill_row::Entity::find().all(db).await?.iter().map(decode).collect()
}

pub async fn set_late_complaint(db: &impl ConnectionTrait, number: &str, complaint: &str) -> Result<(), DbErr> {
    waybill_row::Entity::update_many()
        .col_expr(waybill_row::Column::LateComplaint, Expr::value(complaint))
        .filter(waybill_row::Column::Number.eq(number))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn add_receipts(db: &impl ConnectionTrait, rows: Vec<receipt::ActiveModel>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

pub fn receipt_row(event_id: &str, origin: &str, amount_fen: i64, now: DateTime<Utc>) -> receipt::ActiveModel {
    receipt::ActiveModel {
        event_id: Set(event_id.to_owned()),
        origin: Set(origin.to_owned()),
        amount_fen: Set(amount_fen),
        receive_time: Set(now),
        ..Default::default()
    }
}

pub async fn receipts(db: &impl ConnectionTrait) -> Result<Vec<receipt::Model>, DbErr> {
    receipt::Entity::find().order_by_asc(receipt::Column::Seq).all(db).await
}

pub async fn resolution(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<resolution::Model>, DbErr> {
    resolution::Entity::find_by_id(case_number.to_owned()).one(db).await
}

/// The outcomes of those of `case_numbers` that are resolved, by case number.
pub async fn resolutions(
    db: &impl ConnectionTrait,
    case_numbers: Vec<String>,
) -> Result<std::collections::HashMap<String, resolution::Model>, DbErr> {
    let found = resolution::Entity::find().filter(resolution::Column::CaseNumber.is_in(case_numbers)).all(db).await?;
    Ok(found.into_iter().map(|outcome| (outcome.case_number.clone(), outcome)).collect())
}

/// Records the outcome of a case; false if it was resolved before.
pub async fn resolve(
    db: &impl ConnectionTrait,
    case_number: &str,
    text: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = resolution::ActiveModel {
        case_number: Set(case_number.to_owned()),
        resolution: Set(text.to_owned()),
        resolved_by: Set(by.to_owned()),
        resolve_time: Set(now),
    };
    let inserted = resolution::Entity::insert(row)
        .on_conflict(OnConflict::column(resolution::Column::CaseNumber).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    inserted_once(inserted)
}

/// The case numbers settlement holds about `waybill_number` that are not resolved yet.
pub async fn open_cases_of(db: &impl ConnectionTrait, waybill_number: &str) -> Result<Vec<String>, DbErr> {
    let resolved = Query::select().column(resolution::Column::CaseNumber).from(resolution::Entity).to_owned();
    routed::Entity::find()
        .select_only()
        .column(routed::Column::CaseNumber)
        .filter(routed::Column::WaybillNumber.eq(waybill_number))
        .filter(routed::Column::CaseNumber.not_in_subquery(resolved))
        .into_tuple()
        .all(db)
        .await
}
