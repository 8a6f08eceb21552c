//! The customer files (客户档案) and their phones, each phone belonging to one file, and every
//! query that reads or changes them.

use chrono::{DateTime, Utc};
use kefu_kit::error::is_unique_violation;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, sea_query::Expr};

use crate::policy::{Classification, Score};

pub mod customer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_customers")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub customer_id: String,
        #[sea_orm(unique)]
        pub request_id: Option<String>,
        pub contact_name: String,
        /// JSON array of phone numbers.
        pub phones: String,
        pub company: String,
        pub customer_type: String,
        pub classification: i32,
        pub grade: String,
        pub total: i32,
        pub profit_contribution: i32,
        pub order_amount: i32,
        pub cooperation_years: i32,
        pub credit: i32,
        pub prospects: i32,
        pub scored_by: String,
        pub score_time: Option<DateTimeUtc>,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod customer_phone {
    use sea_orm::entity::prelude::*;

    /// Each phone belongs to one customer file.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_customer_phones")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub phone: String,
        pub customer_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use customer::Column as C;

impl customer::Model {
    /// The phones as filed; none if they no longer parse.
    pub fn phone_list(&self) -> Vec<String> {
        serde_json::from_str(&self.phones).unwrap_or_default()
    }

    /// Its classification; a level not understood is read as the highest, so it is hidden rather than shown.
    pub fn level(&self) -> Classification {
        Classification::from_level(self.classification).unwrap_or(Classification::TopSecret)
    }
}

pub async fn customer(db: &impl ConnectionTrait, customer_id: &str) -> Result<Option<customer::Model>, DbErr> {
    customer::Entity::find().filter(C::CustomerId.eq(customer_id)).one(db).await
}

/// The customer a phone belongs to.
pub async fn customer_by_phone(db: &impl ConnectionTrait, phone: &str) -> Result<Option<customer::Model>, DbErr> {
    let Some(owner) = customer_phone::Entity::find_by_id(phone.to_owned()).one(db).await? else {
        return Ok(None);
    };
    customer(db, &owner.customer_id).await
}

/// The phones filed under a customer.
pub async fn phones_of(db: &impl ConnectionTrait, customer_id: &str) -> Result<Vec<String>, DbErr> {
    let phones = customer_phone::Entity::find()
        .filter(customer_phone::Column::CustomerId.eq(customer_id))
        .all(db)
        .await?
        .into_iter()
        .map(|phone| phone.phone)
        .collect();
    Ok(phones)
}

/// A customer file as it is opened, not yet scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomerFile {
    pub customer_id: String,
    pub request_id: Option<String>,
    pub contact_name: String,
    pub phones: Vec<String>,
    pub company: String,
    pub customer_type: String,
    pub classification: Classification,
    pub create_time: DateTime<Utc>,
}

/// What opening a customer file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Opened,
    /// Another request opened a file for the same customer at the same moment.
    CustomerTaken,
    /// Another request filed one of the phones at the same moment.
    PhoneTaken,
}

/// Opens a customer file with its phones.
pub async fn open_customer_file(tx: &impl ConnectionTrait, new: NewCustomerFile) -> Result<Opened, DbErr> {
    let row = customer::ActiveModel {
        customer_id: Set(new.customer_id.clone()),
        request_id: Set(new.request_id),
        contact_name: Set(new.contact_name),
        phones: Set(serde_json::to_string(&new.phones).unwrap_or_else(|_| "[]".into())),
        company: Set(new.company),
        customer_type: Set(new.customer_type),
        classification: Set(new.classification.level()),
        grade: Set(String::new()),
        total: Set(0),
        profit_contribution: Set(0),
        order_amount: Set(0),
        cooperation_years: Set(0),
        credit: Set(0),
        prospects: Set(0),
        scored_by: Set(String::new()),
        score_time: Set(None),
        create_time: Set(new.create_time),
        ..Default::default()
    };
    match customer::Entity::insert(row).exec_without_returning(tx).await {
        Ok(_) => {}
        Err(error) if is_unique_violation(&error) => return Ok(Opened::CustomerTaken),
        Err(error) => return Err(error),
    }
    let phone_rows = new.phones.iter().map(|phone| customer_phone::ActiveModel {
        phone: Set(phone.clone()),
        customer_id: Set(new.customer_id.clone()),
    });
    match kefu_kit::statements::insert_many(tx, phone_rows).await {
        Ok(_) => Ok(Opened::Opened),
        Err(error) if is_unique_violation(&error) => Ok(Opened::PhoneTaken),
        Err(error) => Err(error),
    }
}

/// Records a customer's score on the scoring sheet and the grade it gives.
pub async fn record_score(
    tx: &impl ConnectionTrait,
    seq: i64,
    score: &Score,
    scored_by: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    customer::Entity::update_many()
        .col_expr(C::Grade, Expr::value(score.grade()))
        .col_expr(C::Total, Expr::value(score.total()))
        .col_expr(C::ProfitContribution, Expr::value(score.profit_contribution))
        .col_expr(C::OrderAmount, Expr::value(score.order_amount))
        .col_expr(C::CooperationYears, Expr::value(score.cooperation_years))
        .col_expr(C::Credit, Expr::value(score.credit))
        .col_expr(C::Prospects, Expr::value(score.prospects))
        .col_expr(C::ScoredBy, Expr::value(scored_by.to_owned()))
        .col_expr(C::ScoreTime, Expr::value(Some(now)))
        .filter(C::Seq.eq(seq))
        .exec(tx)
        .await?;
    Ok(())
}
