//! Telling the customer and the departments (`intake_replies`): the acknowledgement on receipt, the
//! result on resolution, the chase of an owner and the notice to a supervisor when a case is
//! overdue. Each is written from the handbook's standard phrases (客服标准用语, `001 §9`) and kept
//! with its case. Replies to the customer go by the channel the customer came in on; what is said
//! in the call itself (a phone or counter acknowledgement) is delivered at once, the rest waits
//! for the staff, who record each attempt. A reply that does not reach the customer is due again
//! the next morning before 09:00 (`001 第一节 8`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    entity::prelude::*,
    sea_query::{ColumnDef, Index, Table},
};

use kefu_kit::migrate::{Migration, SchemaStatement};

use crate::{domain::Channel, store};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "intake_replies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub case_number: String,
    /// acknowledgement, result, chase, overdue_notice.
    pub purpose: String,
    /// customer, owner, supervisor.
    pub recipient: String,
    /// phone, letter, in_person, online, internal.
    pub channel: String,
    /// The message. Personal data (the customer's name): never logged.
    pub text: String,
    /// pending, delivered, unreached.
    pub state: String,
    pub attempts: i32,
    pub due_time: DateTimeUtc,
    pub deliver_time: Option<DateTimeUtc>,
    pub create_time: DateTimeUtc,
    pub last_note: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub static MIGRATION: Migration = Migration {
    name: "intake_0006_replies",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Column::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(Column::Purpose).string_len(32).not_null())
                    .col(ColumnDef::new(Column::Recipient).string_len(32).not_null())
                    .col(ColumnDef::new(Column::Channel).string_len(16).not_null())
                    .col(ColumnDef::new(Column::Text).text().not_null())
                    .col(ColumnDef::new(Column::State).string_len(16).not_null())
                    .col(ColumnDef::new(Column::Attempts).integer().not_null())
                    .col(ColumnDef::new(Column::DueTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::DeliverTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Column::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Column::LastNote).text().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_replies_case")
                    .table(Entity)
                    .col(Column::CaseNumber)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("intake_replies_due")
                    .table(Entity)
                    .col(Column::State)
                    .col(Column::DueTime)
                    .to_owned(),
            ),
        ]
    },
};

/// Why a reply is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Acknowledgement,
    Result,
    Chase,
    OverdueNotice,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Acknowledgement => "acknowledgement",
            Purpose::Result => "result",
            Purpose::Chase => "chase",
            Purpose::OverdueNotice => "overdue_notice",
        }
    }
}

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const UNREACHED: &str = "unreached";

/// A reply to record with a change of its case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReply {
    pub purpose: Purpose,
    pub recipient: &'static str,
    pub channel: String,
    pub text: String,
    /// Said in the call or at the counter: delivered as it is recorded.
    pub delivered: bool,
}

/// Records each reply of its case at its time.
pub async fn insert(db: &impl ConnectionTrait, replies: &[(&str, &NewReply, DateTime<Utc>)]) -> Result<(), DbErr> {
    if replies.is_empty() {
        return Ok(());
    }
    let rows = replies.iter().map(|&(case_number, reply, now)| ActiveModel {
        seq: NotSet,
        case_number: Set(case_number.to_owned()),
        purpose: Set(reply.purpose.as_str().into()),
        recipient: Set(reply.recipient.into()),
        channel: Set(reply.channel.clone()),
        text: Set(reply.text.clone()),
        state: Set(if reply.delivered { DELIVERED } else { PENDING }.into()),
        attempts: Set(i32::from(reply.delivered)),
        due_time: Set(now),
        deliver_time: Set(reply.delivered.then_some(now)),
        create_time: Set(now),
        last_note: Set(if reply.delivered { "said in the call".into() } else { String::new() }),
    });
    kefu_kit::statements::insert_many(db, rows).await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, case_number: &str, seq: i64) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::Seq.eq(seq)).filter(Column::CaseNumber.eq(case_number)).one(db).await
}

/// One page of replies, due first (then oldest first), after position `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    case_number: Option<&str>,
    due_by: Option<DateTime<Utc>>,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<Model>, Option<i64>), DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Seq).limit(page_size + 1);
    if let Some(case_number) = case_number {
        query = query.filter(Column::CaseNumber.eq(case_number));
    }
    if let Some(due_by) = due_by {
        query = query.filter(Column::State.is_in([PENDING, UNREACHED])).filter(Column::DueTime.lte(due_by));
    }
    if let Some(after) = after {
        query = query.filter(Column::Seq.gt(after));
    }
    let rows = query.all(db).await?;
    Ok(kefu_kit::paging::take_page(rows, page_size, |row| row.seq))
}

/// Records an attempt: delivered, or due again the next morning. False if the reply was changed
/// at the same moment.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    reply: &Model,
    reached: bool,
    note: &str,
    now: DateTime<Utc>,
    time_zone: Tz,
) -> Result<Model, DbErr> {
    let updated = Model {
        state: if reached { DELIVERED } else { UNREACHED }.into(),
        attempts: reply.attempts + 1,
        due_time: if reached { reply.due_time } else { crate::deadline::next_morning(now, time_zone) },
        deliver_time: reached.then_some(now),
        last_note: note.to_owned(),
        ..reply.clone()
    };
    let mut active: ActiveModel = updated.clone().into();
    active = active.reset_all();
    active.seq = NotSet;
    Entity::update_many()
        .set(active)
        .filter(Column::Seq.eq(reply.seq))
        .filter(Column::State.eq(reply.state.as_str()))
        .exec(db)
        .await?;
    Ok(updated)
}

// The standard phrases (001 §9). 鹏达物流 is the company the handbook was written for.

const COMPANY: &str = "鹏达物流";

fn local_date(time: DateTime<Utc>, time_zone: Tz) -> String {
    time.with_timezone(&time_zone).format("%Y年%m月%d日").to_string()
}

fn local_time(time: DateTime<Utc>, time_zone: Tz) -> String {
    time.with_timezone(&time_zone).format("%m月%d日%H:%M").to_string()
}

/// How the customer is answered: by the channel they came in on; a visit at the counter is
/// answered by phone (000 §12: in writing or by phone).
fn answer_channel(channel: Channel) -> &'static str {
    match channel {
        Channel::Letter => "letter",
        Channel::Online => "online",
        _ => "phone",
    }
}

/// The acknowledgement on receipt (001 §9 4.1, 4.7; letters: "we have received it").
pub fn acknowledgement(row: &store::Model, time_zone: Tz) -> NewReply {
    let kind = row.kind.chinese();
    let case = &row.case_number;
    let due = local_time(row.deadline, time_zone);
    let handed_on = if row.owner == "intake" {
        String::new()
    } else {
        format!(
            "您的{kind}问题我们已转交至相关部门，他们正在查询处理当中，等处理完毕后我会第一时间通知您，非常抱歉，给您带来的不便，敬请原谅。"
        )
    };
    let (text, delivered) = match row.channel {
        Channel::Letter => (
            format!("您的来信我们已收到，受理编号{case}。{handed_on}我们将于{due}前给您答复。{COMPANY}客服中心"),
            false,
        ),
        Channel::Online => {
            (format!("您好，您的{kind}我们已收到，受理编号{case}。{handed_on}我们将于{due}前给您答复。"), false)
        }
        _ => (
            format!(
                "您好，{COMPANY}{}号为您服务。您的{kind}已受理，受理编号{case}。{handed_on}我们将于{due}前给您答复。",
                row.received_by
            ),
            true,
        ),
    };
    NewReply {
        purpose: Purpose::Acknowledgement,
        recipient: "customer",
        channel: answer_channel(row.channel).into(),
        text,
        delivered,
    }
}

/// The result on resolution (001 §9 4.6, 4.8.3). A serious or critical complaint is answered in
/// writing with the manager's approved answer (000 §12).
pub fn result(row: &store::Model, time_zone: Tz) -> NewReply {
    let kind = row.kind.chinese();
    let case = &row.case_number;
    let date = local_date(row.create_time, time_zone);
    let name = if row.contact_name.is_empty() { "客户" } else { row.contact_name.as_str() };
    let letter = |outcome: &str| {
        format!(
            "{name}女士（先生）：您好！关于您{date}的{kind}（受理编号{case}），处理结果如下：{outcome}。感谢您对我们工作的支持，如有问题请再与我们联系。{COMPANY}客服中心"
        )
    };
    let (channel, text) = match (&row.written_answer, answer_channel(row.channel)) {
        (Some(answer), _) => ("letter", letter(answer)),
        (None, "letter") => ("letter", letter(row.resolution.as_deref().unwrap_or_default())),
        (None, channel) => (
            channel,
            format!(
                "您好，我是{COMPANY}，请问您是{name}女士（先生）吗？关于您{date}的{kind}（受理编号{case}）：{}。您还需要什么帮助吗？感谢您的来电，如有问题请再与我们联系，再见。",
                row.resolution.as_deref().unwrap_or_default()
            ),
        ),
    };
    let channel = channel.to_owned();
    NewReply { purpose: Purpose::Result, recipient: "customer", channel, text, delivered: false }
}

/// The chase of an owner whose case is past its deadline (001 §8 4.7: follow up if no answer comes back).
pub fn chase(row: &store::Model, time_zone: Tz) -> NewReply {
    NewReply {
        purpose: Purpose::Chase,
        recipient: "owner",
        channel: "internal".into(),
        text: format!(
            "{}：受理编号{}（{}）已超过处理期限{}，请尽快处理并回复客服中心。",
            row.owner,
            row.case_number,
            row.category,
            local_time(row.deadline, time_zone)
        ),
        delivered: false,
    }
}

/// The notice to a supervisor of an overdue case.
pub fn overdue_notice(row: &store::Model, time_zone: Tz) -> NewReply {
    NewReply {
        purpose: Purpose::OverdueNotice,
        recipient: "supervisor",
        channel: "internal".into(),
        text: format!(
            "受理编号{}（{}，{}负责，责任单位{}）已超过处理期限{}，已催办。",
            row.case_number,
            row.category,
            row.owner,
            row.responsible_unit,
            local_time(row.deadline, time_zone)
        ),
        delivered: false,
    }
}
