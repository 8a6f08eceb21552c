//! The ledger (账): double entry in integer fen. Every movement is one entry whose postings sum to
//! zero (debits positive, credits negative); entries are never edited. Each entry is keyed by its
//! origin (`claims/{case_number}/payout`, …), so the same cause posts exactly once however often
//! its event arrives — on top of the inbox, which applies each event id once.
//!
//! Accounts are named `{kind}:{id}`: `company:claims_expense`, `customer:complaints/{case_number}`
//! (what the company owes the customer), and the responsible party (`person:B042`,
//! `department:operations`, `branch:SH01`), who owes the company its share. Inspection's fines
//! (`inspection/cases/{case_number}/penalties/{n}`) charge the party to `company:fines_income`.
//! What claims records against an insurer makes the insurer owe it (`insurer:{id}`, insurers
//! receivable) until it is recovered (`company:insurance_received`).

use chrono::{DateTime, Utc};
use kefu_kit::{
    db::starting_with,
    error,
    migrate::{Migration, SchemaStatement},
    money,
    time::to_micros,
};
use kefu_proto::events::v1::{ClaimApproved, Event, FineImposed, InsurerRecoveryRecorded};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Alias, ColumnDef, Expr, Func, Index, OnConflict, Query, Table},
};
use tonic::Status;

pub const CLAIMS_EXPENSE: &str = "company:claims_expense";
pub const FINES_INCOME: &str = "company:fines_income";
/// What insurers have paid towards claims.
pub const INSURANCE_RECEIVED: &str = "company:insurance_received";

pub mod entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_entries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub origin: String,
        pub kind: String,
        pub memo: String,
        pub event_id: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod posting {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_postings")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub entry_seq: i64,
        pub account: String,
        pub amount_fen: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION: Migration = Migration {
    name: "settlement_0001_ledger",
    statements: || {
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(entry::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(entry::Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(entry::Column::Origin).string_len(160).not_null().unique_key())
                    .col(ColumnDef::new(entry::Column::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(entry::Column::Memo).text().not_null())
                    .col(ColumnDef::new(entry::Column::EventId).string_len(64).not_null())
                    .col(ColumnDef::new(entry::Column::CreateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(posting::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(posting::Column::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(posting::Column::EntrySeq).big_integer().not_null())
                    .col(ColumnDef::new(posting::Column::Account).string_len(160).not_null())
                    .col(ColumnDef::new(posting::Column::AmountFen).big_integer().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("ledger_postings_entry")
                    .table(posting::Entity)
                    .col(posting::Column::EntrySeq)
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("ledger_postings_account")
                    .table(posting::Entity)
                    .col(posting::Column::Account)
                    .to_owned(),
            ),
        ]
    },
};

/// A balanced movement, before it is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub origin: String,
    pub kind: &'static str,
    pub memo: String,
    pub postings: Vec<(String, i64)>,
}

impl NewEntry {
    /// `amount_fen` from `credit` to `debit`: the debit account gains a claim on the credit account.
    pub fn transfer(
        origin: String,
        kind: &'static str,
        memo: String,
        debit: &str,
        credit: &str,
        amount_fen: i64,
    ) -> Self {
        NewEntry {
            origin,
            kind,
            memo,
            postings: vec![(debit.to_owned(), amount_fen), (credit.to_owned(), -amount_fen)],
        }
    }

    /// The money the entry moves: the sum of its debits.
    pub fn debits(&self) -> i64 {
        self.postings.iter().map(|(_, amount)| *amount).filter(|amount| *amount > 0).sum()
    }

    pub fn is_balanced(&self) -> bool {
        self.postings.iter().map(|(_, amount)| i128::from(*amount)).sum::<i128>() == 0
    }
}

/// The entries an approved claim makes: the payout owed to the customer and, when someone is
/// responsible for a share, the deduction they owe.
pub fn claim_entries(approved: &ClaimApproved) -> Result<Vec<NewEntry>, Status> {
    let field = |name: &str| format!("event.claim_approved.{name}");
    if approved.claim.is_empty() || approved.complaint.is_empty() {
        return Err(error::invalid_field(&field("claim"), "the claim and the complaint are required"));
    }
    if !money::is_amount(approved.amount_fen) {
        return Err(error::invalid_field(
            &field("amount_fen"),
            format!("a payout is more than 0 and at most {} fen", money::MAX_FEN),
        ));
    }
    if !(0..=approved.amount_fen).contains(&approved.responsible_share_fen) {
        return Err(error::invalid_field(&field("responsible_share_fen"), "between 0 and the payout"));
    }
    let customer = format!("customer:{}", approved.complaint);
    let mut entries = vec![NewEntry::transfer(
        format!("{}/payout", approved.claim),
        "claim_payout",
        format!("compensation for {} (waybill {})", approved.claim, approved.waybill_number),
        CLAIMS_EXPENSE,
        &customer,
        approved.amount_fen,
    )];
    if approved.responsible_share_fen > 0 {
        if approved.responsible_kind.is_empty()
            || approved.responsible_kind == "company"
            || approved.responsible_id.is_empty()
        {
            return Err(error::invalid_field(&field("responsible_id"), "a deduction needs the responsible party"));
        }
        let party = format!("{}:{}", approved.responsible_kind, approved.responsible_id);
        entries.push(NewEntry::transfer(
            format!("{}/deduction", approved.claim),
            "claim_deduction",
            format!("responsible party's share of {}", approved.claim),
            &party,
            CLAIMS_EXPENSE,
            approved.responsible_share_fen,
        ));
    }
    Ok(entries)
}

/// The deduction an inspection fine makes: the party owes the company the fine.
pub fn fine_entry(fine: &FineImposed) -> Result<NewEntry, Status> {
    let field = |name: &str| format!("event.fine_imposed.{name}");
    if !fine.penalty.starts_with("cases/") || !fine.penalty.contains("/penalties/") {
        return Err(error::invalid_field(&field("penalty"), "expected cases/{case_number}/penalties/{n}"));
    }
    if !matches!(fine.party_kind.as_str(), "person" | "department" | "branch") || fine.party_id.is_empty() {
        return Err(error::invalid_field(&field("party_id"), "a fine names a person, department or branch"));
    }
    if !money::is_amount(fine.amount_fen) {
        return Err(error::invalid_field(
            &field("amount_fen"),
            format!("a fine is more than 0 and at most {} fen", money::MAX_FEN),
        ));
    }
    Ok(NewEntry::transfer(
        format!("inspection/{}", fine.penalty),
        "fine",
        format!("fine for {} ({})", fine.violation, fine.penalty),
        &format!("{}:{}", fine.party_kind, fine.party_id),
        FINES_INCOME,
        fine.amount_fen,
    ))
}

/// What the ledger holds for a claim's insurer part: the insurer owes what is claimed and not yet
/// recovered (insurers receivable), the claim's expense is reduced by what is claimed, and what was
/// recovered has been received.
fn insurer_footprint(insurer: &str, claimed_fen: i64, recovered_fen: i64) -> std::collections::BTreeMap<String, i64> {
    let mut balances = std::collections::BTreeMap::new();
    if !insurer.is_empty() {
        balances.insert(format!("insurer:{insurer}"), claimed_fen - recovered_fen);
        *balances.entry(CLAIMS_EXPENSE.to_owned()).or_insert(0) -= claimed_fen;
        *balances.entry(INSURANCE_RECEIVED.to_owned()).or_insert(0) += recovered_fen;
    }
    balances
}

/// The entry a change of a claim's insurer part makes: the difference between its footprint after
/// and before, under the origin `{claim}/insurer/{event id}` (each change is its own event); `None`
/// if nothing moves.
pub fn insurer_entry(recorded: &InsurerRecoveryRecorded, event_id: &str) -> Result<Option<NewEntry>, Status> {
    let field = |name: &str| format!("event.insurer_recovery_recorded.{name}");
    if !recorded.claim.starts_with("claims/") {
        return Err(error::invalid_field(&field("claim"), "expected claims/{case_number}"));
    }
    if recorded.insurer.is_empty() {
        return Err(error::invalid_field(&field("insurer"), "required"));
    }
    for (name, claimed, recovered) in [
        ("claimed_fen", recorded.claimed_fen, recorded.recovered_fen),
        ("before_claimed_fen", recorded.before_claimed_fen, recorded.before_recovered_fen),
    ] {
        if claimed < 0 || recovered < 0 || recovered > claimed || claimed > money::MAX_FEN {
            return Err(error::invalid_field(
                &field(name),
                format!("at least 0, no less than what was recovered, at most {} fen", money::MAX_FEN),
            ));
        }
    }
    let before =
        insurer_footprint(&recorded.before_insurer, recorded.before_claimed_fen, recorded.before_recovered_fen);
    let after = insurer_footprint(&recorded.insurer, recorded.claimed_fen, recorded.recovered_fen);
    let postings = crate::waybill::difference(&before, &after);
    Ok((!postings.is_empty()).then(|| NewEntry {
        origin: format!("{}/insurer/{event_id}", recorded.claim),
        kind: "insurer_recovery",
        memo: format!(
            "{}: claimed from {} {}, recovered {}",
            recorded.claim,
            recorded.insurer,
            crate::waybill::yuan(recorded.claimed_fen),
            crate::waybill::yuan(recorded.recovered_fen)
        ),
        postings,
    }))
}

/// Posts `entry` within `db`'s transaction, once per origin: false if its origin was posted before.
pub async fn post(
    db: &impl ConnectionTrait,
    entry: &NewEntry,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    debug_assert!(entry.is_balanced());
    let row = entry::ActiveModel {
        origin: Set(entry.origin.clone()),
        kind: Set(entry.kind.into()),
        memo: Set(entry.memo.clone()),
        event_id: Set(event_id.into()),
        create_time: Set(now),
        ..Default::default()
    };
    let inserted = entry::Entity::insert(row)
        .on_conflict(OnConflict::column(entry::Column::Origin).do_nothing().to_owned())
        .exec(db)
        .await;
    let entry_seq = match inserted {
        Ok(result) => result.last_insert_id,
        Err(DbErr::RecordNotInserted) => return Ok(false),
        Err(error) => return Err(error),
    };
    let postings = entry.postings.iter().map(|(account, amount_fen)| posting::ActiveModel {
        entry_seq: Set(entry_seq),
        account: Set(account.clone()),
        amount_fen: Set(*amount_fen),
        ..Default::default()
    });
    kefu_kit::statements::insert_many(db, postings).await?;
    Ok(true)
}

/// Applies the entries `event` makes, each once, and keeps a receipt of each for reconciliation:
/// the event, the origin and the money it asked for. An event naming an origin already posted with
/// different money changes nothing and is reported by [`crate::reconcile`].
pub async fn apply(
    db: &impl ConnectionTrait,
    event: &Event,
    entries: &[NewEntry],
    now: DateTime<Utc>,
) -> Result<(), Status> {
    let now = to_micros(now);
    let mut receipts = Vec::with_capacity(entries.len());
    for entry in entries {
        let posted = post(db, entry, &event.id, now).await.map_err(|e| error::from_db("posting to the ledger", e))?;
        if posted {
            tracing::info!(origin = %entry.origin, kind = entry.kind, "posted");
        } else {
            tracing::info!(origin = %entry.origin, "already posted: nothing moves twice");
        }
        receipts.push(crate::store::receipt_row(&event.id, &entry.origin, entry.debits(), now));
    }
    crate::store::add_receipts(db, receipts).await.map_err(|e| error::from_db("keeping receipts", e))
}

/// One page of entries, oldest first, whose origin starts with `origin_prefix`, after `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    origin_prefix: &str,
    page_size: u64,
    after: Option<i64>,
) -> Result<(Vec<(entry::Model, Vec<posting::Model>)>, Option<i64>), DbErr> {
    let mut query = entry::Entity::find().order_by_asc(entry::Column::Seq).limit(page_size + 1);
    if let Some(after) = after {
        query = query.filter(entry::Column::Seq.gt(after));
    }
    if !origin_prefix.is_empty() {
        query = query.filter(entry::Column::Origin.like(starting_with(origin_prefix)));
    }
    let (entries, next) = kefu_kit::paging::take_page(query.all(db).await?, page_size, |entry| entry.seq);
    let seqs: Vec<i64> = entries.iter().map(|entry| entry.seq).collect();
    let mut postings: std::collections::HashMap<i64, Vec<posting::Model>> = std::collections::HashMap::new();
    for posting in posting::Entity::find()
        .filter(posting::Column::EntrySeq.is_in(seqs))
        .order_by_asc(posting::Column::Seq)
        .all(db)
        .await?
    {
        postings.entry(posting.entry_seq).or_default().push(posting);
    }
    let entries = entries
        .into_iter()
        .map(|entry| {
            let mine = postings.remove(&entry.seq).unwrap_or_default();
            (entry, mine)
        })
        .collect();
    Ok((entries, next))
}

/// One entry with its postings.
pub async fn get(db: &impl ConnectionTrait, seq: i64) -> Result<Option<(entry::Model, Vec<posting::Model>)>, DbErr> {
    let Some(found) = entry::Entity::find_by_id(seq).one(db).await? else { return Ok(None) };
    let postings = posting::Entity::find()
        .filter(posting::Column::EntrySeq.eq(seq))
        .order_by_asc(posting::Column::Seq)
        .all(db)
        .await?;
    Ok(Some((found, postings)))
}

/// The entry posted under `origin`, if any.
pub async fn by_origin(
    db: &impl ConnectionTrait,
    origin: &str,
) -> Result<Option<(entry::Model, Vec<posting::Model>)>, DbErr> {
    match entry::Entity::find().filter(entry::Column::Origin.eq(origin)).one(db).await? {
        Some(found) => get(db, found.seq).await,
        None => Ok(None),
    }
}

/// The entry that moves `original`'s money back: the same postings, negated, under the origin
/// `ledgerEntries/{seq}/reversal`, so an entry is reversed at most once.
pub fn reversal(
    original: &entry::Model,
    postings: &[posting::Model],
    reason: &str,
    asked_by: &str,
    by: &str,
) -> NewEntry {
    NewEntry {
        origin: reversal_origin(original.seq),
        kind: "reversal",
        memo: format!(
            "reversal of ledgerEntries/{} ({}) asked by {asked_by}, by {by}: {reason}",
            original.seq, original.origin
        ),
        postings: postings.iter().map(|posting| (posting.account.clone(), -posting.amount_fen)).collect(),
    }
}

/// The origin of the reversal of entry `seq`: one reversal per entry, ever.
pub fn reversal_origin(seq: i64) -> String {
    format!("ledgerEntries/{seq}/reversal")
}

/// A reversal someone asked for and no one has decided yet: four eyes, the one who asked does not
/// reverse.
pub mod reversal_request {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reversal_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub entry_seq: i64,
        pub requested_by: String,
        pub reason: String,
        pub request_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION_REVERSAL_REQUESTS: Migration = Migration {
    name: "settlement_0003_reversal_requests",
    statements: || {
        use reversal_request::{Column as C, Entity};
        vec![SchemaStatement::Table(
            Table::create()
                .table(Entity)
                .if_not_exists()
                .col(ColumnDef::new(C::EntrySeq).big_integer().not_null().primary_key())
                .col(ColumnDef::new(C::RequestedBy).string_len(128).not_null())
                .col(ColumnDef::new(C::Reason).text().not_null())
                .col(ColumnDef::new(C::RequestTime).timestamp_with_time_zone().not_null())
                .to_owned(),
        )]
    },
};

/// Entries whose `create_time` lies in `[from, until)`, as a subquery of their sequence numbers.
fn entries_between(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> sea_orm::sea_query::SelectStatement {
    let mut query = Query::select();
    query.column(entry::Column::Seq).from(entry::Entity);
    if let Some(from) = from {
        query.and_where(Expr::col(entry::Column::CreateTime).gte(from));
    }
    if let Some(until) = until {
        query.and_where(Expr::col(entry::Column::CreateTime).lt(until));
    }
    query.to_owned()
}

/// Every account's balance after the entries made before `until` (all, if none), for accounts
/// starting with `prefix`; accounts at zero are left out.
pub async fn balances(
    db: &impl ConnectionTrait,
    until: Option<DateTime<Utc>>,
    prefix: &str,
) -> Result<Vec<(String, i64)>, DbErr> {
    let sum = Expr::expr(Func::sum(Expr::col(posting::Column::AmountFen))).cast_as(Alias::new("BIGINT"));
    let mut query = posting::Entity::find()
        .select_only()
        .column(posting::Column::Account)
        .column_as(sum, "balance")
        .group_by(posting::Column::Account)
        .order_by_asc(posting::Column::Account);
    if until.is_some() {
        query = query.filter(posting::Column::EntrySeq.in_subquery(entries_between(None, until)));
    }
    if !prefix.is_empty() {
        query = query.filter(posting::Column::Account.like(starting_with(prefix)));
    }
    let rows: Vec<(String, i64)> = query.into_tuple().all(db).await?;
    Ok(rows.into_iter().filter(|(_, balance)| *balance != 0).collect())
}

/// One account's postings in `[from, until)` with their entries, oldest first.
pub async fn account_postings(
    db: &impl ConnectionTrait,
    account: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(entry::Model, i64)>, DbErr> {
    let postings = posting::Entity::find()
        .filter(posting::Column::Account.eq(account))
        .filter(posting::Column::EntrySeq.in_subquery(entries_between(Some(from), Some(until))))
        .order_by_asc(posting::Column::EntrySeq)
        .all(db)
        .await?;
    let seqs: Vec<i64> = postings.iter().map(|posting| posting.entry_seq).collect();
    let entries: std::collections::HashMap<i64, entry::Model> = entry::Entity::find()
        .filter(entry::Column::Seq.is_in(seqs))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.seq, e))
        .collect();
    Ok(postings
        .into_iter()
        .filter_map(|posting| entries.get(&posting.entry_seq).map(|entry| (entry.clone(), posting.amount_fen)))
        .collect())
}

/// The entries made in `[from, until)` (unbounded where `None`), oldest first, each with the money
/// it moved (the sum of its debits).
pub async fn moved_between(
    db: &impl ConnectionTrait,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<(entry::Model, i64)>, DbErr> {
    let mut entries = entry::Entity::find().order_by_asc(entry::Column::Seq);
    let mut debits = posting::Entity::find().filter(posting::Column::AmountFen.gt(0));
    if let Some(from) = from {
        entries = entries.filter(entry::Column::CreateTime.gte(from));
    }
    if let Some(until) = until {
        entries = entries.filter(entry::Column::CreateTime.lt(until));
    }
    if from.is_some() || until.is_some() {
        debits = debits.filter(posting::Column::EntrySeq.in_subquery(entries_between(from, until)));
    }
    let mut moved: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for posting in debits.all(db).await? {
        *moved.entry(posting.entry_seq).or_default() += posting.amount_fen;
    }
    Ok(entries
        .all(db)
        .await?
        .into_iter()
        .map(|entry| {
            let fen = moved.get(&entry.seq).copied().unwrap_or_default();
            (entry, fen)
        })
        .collect())
}

/// Every entry whose postings do not sum to zero, by sequence number.
pub async fn unbalanced(db: &impl ConnectionTrait) -> Result<Vec<i64>, DbErr> {
    let sum = Expr::expr(Func::sum(Expr::col(posting::Column::AmountFen))).cast_as(Alias::new("BIGINT"));
    let rows: Vec<(i64, i64)> = posting::Entity::find()
        .select_only()
        .column(posting::Column::EntrySeq)
        .column_as(sum, "total")
        .group_by(posting::Column::EntrySeq)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().filter(|(_, total)| *total != 0).map(|(seq, _)| seq).collect())
}

/// Every posting of entries whose origin starts with `prefix`: (origin, account, fen).
pub async fn postings_under(db: &impl ConnectionTrait, prefix: &str) -> Result<Vec<(String, String, i64)>, DbErr> {
    let entries: std::collections::HashMap<i64, String> = entry::Entity::find()
        .filter(entry::Column::Origin.like(starting_with(prefix)))
        .all(db)
        .await?
        .into_iter()
        .map(|entry| (entry.seq, entry.origin))
        .collect();
    let mut query = Query::select();
    query
        .column(entry::Column::Seq)
        .from(entry::Entity)
        .and_where(Expr::col(entry::Column::Origin).like(starting_with(prefix)));
    let postings =
        posting::Entity::find().filter(posting::Column::EntrySeq.in_subquery(query.to_owned())).all(db).await?;
    Ok(postings
        .into_iter()
        .filter_map(|posting| {
            entries.get(&posting.entry_seq).map(|origin| (origin.clone(), posting.account, posting.amount_fen))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(share: i64) -> ClaimApproved {
        ClaimApproved {
            claim: "claims/20261122-7K3M9Q".into(),
            complaint: "complaints/20261122-7K3M9Q".into(),
            waybill_number: "WB1".into(),
            branch: "SH01".into(),
            amount_fen: 50_000,
            responsible_kind: "person".into(),
            responsible_id: "B042".into(),
            responsible_share_fen: share,
            approve_time: None,
        }
    }

    #[test]
    fn an_approved_claim_pays_the_customer_and_charges_the_responsible_share() {
        let entries = claim_entries(&approved(15_000)).expect("valid");
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(NewEntry::is_balanced));
        assert_eq!(entries[0].origin, "claims/20261122-7K3M9Q/payout");
        assert_eq!(
            entries[0].postings,
            [(CLAIMS_EXPENSE.to_owned(), 50_000), ("customer:complaints/20261122-7K3M9Q".to_owned(), -50_000)]
        );
        assert_eq!(entries[1].postings, [("person:B042".to_owned(), 15_000), (CLAIMS_EXPENSE.to_owned(), -15_000)]);
        assert_eq!(claim_entries(&approved(0)).expect("valid").len(), 1, "no share, no deduction");
    }

    #[test]
    fn a_fine_charges_the_party_once_per_penalty() {
        let fine = FineImposed {
            penalty: "cases/20261122-7K3M9Q/penalties/1".into(),
            party_kind: "person".into(),
            party_id: "B042".into(),
            violation: "attitude_or_inefficiency".into(),
            amount_fen: 8_000,
            decide_time: None,
        };
        let entry = fine_entry(&fine).expect("valid");
        assert_eq!(entry.origin, "inspection/cases/20261122-7K3M9Q/penalties/1");
        assert_eq!(entry.postings, [("person:B042".to_owned(), 8_000), (FINES_INCOME.to_owned(), -8_000)]);
        assert!(fine_entry(&FineImposed { amount_fen: 0, ..fine.clone() }).is_err());
        assert!(fine_entry(&FineImposed { amount_fen: money::MAX_FEN + 1, ..fine.clone() }).is_err(), "bounded");
        assert!(fine_entry(&FineImposed { party_kind: "company".into(), ..fine.clone() }).is_err());
        assert!(fine_entry(&FineImposed { penalty: "x".into(), ..fine }).is_err());
    }

    #[test]
    fn an_insurer_owes_what_is_claimed_until_it_pays() {
        let mut recorded = InsurerRecoveryRecorded {
            claim: "claims/20261122-7K3M9Q".into(),
            insurer: "PICC".into(),
            claimed_fen: 80_000,
            recovered_fen: 30_000,
            ..Default::default()
        };
        let entry = insurer_entry(&recorded, "e1").expect("valid").expect("money moves");
        assert_eq!(entry.origin, "claims/20261122-7K3M9Q/insurer/e1");
        assert_eq!(
            entry.postings,
            [
                (CLAIMS_EXPENSE.to_owned(), -80_000),
                (INSURANCE_RECEIVED.to_owned(), 30_000),
                ("insurer:PICC".to_owned(), 50_000)
            ]
        );
        (recorded.before_insurer, recorded.before_claimed_fen, recorded.before_recovered_fen) =
            ("PICC".into(), 80_000, 30_000);
        recorded.recovered_fen = 80_000;
        let paid = insurer_entry(&recorded, "e2").expect("valid").expect("money moves");
        assert_eq!(paid.postings, [(INSURANCE_RECEIVED.to_owned(), 50_000), ("insurer:PICC".to_owned(), -50_000)]);
        recorded.before_recovered_fen = 80_000;
        assert_eq!(insurer_entry(&recorded, "e3").expect("valid"), None, "nothing changed, nothing moves");
        recorded.recovered_fen = 90_000;
        assert!(insurer_entry(&recorded, "e4").is_err(), "more recovered than claimed");
    }

    #[test]
    fn impossible_payouts_are_refused() {
        assert!(claim_entries(&ClaimApproved { amount_fen: 0, ..approved(0) }).is_err());
        assert!(claim_entries(&ClaimApproved { amount_fen: i64::MAX, ..approved(0) }).is_err(), "bounded");
        assert!(claim_entries(&approved(50_001)).is_err());
        assert!(claim_entries(&ClaimApproved { responsible_id: String::new(), ..approved(1) }).is_err());
    }
}
