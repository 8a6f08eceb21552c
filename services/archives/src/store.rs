//! The archives' tables: case files (content sealed with its SHA-256, emptied only by destruction),
//! customer files and their phones, access requests, the borrowing register and destruction records.
//! The audit log has its own module, [`crate::audit`].

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{ColumnDef, Index, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

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

pub mod access_request {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_access_requests")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub request_id: Option<String>,
        pub file: String,
        pub kind: String,
        pub purpose: String,
        pub reason: String,
        pub personal_data: bool,
        pub requester: String,
        pub requester_department: String,
        /// JSON array of [`crate::access::Signature`].
        pub required: String,
        /// JSON array of [`crate::access::Approval`].
        pub approvals: String,
        pub state: String,
        pub create_time: DateTimeUtc,
        pub expire_time: Option<DateTimeUtc>,
        pub refusal_reason: String,
        pub refused_by: String,
        /// Bumped by every change: a change made from a stale read is refused.
        pub version: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod borrowing {
    use sea_orm::entity::prelude::*;

    /// The borrowing register (借阅登记册): one row per read or copy of an archived file.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_borrowing_register")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub time: DateTimeUtc,
        pub file: String,
        pub reader: String,
        pub reader_department: String,
        pub kind: String,
        pub access_request: String,
        pub purpose: String,
        pub personal_data_shown: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod destruction {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_destructions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub request_id: Option<String>,
        #[sea_orm(unique)]
        pub case_file: String,
        pub category: String,
        pub content_sha256: String,
        pub close_time: DateTimeUtc,
        pub retention_rule: String,
        pub retain_until: DateTimeUtc,
        pub approved_by: String,
        pub reason: String,
        pub destroy_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A destruction proposed and not yet carried out: four eyes, the proposer does not destroy.
pub mod destruction_proposal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "archive_destruction_proposals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub case_number: String,
        pub proposed_by: String,
        pub reason: String,
        pub propose_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION_PROPOSALS: Migration = Migration {
    name: "archives_0003_destruction_proposals",
    statements: || {
        use destruction_proposal::{Column as C, Entity};
        vec![SchemaStatement::Table(
            Table::create()
                .table(Entity)
                .if_not_exists()
                .col(ColumnDef::new(C::CaseNumber).string_len(32).not_null().primary_key())
                .col(ColumnDef::new(C::ProposedBy).string_len(128).not_null())
                .col(ColumnDef::new(C::Reason).text().not_null())
                .col(ColumnDef::new(C::ProposeTime).timestamp_with_time_zone().not_null())
                .to_owned(),
        )]
    },
};

pub static MIGRATION: Migration = Migration {
    name: "archives_0001_files",
    statements: || {
        let text = |column: &mut ColumnDef| column.text().not_null().to_owned();
        let code = |column: &mut ColumnDef, len: u32| column.string_len(len).not_null().to_owned();
        let time = |column: &mut ColumnDef| column.timestamp_with_time_zone().not_null().to_owned();
        let seq = |column: &mut ColumnDef| column.big_integer().not_null().auto_increment().primary_key().to_owned();
        use access_request::Column as A;
        use borrowing::Column as B;
        use case_file::Column as F;
        use customer::Column as C;
        use customer_phone::Column as P;
        use destruction::Column as D;
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(case_file::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(F::Seq)))
                    .col(code(&mut ColumnDef::new(F::CaseNumber), 32).unique_key().to_owned())
                    .col(code(&mut ColumnDef::new(F::Category), 64))
                    .col(code(&mut ColumnDef::new(F::WaybillNumber), 64))
                    .col(code(&mut ColumnDef::new(F::Branch), 64))
                    .col(code(&mut ColumnDef::new(F::Owner), 32))
                    .col(code(&mut ColumnDef::new(F::ContactPhone), 64))
                    .col(ColumnDef::new(F::Customer).string_len(64).null())
                    .col(time(&mut ColumnDef::new(F::CloseTime)))
                    .col(time(&mut ColumnDef::new(F::ArchiveTime)))
                    .col(ColumnDef::new(F::Classification).integer().not_null())
                    .col(ColumnDef::new(F::Content).binary().null())
                    .col(code(&mut ColumnDef::new(F::ContentSha256), 64))
                    .col(code(&mut ColumnDef::new(F::RetentionRule), 64))
                    .col(time(&mut ColumnDef::new(F::RetainUntil)))
                    .col(ColumnDef::new(F::LegalHold).boolean().not_null())
                    .col(text(&mut ColumnDef::new(F::LegalHoldReason)))
                    .col(ColumnDef::new(F::DestroyTime).timestamp_with_time_zone().null())
                    .to_owned(),
            ),
            index("archive_case_files_waybill", case_file::Entity, F::WaybillNumber),
            index("archive_case_files_customer", case_file::Entity, F::Customer),
            index("archive_case_files_phone", case_file::Entity, F::ContactPhone),
            index("archive_case_files_retain_until", case_file::Entity, F::RetainUntil),
            SchemaStatement::Table(
                Table::create()
                    .table(customer::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(C::Seq)))
                    .col(code(&mut ColumnDef::new(C::CustomerId), 64).unique_key().to_owned())
                    .col(ColumnDef::new(C::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(C::ContactName), 128))
                    .col(text(&mut ColumnDef::new(C::Phones)))
                    .col(code(&mut ColumnDef::new(C::Company), 128))
                    .col(code(&mut ColumnDef::new(C::CustomerType), 32))
                    .col(ColumnDef::new(C::Classification).integer().not_null())
                    .col(code(&mut ColumnDef::new(C::Grade), 1))
                    .col(ColumnDef::new(C::Total).integer().not_null())
                    .col(ColumnDef::new(C::ProfitContribution).integer().not_null())
                    .col(ColumnDef::new(C::OrderAmount).integer().not_null())
                    .col(ColumnDef::new(C::CooperationYears).integer().not_null())
                    .col(ColumnDef::new(C::Credit).integer().not_null())
                    .col(ColumnDef::new(C::Prospects).integer().not_null())
                    .col(code(&mut ColumnDef::new(C::ScoredBy), 128))
                    .col(ColumnDef::new(C::ScoreTime).timestamp_with_time_zone().null())
                    .col(time(&mut ColumnDef::new(C::CreateTime)))
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(customer_phone::Entity)
                    .if_not_exists()
                    .col(code(&mut ColumnDef::new(P::Phone), 64).primary_key().to_owned())
                    .col(code(&mut ColumnDef::new(P::CustomerId), 64))
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(access_request::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(A::Seq)))
                    .col(ColumnDef::new(A::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(A::File), 128))
                    .col(code(&mut ColumnDef::new(A::Kind), 16))
                    .col(text(&mut ColumnDef::new(A::Purpose)))
                    .col(text(&mut ColumnDef::new(A::Reason)))
                    .col(ColumnDef::new(A::PersonalData).boolean().not_null())
                    .col(code(&mut ColumnDef::new(A::Requester), 128))
                    .col(code(&mut ColumnDef::new(A::RequesterDepartment), 128))
                    .col(text(&mut ColumnDef::new(A::Required)))
                    .col(text(&mut ColumnDef::new(A::Approvals)))
                    .col(code(&mut ColumnDef::new(A::State), 16))
                    .col(time(&mut ColumnDef::new(A::CreateTime)))
                    .col(ColumnDef::new(A::ExpireTime).timestamp_with_time_zone().null())
                    .col(text(&mut ColumnDef::new(A::RefusalReason)))
                    .col(code(&mut ColumnDef::new(A::RefusedBy), 128))
                    .col(ColumnDef::new(A::Version).integer().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(borrowing::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(B::Seq)))
                    .col(time(&mut ColumnDef::new(B::Time)))
                    .col(code(&mut ColumnDef::new(B::File), 128))
                    .col(code(&mut ColumnDef::new(B::Reader), 128))
                    .col(code(&mut ColumnDef::new(B::ReaderDepartment), 128))
                    .col(code(&mut ColumnDef::new(B::Kind), 16))
                    .col(code(&mut ColumnDef::new(B::AccessRequest), 64))
                    .col(text(&mut ColumnDef::new(B::Purpose)))
                    .col(ColumnDef::new(B::PersonalDataShown).boolean().not_null())
                    .to_owned(),
            ),
            index("archive_borrowing_file", borrowing::Entity, B::File),
            SchemaStatement::Table(
                Table::create()
                    .table(destruction::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(D::Seq)))
                    .col(ColumnDef::new(D::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(D::CaseFile), 64).unique_key().to_owned())
                    .col(code(&mut ColumnDef::new(D::Category), 64))
                    .col(code(&mut ColumnDef::new(D::ContentSha256), 64))
                    .col(time(&mut ColumnDef::new(D::CloseTime)))
                    .col(code(&mut ColumnDef::new(D::RetentionRule), 64))
                    .col(time(&mut ColumnDef::new(D::RetainUntil)))
                    .col(code(&mut ColumnDef::new(D::ApprovedBy), 128))
                    .col(text(&mut ColumnDef::new(D::Reason)))
                    .col(time(&mut ColumnDef::new(D::DestroyTime)))
                    .to_owned(),
            ),
        ]
    },
};

fn index(
    name: &str,
    table: impl sea_orm::sea_query::IntoTableRef,
    column: impl sea_orm::sea_query::IntoIndexColumn,
) -> SchemaStatement {
    SchemaStatement::Index(Index::create().if_not_exists().name(name).table(table).col(column).to_owned())
}

pub async fn case_file(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<case_file::Model>, DbErr> {
    case_file::Entity::find().filter(case_file::Column::CaseNumber.eq(case_number)).one(db).await
}

/// What a search asks for; every term is optional.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub waybill_number: Option<String>,
    pub customer: Option<String>,
    pub category: Option<String>,
    pub branch: Option<String>,
    pub close_start: Option<chrono::DateTime<chrono::Utc>>,
    pub close_end: Option<chrono::DateTime<chrono::Utc>>,
    /// The caller's clearance: files above it are left out.
    pub max_level: i32,
}

fn search_query(search: &Search) -> Select<case_file::Entity> {
    use case_file::Column as F;
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
    let mut query = search_query(search).order_by_desc(case_file::Column::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(case_file::Column::Seq.lt(after));
    }
    let rows = query.all(db).await?;
    let (rows, next) = kefu_kit::paging::take_page(rows, page_size, |row| row.seq);
    Ok((rows, next, total))
}

/// Files whose retention ended by `now`, not held and not destroyed, that a caller of `max_level` may see.
pub async fn due_for_destruction(
    db: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
    max_level: i32,
    limit: u64,
) -> Result<Vec<case_file::Model>, DbErr> {
    use case_file::Column as F;
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

pub async fn customer(db: &impl ConnectionTrait, customer_id: &str) -> Result<Option<customer::Model>, DbErr> {
    customer::Entity::find().filter(customer::Column::CustomerId.eq(customer_id)).one(db).await
}

/// The customer a phone belongs to.
pub async fn customer_by_phone(db: &impl ConnectionTrait, phone: &str) -> Result<Option<customer::Model>, DbErr> {
    let Some(owner) = customer_phone::Entity::find_by_id(phone.to_owned()).one(db).await? else {
        return Ok(None);
    };
    customer(db, &owner.customer_id).await
}

pub async fn access_request(db: &impl ConnectionTrait, seq: i64) -> Result<Option<access_request::Model>, DbErr> {
    access_request::Entity::find_by_id(seq).one(db).await
}

pub async fn access_request_by_request_id(
    db: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<access_request::Model>, DbErr> {
    access_request::Entity::find().filter(access_request::Column::RequestId.eq(request_id)).one(db).await
}

/// The names (`caseFiles/{n}`) of the case files classified above `max_level`: every list that
/// names files leaves these out for a caller cleared to `max_level`.
pub async fn names_above(db: &impl ConnectionTrait, max_level: i32) -> Result<Vec<String>, DbErr> {
    let numbers: Vec<String> = case_file::Entity::find()
        .select_only()
        .column(case_file::Column::CaseNumber)
        .filter(case_file::Column::Classification.gt(max_level))
        .into_tuple()
        .all(db)
        .await?;
    Ok(numbers.into_iter().map(|number| format!("caseFiles/{number}")).collect())
}

/// One page of the borrowing register, newest first, optionally of one file, without the files
/// above `max_level`.
pub async fn borrowing_page(
    db: &impl ConnectionTrait,
    file: Option<&str>,
    max_level: i32,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<borrowing::Model>, Option<i64>), DbErr> {
    let hidden = names_above(db, max_level).await?;
    let mut query = borrowing::Entity::find()
        .filter(borrowing::Column::File.is_not_in(hidden))
        .order_by_desc(borrowing::Column::Seq)
        .limit(page_size + 1);
    if let Some(file) = file {
        query = query.filter(borrowing::Column::File.eq(file));
    }
    if let Some(after) = after {
        query = query.filter(borrowing::Column::Seq.lt(after));
    }
    Ok(kefu_kit::paging::take_page(query.all(db).await?, page_size, |row| row.seq))
}

/// One page of destruction records, newest first, without the files above `max_level`.
pub async fn destruction_page(
    db: &impl ConnectionTrait,
    max_level: i32,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<destruction::Model>, Option<i64>), DbErr> {
    let hidden = names_above(db, max_level).await?;
    let mut query = destruction::Entity::find()
        .filter(destruction::Column::CaseFile.is_not_in(hidden))
        .order_by_desc(destruction::Column::Seq)
        .limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(destruction::Column::Seq.lt(after));
    }
    Ok(kefu_kit::paging::take_page(query.all(db).await?, page_size, |row| row.seq))
}

pub async fn destruction_of(db: &impl ConnectionTrait, case_file: &str) -> Result<Option<destruction::Model>, DbErr> {
    destruction::Entity::find().filter(destruction::Column::CaseFile.eq(case_file)).one(db).await
}
