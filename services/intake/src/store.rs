//! The `complaints` table: one row per complaint, the case number and request id unique.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
    entity::prelude::*,
    sea_query::{ColumnDef, Index, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

use crate::{
    deadline::Counting,
    domain::{Channel, FilterField, Kind, Severity, State},
};

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
    pub channel: Channel,
    pub description: String,
    pub customer_request: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub branch: String,
    pub owner: String,
    pub responsible_unit: String,
    pub owner_reference: Option<String>,
    pub state: State,
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
    pub kind: Kind,
    pub severity: Severity,
    /// A change request's changes, the encoded `kefu.intake.v1.ChangeRequest`.
    pub change_request: Option<Vec<u8>>,
    /// What the deadline is computed from (see `deadline`): when its time started, the rule in
    /// words, the time it allows, how it counts, and the time waited on the customer.
    pub deadline_start: DateTimeUtc,
    pub deadline_rule: String,
    pub deadline_allowed_secs: i64,
    pub deadline_counting: Counting,
    pub paused_secs: i64,
    /// Since when the case waits on the customer, and why; its deadline is paused.
    pub waiting_since: Option<DateTimeUtc>,
    pub waiting_reason: Option<String>,
    /// The customer's grade (A–D) when the case was registered; empty if unknown.
    pub customer_grade: String,
    /// The complaint this one duplicates (`complaints/{case_number}`).
    pub duplicate_of: Option<String>,
    /// Whether the owner was sent the case (`case_routed`); a duplicate found at registration is not.
    pub handed_off: bool,
    pub approve_time: Option<DateTimeUtc>,
    pub approved_by: Option<String>,
    pub written_answer: Option<String>,
    pub notify_time: Option<DateTimeUtc>,
    pub reopen_count: i32,
    /// The cause found (查明原因), for refused and mis-delivered cargo.
    pub cause: String,
    /// When the case is next to be chased: its deadline while it is open and not waiting, then a
    /// day later while it stays overdue; empty otherwise. Indexed: overdue cases are found by it.
    pub chase_at: Option<DateTimeUtc>,
    /// Bumped by every change: a change is written only over the version it read.
    pub version: i64,
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

/// The look-up every registration makes — the same customer about the same waybill and category
/// (now [`about_waybills`], by the index's first column, for a whole batch) — by one index on all
/// three columns. Before, the planner combined the waybill
/// index with the category index, which matches a fifth of all complaints, and the look-up cost more
/// than everything else a registration does in PostgreSQL together. The new index also serves every
/// look-up by waybill alone, so the waybill index goes.
pub static MIGRATION_SAME_EVENT: Migration = Migration {
    name: "intake_0010_same_event_index",
    statements: || {
        vec![
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("complaints_same_event")
                    .table(Entity)
                    .col(Column::WaybillNumber)
                    .col(Column::Category)
                    .col(Column::ContactPhone)
                    .to_owned(),
            ),
            SchemaStatement::DropIndex(Index::drop().if_exists().name("complaints_waybill").to_owned()),
        ]
    },
};

/// Room on every page of `complaints` for the new version of a row an event updates (PostgreSQL):
/// an update that finds room on the row's own page and changes no indexed column is "HOT" and
/// touches no index; one that does not writes an entry into each of the table's eight indexes.
/// With pages packed full by registration (the default fillfactor, 100) half the owners'
/// acceptances were not HOT, and they were the largest cost in PostgreSQL under load (0.27 ms each;
/// 0.09 with this). Pages written before keep their layout.
/// A customer's other cases by phone: the console's case page and its search ask for them.
pub static MIGRATION_PHONE_INDEX: Migration = Migration {
    name: "intake_0013_complaints_by_phone",
    statements: || {
        vec![SchemaStatement::Index(
            Index::create()
                .if_not_exists()
                .name("complaints_contact_phone")
                .table(Entity)
                .col(Column::ContactPhone)
                .to_owned(),
        )]
    },
};

pub static MIGRATION_FILLFACTOR: Migration = Migration {
    name: "intake_0012_complaints_fillfactor",
    statements: || vec![SchemaStatement::PostgresOnly("ALTER TABLE complaints SET (fillfactor = 80)")],
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

/// Kinds of request, severity, deadlines that keep time, approval, notification, reopening,
/// duplicates, and overdue chasing (issue 3).
pub static MIGRATION_DEPTH: Migration = Migration {
    name: "intake_0005_depth",
    statements: || {
        let add = |column: &mut ColumnDef| {
            SchemaStatement::Alter(Table::alter().table(Entity).add_column(column.to_owned()).to_owned())
        };
        vec![
            add(ColumnDef::new(Column::Kind).string_len(16).not_null().default("complaint")),
            add(ColumnDef::new(Column::Severity).string_len(16).not_null().default("general")),
            add(ColumnDef::new(Column::ChangeRequest).binary().null()),
            // Cases registered before deadlines were explained keep their deadline as the rule.
            add(ColumnDef::new(Column::DeadlineStart)
                .timestamp_with_time_zone()
                .not_null()
                .default("2000-01-01T00:00:00Z")),
            add(ColumnDef::new(Column::DeadlineRule).text().not_null().default("")),
            add(ColumnDef::new(Column::DeadlineAllowedSecs).big_integer().not_null().default(0)),
            add(ColumnDef::new(Column::DeadlineCounting).string_len(16).not_null().default("calendar")),
            add(ColumnDef::new(Column::PausedSecs).big_integer().not_null().default(0)),
            add(ColumnDef::new(Column::WaitingSince).timestamp_with_time_zone().null()),
            add(ColumnDef::new(Column::WaitingReason).text().null()),
            add(ColumnDef::new(Column::CustomerGrade).string_len(4).not_null().default("")),
            add(ColumnDef::new(Column::DuplicateOf).string_len(48).null()),
            add(ColumnDef::new(Column::HandedOff).boolean().not_null().default(true)),
            add(ColumnDef::new(Column::ApproveTime).timestamp_with_time_zone().null()),
            add(ColumnDef::new(Column::ApprovedBy).string_len(128).null()),
            add(ColumnDef::new(Column::WrittenAnswer).text().null()),
            add(ColumnDef::new(Column::NotifyTime).timestamp_with_time_zone().null()),
            add(ColumnDef::new(Column::ReopenCount).integer().not_null().default(0)),
            add(ColumnDef::new(Column::Cause).text().not_null().default("")),
            add(ColumnDef::new(Column::ChaseAt).timestamp_with_time_zone().null()),
            add(ColumnDef::new(Column::Version).big_integer().not_null().default(0)),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("complaints_chase_at")
                    .table(Entity)
                    .col(Column::ChaseAt)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("complaints_create_time")
                    .table(Entity)
                    .col(Column::CreateTime)
                    .to_owned(),
            ),
        ]
    },
};

/// The complaints about these waybills, oldest first: registration keeps those of the same
/// customer in the same category (001 §8 4.10).
pub async fn about_waybills(db: &impl ConnectionTrait, waybill_numbers: &[&str]) -> Result<Vec<Model>, DbErr> {
    about_batch(db, waybill_numbers, &[], &[]).await
}

/// The complaints a batch of registrations must know of, oldest first, in one statement: those
/// about its waybills (of which each keeps its customer's in the same category, 001 §8 4.10), and
/// those that already have one of its case numbers or request ids.
pub async fn about_batch(
    db: &impl ConnectionTrait,
    waybill_numbers: &[&str],
    case_numbers: &[&str],
    request_ids: &[&str],
) -> Result<Vec<Model>, DbErr> {
    // A scan of the `complaints_same_event` index by its first column and one of each key's unique
    // index, OR-ed; no ORDER BY … LIMIT in SQL, which tempts the planner into walking the whole
    // table in `seq` order when nothing matches. (A term per waybill, category and phone made
    // PostgreSQL OR a hundred index scans.)
    let terms = [
        (Column::WaybillNumber, waybill_numbers),
        (Column::CaseNumber, case_numbers),
        (Column::RequestId, request_ids),
    ];
    let mut any = Condition::any();
    for (column, keys) in terms.into_iter().filter(|(_, keys)| !keys.is_empty()) {
        any = any.add(column.is_in(keys.iter().copied()));
    }
    if any.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Entity::find().filter(any).all(db).await?;
    found.sort_by_key(|complaint| complaint.seq);
    Ok(found)
}

/// The open cases due to be chased at `now`, oldest deadline first, at most `limit` (by the
/// `chase_at` index: no scan of all cases).
pub async fn due_for_chase(db: &impl ConnectionTrait, now: DateTimeUtc, limit: u64) -> Result<Vec<Model>, DbErr> {
    Entity::find().filter(Column::ChaseAt.lte(now)).order_by_asc(Column::ChaseAt).limit(limit).all(db).await
}

/// Open cases past their deadline at `now` (still to be worked on: a chase is due or done), counted
/// by the department that owns them (for the metrics).
pub async fn overdue_by_owner(db: &impl ConnectionTrait, now: DateTimeUtc) -> Result<Vec<(String, u64)>, DbErr> {
    let counts: Vec<(String, i64)> = Entity::find()
        .select_only()
        .column(Column::Owner)
        .column_as(Expr::col(Column::Seq).count(), "cases")
        .filter(Column::ChaseAt.is_not_null())
        .filter(Column::Deadline.lt(now))
        .group_by(Column::Owner)
        .into_tuple()
        .all(db)
        .await?;
    Ok(counts.into_iter().map(|(owner, cases)| (owner, u64::try_from(cases).unwrap_or(0))).collect())
}

pub async fn by_case_number(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::CaseNumber.eq(case_number)).one(db).await
}

/// Saves complaints over the versions they were read at, in one statement, where each changed
/// exactly `columns` (and is `(row, version read)`); whether every one was saved. A version that
/// moved saves nothing of that row, and the caller rolls back.
pub async fn save_changed(
    db: &impl ConnectionTrait,
    columns: &[Column],
    rows: &[(&Model, i64)],
) -> Result<bool, DbErr> {
    use std::fmt::Write as _;
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * (columns.len() + 2));
    let mut list = String::new();
    for (row, version) in rows {
        let cells =
            [Value::from(row.seq), Value::from(*version)].into_iter().chain(columns.iter().map(|c| row.get(*c)));
        for (index, cell) in cells.enumerate() {
            values.push(cell);
            let separator = if index == 0 { if list.is_empty() { "(" } else { ", (" } } else { ", " };
            match backend {
                DbBackend::Postgres => write!(list, "{separator}${}", values.len()),
                _ => write!(list, "{separator}?"),
            }
            .map_err(|error| DbErr::Custom(error.to_string()))?;
        }
        list.push(')');
    }
    let names: String = columns.iter().map(|column| format!(", \"{}\"", column.as_str())).collect();
    let sets: String = columns.iter().map(|column| format!("\"{0}\" = v.\"{0}\", ", column.as_str())).collect();
    let sql = format!(
        "WITH v (\"seq\", \"version\"{names}) AS (VALUES {list}) \
         UPDATE \"complaints\" SET {sets}\"version\" = v.\"version\" + 1 FROM v \
         WHERE \"complaints\".\"seq\" = v.\"seq\" AND \"complaints\".\"version\" = v.\"version\""
    );
    let result = db.execute(Statement::from_sql_and_values(backend, sql, values)).await?;
    Ok(result.rows_affected() == rows.len() as u64)
}

/// The complaints with these case numbers, in one statement, in no particular order.
pub async fn by_case_numbers(db: &impl ConnectionTrait, case_numbers: &[&str]) -> Result<Vec<Model>, DbErr> {
    kefu_kit::statements::find_in::<Entity, _>(db, Column::CaseNumber, case_numbers.to_vec()).await
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
            FilterField::Kind => Column::Kind,
            FilterField::Severity => Column::Severity,
            FilterField::ContactPhone => Column::ContactPhone,
        };
        query = query.filter(column.eq(value.as_str()));
    }
    let rows = query.all(db).await?;
    Ok(kefu_kit::paging::take_page(rows, page_size, |row| row.seq))
}
