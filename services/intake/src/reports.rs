//! The service center's reports (`domain.md` §10): the weekly complaint summary by kind, category,
//! owner department and branch (投诉汇总表), the weekly follow-up visit summary, and the monthly
//! statistics of refused and mis-delivered cargo with their causes (拒收货、错送货统计, `001 §3.3`).
//! Each is computed from the records of its period and comes with its CSV.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kefu_kit::report::csv_field;
use kefu_proto::intake::v1::{self as pb, ChangeRequest};
use prost::Message;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::{
    domain::{Kind, State},
    store, visits,
};

/// What a cargo exception's cause is while nobody has established it.
pub const CAUSE_UNKNOWN: &str = "not yet established";

async fn registered_in(
    db: &impl ConnectionTrait,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<store::Model>, DbErr> {
    store::Entity::find()
        .filter(store::Column::CreateTime.gte(start))
        .filter(store::Column::CreateTime.lt(end))
        .all(db)
        .await
}

fn csv(header: &str, rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from(header);
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// The week's cases by kind, category, owner and branch; duplicates counted apart.
pub async fn complaint_summary(
    db: &impl ConnectionTrait,
    week: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<pb::ComplaintSummary, DbErr> {
    let cases = registered_in(db, start, end).await?;
    let mut groups: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = Kind::ALL.iter().map(|kind| (kind.as_str().to_owned(), 0)).collect();
    let mut duplicates = 0;
    for case in cases {
        if case.state == State::Duplicate {
            duplicates += 1;
            continue;
        }
        *totals.entry(case.kind.to_string()).or_default() += 1;
        *groups.entry((case.kind.to_string(), case.category, case.owner, case.branch)).or_default() += 1;
    }
    let rows: Vec<pb::SummaryRow> = groups
        .into_iter()
        .map(|((kind, category, owner, branch), count)| pb::SummaryRow { kind, category, owner, branch, count })
        .collect();
    let csv = csv(
        "kind,category,owner,branch,count",
        rows.iter().map(|row| {
            vec![row.kind.clone(), row.category.clone(), row.owner.clone(), row.branch.clone(), row.count.to_string()]
        }),
    );
    Ok(pb::ComplaintSummary { week: week.into(), rows, totals: totals.into_iter().collect(), duplicates, csv })
}

/// The week's visits: planned, recorded, signed, and satisfaction counted on the five-point scale.
pub async fn visit_summary(
    db: &impl ConnectionTrait,
    week: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<pb::VisitSummary, DbErr> {
    let visits = visits::in_period(db, start, end).await?;
    let scale = || visits::SATISFACTION.iter().map(|level| ((*level).to_owned(), 0)).collect::<BTreeMap<String, i64>>();
    let (mut service, mut product) = (scale(), scale());
    let mut summary = pb::VisitSummary { week: week.into(), ..Default::default() };
    for visit in &visits {
        let made = visit.visit_time.is_some_and(|time| time >= start && time < end);
        if !made {
            summary.planned += 1;
            continue;
        }
        summary.recorded += 1;
        summary.signed += i64::from(visit.state == visits::SIGNED);
        summary.unsatisfied += i64::from(visits::unsatisfied(&visit.service_satisfaction));
        *service.entry(visit.service_satisfaction.clone()).or_default() += 1;
        *product.entry(visit.product_satisfaction.clone()).or_default() += 1;
    }
    let mut lines = vec![
        vec!["planned".to_owned(), String::new(), summary.planned.to_string()],
        vec!["recorded".to_owned(), String::new(), summary.recorded.to_string()],
        vec!["signed".to_owned(), String::new(), summary.signed.to_string()],
        vec!["unsatisfied".to_owned(), String::new(), summary.unsatisfied.to_string()],
    ];
    for level in visits::SATISFACTION {
        let count = |counts: &BTreeMap<String, i64>| counts.get(level).copied().unwrap_or_default().to_string();
        lines.push(vec!["service".into(), level.into(), count(&service)]);
        lines.push(vec!["product".into(), level.into(), count(&product)]);
    }
    summary.csv = csv("measure,level,count", lines);
    summary.service = service.into_iter().collect();
    summary.product = product.into_iter().collect();
    Ok(summary)
}

/// The month's refused cargo (returns of unclaimed or refused cargo to the shipper) and
/// mis-delivered cargo (mis_sort complaints), by cause.
pub async fn cargo_exceptions(
    db: &impl ConnectionTrait,
    month: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<pb::CargoExceptionReport, DbErr> {
    let mut groups: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
    for case in registered_in(db, start, end).await? {
        if case.state == State::Duplicate {
            continue;
        }
        let kind = if case.kind == Kind::ChangeRequest {
            let returned = case
                .change_request
                .as_deref()
                .and_then(|bytes| ChangeRequest::decode(bytes).ok())
                .is_some_and(|change| change.return_unclaimed);
            if !returned {
                continue;
            }
            "refused"
        } else if case.kind == Kind::Complaint && case.category == "mis_sort" {
            "mis_delivered"
        } else {
            continue;
        };
        // The cause found, else the outcome that states it, else not yet known.
        let cause = [Some(case.cause.as_str()), case.resolution.as_deref()]
            .into_iter()
            .flatten()
            .find(|text| !text.trim().is_empty())
            .unwrap_or(CAUSE_UNKNOWN)
            .to_owned();
        groups.entry((kind, cause)).or_default().push(case.waybill_number);
    }
    let rows: Vec<pb::CargoExceptionRow> = groups
        .into_iter()
        .map(|((kind, cause), mut waybills)| {
            waybills.sort();
            pb::CargoExceptionRow { kind: kind.into(), cause, count: waybills.len() as i64, waybills }
        })
        .collect();
    let csv = csv(
        "kind,cause,count,waybills",
        rows.iter().map(|row| vec![row.kind.clone(), row.cause.clone(), row.count.to_string(), row.waybills.join(" ")]),
    );
    Ok(pb::CargoExceptionReport { month: month.into(), rows, csv })
}
