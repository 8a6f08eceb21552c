//! The record an owning department keeps of a complaint routed to it, and the handler that accepts
//! `case_routed` events: it stores the record and, in the same transaction, tells intake the
//! owner's reference (`case_accepted`). Inspection, claims and settlement all accept cases this
//! way; their own work on a case builds on this record.

use kefu_proto::{
    events::v1::{CaseAccepted, CaseNotice, Event, event::Payload},
    types::v1::RoutedComplaint,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    entity::prelude::*,
    sea_query::{ColumnDef, Table},
};
use tonic::Status;

use crate::{
    caller::Caller,
    clock::SharedClock,
    config::ServiceName,
    error,
    inbox::EventHandler,
    migrate::{Migration, SchemaStatement},
    outbox,
    time::{from_timestamp, to_timestamp},
    trace::TraceContext,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "routed_cases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The complaint's case number at intake; the owner's record has the same number.
    #[sea_orm(unique)]
    pub case_number: String,
    pub category: String,
    pub waybill_number: String,
    pub channel: String,
    pub description: String,
    pub customer_request: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub branch: String,
    pub responsible_unit: String,
    pub complaint_create_time: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub received_by: String,
    pub accept_time: DateTimeUtc,
    /// The earlier complaint this one repeats (二次投诉), `complaints/{case_number}`; empty if none.
    pub first_complaint: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "kit_0002_routed_cases",
    statements: || {
        vec![SchemaStatement::Table(
            Table::create()
                .table(Entity)
                .if_not_exists()
                .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(Column::CaseNumber).string_len(32).not_null().unique_key())
                .col(ColumnDef::new(Column::Category).string_len(64).not_null())
                .col(ColumnDef::new(Column::WaybillNumber).string_len(64).not_null())
                .col(ColumnDef::new(Column::Channel).string_len(16).not_null())
                .col(ColumnDef::new(Column::Description).text().not_null())
                .col(ColumnDef::new(Column::CustomerRequest).text().not_null())
                .col(ColumnDef::new(Column::ContactName).string_len(128).not_null())
                .col(ColumnDef::new(Column::ContactPhone).string_len(64).not_null())
                .col(ColumnDef::new(Column::Branch).string_len(64).not_null())
                .col(ColumnDef::new(Column::ResponsibleUnit).string_len(64).not_null())
                .col(ColumnDef::new(Column::ComplaintCreateTime).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Column::Deadline).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Column::ReceivedBy).string_len(128).not_null())
                .col(ColumnDef::new(Column::AcceptTime).timestamp_with_time_zone().not_null())
                .to_owned(),
        )]
    },
};

/// The earlier complaint a repeat complaint names, kept with the routed case.
pub static MIGRATION_FIRST_COMPLAINT: Migration = Migration {
    name: "kit_0003_routed_first_complaint",
    statements: || {
        vec![SchemaStatement::Alter(
            Table::alter()
                .table(Entity)
                .add_column(ColumnDef::new(Column::FirstComplaint).string_len(48).not_null().default(""))
                .to_owned(),
        )]
    },
};

/// Accepts `case_routed` events for one owning service.
pub struct AcceptRoutedCases {
    pub owner: ServiceName,
    /// The owner's collection, e.g. `cases` at inspection, `claims` at claims.
    pub collection: &'static str,
    pub clock: SharedClock,
}

impl EventHandler for AcceptRoutedCases {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        let now = self.clock.now();
        let mut rows = Vec::with_capacity(events.len());
        let mut replies = Vec::with_capacity(events.len());
        for event in events {
            if let Some(Payload::CaseNotice(notice)) = &event.payload {
                record_notice(tx, self.owner, notice).await?;
                continue;
            }
            let (row, reply) = self.accept(event, now)?;
            rows.push(row);
            replies.push(reply);
        }
        if rows.is_empty() {
            return Ok(());
        }
        crate::statements::insert_many(tx, rows).await.map_err(|e| error::from_db("accepting routed cases", e))?;
        outbox::enqueue_many(tx, replies.iter().map(|reply| (ServiceName::Intake, reply, now)))
            .await
            .map_err(|e| error::from_db("queueing case_accepted", e))?;
        Ok(())
    }
}

impl AcceptRoutedCases {
    /// The owner's record of a routed case, and the `case_accepted` event that tells intake of it.
    fn accept(&self, event: &Event, now: chrono::DateTime<chrono::Utc>) -> Result<(ActiveModel, Event), Status> {
        let Some(Payload::CaseRouted(routed)) = &event.payload else {
            return Err(Status::invalid_argument(format!(
                "{} accepts only case_routed and case_notice events",
                self.owner
            )));
        };
        let complaint =
            routed.complaint.as_ref().ok_or_else(|| error::invalid_field("event.case_routed.complaint", "required"))?;
        let case_number = crate::names::complaint(&complaint.complaint, "event.case_routed.complaint.complaint")
            .map_err(crate::error::FieldViolations::into_status)?;
        let time = |timestamp: &Option<prost_types::Timestamp>, field: &str| {
            timestamp
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| error::invalid_field(&format!("event.case_routed.complaint.{field}"), "required"))
        };
        let row = ActiveModel {
            case_number: Set(case_number.to_owned()),
            category: Set(complaint.category.clone()),
            waybill_number: Set(complaint.waybill_number.clone()),
            channel: Set(complaint.channel.clone()),
            description: Set(complaint.description.clone()),
            customer_request: Set(complaint.customer_request.clone()),
            contact_name: Set(complaint.contact_name.clone()),
            contact_phone: Set(complaint.contact_phone.clone()),
            branch: Set(complaint.branch.clone()),
            responsible_unit: Set(complaint.responsible_unit.clone()),
            complaint_create_time: Set(time(&complaint.create_time, "create_time")?),
            deadline: Set(time(&complaint.deadline, "deadline")?),
            received_by: Set(complaint.received_by.clone()),
            accept_time: Set(crate::time::to_micros(now)),
            first_complaint: Set(complaint.first_complaint.clone()),
            ..Default::default()
        };
        let accepted = CaseAccepted {
            complaint: complaint.complaint.clone(),
            owner: self.owner.as_str().into(),
            owner_reference: format!("{}/{case_number}", self.collection),
            accept_time: Some(to_timestamp(now)),
        };
        let trace = TraceContext { traceparent: event.traceparent.clone(), tracestate: event.tracestate.clone() };
        let caller = Caller::from_proto(event.caller.as_ref());
        let reply = outbox::new_event(self.owner, now, &trace, &caller, Payload::CaseAccepted(accepted));
        tracing::debug!(owner = %self.owner, case_number, category = %complaint.category, "case accepted");
        Ok((row, reply))
    }
}

/// Records intake's notice (reopened, linked or unlinked as a duplicate, chased past its deadline)
/// in the history of the case the owner holds.
pub async fn record_notice(tx: &DatabaseTransaction, owner: ServiceName, notice: &CaseNotice) -> Result<(), Status> {
    let case_number = crate::names::complaint(&notice.complaint, "event.case_notice.complaint")
        .map_err(crate::error::FieldViolations::into_status)?;
    let action = match notice.action.as_str() {
        "reopened" => "reopened",
        "linked_duplicate" => "linked_duplicate",
        "unlinked_duplicate" => "unlinked_duplicate",
        "chased" => "chased",
        other => {
            return Err(error::invalid_field(
                "event.case_notice.action",
                format!("unknown action {other:?}: reopened, linked_duplicate, unlinked_duplicate or chased"),
            ));
        }
    };
    if get(tx, case_number).await.map_err(|e| error::from_db("reading a case", e))?.is_none() {
        return Err(Status::failed_precondition(format!("{owner} holds no case {}", notice.complaint)));
    }
    let time = notice.notice_time.as_ref().and_then(from_timestamp).map(crate::time::to_micros);
    let step = crate::history::Step {
        action,
        actor: ServiceName::Intake.as_str().into(),
        time: time.ok_or_else(|| error::invalid_field("event.case_notice.notice_time", "required"))?,
        detail: notice.detail.clone(),
    };
    crate::history::record(tx, case_number, None, &[step])
        .await
        .map_err(|e| error::from_db("recording a notice", e))?;
    tracing::info!(%owner, case_number, action, "intake's notice recorded");
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::CaseNumber.eq(case_number)).one(db).await
}

/// One page, newest first, after the position `after` (a `seq`) if given; also the position to
/// continue from, if there may be more.
pub async fn list(
    db: &impl ConnectionTrait,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<Model>, Option<i64>), DbErr> {
    let mut query = Entity::find().order_by_desc(Column::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(Column::Seq.lt(after));
    }
    let rows = query.all(db).await?;
    Ok(crate::paging::take_page(rows, page_size, |row| row.seq))
}

/// Parses `"{collection}/{case_number}"`.
pub fn parse_name<'a>(name: &'a str, collection: &str) -> Result<&'a str, crate::error::FieldViolations> {
    crate::names::parse(name, collection, "name")
}

impl Model {
    pub fn to_proto(&self) -> RoutedComplaint {
        RoutedComplaint {
            complaint: format!("complaints/{}", self.case_number),
            category: self.category.clone(),
            waybill_number: self.waybill_number.clone(),
            channel: self.channel.clone(),
            description: self.description.clone(),
            customer_request: self.customer_request.clone(),
            contact_name: self.contact_name.clone(),
            contact_phone: self.contact_phone.clone(),
            branch: self.branch.clone(),
            responsible_unit: self.responsible_unit.clone(),
            create_time: Some(to_timestamp(self.complaint_create_time)),
            deadline: Some(to_timestamp(self.deadline)),
            received_by: self.received_by.clone(),
            first_complaint: self.first_complaint.clone(),
        }
    }
}

/// The record named `"{collection}/{case_number}"`, or `NOT_FOUND`.
pub async fn get_by_name(db: &impl ConnectionTrait, name: &str, collection: &str) -> Result<Model, Status> {
    let case_number = parse_name(name, collection)?;
    get(db, case_number)
        .await
        .map_err(|e| error::from_db("reading a case", e))?
        .ok_or_else(|| Status::not_found(format!("no case named {name}")))
}

/// One page of records, newest first, and the token for the next page (empty at the end).
pub async fn list_page(
    db: &impl ConnectionTrait,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<Model>, String), Status> {
    let page_size = crate::paging::page_size(page_size)?;
    let after = crate::paging::decode_token(page_token, "")?;
    let (rows, next) = list(db, page_size, after).await.map_err(|e| error::from_db("listing cases", e))?;
    Ok((rows, next.map(|seq| crate::paging::encode_token(seq, "")).unwrap_or_default()))
}

/// The `EventInbox` server of an owning service: it accepts routed cases into `collection`.
pub fn inbox(
    context: &crate::server::ServiceContext,
    collection: &'static str,
) -> kefu_proto::events::v1::event_inbox_server::EventInboxServer<crate::inbox::Inbox<AcceptRoutedCases>> {
    let handler = AcceptRoutedCases { owner: context.name, collection, clock: context.clock.clone() };
    crate::inbox::Inbox::new(context, handler).into_server()
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        /// Whatever a caller sends as a name, the answer is its case number or INVALID_ARGUMENT.
        #[test]
        fn a_name_is_a_case_number_of_its_collection_or_refused(name in ".{0,60}") {
            match super::parse_name(&name, "cases") {
                Ok(number) => {
                    prop_assert_eq!(format!("cases/{number}"), name.clone());
                    prop_assert!(crate::case_number::is_well_formed(number), "{}", number);
                }
                Err(violations) => prop_assert_eq!(violations.fields().collect::<Vec<_>>(), ["name"]),
            }
        }
    }
}
