//! Customers' grades as archives scored them (`customer_graded`), by phone: a grade shortens the
//! deadlines of the customer's next cases (A first, `000 第3条`). Intake keeps its own copy so that
//! registering a complaint never waits on archives.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait,
    entity::prelude::*,
    sea_query::{ColumnDef, OnConflict, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_grades")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub phone: String,
    pub grade: String,
    pub score_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "intake_0007_customer_grades",
    statements: || {
        vec![SchemaStatement::Table(
            Table::create()
                .table(Entity)
                .if_not_exists()
                .col(ColumnDef::new(Column::Phone).string_len(64).not_null().primary_key())
                .col(ColumnDef::new(Column::Grade).string_len(4).not_null())
                .col(ColumnDef::new(Column::ScoreTime).timestamp_with_time_zone().not_null())
                .to_owned(),
        )]
    },
};

/// The grades of the customers with these phones that archives has graded, by phone.
pub async fn of_phones(db: &impl ConnectionTrait, phones: &[&str]) -> Result<HashMap<String, String>, DbErr> {
    let phones: Vec<&str> = phones.iter().copied().filter(|phone| !phone.is_empty()).collect();
    if phones.is_empty() {
        return Ok(HashMap::new());
    }
    let graded = kefu_kit::statements::find_in::<Entity, _>(db, Column::Phone, phones).await?;
    Ok(graded.into_iter().map(|row| (row.phone, row.grade)).collect())
}

/// Records `grade` for each phone, unless a later score is already recorded.
pub async fn record(
    db: &impl ConnectionTrait,
    phones: &[String],
    grade: &str,
    score_time: DateTime<Utc>,
) -> Result<(), DbErr> {
    for phone in phones {
        if let Some(existing) = Entity::find_by_id(phone.clone()).one(db).await?
            && existing.score_time > score_time
        {
            continue;
        }
        let row = ActiveModel { phone: Set(phone.clone()), grade: Set(grade.to_owned()), score_time: Set(score_time) };
        Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::Phone).update_columns([Column::Grade, Column::ScoreTime]).to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
