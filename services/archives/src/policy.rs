//! The archives' rules, each in one place and named as the handbook names it
//! (`003 客户信息管理制度` 第19–25条, `003 客户分级标准表`). Where the handbook leaves a number to
//! the company (retention periods, how long an approval lasts, the grade bands), kefu's default is
//! here and documented in the README.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{caller::Caller, time::add_months};

/// The service center's and settlement's working documents move to the archives this many
/// calendar months after the case closes.
pub const MOVE_TO_ARCHIVES_AFTER_MONTHS: u32 = 2;

/// An approved access request is good for this long after its last signature.
pub fn approval_valid_for() -> Duration {
    Duration::days(7)
}

/// The department of the archives (档案室): archivists classify, hold and destroy files.
pub const ARCHIVES_DEPARTMENT: &str = "archives";
/// The service department (服务部) that approves reads of customer files (第20条 3): the customer
/// service center, whose department is `intake`.
pub const SERVICE_DEPARTMENT: &str = kefu_kit::personal::SERVICE_CENTER;
/// Requesters from outside the company carry this department (第20条 4).
pub const EXTERNAL_DEPARTMENT: &str = kefu_kit::personal::OUTSIDERS;
/// The departments whose working documents a closed case is, until it moves to the archives.
pub const WORKING_DEPARTMENTS: &[&str] = &["intake", "settlement"];

pub const DEPARTMENT_HEAD_ROLE: &str = "department_head";
pub const GENERAL_MANAGER_ROLE: &str = "general_manager";

/// Levels of secrecy (第22条): ordinary, 机密, 绝密. A caller's clearance is the highest level they may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Classification {
    Ordinary = 1,
    Confidential = 2,
    TopSecret = 3,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Ordinary => "ordinary",
            Classification::Confidential => "confidential",
            Classification::TopSecret => "top_secret",
        }
    }

    pub fn level(self) -> i32 {
        self as i32
    }

    pub fn from_level(level: i32) -> Option<Self> {
        match level {
            1 => Some(Classification::Ordinary),
            2 => Some(Classification::Confidential),
            3 => Some(Classification::TopSecret),
            _ => None,
        }
    }

    /// A caller's clearance; none, or one not understood, is ordinary.
    pub fn clearance_of(caller: &Caller) -> Self {
        match caller.clearance.trim().to_ascii_lowercase().as_str() {
            "top_secret" => Classification::TopSecret,
            "confidential" => Classification::Confidential,
            _ => Classification::Ordinary,
        }
    }

    /// Whether a caller cleared for `self` may see a file of `level`. Files above the clearance do not
    /// exist for the caller: searches and counts leave them out, reads answer NOT_FOUND.
    pub fn covers(self, level: Classification) -> bool {
        level <= self
    }
}

/// How long a case file is kept after the case closed, and under which rule (第25条: a file past its
/// period is destroyed as the rules say). The first rule that matches applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRule {
    pub code: &'static str,
    pub years: u32,
}

/// Cases that moved money (a compensation, a fine, a remittance) are accounting records.
pub const RETAIN_WITH_PAYMENTS: RetentionRule = RetentionRule { code: "case_with_payments_10y", years: 10 };
/// Cargo damage and loss (货损货差) are kept for the claims record, paid or not: a refused claim can
/// come back as a dispute.
pub const RETAIN_CLAIM: RetentionRule = RetentionRule { code: "claim_5y", years: 5 };
/// Incidents (二次投诉) are kept for the branch's and staff's record.
pub const RETAIN_INCIDENT: RetentionRule = RetentionRule { code: "incident_5y", years: 5 };
/// Every other closed case.
pub const RETAIN_CASE: RetentionRule = RetentionRule { code: "case_3y", years: 3 };

/// Categories kept longer than an ordinary case, whatever their outcome.
const CATEGORY_RULES: &[(&str, RetentionRule)] = &[("cargo_damage", RETAIN_CLAIM)];

/// The rule for a case file of `category`: money first, then the category, then incidents.
pub fn retention_rule(category: &str, moved_money: bool, incident: bool) -> RetentionRule {
    if moved_money {
        RETAIN_WITH_PAYMENTS
    } else if let Some((_, rule)) = CATEGORY_RULES.iter().find(|(kind, _)| *kind == category) {
        *rule
    } else if incident {
        RETAIN_INCIDENT
    } else {
        RETAIN_CASE
    }
}

pub fn retain_until(rule: RetentionRule, close_time: DateTime<Utc>, time_zone: Tz) -> DateTime<Utc> {
    add_months(close_time, rule.years * 12, time_zone)
}

pub fn moves_to_archives(close_time: DateTime<Utc>, time_zone: Tz) -> DateTime<Utc> {
    add_months(close_time, MOVE_TO_ARCHIVES_AFTER_MONTHS, time_zone)
}

/// The scoring sheet (客户分级标准表): each part's maximum; the total is out of 100.
pub const PROFIT_CONTRIBUTION_MAX: i32 = 30;
pub const ORDER_AMOUNT_MAX: i32 = 30;
pub const COOPERATION_YEARS_MAX: i32 = 10;
pub const CREDIT_MAX: i32 = 20;
pub const PROSPECTS_MAX: i32 = 10;

/// The grade of a total score: A from 85, B from 70, C from 50, D below (A is served first).
pub fn grade(total: i32) -> &'static str {
    match total {
        85.. => "A",
        70..=84 => "B",
        50..=69 => "C",
        _ => "D",
    }
}

/// A customer's marks on the scoring sheet (客户分级标准表), each part out of its maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub profit_contribution: i32,
    pub order_amount: i32,
    pub cooperation_years: i32,
    pub credit: i32,
    pub prospects: i32,
}

impl Score {
    /// Each part's name, mark and maximum, in the order of the sheet.
    pub fn parts(&self) -> [(&'static str, i32, i32); 5] {
        [
            ("profit_contribution", self.profit_contribution, PROFIT_CONTRIBUTION_MAX),
            ("order_amount", self.order_amount, ORDER_AMOUNT_MAX),
            ("cooperation_years", self.cooperation_years, COOPERATION_YEARS_MAX),
            ("credit", self.credit, CREDIT_MAX),
            ("prospects", self.prospects, PROSPECTS_MAX),
        ]
    }

    /// The parts marked below zero or above their maximum, by name, with the maximum.
    pub fn out_of_range(&self) -> Vec<(&'static str, i32)> {
        self.parts()
            .into_iter()
            .filter(|(_, mark, max)| !(0..=*max).contains(mark))
            .map(|(name, _, max)| (name, max))
            .collect()
    }

    /// The total out of 100.
    pub fn total(&self) -> i32 {
        self.parts().iter().map(|(_, mark, _)| mark).sum()
    }

    /// The grade the total gives.
    pub fn grade(&self) -> &'static str {
        grade(self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_bands_meet_at_their_edges() {
        assert_eq!(
            [grade(100), grade(85), grade(84), grade(70), grade(69), grade(50), grade(49), grade(0)],
            ["A", "A", "B", "B", "C", "C", "D", "D"]
        );
    }

    #[test]
    fn a_score_totals_its_parts_and_names_each_part_off_the_sheet() {
        let score =
            Score { profit_contribution: 30, order_amount: 25, cooperation_years: 10, credit: 20, prospects: 0 };
        assert_eq!((score.total(), score.grade(), score.out_of_range()), (85, "A", vec![]));
        let off = Score { profit_contribution: 31, credit: -1, ..score };
        assert_eq!(off.out_of_range(), [("profit_contribution", 30), ("credit", 20)]);
        assert_eq!(Score::default().grade(), "D");
    }

    #[test]
    fn clearance_orders_levels() {
        let top = Classification::TopSecret;
        let none = Classification::clearance_of(&Caller::default());
        assert_eq!(none, Classification::Ordinary);
        assert!(top.covers(Classification::Confidential));
        assert!(!none.covers(Classification::Confidential));
        assert!(none.covers(Classification::Ordinary));
    }

    #[test]
    fn the_move_and_retention_count_calendar_months_in_the_company_zone() {
        let zone = chrono_tz::Asia::Shanghai;
        // 2026-12-31 20:00 in Shanghai; two months later is the end of February.
        let closed = DateTime::parse_from_rfc3339("2026-12-31T12:00:00Z").expect("a time").with_timezone(&Utc);
        assert_eq!(moves_to_archives(closed, zone).to_rfc3339(), "2027-02-28T12:00:00+00:00");
        assert_eq!(retain_until(RETAIN_CASE, closed, zone).to_rfc3339(), "2029-12-31T12:00:00+00:00");
        assert_eq!(retention_rule("late_delivery", true, true), RETAIN_WITH_PAYMENTS);
        assert_eq!(retention_rule("cargo_damage", false, true), RETAIN_CLAIM);
        assert_eq!(retention_rule("late_delivery", false, true), RETAIN_INCIDENT);
        assert_eq!(retention_rule("late_delivery", false, false), RETAIN_CASE);
    }
}
