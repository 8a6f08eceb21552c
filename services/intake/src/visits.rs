//! Follow-up visits (回访, `003 客户回访管理制度`): the plan — whom, how, when, why — and the
//! record: service and product satisfaction on the five-point scale 好/较好/一般/差/很差, the
//! customer's opinions and the counter-measures, valid once a supervisor signs. A resolved
//! complaint has a visit planned by phone for the next day; a customer not satisfied with the
//! service reopens the complaint (the case goes on until they are, `001 §8 4.5`).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    entity::prelude::*,
    sea_query::{ColumnDef, Index, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "intake_visits")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub case_number: String,
    /// The idempotency key of the plan, unique.
    #[sea_orm(unique)]
    pub request_id: Option<String>,
    /// phone, email, in_person, instant_message.
    pub method: String,
    pub visitor: String,
    pub plan_time: DateTimeUtc,
    pub purpose: String,
    /// planned, recorded, signed.
    pub state: String,
    /// very_good, good, fair, poor, very_poor; empty until recorded.
    pub service_satisfaction: String,
    pub product_satisfaction: String,
    pub opinions: String,
    pub counter_measures: String,
    pub visit_time: Option<DateTimeUtc>,
    pub recorded_by: String,
    pub signed_by: String,
    pub sign_time: Option<DateTimeUtc>,
    pub reopened: bool,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "intake_0008_visits",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Column::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(Column::RequestId).string_len(160).null().unique_key())
                    .col(ColumnDef::new(Column::Method).string_len(16).not_null())
                    .col(ColumnDef::new(Column::Visitor).string_len(128).not_null())
                    .col(ColumnDef::new(Column::PlanTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::Purpose).text().not_null())
                    .col(ColumnDef::new(Column::State).string_len(16).not_null())
                    .col(ColumnDef::new(Column::ServiceSatisfaction).string_len(16).not_null())
                    .col(ColumnDef::new(Column::ProductSatisfaction).string_len(16).not_null())
                    .col(ColumnDef::new(Column::Opinions).text().not_null())
                    .col(ColumnDef::new(Column::CounterMeasures).text().not_null())
                    .col(ColumnDef::new(Column::VisitTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Column::RecordedBy).string_len(128).not_null())
                    .col(ColumnDef::new(Column::SignedBy).string_len(128).not_null())
                    .col(ColumnDef::new(Column::SignTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Column::Reopened).boolean().not_null())
                    .col(ColumnDef::new(Column::CreateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_visits_case")
                    .table(Entity)
                    .col(Column::CaseNumber)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_visits_time")
                    .table(Entity)
                    .col(Column::VisitTime)
                    .to_owned(),
            ),
        ]
    },
};

pub const PLANNED: &str = "planned";
pub const RECORDED: &str = "recorded";
pub const SIGNED: &str = "signed";

/// A face-to-face visit is announced this long ahead (`003 第4条`).
pub const IN_PERSON_NOTICE: Duration = Duration::days(3);

/// The five-point scale, best first.
pub const SATISFACTION: [&str; 5] = ["very_good", "good", "fair", "poor", "very_poor"];

/// Whether a customer who answered `satisfaction` is not satisfied: the complaint goes on.
pub fn unsatisfied(satisfaction: &str) -> bool {
    matches!(satisfaction, "poor" | "very_poor")
}

/// A visit to plan with a change of its case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    pub request_id: Option<String>,
    pub method: String,
    pub visitor: String,
    pub plan_time: DateTime<Utc>,
    pub purpose: String,
}

/// The visit a resolved complaint schedules: by phone, the next day, about how it was handled.
pub fn after_resolution(resolve_time: DateTime<Utc>) -> NewVisit {
    NewVisit {
        request_id: None,
        method: "phone".into(),
        visitor: String::new(),
        plan_time: resolve_time + Duration::days(1),
        purpose: "satisfaction with how the complaint was handled (003 客户回访管理制度)".into(),
    }
}

pub async fn insert(
    db: &impl ConnectionTrait,
    case_number: &str,
    visits: &[NewVisit],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if visits.is_empty() {
        return Ok(());
    }
    let rows = visits.iter().map(|visit| ActiveModel {
        seq: NotSet,
        case_number: Set(case_number.to_owned()),
        request_id: Set(visit.request_id.clone()),
        method: Set(visit.method.clone()),
        visitor: Set(visit.visitor.clone()),
        plan_time: Set(visit.plan_time),
        purpose: Set(visit.purpose.clone()),
        state: Set(PLANNED.into()),
        service_satisfaction: Set(String::new()),
        product_satisfaction: Set(String::new()),
        opinions: Set(String::new()),
        counter_measures: Set(String::new()),
        visit_time: Set(None),
        recorded_by: Set(String::new()),
        signed_by: Set(String::new()),
        sign_time: Set(None),
        reopened: Set(false),
        create_time: Set(now),
    });
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, case_number: &str, seq: i64) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::Seq.eq(seq)).filter(Column::CaseNumber.eq(case_number)).one(db).await
}

pub async fn by_request_id(db: &impl ConnectionTrait, request_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::RequestId.eq(request_id)).one(db).await
}

/// Writes `visit` over its row as it was in state `was`; false if it changed meanwhile.
pub async fn update(db: &impl ConnectionTrait, visit: &Model, was: &str) -> Result<bool, DbErr> {
    let mut active: ActiveModel = visit.clone().into();
    active = sea_orm::ActiveModelTrait::reset_all(active);
    active.seq = NotSet;
    let result = Entity::update_many()
        .set(active)
        .filter(Column::Seq.eq(visit.seq))
        .filter(Column::State.eq(was))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// One page, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    case_number: Option<&str>,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<Model>, Option<i64>), DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Seq).limit(page_size + 1);
    if let Some(case_number) = case_number {
        query = query.filter(Column::CaseNumber.eq(case_number));
    }
    if let Some(after) = after {
        query = query.filter(Column::Seq.gt(after));
    }
    let rows = query.all(db).await?;
    Ok(kefu_kit::paging::take_page(rows, page_size, |row| row.seq))
}

/// The visits planned for, or made in, `[start, end)`.
pub async fn in_period(
    db: &impl ConnectionTrait,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Model>, DbErr> {
    use sea_orm::Condition;
    Entity::find()
        .filter(
            Condition::any()
                .add(Column::VisitTime.gte(start).and(Column::VisitTime.lt(end)))
                .add(Column::PlanTime.gte(start).and(Column::PlanTime.lt(end))),
        )
        .all(db)
        .await
}
