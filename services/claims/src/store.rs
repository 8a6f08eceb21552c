//! The claims tables: `claims` (one row per claim, written with an optimistic version),
//! the kit's `case_steps` ([`kefu_kit::history`]: the history, with the idempotency keys of the
//! requests that made it; `claim_steps` until `claims_0002`) and
//! `claim_evidence` (photos and documents with their SHA-256). The routed complaint itself stays in
//! `routed_cases` ([`kefu_kit::routed`]); a claim's row appears with its first recorded step.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kefu_kit::{
    history,
    migrate::{Migration, SchemaStatement},
};
use kefu_proto::claims::v1 as pb;
use prost::Message;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Alias, ColumnDef, Index, Table},
};

use crate::{
    claim::{Approval, Claim, InsurerRecovery, Investigation, PartyKind, State, Step},
    compensation::{AccidentKind, Facts, Quote, Rule},
    convert,
    evidence::{self, Exceeded, NewEvidence, Usage},
};

pub mod claim_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "claims")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub case_number: String,
        /// Raised by every write; a write that finds another version lost a race.
        pub version: i32,
        pub state: String,
        pub claimant: String,
        pub goods: String,
        /// The facts as an encoded `kefu.claims.v1.QuoteCompensationRequest`.
        pub facts: Option<Vec<u8>>,
        /// The accident kind, apart, for the monthly cause analysis.
        pub accident: Option<String>,
        /// Comma-separated documents the standards still need.
        pub missing_documents: String,
        pub quote_amount_fen: Option<i64>,
        pub quote_rule: Option<String>,
        /// One reason per line.
        pub quote_reasons: Option<String>,
        pub findings: Option<String>,
        pub responsible_kind: Option<String>,
        pub responsible_id: Option<String>,
        pub share_percent: Option<i32>,
        pub offer_fen: i64,
        pub counter_offer_fen: i64,
        pub agreed_amount_fen: i64,
        pub responsible_share_fen: i64,
        pub approved_by: Option<String>,
        /// Four eyes: who made the offer and who recorded its acceptance (since claims_0003).
        pub offer_by: String,
        pub accepted_by: String,
        pub approval_reason: Option<String>,
        pub approve_time: Option<DateTimeUtc>,
        pub insurer: Option<String>,
        pub insurer_claimed_fen: i64,
        pub insurer_recovered_fen: i64,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod evidence_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "claim_evidence")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub case_number: String,
        pub request_id: Option<String>,
        pub kind: String,
        pub file_name: String,
        pub media_type: String,
        pub size_bytes: i64,
        /// Lower-case hex SHA-256 of the content.
        pub sha256: String,
        pub content: Vec<u8>,
        pub uploaded_by: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION: Migration = Migration {
    name: "claims_0001_claims",
    statements: || {
        use {claim_row::Column as C, evidence_row::Column as E};
        // The history was `claim_steps`, created here; it is the kit's `case_steps` since claims_0002.
        let steps = Alias::new("claim_steps");
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(claim_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(C::CaseNumber).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(C::Version).integer().not_null())
                    .col(ColumnDef::new(C::State).string_len(32).not_null())
                    .col(ColumnDef::new(C::Claimant).string_len(128).not_null())
                    .col(ColumnDef::new(C::Goods).text().not_null())
                    .col(ColumnDef::new(C::Facts).binary().null())
                    .col(ColumnDef::new(C::Accident).string_len(32).null())
                    .col(ColumnDef::new(C::MissingDocuments).string_len(64).not_null())
                    .col(ColumnDef::new(C::QuoteAmountFen).big_integer().null())
                    .col(ColumnDef::new(C::QuoteRule).string_len(32).null())
                    .col(ColumnDef::new(C::QuoteReasons).text().null())
                    .col(ColumnDef::new(C::Findings).text().null())
                    .col(ColumnDef::new(C::ResponsibleKind).string_len(16).null())
                    .col(ColumnDef::new(C::ResponsibleId).string_len(64).null())
                    .col(ColumnDef::new(C::SharePercent).integer().null())
                    .col(ColumnDef::new(C::OfferFen).big_integer().not_null())
                    .col(ColumnDef::new(C::CounterOfferFen).big_integer().not_null())
                    .col(ColumnDef::new(C::AgreedAmountFen).big_integer().not_null())
                    .col(ColumnDef::new(C::ResponsibleShareFen).big_integer().not_null())
                    .col(ColumnDef::new(C::ApprovedBy).string_len(128).null())
                    .col(ColumnDef::new(C::ApprovalReason).text().null())
                    .col(ColumnDef::new(C::ApproveTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(C::Insurer).string_len(128).null())
                    .col(ColumnDef::new(C::InsurerClaimedFen).big_integer().not_null())
                    .col(ColumnDef::new(C::InsurerRecoveredFen).big_integer().not_null())
                    .col(ColumnDef::new(C::UpdateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("claims_approve_time")
                    .table(claim_row::Entity)
                    .col(C::ApproveTime)
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(steps.clone())
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("seq")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Alias::new("case_number")).string_len(32).not_null())
                    .col(ColumnDef::new(Alias::new("request_id")).string_len(128).null())
                    .col(ColumnDef::new(Alias::new("action")).string_len(32).not_null())
                    .col(ColumnDef::new(Alias::new("actor")).string_len(128).not_null())
                    .col(ColumnDef::new(Alias::new("detail")).text().not_null())
                    .col(ColumnDef::new(Alias::new("time")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("claim_steps_request")
                    .table(steps.clone())
                    .col(Alias::new("case_number"))
                    .col(Alias::new("request_id"))
                    .unique()
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(evidence_row::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(E::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(E::CaseNumber).string_len(32).not_null())
                    .col(ColumnDef::new(E::RequestId).string_len(128).null())
                    .col(ColumnDef::new(E::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(E::FileName).string_len(256).not_null())
                    .col(ColumnDef::new(E::MediaType).string_len(64).not_null())
                    .col(ColumnDef::new(E::SizeBytes).big_integer().not_null())
                    .col(ColumnDef::new(E::Sha256).string_len(64).not_null())
                    .col(ColumnDef::new(E::Content).binary().not_null())
                    .col(ColumnDef::new(E::UploadedBy).string_len(128).not_null())
                    .col(ColumnDef::new(E::CreateTime).timestamp_with_time_zone().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("claim_evidence_content")
                    .table(evidence_row::Entity)
                    .col(E::CaseNumber)
                    .col(E::Sha256)
                    .unique()
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create()
                    .if_not_exists()
                    .name("claim_evidence_request")
                    .table(evidence_row::Entity)
                    .col(E::CaseNumber)
                    .col(E::RequestId)
                    .unique()
                    .to_owned(),
            ),
        ]
    },
};

/// The claims history becomes the kit's `case_steps`, which every owning department shares.
pub static MIGRATION_HISTORY: Migration = Migration {
    name: "claims_0002_case_steps",
    statements: || {
        vec![SchemaStatement::Rename(Table::rename().table(Alias::new("claim_steps"), history::Entity).to_owned())]
    },
};

/// Four eyes: who made the offer and who recorded its acceptance, so neither approves it.
pub static MIGRATION_FOUR_EYES: Migration = Migration {
    name: "claims_0003_four_eyes",
    statements: || {
        use claim_row::Column as C;
        [C::OfferBy, C::AcceptedBy]
            .into_iter()
            .map(|column| {
                SchemaStatement::Alter(
                    Table::alter()
                        .table(claim_row::Entity)
                        .add_column(ColumnDef::new(column).string_len(128).not_null().default(""))
                        .to_owned(),
                )
            })
            .collect()
    },
};

/// What a principal attached in a day is counted by an index of uploader and time (a claim's, by
/// the index of case number and content).
pub static MIGRATION_EVIDENCE_BY_UPLOADER: Migration = Migration {
    name: "claims_0004_evidence_by_uploader",
    statements: || {
        use evidence_row::Column as E;
        vec![SchemaStatement::Index(
            Index::create()
                .if_not_exists()
                .name("claim_evidence_uploader")
                .table(evidence_row::Entity)
                .col(E::UploadedBy)
                .col(E::CreateTime)
                .to_owned(),
        )]
    },
};

/// The claim with `case_number` and the version it was read at; `None` if nothing has been
/// recorded on it yet.
pub async fn load(db: &impl ConnectionTrait, case_number: &str) -> Result<Option<(Claim, i32)>, DbErr> {
    let Some(row) = claim_row::Entity::find_by_id(case_number.to_owned()).one(db).await? else {
        return Ok(None);
    };
    let version = row.version;
    Ok(Some((from_row(row)?, version)))
}

fn corrupt(what: &str) -> DbErr {
    DbErr::Custom(format!("a stored claim has an unreadable {what}"))
}

pub fn from_row(row: claim_row::Model) -> Result<Claim, DbErr> {
    let facts = match &row.facts {
        None => None,
        Some(bytes) => {
            let message = pb::QuoteCompensationRequest::decode(bytes.as_slice()).map_err(|_| corrupt("facts"))?;
            Some(Facts::parse(convert::unchecked_facts(&message), "").map_err(|_| corrupt("facts"))?)
        }
    };
    let quote = match (row.quote_amount_fen, &row.quote_rule) {
        (Some(amount_fen), Some(rule)) => Some(Quote {
            amount_fen,
            rule: Rule::parse(rule).ok_or_else(|| corrupt("rule"))?,
            reasons: row.quote_reasons.unwrap_or_default().lines().map(str::to_owned).collect(),
        }),
        _ => None,
    };
    let investigation = match (row.findings, &row.responsible_kind) {
        (Some(findings), Some(kind)) => Some(Investigation {
            findings,
            party_kind: PartyKind::parse(kind).ok_or_else(|| corrupt("responsible party"))?,
            party_id: row.responsible_id.unwrap_or_default(),
            share_percent: row.share_percent.unwrap_or_default(),
        }),
        _ => None,
    };
    let approval = match (row.approved_by, row.approve_time) {
        (Some(approved_by), Some(time)) => {
            Some(Approval { approved_by, reason: row.approval_reason.unwrap_or_default(), time })
        }
        _ => None,
    };
    let missing_documents = row
        .missing_documents
        .split(',')
        .filter_map(|document| ["shipping_list", "invoice"].into_iter().find(|known| *known == document))
        .collect();
    Ok(Claim {
        case_number: row.case_number,
        state: State::parse(&row.state).ok_or_else(|| corrupt("state"))?,
        claimant: row.claimant,
        goods: row.goods,
        facts,
        quote,
        missing_documents,
        investigation,
        offer_fen: row.offer_fen,
        counter_offer_fen: row.counter_offer_fen,
        offer_by: row.offer_by.clone(),
        accepted_by: row.accepted_by.clone(),
        agreed_amount_fen: row.agreed_amount_fen,
        responsible_share_fen: row.responsible_share_fen,
        approval,
        insurer_recovery: row.insurer.map(|insurer| InsurerRecovery {
            insurer,
            claimed_fen: row.insurer_claimed_fen,
            recovered_fen: row.insurer_recovered_fen,
        }),
    })
}

/// Writes `claim`, read at `version` (`None`: not stored yet). False if another writer got there
/// first: the caller lost a race and should read again.
pub async fn save(
    db: &impl ConnectionTrait,
    claim: &Claim,
    version: Option<i32>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let investigation = claim.investigation.as_ref();
    let row = claim_row::ActiveModel {
        case_number: Set(claim.case_number.clone()),
        version: Set(version.map_or(1, |version| version + 1)),
        state: Set(claim.state.as_str().into()),
        claimant: Set(claim.claimant.clone()),
        goods: Set(claim.goods.clone()),
        facts: Set(claim.facts.as_ref().map(|facts| convert::facts_to_proto(facts).encode_to_vec())),
        accident: Set(claim.facts.as_ref().map(|facts| facts.accident.as_str().into())),
        missing_documents: Set(claim.missing_documents.join(",")),
        quote_amount_fen: Set(claim.quote.as_ref().map(|quote| quote.amount_fen)),
        quote_rule: Set(claim.quote.as_ref().map(|quote| quote.rule.as_str().into())),
        quote_reasons: Set(claim.quote.as_ref().map(|quote| quote.reasons.join("\n"))),
        findings: Set(investigation.map(|i| i.findings.clone())),
        responsible_kind: Set(investigation.map(|i| i.party_kind.as_str().into())),
        responsible_id: Set(investigation.map(|i| i.party_id.clone())),
        share_percent: Set(investigation.map(|i| i.share_percent)),
        offer_fen: Set(claim.offer_fen),
        counter_offer_fen: Set(claim.counter_offer_fen),
        offer_by: Set(claim.offer_by.clone()),
        accepted_by: Set(claim.accepted_by.clone()),
        agreed_amount_fen: Set(claim.agreed_amount_fen),
        responsible_share_fen: Set(claim.responsible_share_fen),
        approved_by: Set(claim.approval.as_ref().map(|a| a.approved_by.clone())),
        approval_reason: Set(claim.approval.as_ref().map(|a| a.reason.clone())),
        approve_time: Set(claim.approval.as_ref().map(|a| a.time)),
        insurer: Set(claim.insurer_recovery.as_ref().map(|r| r.insurer.clone())),
        insurer_claimed_fen: Set(claim.insurer_recovery.as_ref().map_or(0, |r| r.claimed_fen)),
        insurer_recovered_fen: Set(claim.insurer_recovery.as_ref().map_or(0, |r| r.recovered_fen)),
        update_time: Set(now),
    };
    match version {
        None => match claim_row::Entity::insert(row).exec_without_returning(db).await {
            Ok(_) => Ok(true),
            Err(error) if kefu_kit::error::is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error),
        },
        Some(version) => {
            let result = claim_row::Entity::update_many()
                .set(row)
                .filter(claim_row::Column::CaseNumber.eq(claim.case_number.as_str()))
                .filter(claim_row::Column::Version.eq(version))
                .exec(db)
                .await?;
            Ok(result.rows_affected == 1)
        }
    }
}

/// Records `steps`, the first under `request_id` if given. A unique violation means a retry of
/// the same request got there first.
/// An evidence row without its content.
#[derive(Debug, Clone, FromQueryResult)]
pub struct EvidenceInfo {
    pub seq: i64,
    pub case_number: String,
    pub kind: String,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub create_time: DateTime<Utc>,
}

impl From<evidence_row::Model> for EvidenceInfo {
    fn from(row: evidence_row::Model) -> Self {
        EvidenceInfo {
            seq: row.seq,
            case_number: row.case_number,
            kind: row.kind,
            file_name: row.file_name,
            media_type: row.media_type,
            size_bytes: row.size_bytes,
            sha256: row.sha256,
            uploaded_by: row.uploaded_by,
            create_time: row.create_time,
        }
    }
}

/// The evidence of a claim, oldest first, without content.
pub async fn evidence(db: &impl ConnectionTrait, case_number: &str) -> Result<Vec<EvidenceInfo>, DbErr> {
    use evidence_row::Column as E;
    evidence_row::Entity::find()
        .select_only()
        .columns([
            E::Seq,
            E::CaseNumber,
            E::Kind,
            E::FileName,
            E::MediaType,
            E::SizeBytes,
            E::Sha256,
            E::UploadedBy,
            E::CreateTime,
        ])
        .filter(E::CaseNumber.eq(case_number))
        .order_by_asc(E::Seq)
        .into_model::<EvidenceInfo>()
        .all(db)
        .await
}

/// The evidence `seq` of the claim `case_number`, with its content.
pub async fn evidence_content(
    db: &impl ConnectionTrait,
    case_number: &str,
    seq: i64,
) -> Result<Option<evidence_row::Model>, DbErr> {
    evidence_row::Entity::find_by_id(seq).filter(evidence_row::Column::CaseNumber.eq(case_number)).one(db).await
}

/// Evidence already attached with this content or by this request.
pub async fn existing_evidence(
    db: &impl ConnectionTrait,
    case_number: &str,
    sha256: &str,
    request_id: Option<&str>,
) -> Result<Option<EvidenceInfo>, DbErr> {
    use evidence_row::Column as E;
    let mut same = sea_orm::Condition::any().add(E::Sha256.eq(sha256));
    if let Some(request_id) = request_id {
        same = same.add(E::RequestId.eq(request_id));
    }
    let row = evidence_row::Entity::find().filter(E::CaseNumber.eq(case_number)).filter(same).one(db).await?;
    Ok(row.map(EvidenceInfo::from))
}

/// The evidence `condition` selects: how many files, how many bytes.
async fn usage(db: &impl ConnectionTrait, condition: sea_orm::Condition) -> Result<Usage, DbErr> {
    let (files, bytes) = evidence_row::Entity::find()
        .select_only()
        .expr_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "files")
        .expr_as(sea_orm::sea_query::Expr::cust("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)"), "bytes")
        .filter(condition)
        .into_tuple::<(i64, i64)>()
        .one(db)
        .await?
        .unwrap_or_default();
    Ok(Usage { files: files.max(0) as u64, bytes: bytes.max(0) as u64 })
}

/// Attaches `evidence` to the claim `case_number` and records the step, in one transaction — if
/// it fits the quotas (`quota`; `day`: the company's day holding `now`), counted in the same
/// transaction, one attachment of the claim and of the uploader after another, so that uploads
/// at the same moment never pass them; else the quota it would pass, and nothing is written. The
/// same content or request attached at the same moment by another call: that one counts, and is
/// returned.
#[allow(clippy::too_many_arguments)]
pub async fn attach_evidence(
    db: &DatabaseConnection,
    case_number: &str,
    request_id: Option<&str>,
    evidence: NewEvidence,
    uploaded_by: &str,
    now: DateTime<Utc>,
    quota: &kefu_kit::limits::EvidenceQuota,
    day: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Result<EvidenceInfo, Exceeded>, DbErr> {
    let step = Step {
        action: "evidence_attached",
        actor: uploaded_by.to_owned(),
        time: now,
        detail: format!(
            "{} {} ({} bytes, sha256 {})",
            evidence.kind,
            evidence.file_name,
            evidence.content.len(),
            evidence.sha256
        ),
    };
    let mut info = EvidenceInfo {
        seq: 0,
        case_number: case_number.to_owned(),
        kind: evidence.kind,
        file_name: evidence.file_name,
        media_type: evidence.media_type,
        size_bytes: evidence.content.len() as i64,
        sha256: evidence.sha256,
        uploaded_by: uploaded_by.to_owned(),
        create_time: now,
    };
    let row = evidence_row::ActiveModel {
        case_number: Set(info.case_number.clone()),
        request_id: Set(request_id.map(str::to_owned)),
        kind: Set(info.kind.clone()),
        file_name: Set(info.file_name.clone()),
        media_type: Set(info.media_type.clone()),
        size_bytes: Set(info.size_bytes),
        sha256: Set(info.sha256.clone()),
        content: Set(evidence.content),
        uploaded_by: Set(info.uploaded_by.clone()),
        create_time: Set(now),
        ..Default::default()
    };
    let tx = db.begin().await?;
    // Always the claim's lock before the uploader's: no two attachments wait for each other.
    kefu_kit::db::serialize(&tx, &format!("claims/evidence/claim/{case_number}")).await?;
    kefu_kit::db::serialize(&tx, &format!("claims/evidence/uploader/{uploaded_by}")).await?;
    use evidence_row::Column as E;
    let claim = usage(&tx, sea_orm::Condition::all().add(E::CaseNumber.eq(case_number))).await?;
    let today = usage(
        &tx,
        sea_orm::Condition::all()
            .add(E::UploadedBy.eq(uploaded_by))
            .add(E::CreateTime.gte(day.0))
            .add(E::CreateTime.lt(day.1)),
    )
    .await?;
    if let Err(exceeded) = evidence::admit(quota, claim, today, info.size_bytes.max(0) as u64) {
        // Dropped, the transaction rolls back: nothing is written.
        return Ok(Err(exceeded));
    }
    let written = async {
        let seq = evidence_row::Entity::insert(row).exec(&tx).await?.last_insert_id;
        history::record(&tx, case_number, None, std::slice::from_ref(&step)).await?;
        Ok::<_, DbErr>(seq)
    }
    .await;
    match written {
        Ok(seq) => {
            tx.commit().await?;
            info.seq = seq;
            Ok(Ok(info))
        }
        Err(error) if kefu_kit::error::is_unique_violation(&error) => {
            drop(tx);
            existing_evidence(db, case_number, &info.sha256, request_id)
                .await?
                .map(Ok)
                .ok_or_else(|| DbErr::Custom("evidence in conflict but not found".into()))
        }
        Err(error) => Err(error),
    }
}

/// The claims of `case_numbers` that have a record, by case number.
pub async fn load_many(db: &impl ConnectionTrait, case_numbers: &[&str]) -> Result<HashMap<String, Claim>, DbErr> {
    let rows = claim_row::Entity::find()
        .filter(claim_row::Column::CaseNumber.is_in(case_numbers.iter().copied()))
        .all(db)
        .await?;
    rows.into_iter().map(|row| Ok((row.case_number.clone(), from_row(row)?))).collect()
}

/// A claim approved in a period, with the complaint's branch: one line of the monthly report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedClaim {
    pub accident: Option<AccidentKind>,
    pub branch: String,
    pub responsible: String,
    pub amount_fen: i64,
    pub responsible_share_fen: i64,
    pub insurer: Option<String>,
    pub insurer_claimed_fen: i64,
    pub insurer_recovered_fen: i64,
}

/// The claims approved in `[from, until)`.
pub async fn approved_between(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ApprovedClaim>, DbErr> {
    use claim_row::Column as C;
    let rows =
        claim_row::Entity::find().filter(C::ApproveTime.gte(from)).filter(C::ApproveTime.lt(until)).all(db).await?;
    let numbers: Vec<&str> = rows.iter().map(|row| row.case_number.as_str()).collect();
    let branches: HashMap<String, String> = kefu_kit::routed::Entity::find()
        .filter(kefu_kit::routed::Column::CaseNumber.is_in(numbers))
        .all(db)
        .await?
        .into_iter()
        .map(|case| (case.case_number, case.branch))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| ApprovedClaim {
            accident: row.accident.as_deref().and_then(AccidentKind::parse),
            branch: branches.get(&row.case_number).cloned().unwrap_or_default(),
            responsible: match (row.responsible_kind.as_deref(), row.responsible_id.as_deref()) {
                (Some(kind), Some("") | None) => kind.to_owned(),
                (Some(kind), Some(id)) => format!("{kind}:{id}"),
                (None, _) => String::new(),
            },
            amount_fen: row.agreed_amount_fen,
            responsible_share_fen: row.responsible_share_fen,
            insurer: row.insurer,
            insurer_claimed_fen: row.insurer_claimed_fen,
            insurer_recovered_fen: row.insurer_recovered_fen,
        })
        .collect())
}

/// How many claims were accepted from intake in `[from, until)`.
pub async fn opened_between(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use kefu_kit::routed::{Column, Entity};
    Entity::find().filter(Column::AcceptTime.gte(from)).filter(Column::AcceptTime.lt(until)).count(db).await
}
