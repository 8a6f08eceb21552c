//! The `complaints` table: one row per complaint, the case number and request id unique.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    entity::prelude::*,
    sea_query::{ColumnDef, Expr, Index, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

use crate::domain::{FilterField, State};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "complaints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub case_number: String,
    /// The caller's idempotency key; `None` when the caller gave none.
    #[sea_orm(unique)]
    pub request_id: Option<String>,
    pub category: String,
    pub waybill_number: String,
    pub channel: String,
    pub description: String,
    pub customer_request: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub branch: String,
    pub owner: String,
    pub responsible_unit: String,
    pub owner_reference: Option<String>,
    pub state: String,
    pub create_time: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub accept_time: Option<DateTimeUtc>,
    pub received_by: String,
    pub received_by_department: String,
    /// The owner's outcome, once it has resolved the case (`case_resolved`).
    pub resolution: Option<String>,
    pub resolve_time: Option<DateTimeUtc>,
    /// The earlier complaint of the same customer about the same waybill and category (二次投诉).
    pub first_complaint: Option<String>,
    /// An incident, escalated by its owner (`case_escalated`).
    pub incident: bool,
    /// Whom the incident was escalated to, comma-separated.
    pub escalated_to: String,
    /// The owner's `case_resolved` event, encoded: its steps and payments go into the case file.
    pub owner_story: Option<Vec<u8>>,
    pub close_time: Option<DateTimeUtc>,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
    /// The idempotency key of the request that closed the complaint.
    pub close_request_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "intake_0001_complaints",
    statements: || {
        let index = |name: &str, column: Column| {
            SchemaStatement::Index(Index::create().if_not_exists().name(name).table(Entity).col(column).to_owned())
        };
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Column::CaseNumber).string_len(32).not_null().unique_key())
                    .col(ColumnDef::new(Column::RequestId).string_len(128).null().unique_key())
                    .col(ColumnDef::new(Column::Category).string_len(64).not_null())
                    .col(ColumnDef::new(Column::WaybillNumber).string_len(64).not_null())
                    .col(ColumnDef::new(Column::Channel).string_len(16).not_null())
                    .col(ColumnDef::new(Column::Description).text().not_null())
                    .col(ColumnDef::new(Column::CustomerRequest).text().not_null())
                    .col(ColumnDef::new(Column::ContactName).string_len(128).not_null())
                    .col(ColumnDef::new(Column::ContactPhone).string_len(64).not_null())
                    .col(ColumnDef::new(Column::Branch).string_len(64).not_null())
                    .col(ColumnDef::new(Column::Owner).string_len(32).not_null())
                    .col(ColumnDef::new(Column::ResponsibleUnit).string_len(64).not_null())
                    .col(ColumnDef::new(Column::OwnerReference).string_len(128).null())
                    .col(ColumnDef::new(Column::State).string_len(16).not_null())
                    .col(ColumnDef::new(Column::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::Deadline).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::AcceptTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Column::ReceivedBy).string_len(128).not_null())
                    .col(ColumnDef::new(Column::ReceivedByDepartment).string_len(128).not_null())
                    .to_owned(),
            ),
            index("complaints_waybill", Column::WaybillNumber),
            index("complaints_branch", Column::Branch),
            index("complaints_category", Column::Category),
        ]
    },
};

/// The owners' outcomes: what the customer is told once the owner has handled the case.
pub static MIGRATION_RESOLUTION: Migration = Migration {
    name: "intake_0002_resolution",
    statements: || {
        vec![
            SchemaStatement::Alter(
                Table::alter().table(Entity).add_column(ColumnDef::new(Column::Resolution).text().null()).to_owned(),
            ),
            SchemaStatement::Alter(
                Table::alter()
                    .table(Entity)
                    .add_column(ColumnDef::new(Column::ResolveTime).timestamp_with_time_zone().null())
                    .to_owned(),
            ),
        ]
    },
};

/// Second complaints and incidents (`001 §8 4.10`).
pub static MIGRATION_INCIDENT: Migration = Migration {
    name: "intake_0003_incident",
    statements: || {
        let add = |column: &mut ColumnDef| {
            SchemaStatement::Alter(Table::alter().table(Entity).add_column(column.to_owned()).to_owned())
        };
        vec![
            add(ColumnDef::new(Column::FirstComplaint).string_len(48).null()),
            add(ColumnDef::new(Column::Incident).boolean().not_null().default(false)),
            add(ColumnDef::new(Column::EscalatedTo).string_len(256).not_null().default("")),
        ]
    },
};

/// Closing (`CloseComplaint`): the owner's story kept from its resolution, who closed and why.
pub static MIGRATION_CLOSE: Migration = Migration {
    name: "intake_0004_close",
    statements: || {
        let add = |column: &mut ColumnDef| {
            SchemaStatement::Alter(Table::alter().table(Entity).add_column(column.to_owned()).to_owned())
        };
        vec![
            add(ColumnDef::new(Column::OwnerStory).binary().null()),
            add(ColumnDef::new(Column::CloseTime).timestamp_with_time_zone().null()),
            add(ColumnDef::new(Column::ClosedBy).string_len(128).null()),
            add(ColumnDef::new(Column::CloseNote).text().null()),
            add(ColumnDef::new(Column::CloseRequestId).string_len(128).null()),
        ]
    },
};

/// The first complaint of the customer with `contact_phone` about `waybill_number` in `category`.
pub async fn first_of_same_event(
    db: &impl ConnectionTrait,
    waybill_number: &str,
    category: &str,
    contact_phone: &str,
) -> Result<Option<Model>, DbErr> {
    // The few complaints about one waybill, found by its index; no ORDER BY … LIMIT in SQL, which
    // tempts the planner into walking the whole table in `seq` order when nothing matches.
    let earlier = Entity::find()
        .filter(Column::WaybillNumber.eq(waybill_number))
        .filter(Column::Category.eq(category))
        .filter(Column::ContactPhone.eq(contact_phone))
        .all(db)
        .await?;
    Ok(earlier.into_iter().min_by_key(|complaint| complaint.seq))
}

pub async fn by_case_number(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::CaseNumber.eq(case_number)).one(db).await
}

pub async fn by_request_id(db: &impl ConnectionTrait, request_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::RequestId.eq(request_id)).one(db).await
}

/// One page, newest first, matching every term, after the position `after` if given; also the
/// position to continue from if there may be more.
pub async fn list(
    db: &impl ConnectionTrait,
    terms: &[(FilterField, String)],
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<Model>, Option<i64>), DbErr> {
    let mut query = Entity::find().order_by_desc(Column::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(Column::Seq.lt(after));
    }
    for (field, value) in terms {
        let column = match field {
            FilterField::Category => Column::Category,
            FilterField::Owner => Column::Owner,
            FilterField::Branch => Column::Branch,
            FilterField::State => Column::State,
            FilterField::WaybillNumber => Column::WaybillNumber,
            FilterField::Channel => Column::Channel,
        };
        query = query.filter(column.eq(value.as_str()));
    }
    let rows = query.all(db).await?;
    Ok(kefu_kit::paging::take_page(rows, page_size, |row| row.seq))
}

/// Records that `owner` accepted the complaint as `owner_reference`; false if there is no such
/// complaint routed to that owner.
pub async fn mark_accepted(
    db: &impl ConnectionTrait,
    case_number: &str,
    owner: &str,
    owner_reference: &str,
    accept_time: DateTime<Utc>,
) -> Result<bool, DbErr> {
    // A resolution (or closing) may come before the acceptance it follows: it is not undone.
    let state = Expr::case(Column::State.eq(State::Resolved.as_str()), State::Resolved.as_str())
        .case(Column::State.eq(State::Closed.as_str()), State::Closed.as_str())
        .finally(State::Accepted.as_str());
    let result = Entity::update_many()
        .col_expr(Column::OwnerReference, Expr::value(owner_reference))
        .col_expr(Column::State, state.into())
        .col_expr(Column::AcceptTime, Expr::value(accept_time))
        .filter(Column::CaseNumber.eq(case_number))
        .filter(Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records the owner's outcome and its story (the encoded `case_resolved`); false if there is no
/// such complaint owned by `owner`. Resolving again (a retried or repeated event) replaces the
/// outcome; a closed complaint stays closed.
pub async fn mark_resolved(
    db: &impl ConnectionTrait,
    case_number: &str,
    owner: &str,
    resolution: &str,
    resolve_time: DateTime<Utc>,
    owner_story: Vec<u8>,
) -> Result<bool, DbErr> {
    let state =
        Expr::case(Column::State.eq(State::Closed.as_str()), State::Closed.as_str()).finally(State::Resolved.as_str());
    let result = Entity::update_many()
        .col_expr(Column::State, state.into())
        .col_expr(Column::Resolution, Expr::value(resolution))
        .col_expr(Column::ResolveTime, Expr::value(resolve_time))
        .col_expr(Column::OwnerStory, Expr::value(owner_story))
        .filter(Column::CaseNumber.eq(case_number))
        .filter(Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records that the owner escalated the complaint as an incident; false if there is no such
/// complaint owned by `owner`. The earlier complaint intake found is kept if the owner names none.
pub async fn mark_escalated(
    db: &impl ConnectionTrait,
    case_number: &str,
    owner: &str,
    first_complaint: &str,
    escalated_to: &[String],
) -> Result<bool, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::Incident, Expr::value(true))
        .col_expr(Column::EscalatedTo, Expr::value(escalated_to.join(",")));
    if !first_complaint.is_empty() {
        update = update.col_expr(Column::FirstComplaint, Expr::value(first_complaint));
    }
    let result = update.filter(Column::CaseNumber.eq(case_number)).filter(Column::Owner.eq(owner)).exec(db).await?;
    Ok(result.rows_affected == 1)
}

/// Moves the complaint's deadline as its owner says; false if there is no such complaint owned by `owner`.
pub async fn set_deadline(
    db: &impl ConnectionTrait,
    case_number: &str,
    owner: &str,
    deadline: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::Deadline, Expr::value(deadline))
        .filter(Column::CaseNumber.eq(case_number))
        .filter(Column::Owner.eq(owner))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Closes a resolved complaint; false if it is not (or no longer) resolved.
pub async fn mark_closed(
    db: &impl ConnectionTrait,
    case_number: &str,
    closed_by: &str,
    note: &str,
    request_id: Option<&str>,
    close_time: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::State, Expr::value(State::Closed.as_str()))
        .col_expr(Column::CloseTime, Expr::value(close_time))
        .col_expr(Column::ClosedBy, Expr::value(closed_by))
        .col_expr(Column::CloseNote, Expr::value(note))
        .col_expr(Column::CloseRequestId, Expr::value(request_id.map(str::to_owned)))
        .filter(Column::CaseNumber.eq(case_number))
        .filter(Column::State.eq(State::Resolved.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
