//! Access requests (查阅报告) with their signatures, and the borrowing register (借阅登记册) of every
//! read and copy made under them, and every query that reads or changes them.

use chrono::{DateTime, Utc};
use kefu_kit::error::is_unique_violation;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::access::{self, Kind};

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

use access_request::Column as A;

impl access_request::Model {
    /// Whether the request is to copy or excerpt rather than read.
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind)
    }

    /// The request as the rules see it; an error when its signatures no longer parse.
    pub fn request(&self) -> Result<access::Request, serde_json::Error> {
        Ok(access::Request {
            file: self.file.clone(),
            kind: self.kind(),
            requester: self.requester.clone(),
            requester_department: self.requester_department.clone(),
            personal_data: self.personal_data,
            required: serde_json::from_str(&self.required)?,
            approvals: serde_json::from_str(&self.approvals)?,
            state: access::State::parse(&self.state),
            expire_time: self.expire_time,
        })
    }
}

pub async fn access_request(db: &impl ConnectionTrait, seq: i64) -> Result<Option<access_request::Model>, DbErr> {
    access_request::Entity::find_by_id(seq).one(db).await
}

pub async fn access_request_by_request_id(
    db: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<access_request::Model>, DbErr> {
    access_request::Entity::find().filter(A::RequestId.eq(request_id)).one(db).await
}

/// An access request as it is asked, pending, before any signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRequest {
    pub request_id: Option<String>,
    pub file: String,
    pub kind: Kind,
    pub purpose: String,
    pub reason: String,
    pub personal_data: bool,
    pub requester: String,
    pub requester_department: String,
    pub required: Vec<access::Signature>,
    pub create_time: DateTime<Utc>,
}

/// Records a new access request and returns its sequence number; `None` when another request
/// with the same `request_id` was recorded first.
pub async fn record_access_request(tx: &impl ConnectionTrait, new: NewAccessRequest) -> Result<Option<i64>, DbErr> {
    let row = access_request::ActiveModel {
        request_id: Set(new.request_id),
        file: Set(new.file),
        kind: Set(new.kind.as_str().into()),
        purpose: Set(new.purpose),
        reason: Set(new.reason),
        personal_data: Set(new.personal_data),
        requester: Set(new.requester),
        requester_department: Set(new.requester_department),
        required: Set(serde_json::to_string(&new.required).unwrap_or_else(|_| "[]".into())),
        approvals: Set("[]".into()),
        state: Set(access::State::Pending.as_str().into()),
        create_time: Set(new.create_time),
        expire_time: Set(None),
        refusal_reason: Set(String::new()),
        refused_by: Set(String::new()),
        version: Set(0),
        ..Default::default()
    };
    match access_request::Entity::insert(row).exec(tx).await {
        Ok(result) => Ok(Some(result.last_insert_id)),
        Err(error) if is_unique_violation(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Who refused a request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub refused_by: String,
}

/// Writes a decision (signatures, state, expiry, and a refusal's reason) over the version read;
/// `false` when another request changed the request since.
pub async fn record_decision(
    tx: &impl ConnectionTrait,
    read: &access_request::Model,
    decided: &access::Request,
    refusal: Option<Refusal>,
) -> Result<bool, DbErr> {
    let approvals = serde_json::to_string(&decided.approvals).map_err(|error| DbErr::Custom(error.to_string()))?;
    let mut update = access_request::ActiveModel {
        approvals: Set(approvals),
        state: Set(decided.state.as_str().into()),
        expire_time: Set(decided.expire_time),
        version: Set(read.version + 1),
        ..Default::default()
    };
    if let Some(refusal) = refusal {
        update.refusal_reason = Set(refusal.reason);
        update.refused_by = Set(refusal.refused_by);
    }
    let result = access_request::Entity::update_many()
        .set(update)
        .filter(A::Seq.eq(read.seq))
        .filter(A::Version.eq(read.version))
        .exec(tx)
        .await?;
    Ok(result.rows_affected == 1)
}

/// A read or copy as the borrowing register records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Borrowing {
    pub time: DateTime<Utc>,
    pub file: String,
    pub reader: String,
    pub reader_department: String,
    pub kind: Kind,
    /// The access request's name, `accessRequests/{n}`.
    pub access_request: String,
    pub purpose: String,
    pub personal_data_shown: bool,
}

/// Enters a read or copy in the borrowing register.
pub async fn register_read(tx: &impl ConnectionTrait, entry: Borrowing) -> Result<(), DbErr> {
    borrowing::Entity::insert(borrowing::ActiveModel {
        time: Set(entry.time),
        file: Set(entry.file),
        reader: Set(entry.reader),
        reader_department: Set(entry.reader_department),
        kind: Set(entry.kind.as_str().into()),
        access_request: Set(entry.access_request),
        purpose: Set(entry.purpose),
        personal_data_shown: Set(entry.personal_data_shown),
        ..Default::default()
    })
    .exec_without_returning(tx)
    .await?;
    Ok(())
}

/// Up to `page_size` access requests, newest first, after the position `after` if given (only
/// pending ones if `pending_only`); and the position to go on from if there may be more. Whom each
/// may be shown to is the caller's to decide.
pub async fn access_request_page(
    db: &impl ConnectionTrait,
    pending_only: bool,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<access_request::Model>, Option<i64>), DbErr> {
    let mut query = access_request::Entity::find().order_by_desc(A::Seq).limit(page_size + 1);
    if pending_only {
        query = query.filter(A::State.eq(access::State::Pending.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(A::Seq.lt(after));
    }
    Ok(kefu_kit::paging::take_page(query.all(db).await?, page_size, |row| row.seq))
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
    let hidden = super::case_files::names_above(db, max_level).await?;
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
