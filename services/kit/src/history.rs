//! The history of a case (`case_steps`): every step an owning department takes — who, when, what —
//! in the order taken, with the idempotency key of the request that took it. A request's key is
//! unique per case, so a retried request finds that it was taken and changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    entity::prelude::*,
    sea_query::{ColumnDef, Index, Table},
};

use crate::{
    config::ServiceName,
    migrate::{Migration, SchemaStatement},
    time::to_timestamp,
};

/// One step, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: &'static str,
    pub actor: String,
    pub time: DateTime<Utc>,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "case_steps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub case_number: String,
    /// The idempotency key of the request that took this step (its first step only).
    pub request_id: Option<String>,
    pub action: String,
    pub actor: String,
    pub detail: String,
    pub time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "kit_0004_case_steps",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Column::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(Column::RequestId).string_len(128).null())
                    .col(ColumnDef::new(Column::Action).string_len(32).not_null())
                    .col(ColumnDef::new(Column::Actor).string_len(128).not_null())
                    .col(ColumnDef::new(Column::Detail).text().not_null())
                    .col(ColumnDef::new(Column::Time).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("case_steps_request")
                    .table(Entity)
                    .col(Column::CaseNumber)
                    .col(Column::RequestId)
                    .unique()
                    .to_owned(),
            ),
        ]
    },
};

/// Records `steps`; the first carries `request_id`. A unique-key error means a request with the
/// same key was taken first.
pub async fn record(
    db: &impl ConnectionTrait,
    case_number: &str,
    request_id: Option<&str>,
    steps: &[Step],
) -> Result<(), DbErr> {
    if steps.is_empty() {
        return Ok(());
    }
    let rows = steps.iter().enumerate().map(|(index, step)| ActiveModel {
        case_number: Set(case_number.to_owned()),
        request_id: Set(request_id.filter(|_| index == 0).map(str::to_owned)),
        action: Set(step.action.into()),
        actor: Set(step.actor.clone()),
        detail: Set(step.detail.clone()),
        time: Set(step.time),
        ..Default::default()
    });
    crate::statements::insert_many(db, rows).await?;
    Ok(())
}

/// Records the steps of many cases at once, none of them under a request id.
pub async fn record_many(db: &impl ConnectionTrait, steps: &[(&str, &Step)]) -> Result<(), DbErr> {
    if steps.is_empty() {
        return Ok(());
    }
    let rows = steps.iter().map(|(case_number, step)| ActiveModel {
        case_number: Set((*case_number).to_owned()),
        request_id: Set(None),
        action: Set(step.action.into()),
        actor: Set(step.actor.clone()),
        detail: Set(step.detail.clone()),
        time: Set(step.time),
        ..Default::default()
    });
    crate::statements::insert_many(db, rows).await?;
    Ok(())
}

/// Whether a request with this idempotency key already changed the case.
pub async fn has_request(db: &impl ConnectionTrait, case_number: &str, request_id: &str) -> Result<bool, DbErr> {
    let count = Entity::find()
        .filter(Column::CaseNumber.eq(case_number))
        .filter(Column::RequestId.eq(request_id))
        .count(db)
        .await?;
    Ok(count > 0)
}

/// The case's steps, oldest first, as the story `department` tells of the case (in `case_resolved`,
/// for the case file archives seals when the case closes).
pub async fn story(
    db: &impl ConnectionTrait,
    case_number: &str,
    department: ServiceName,
) -> Result<Vec<kefu_proto::types::v1::CaseStep>, DbErr> {
    Ok(list(db, case_number)
        .await?
        .into_iter()
        .map(|step| case_step(step.action, step.actor, step.time, step.detail, department))
        .collect())
}

impl Step {
    /// The step as it is told in a case's story, by `department`.
    pub fn to_proto(&self, department: ServiceName) -> kefu_proto::types::v1::CaseStep {
        case_step(self.action.into(), self.actor.clone(), self.time, self.detail.clone(), department)
    }
}

fn case_step(
    action: String,
    actor: String,
    time: DateTime<Utc>,
    detail: String,
    department: ServiceName,
) -> kefu_proto::types::v1::CaseStep {
    kefu_proto::types::v1::CaseStep {
        action,
        actor,
        time: Some(to_timestamp(time)),
        detail,
        department: department.as_str().into(),
    }
}

/// The case's steps, oldest first.
pub async fn list(db: &impl ConnectionTrait, case_number: &str) -> Result<Vec<Model>, DbErr> {
    Entity::find().filter(Column::CaseNumber.eq(case_number)).order_by_asc(Column::Seq).all(db).await
}
