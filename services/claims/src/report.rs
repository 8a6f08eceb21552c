//! The monthly claims report and accident-cause analysis (理赔报表及事故原因分析, `002 理赔 6`):
//! the claims approved in a month of the company's calendar, counted and summed by cause, by
//! branch, by responsible party and by insurer. Every breakdown adds up to the totals.

use std::collections::BTreeMap;

pub use kefu_kit::report::Month;
use kefu_kit::report::csv_field;

use crate::store::ApprovedClaim;

/// The counts and sums of one group of claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub claims: i64,
    pub amount_fen: i64,
    pub responsible_share_fen: i64,
    pub insurer_claimed_fen: i64,
    pub insurer_recovered_fen: i64,
}

impl Totals {
    fn add(&mut self, claim: &ApprovedClaim) {
        self.claims += 1;
        self.amount_fen += claim.amount_fen;
        self.responsible_share_fen += claim.responsible_share_fen;
        self.insurer_claimed_fen += claim.insurer_claimed_fen;
        self.insurer_recovered_fen += claim.insurer_recovered_fen;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub month: String,
    pub claims_opened: i64,
    pub total: Totals,
    /// (dimension, key → totals), in the order of [`DIMENSIONS`].
    pub breakdowns: Vec<(&'static str, BTreeMap<String, Totals>)>,
}

/// The breakdowns, as the CSV's `dimension` column names them.
pub const DIMENSIONS: [&str; 4] = ["cause", "branch", "responsible_party", "insurer"];

pub fn build(month: &Month, claims_opened: i64, approved: &[ApprovedClaim]) -> Report {
    let mut total = Totals::default();
    let mut breakdowns: Vec<(&'static str, BTreeMap<String, Totals>)> =
        DIMENSIONS.iter().map(|dimension| (*dimension, BTreeMap::new())).collect();
    for claim in approved {
        total.add(claim);
        let keys = [
            claim.accident.map_or("unrecorded", |accident| accident.as_str()).to_owned(),
            claim.branch.clone(),
            if claim.responsible.is_empty() { "unrecorded".into() } else { claim.responsible.clone() },
            claim.insurer.clone().unwrap_or_else(|| "none".into()),
        ];
        for ((_, groups), key) in breakdowns.iter_mut().zip(keys) {
            groups.entry(key).or_default().add(claim);
        }
    }
    Report { month: month.label.clone(), claims_opened, total, breakdowns }
}

/// The report as CSV: a header, a `total` line, then one line per group of each breakdown.
pub fn to_csv(report: &Report) -> String {
    let mut csv = String::from(
        "month,dimension,key,claims,amount_fen,responsible_share_fen,insurer_claimed_fen,insurer_recovered_fen\n",
    );
    let mut line = |dimension: &str, key: &str, totals: &Totals| {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            report.month,
            dimension,
            csv_field(key),
            totals.claims,
            totals.amount_fen,
            totals.responsible_share_fen,
            totals.insurer_claimed_fen,
            totals.insurer_recovered_fen
        ));
    };
    line("total", "approved", &report.total);
    line("total", "opened", &Totals { claims: report.claims_opened, ..Totals::default() });
    for (dimension, groups) in &report.breakdowns {
        for (key, totals) in groups {
            line(dimension, key, totals);
        }
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compensation::AccidentKind;

    fn claim(accident: AccidentKind, branch: &str, amount_fen: i64, insurer: Option<&str>) -> ApprovedClaim {
        ApprovedClaim {
            accident: Some(accident),
            branch: branch.into(),
            responsible: format!("branch:{branch}"),
            amount_fen,
            responsible_share_fen: amount_fen / 2,
            insurer: insurer.map(str::to_owned),
            insurer_claimed_fen: if insurer.is_some() { amount_fen } else { 0 },
            insurer_recovered_fen: 0,
        }
    }

    #[test]
    fn every_breakdown_adds_up_to_the_total() {
        let month = Month::parse("2026-11", chrono_tz::Asia::Shanghai).expect("valid");
        let claims = [
            claim(AccidentKind::TransitDamage, "SH01", 10_000, None),
            claim(AccidentKind::TransitDamage, "BJ02", 20_001, None),
            claim(AccidentKind::TrafficAccident, "SH01", 30_000, Some("PICC")),
        ];
        let report = build(&month, 5, &claims);
        assert_eq!(report.total.claims, 3);
        assert_eq!(report.total.amount_fen, 60_001);
        for (dimension, groups) in &report.breakdowns {
            let claims: i64 = groups.values().map(|totals| totals.claims).sum();
            let amount: i64 = groups.values().map(|totals| totals.amount_fen).sum();
            assert_eq!((claims, amount), (3, 60_001), "{dimension}");
        }
        let causes = &report.breakdowns[0].1;
        assert_eq!(causes.get("transit_damage").map(|totals| totals.amount_fen), Some(30_001));
        let csv = to_csv(&report);
        assert!(csv.starts_with("month,dimension,key,claims,amount_fen,"), "{csv}");
        assert!(csv.contains("2026-11,total,approved,3,60001,30000,30000,0\n"), "{csv}");
        assert!(csv.contains("2026-11,insurer,PICC,1,30000,15000,30000,0\n"), "{csv}");
        assert_eq!(csv.lines().count(), 2 + 1 + 2 + 2 + 2 + 2);
    }
}
