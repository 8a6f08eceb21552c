//! The webhook tables: `intake_webhooks` (a branch's endpoints), `intake_webhook_deliveries` (one
//! event for one endpoint, written with the change of the case it tells of) and
//! `intake_webhook_attempts` (every try of a delivery).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
    sea_query::{ColumnDef, Expr, Index, Order, Query, Table},
};

use kefu_kit::{
    migrate::{Migration, SchemaStatement},
    upkeep::Retention,
};

pub mod endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "intake_webhooks")]
    pub struct Model {
        /// A UUID; the resource is `webhooks/{id}`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub request_id: Option<String>,
        pub branch: String,
        pub url: String,
        /// The shared secret of the signature. Never returned, never logged.
        pub secret: String,
        /// The events sent, comma-separated; empty: all.
        pub events: String,
        pub active: bool,
        pub create_time: DateTimeUtc,
        pub created_by: String,
        pub disable_reason: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "intake_webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The id the receiver deduplicates by: the same on every attempt.
        pub delivery_id: String,
        pub webhook_id: String,
        pub event: String,
        pub case_number: String,
        /// The JSON sent, byte for byte the same on every attempt.
        pub body: String,
        /// pending, succeeded, failed.
        pub state: String,
        pub attempts: i32,
        pub next_attempt_time: DateTimeUtc,
        /// Retried until then; failed after.
        pub retry_until: DateTimeUtc,
        pub create_time: DateTimeUtc,
        pub deliver_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "intake_webhook_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub delivery_seq: i64,
        pub number: i32,
        pub attempt_time: DateTimeUtc,
        /// The HTTP status; 0 without an answer.
        pub status_code: i32,
        pub error: String,
        pub duration_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

pub static MIGRATION: Migration = Migration {
    name: "intake_0009_webhooks",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(endpoint::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(endpoint::Column::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(endpoint::Column::RequestId).string_len(128).null().unique_key())
                    .col(ColumnDef::new(endpoint::Column::Branch).string_len(64).not_null())
                    .col(ColumnDef::new(endpoint::Column::Url).text().not_null())
                    .col(ColumnDef::new(endpoint::Column::Secret).text().not_null())
                    .col(ColumnDef::new(endpoint::Column::Events).text().not_null())
                    .col(ColumnDef::new(endpoint::Column::Active).boolean().not_null())
                    .col(ColumnDef::new(endpoint::Column::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(endpoint::Column::CreatedBy).string_len(128).not_null())
                    .col(ColumnDef::new(endpoint::Column::DisableReason).text().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_webhooks_branch")
                    .table(endpoint::Entity)
                    .col(endpoint::Column::Branch)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(delivery::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(delivery::Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(delivery::Column::DeliveryId).string_len(36).not_null().unique_key())
                    .col(ColumnDef::new(delivery::Column::WebhookId).string_len(36).not_null())
                    .col(ColumnDef::new(delivery::Column::Event).string_len(16).not_null())
                    .col(ColumnDef::new(delivery::Column::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(delivery::Column::Body).text().not_null())
                    .col(ColumnDef::new(delivery::Column::State).string_len(16).not_null())
                    .col(ColumnDef::new(delivery::Column::Attempts).integer().not_null())
                    .col(ColumnDef::new(delivery::Column::NextAttemptTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(delivery::Column::RetryUntil).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(delivery::Column::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(delivery::Column::DeliverTime).timestamp_with_time_zone().null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_webhook_deliveries_due")
                    .table(delivery::Entity)
                    .col(delivery::Column::State)
                    .col(delivery::Column::NextAttemptTime)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_webhook_deliveries_webhook")
                    .table(delivery::Entity)
                    .col(delivery::Column::WebhookId)
                    .col(delivery::Column::Seq)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_webhook_deliveries_case")
                    .table(delivery::Entity)
                    .col(delivery::Column::CaseNumber)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(attempt::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(attempt::Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(attempt::Column::DeliverySeq).big_integer().not_null())
                    .col(ColumnDef::new(attempt::Column::Number).integer().not_null())
                    .col(ColumnDef::new(attempt::Column::AttemptTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(attempt::Column::StatusCode).integer().not_null())
                    .col(ColumnDef::new(attempt::Column::Error).text().not_null())
                    .col(ColumnDef::new(attempt::Column::DurationMs).big_integer().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_webhook_attempts_delivery")
                    .table(attempt::Entity)
                    .col(attempt::Column::DeliverySeq)
                    .to_owned(),
            ),
        ]
    },
};

/// How long a delivery that is done (succeeded, or failed for good) is kept, with its attempts:
/// `ListWebhookDeliveries` shows the last 30 days. A pending one is never pruned.
pub const KEEP_DONE: chrono::Duration = chrono::Duration::days(30);

/// The index pruning finds old deliveries by.
pub static MIGRATION_PRUNING: Migration = Migration {
    name: "intake_0011_webhook_delivery_create_time",
    statements: || {
        vec![SchemaStatement::Index(
            Index::create()
                .if_not_exists()
                .name("intake_webhook_deliveries_create_time")
                .table(delivery::Entity)
                .col(delivery::Column::CreateTime)
                .to_owned(),
        )]
    },
};

/// Deliveries that are done and older than [`KEEP_DONE`] go, their attempts first ([`kefu_kit::upkeep`]).
pub static RETENTION: Retention = Retention {
    what: "webhook deliveries",
    keep: KEEP_DONE,
    statements: |backend, cutoff, limit| {
        let old = Query::select()
            .column(delivery::Column::Seq)
            .from(delivery::Entity)
            .and_where(Expr::col(delivery::Column::CreateTime).lt(cutoff))
            .and_where(Expr::col(delivery::Column::State).ne(PENDING))
            // Ordered, so that both statements pick the same deliveries: no attempt outlives its
            // delivery.
            .order_by(delivery::Column::Seq, Order::Asc)
            .limit(limit)
            .to_owned();
        let attempts = Query::delete()
            .from_table(attempt::Entity)
            .and_where(Expr::col(attempt::Column::DeliverySeq).in_subquery(old.clone()))
            .to_owned();
        let deliveries = Query::delete()
            .from_table(delivery::Entity)
            .and_where(Expr::col(delivery::Column::Seq).in_subquery(old))
            .to_owned();
        vec![backend.build(&attempts), backend.build(&deliveries)]
    },
};

/// The active endpoints of `branches`.
pub async fn active_for(db: &impl ConnectionTrait, branches: &[&str]) -> Result<Vec<endpoint::Model>, DbErr> {
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let values = branches.iter().map(|branch| Value::from(*branch)).chain([Value::from(true)]).collect();
    kefu_kit::statements::find(db, "active webhook endpoints of branches", values, || {
        endpoint::Entity::find()
            .filter(endpoint::Column::Branch.is_in(branches.iter().copied()))
            .filter(endpoint::Column::Active.eq(true))
    })
    .await
}

pub async fn endpoint_by_id(db: &impl ConnectionTrait, id: &str) -> Result<Option<endpoint::Model>, DbErr> {
    endpoint::Entity::find_by_id(id).one(db).await
}

pub async fn endpoint_by_request_id(
    db: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<endpoint::Model>, DbErr> {
    endpoint::Entity::find().filter(endpoint::Column::RequestId.eq(request_id)).one(db).await
}

pub async fn endpoints(db: &impl ConnectionTrait, branch: Option<&str>) -> Result<Vec<endpoint::Model>, DbErr> {
    let mut query = endpoint::Entity::find().order_by_asc(endpoint::Column::CreateTime);
    if let Some(branch) = branch {
        query = query.filter(endpoint::Column::Branch.eq(branch));
    }
    query.all(db).await
}

pub async fn insert_endpoint(db: &impl ConnectionTrait, endpoint: endpoint::Model) -> Result<(), DbErr> {
    let row: endpoint::ActiveModel = endpoint.into();
    endpoint::Entity::insert(row).exec_without_returning(db).await.map(drop)
}

pub async fn disable_endpoint(db: &impl ConnectionTrait, id: &str, reason: &str) -> Result<(), DbErr> {
    endpoint::Entity::update_many()
        .col_expr(endpoint::Column::Active, false.into())
        .col_expr(endpoint::Column::DisableReason, reason.into())
        .filter(endpoint::Column::Id.eq(id))
        .exec(db)
        .await?;
    delivery::Entity::update_many()
        .col_expr(delivery::Column::State, FAILED.into())
        .filter(delivery::Column::WebhookId.eq(id))
        .filter(delivery::Column::State.eq(PENDING))
        .exec(db)
        .await
        .map(drop)
}

pub async fn insert_deliveries(db: &impl ConnectionTrait, deliveries: Vec<delivery::Model>) -> Result<(), DbErr> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let rows = deliveries.into_iter().map(|delivery| {
        let mut row: delivery::ActiveModel = delivery.into();
        row.seq = NotSet;
        row
    });
    kefu_kit::statements::insert_many(db, rows).await.map(drop)
}

/// Pending deliveries due by `now`, the longest waiting first (by the state and time index), except
/// those of the endpoints `busy`.
pub async fn due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
    busy: &[String],
) -> Result<Vec<delivery::Model>, DbErr> {
    delivery::Entity::find()
        .filter(delivery::Column::State.eq(PENDING))
        .filter(delivery::Column::NextAttemptTime.lte(now))
        .filter(delivery::Column::WebhookId.is_not_in(busy.iter().cloned()))
        .order_by_asc(delivery::Column::NextAttemptTime)
        .order_by_asc(delivery::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

pub async fn delivery_by_id(db: &impl ConnectionTrait, delivery_id: &str) -> Result<Option<delivery::Model>, DbErr> {
    delivery::Entity::find().filter(delivery::Column::DeliveryId.eq(delivery_id)).one(db).await
}

/// One page of deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    webhook_id: Option<&str>,
    case_number: Option<&str>,
    page_size: u64,
    before: Option<i64>,
) -> Result<(Vec<delivery::Model>, Option<i64>), DbErr> {
    let mut query = delivery::Entity::find().order_by_desc(delivery::Column::Seq).limit(page_size + 1);
    if let Some(webhook_id) = webhook_id {
        query = query.filter(delivery::Column::WebhookId.eq(webhook_id));
    }
    if let Some(case_number) = case_number {
        query = query.filter(delivery::Column::CaseNumber.eq(case_number));
    }
    if let Some(before) = before {
        query = query.filter(delivery::Column::Seq.lt(before));
    }
    let rows = query.all(db).await?;
    Ok(kefu_kit::paging::take_page(rows, page_size, |row| row.seq))
}

/// The attempts of `deliveries`, oldest first.
pub async fn attempts_of(db: &impl ConnectionTrait, deliveries: &[i64]) -> Result<Vec<attempt::Model>, DbErr> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    attempt::Entity::find()
        .filter(attempt::Column::DeliverySeq.is_in(deliveries.iter().copied()))
        .order_by_asc(attempt::Column::Seq)
        .all(db)
        .await
}

/// Takes a due delivery for one attempt: another replica of intake reading it at the same moment
/// finds it no longer due. If the attempt is never recorded (the replica died), the delivery is
/// due again at `until`.
pub async fn claim(
    db: &impl ConnectionTrait,
    delivery: &delivery::Model,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let claimed = delivery::Entity::update_many()
        .col_expr(delivery::Column::NextAttemptTime, until.into())
        .filter(delivery::Column::Seq.eq(delivery.seq))
        .filter(delivery::Column::State.eq(PENDING))
        .filter(delivery::Column::NextAttemptTime.lte(now))
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Records an attempt of a pending delivery and what follows from it; false if the delivery was no
/// longer pending (its endpoint disabled meanwhile).
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    delivery: &delivery::Model,
    attempt: attempt::Model,
) -> Result<bool, DbErr> {
    let mut row: delivery::ActiveModel = delivery.clone().into();
    row = row.reset_all();
    row.seq = NotSet;
    let updated = delivery::Entity::update_many()
        .set(row)
        .filter(delivery::Column::Seq.eq(delivery.seq))
        .filter(delivery::Column::State.eq(PENDING))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(false);
    }
    let mut attempt: attempt::ActiveModel = attempt.into();
    attempt.seq = NotSet;
    attempt::Entity::insert(attempt).exec_without_returning(db).await?;
    Ok(true)
}

/// Holds every pending delivery of endpoint `webhook_id` until at least `until`: the endpoint failed.
pub async fn defer(db: &impl ConnectionTrait, webhook_id: &str, until: DateTime<Utc>) -> Result<(), DbErr> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::NextAttemptTime, until.into())
        .filter(delivery::Column::WebhookId.eq(webhook_id))
        .filter(delivery::Column::State.eq(PENDING))
        .filter(delivery::Column::NextAttemptTime.lt(until))
        .exec(db)
        .await
        .map(drop)
}

/// Makes a delivery due again now, for another day of retries.
pub async fn redeliver(
    db: &impl ConnectionTrait,
    delivery_seq: i64,
    now: DateTime<Utc>,
    retry_until: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = delivery::ActiveModel {
        state: Set(PENDING.into()),
        next_attempt_time: Set(now),
        retry_until: Set(retry_until),
        ..Default::default()
    };
    delivery::Entity::update_many().set(row).filter(delivery::Column::Seq.eq(delivery_seq)).exec(db).await.map(drop)
}
