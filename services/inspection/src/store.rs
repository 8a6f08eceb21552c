//! The inspection tables:
//!
//! - `inspection_cases`: one row per case, the [`Case`] as JSON in `record`, and beside it the
//!   columns queries need (state, deadline, whether chased, incident, decision time), written with
//!   an optimistic version;
//! - `inspection_penalties`: every penalty decided, for the monthly report;
//! - `inspection_responsibility`: who was found responsible for which category when, so that a
//!   recurrence in the same department is found without reading every case.
//!
//! The routed complaint itself stays in `routed_cases` ([`kefu_kit::routed`]), the history in
//! `case_steps` ([`kefu_kit::history`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kefu_kit::migrate::{Migration, SchemaStatement};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{ColumnDef, Index, Table},
};

use crate::case::{Case, Kind, Share, State};

pub mod case_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inspection_cases")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub case_number: String,
        /// The idempotency key of the request that opened an audit.
        #[sea_orm(unique)]
        pub create_request_id: Option<String>,
        /// Raised by every write; a write that finds another version lost a race.
        pub version: i32,
        pub kind: String,
        pub state: String,
        pub incident: bool,
        pub deadline: DateTimeUtc,
        pub chased: bool,
        pub decide_time: Option<DateTimeUtc>,
        /// The [`crate::case::Case`] as JSON.
        pub record: String,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod penalty_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inspection_penalties")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub case_number: String,
        /// The penalty's position in the decision, from 1 (its name's last part).
        pub position: i32,
        pub party_kind: String,
        pub party_id: String,
        pub kind: String,
        pub violation: String,
        pub amount_fen: i64,
        pub incident: bool,
        pub decide_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod responsibility_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inspection_responsibility")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub case_number: String,
        pub category: String,
        pub party_kind: String,
        pub party_id: String,
        pub share_percent: i32,
        pub divide_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION: Migration = Migration {
    name: "inspection_0001_cases",
    statements: || {
        use {case_row::Column as C, penalty_row::Column as P, responsibility_row::Column as R};
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(case_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(C::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(C::CaseNumber).string_len(32).not_null().unique_key())
                    .col(ColumnDef::new(C::CreateRequestId).string_len(128).null().unique_key())
                    .col(ColumnDef::new(C::Version).integer().not_null())
                    .col(ColumnDef::new(C::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(C::State).string_len(16).not_null())
                    .col(ColumnDef::new(C::Incident).boolean().not_null())
                    .col(ColumnDef::new(C::Deadline).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(C::Chased).boolean().not_null())
                    .col(ColumnDef::new(C::DecideTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(C::Record).text().not_null())
                    .col(ColumnDef::new(C::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(C::UpdateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("inspection_cases_deadline")
                    .table(case_row::Entity)
                    .col(C::Deadline)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("inspection_cases_decide_time")
                    .table(case_row::Entity)
                    .col(C::DecideTime)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(penalty_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(P::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(P::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(P::Position).integer().not_null())
                    .col(ColumnDef::new(P::PartyKind).string_len(16).not_null())
                    .col(ColumnDef::new(P::PartyId).string_len(64).not_null())
                    .col(ColumnDef::new(P::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(P::Violation).string_len(48).not_null())
                    .col(ColumnDef::new(P::AmountFen).big_integer().not_null())
                    .col(ColumnDef::new(P::Incident).boolean().not_null())
                    .col(ColumnDef::new(P::DecideTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("inspection_penalties_decide_time")
                    .table(penalty_row::Entity)
                    .col(P::DecideTime)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(responsibility_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(R::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(R::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(R::Category).string_len(64).not_null())
                    .col(ColumnDef::new(R::PartyKind).string_len(16).not_null())
                    .col(ColumnDef::new(R::PartyId).string_len(64).not_null())
                    .col(ColumnDef::new(R::SharePercent).integer().not_null())
                    .col(ColumnDef::new(R::DivideTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("inspection_responsibility_party")
                    .table(responsibility_row::Entity)
                    .col(R::PartyKind)
                    .col(R::PartyId)
                    .col(R::Category)
                    .to_owned(),
            ),
        ]
    },
};

fn decode(row: &case_row::Model) -> Result<Case, DbErr> {
    serde_json::from_str(&row.record)
        .map_err(|error| DbErr::Custom(format!("inspection case {} cannot be read: {error}", row.case_number)))
}

fn encode(case: &Case) -> Result<String, DbErr> {
    serde_json::to_string(case).map_err(|error| DbErr::Custom(format!("inspection case cannot be written: {error}")))
}

/// The case and its version.
pub async fn load(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<(Case, i32)>, DbErr> {
    let row = case_row::Entity::find().filter(case_row::Column::CaseNumber.eq(case_number)).one(db).await?;
    row.map(|row| Ok((decode(&row)?, row.version))).transpose()
}

/// The cases among `case_numbers` that exist.
pub async fn load_many(db: &impl ConnectionTrait, case_numbers: &[&str]) -> Result<HashMap<String, Case>, DbErr> {
    let rows = case_row::Entity::find()
        .filter(case_row::Column::CaseNumber.is_in(case_numbers.iter().copied()))
        .all(db)
        .await?;
    rows.into_iter().map(|row| Ok((row.case_number.clone(), decode(&row)?))).collect()
}

/// The audit an earlier request with `request_id` opened.
pub async fn by_create_request(db: &impl ConnectionTrait, request_id: &str) -> Result<Option<Case>, DbErr> {
    let row = case_row::Entity::find().filter(case_row::Column::CreateRequestId.eq(request_id)).one(db).await?;
    row.as_ref().map(decode).transpose()
}

fn columns(case: &Case, now: DateTime<Utc>) -> Result<case_row::ActiveModel, DbErr> {
    Ok(case_row::ActiveModel {
        case_number: Set(case.case_number.clone()),
        kind: Set(match case.kind {
            Kind::Complaint => "complaint",
            Kind::Audit => "audit",
        }
        .into()),
        state: Set(case.state.as_str().into()),
        incident: Set(case.incident.is_some()),
        deadline: Set(case.deadline),
        chased: Set(case.chased),
        decide_time: Set(case.decision.as_ref().map(|decision| decision.time)),
        record: Set(encode(case)?),
        update_time: Set(now),
        ..Default::default()
    })
}

/// Inserts new cases (version 1).
pub async fn insert(
    db: &impl ConnectionTrait,
    cases: &[&Case],
    create_request_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows = cases
        .iter()
        .map(|case| {
            let mut row = columns(case, now)?;
            row.version = Set(1);
            row.create_request_id = Set(create_request_id.map(str::to_owned));
            row.create_time = Set(now);
            Ok(row)
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

/// Writes `case` over `version`; false if another write came first.
pub async fn save(db: &impl ConnectionTrait, case: &Case, version: i32, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let mut row = columns(case, now)?;
    row.version = Set(version + 1);
    let result = case_row::Entity::update_many()
        .set(row)
        .filter(case_row::Column::CaseNumber.eq(&case.case_number))
        .filter(case_row::Column::Version.eq(version))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records the penalties of the case's decision, for the monthly report.
pub async fn add_penalties(db: &impl ConnectionTrait, case: &Case) -> Result<(), DbErr> {
    let Some(decision) = &case.decision else { return Ok(()) };
    let rows: Vec<penalty_row::ActiveModel> = decision
        .penalties
        .iter()
        .enumerate()
        .map(|(index, penalty)| penalty_row::ActiveModel {
            case_number: Set(case.case_number.clone()),
            position: Set(index as i32 + 1),
            party_kind: Set(penalty.party.kind.as_str().into()),
            party_id: Set(penalty.party.id.clone()),
            kind: Set(penalty.kind.as_str().into()),
            violation: Set(penalty.violation.clone()),
            amount_fen: Set(penalty.amount_fen),
            incident: Set(case.incident.is_some()),
            decide_time: Set(decision.time),
            ..Default::default()
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

/// Records who was found responsible, for finding recurrences.
pub async fn add_responsibility(
    db: &impl ConnectionTrait,
    case: &Case,
    shares: &[Share],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let rows: Vec<responsibility_row::ActiveModel> = shares
        .iter()
        .map(|share| responsibility_row::ActiveModel {
            case_number: Set(case.case_number.clone()),
            category: Set(case.category.clone()),
            party_kind: Set(share.party.kind.as_str().into()),
            party_id: Set(share.party.id.clone()),
            share_percent: Set(share.percent),
            divide_time: Set(now),
            ..Default::default()
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

/// The earliest other complaint case since `since` in which one of the units (departments and
/// branches) among `shares` was found responsible for `category`: the same kind of problem again
/// in the same department (`001 §8 4.10`).
pub async fn recurrence(
    db: &impl ConnectionTrait,
    case: &Case,
    shares: &[Share],
    since: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    use responsibility_row::Column as R;
    let mut units = Condition::any();
    let mut any = false;
    for share in shares.iter().filter(|share| share.party.kind.is_unit()) {
        any = true;
        units = units.add(
            Condition::all()
                .add(R::PartyKind.eq(share.party.kind.as_str()))
                .add(R::PartyId.eq(share.party.id.as_str())),
        );
    }
    if !any || case.kind != Kind::Complaint {
        return Ok(None);
    }
    let earlier = responsibility_row::Entity::find()
        .filter(units)
        .filter(R::Category.eq(case.category.as_str()))
        .filter(R::DivideTime.gte(since))
        .filter(R::CaseNumber.ne(case.case_number.as_str()))
        .order_by_asc(R::DivideTime)
        .one(db)
        .await?;
    Ok(earlier.map(|row| format!("complaints/{}", row.case_number)))
}

/// Up to `limit` cases past their deadline at `now`, not resolved and not chased for it.
pub async fn overdue(db: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<String>, DbErr> {
    use case_row::Column as C;
    let rows = case_row::Entity::find()
        .select_only()
        .column(C::CaseNumber)
        .filter(C::Deadline.lt(now))
        .filter(C::Chased.eq(false))
        .filter(C::State.ne(State::Resolved.as_str()))
        .order_by_asc(C::Deadline)
        .limit(limit)
        .into_tuple::<String>()
        .all(db)
        .await?;
    Ok(rows)
}

/// A term of the `ListCases` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    State(State),
    Kind(Kind),
    Incident(bool),
    /// Past the deadline at this time, not resolved.
    OverdueAt(DateTime<Utc>),
}

/// One page of cases, newest first, after the position `after`; also the position to continue from.
pub async fn list(
    db: &impl ConnectionTrait,
    terms: &[Term],
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<Case>, Option<i64>), DbErr> {
    use case_row::Column as C;
    let mut query = case_row::Entity::find().order_by_desc(C::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(C::Seq.lt(after));
    }
    for term in terms {
        query = match term {
            Term::State(state) => query.filter(C::State.eq(state.as_str())),
            Term::Kind(Kind::Complaint) => query.filter(C::Kind.eq("complaint")),
            Term::Kind(Kind::Audit) => query.filter(C::Kind.eq("audit")),
            Term::Incident(incident) => query.filter(C::Incident.eq(*incident)),
            Term::OverdueAt(now) => query.filter(C::Deadline.lt(*now)).filter(C::State.ne(State::Resolved.as_str())),
        };
    }
    let rows = query.all(db).await?;
    let (rows, next) = kefu_kit::paging::take_page(rows, page_size, |row| row.seq);
    let cases = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok((cases, next))
}

/// The penalties decided in `[start, end)`.
pub async fn penalties_between(
    db: &impl ConnectionTrait,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<penalty_row::Model>, DbErr> {
    penalty_row::Entity::find()
        .filter(penalty_row::Column::DecideTime.gte(start))
        .filter(penalty_row::Column::DecideTime.lt(end))
        .order_by_asc(penalty_row::Column::Seq)
        .all(db)
        .await
}

/// The cases decided in `[start, end)`, and how many of them are incidents.
pub async fn decided_between(
    db: &impl ConnectionTrait,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(i64, i64), DbErr> {
    use case_row::Column as C;
    let rows: Vec<bool> = case_row::Entity::find()
        .select_only()
        .column(C::Incident)
        .filter(C::DecideTime.gte(start))
        .filter(C::DecideTime.lt(end))
        .into_tuple::<bool>()
        .all(db)
        .await?;
    Ok((rows.len() as i64, rows.iter().filter(|incident| **incident).count() as i64))
}
