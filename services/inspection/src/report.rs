//! The monthly reward/penalty detail report (监察奖罚明细报表, `002 监察主管 5`): for each person,
//! department and branch penalized in a month of the company's calendar, the fines (count and
//! amount), warnings, circulated criticisms, incidents, and whether the month's award was vetoed.
//! The rows add up to the totals; the totals are the decisions' penalties, nothing else.

use std::collections::{BTreeMap, BTreeSet};

pub use kefu_kit::report::Month;
use kefu_kit::report::csv_field;

use crate::{
    case::{PartyKind, PenaltyKind},
    store::penalty_row,
};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub fines: i64,
    pub fines_fen: i64,
    pub warnings: i64,
    pub criticisms: i64,
    /// Incident cases in which the party was penalized.
    pub incidents: i64,
    pub veto: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub month: String,
    pub cases_decided: i64,
    pub incidents: i64,
    pub fines: i64,
    pub fines_fen: i64,
    pub warnings: i64,
    pub criticisms: i64,
    pub vetoes: i64,
    /// By (party kind, party id), persons first, then departments, then branches.
    pub rows: BTreeMap<(PartyKind, String), Row>,
}

/// The report of `month` from the penalties decided in it and the count of decided cases.
pub fn build(month: &Month, (cases_decided, incidents): (i64, i64), penalties: &[penalty_row::Model]) -> Report {
    let mut report = Report {
        month: month.label.clone(),
        cases_decided,
        incidents,
        fines: 0,
        fines_fen: 0,
        warnings: 0,
        criticisms: 0,
        vetoes: 0,
        rows: BTreeMap::new(),
    };
    let mut incident_cases: BTreeMap<(PartyKind, String), BTreeSet<&str>> = BTreeMap::new();
    for penalty in penalties {
        let Some(kind) = PartyKind::parse(&penalty.party_kind) else { continue };
        let key = (kind, penalty.party_id.clone());
        let row = report.rows.entry(key.clone()).or_default();
        match penalty.kind.as_str() {
            kind if kind == PenaltyKind::Fine.as_str() => {
                row.fines += 1;
                row.fines_fen += penalty.amount_fen;
                report.fines += 1;
                report.fines_fen += penalty.amount_fen;
            }
            kind if kind == PenaltyKind::Warning.as_str() => {
                row.warnings += 1;
                report.warnings += 1;
            }
            kind if kind == PenaltyKind::Criticism.as_str() => {
                row.criticisms += 1;
                report.criticisms += 1;
            }
            _ => {
                row.veto = true;
                report.vetoes += 1;
            }
        }
        if penalty.incident {
            incident_cases.entry(key).or_default().insert(&penalty.case_number);
        }
    }
    for (key, cases) in incident_cases {
        if let Some(row) = report.rows.get_mut(&key) {
            row.incidents = cases.len() as i64;
        }
    }
    report
}

/// The report as CSV: a header, one line per party, then the `total` line.
pub fn to_csv(report: &Report) -> String {
    let mut csv = String::from("month,party_kind,party_id,fines,fines_fen,warnings,criticisms,incidents,veto\n");
    for ((kind, id), row) in &report.rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            report.month,
            kind.as_str(),
            csv_field(id),
            row.fines,
            row.fines_fen,
            row.warnings,
            row.criticisms,
            row.incidents,
            if row.veto { "yes" } else { "no" }
        ));
    }
    csv.push_str(&format!(
        "{},total,{} cases decided,{},{},{},{},{},{} vetoes\n",
        report.month,
        report.cases_decided,
        report.fines,
        report.fines_fen,
        report.warnings,
        report.criticisms,
        report.incidents,
        report.vetoes
    ));
    csv
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn penalty(
        case: &str,
        kind: &str,
        id: &str,
        penalty: PenaltyKind,
        amount_fen: i64,
        incident: bool,
    ) -> penalty_row::Model {
        penalty_row::Model {
            seq: 0,
            case_number: case.into(),
            position: 1,
            party_kind: kind.into(),
            party_id: id.into(),
            kind: penalty.as_str().into(),
            violation: String::new(),
            amount_fen,
            incident,
            decide_time: Utc::now(),
        }
    }

    #[test]
    fn the_rows_add_up_to_the_totals() {
        let month = Month::parse("2026-11", chrono_tz::Asia::Shanghai).expect("valid");
        let penalties = [
            penalty("A", "person", "B042", PenaltyKind::Fine, 10_000, true),
            penalty("A", "branch", "SH01", PenaltyKind::Fine, 50_000, true),
            penalty("A", "person", "B042", PenaltyKind::AwardVeto, 0, true),
            penalty("A", "branch", "SH01", PenaltyKind::AwardVeto, 0, true),
            penalty("B", "person", "B042", PenaltyKind::Fine, 5_000, false),
            penalty("C", "department", "business", PenaltyKind::Criticism, 0, false),
            penalty("C", "person", "B077", PenaltyKind::Warning, 0, false),
        ];
        let report = build(&month, (3, 1), &penalties);
        assert_eq!(
            (report.fines, report.fines_fen, report.warnings, report.criticisms, report.vetoes),
            (3, 65_000, 1, 1, 2)
        );
        let sum = |f: fn(&Row) -> i64| report.rows.values().map(f).sum::<i64>();
        assert_eq!(sum(|row| row.fines_fen), report.fines_fen);
        assert_eq!(sum(|row| row.fines), report.fines);
        let b042 = &report.rows[&(PartyKind::Person, "B042".to_owned())];
        assert_eq!((b042.fines, b042.fines_fen, b042.incidents, b042.veto), (2, 15_000, 1, true));
        assert!(!report.rows[&(PartyKind::Person, "B077".to_owned())].veto);
        let csv = to_csv(&report);
        assert!(csv.contains("2026-11,person,B042,2,15000,0,0,1,yes\n"), "{csv}");
        assert!(csv.ends_with("2026-11,total,3 cases decided,3,65000,1,1,1,2 vetoes\n"), "{csv}");
        assert_eq!(csv.lines().count(), 1 + 4 + 1);
    }
}
