//! The inspection policy: the penalty standards (`001 §7.1`, `001 第三节`), the 24 hours after the
//! written report (`001 §8 4.5`), the window in which a recurrence is an incident and whom an
//! incident goes to (`001 §8 4.10`). The handbook's numbers are built in (`inspection-policy.txt`
//! beside this file); `KEFU_INSPECTION_POLICY` names a file whose lines replace or add to them.

use std::{collections::BTreeMap, path::Path};

use chrono::Duration;
use kefu_kit::policy_file::{self, PolicyError};

pub const DEFAULT_POLICY: &str = include_str!("inspection-policy.txt");
const POLICY: &str = "inspection policy";
/// The largest fine a line may name: 100,000 yuan.
const MAX_FINE_FEN: i64 = 10_000_000;

/// One line of the standards table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: String,
    /// The fine's range in fen; `None` when it is decided case by case.
    pub range_fen: Option<(i64, i64)>,
    /// Where the handbook says so, e.g. `001 §7.1`.
    pub source: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectionPolicy {
    pub handling_after_report: Duration,
    pub written_report_due: Duration,
    pub recurrence_window: Duration,
    pub escalate_to: Vec<String>,
    /// The standards table by code.
    pub violations: BTreeMap<String, Violation>,
}

impl InspectionPolicy {
    /// The file at `path` over the built-in policy, or the built-in policy when there is none.
    pub fn load(path: Option<&Path>) -> Result<InspectionPolicy, PolicyError> {
        let built_in = InspectionPolicy::parse_over(None, DEFAULT_POLICY, "(built in)")?;
        match path {
            None => Ok(built_in),
            Some(path) => {
                let (text, source_name) = policy_file::read(POLICY, Some(path), DEFAULT_POLICY)?;
                InspectionPolicy::parse_over(Some(built_in), &text, &source_name)
            }
        }
    }

    /// The built-in policy (the handbook's).
    pub fn handbook() -> InspectionPolicy {
        InspectionPolicy::parse_over(None, DEFAULT_POLICY, "(built in)").unwrap_or_else(|_| InspectionPolicy::empty())
    }

    fn empty() -> InspectionPolicy {
        InspectionPolicy {
            handling_after_report: Duration::hours(24),
            written_report_due: Duration::hours(24),
            recurrence_window: Duration::days(30),
            escalate_to: Vec::new(),
            violations: BTreeMap::new(),
        }
    }

    /// Reads `key = value` lines over `base` (or over nothing).
    pub fn parse_over(
        base: Option<InspectionPolicy>,
        text: &str,
        source_name: &str,
    ) -> Result<InspectionPolicy, PolicyError> {
        let mut policy = base.unwrap_or_else(InspectionPolicy::empty);
        for entry in policy_file::key_values(POLICY, source_name, text) {
            let entry = entry?;
            let (key, value) = (entry.key, entry.value);
            let error = |problem: String| entry.error(problem);
            let whole = |max: i64| {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|number| (1..=max).contains(number))
                    .ok_or_else(|| error(format!("{key} = {value:?}: expected a whole number from 1 to {max}")))
            };
            match key {
                "handling_hours_after_report" => policy.handling_after_report = Duration::hours(whole(24 * 30)?),
                "written_report_due_hours" => policy.written_report_due = Duration::hours(whole(24 * 30)?),
                "recurrence_window_days" => policy.recurrence_window = Duration::days(whole(366)?),
                "escalate_to" => {
                    policy.escalate_to =
                        value.split(',').map(str::trim).filter(|to| !to.is_empty()).map(str::to_owned).collect();
                    if policy.escalate_to.is_empty() {
                        return Err(error(
                            "escalate_to names no one: an incident must go somewhere (001 §8 4.10.2)".into(),
                        ));
                    }
                }
                _ => match key.strip_prefix("fine ").map(str::trim) {
                    Some(code) if is_code(code) => {
                        let violation = parse_violation(code, value).map_err(error)?;
                        policy.violations.insert(code.to_owned(), violation);
                    }
                    Some(code) => {
                        return Err(error(format!("fine {code:?}: a code is lower-case letters, digits and _")));
                    }
                    None => {
                        return Err(error(format!(
                            "unknown key {key:?}; the keys are handling_hours_after_report, written_report_due_hours, \
                             recurrence_window_days, escalate_to and `fine <code>`"
                        )));
                    }
                },
            }
        }
        Ok(policy)
    }

    /// `code`'s line of the standards table.
    pub fn violation(&self, code: &str) -> Option<&Violation> {
        self.violations.get(code)
    }

    /// The codes, for error messages.
    pub fn codes(&self) -> String {
        self.violations.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 48
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `10-50 yuan | 001 §7.1 | description`, `100 yuan | …` or `case_by_case | …`.
fn parse_violation(code: &str, value: &str) -> Result<Violation, String> {
    let mut parts = value.split('|').map(str::trim);
    let amount = parts.next().unwrap_or_default();
    let (Some(source), Some(description), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("fine {code}: expected `<min>-<max> yuan | <source> | <violation>`, found {value:?}"));
    };
    let range_fen = if amount == "case_by_case" {
        None
    } else {
        let refuse = || format!("fine {code}: {amount:?} is not `<min>-<max> yuan`, `<amount> yuan` or `case_by_case`");
        let yuan = amount.strip_suffix("yuan").map(str::trim).ok_or_else(refuse)?;
        let (min, max) = yuan.split_once('-').unwrap_or((yuan, yuan));
        let fen = |text: &str| {
            text.trim().parse::<i64>().ok().map(|yuan| yuan * 100).filter(|fen| (1..=MAX_FINE_FEN).contains(fen))
        };
        let (min, max) = (fen(min).ok_or_else(refuse)?, fen(max).ok_or_else(refuse)?);
        if min > max {
            return Err(format!("fine {code}: the least fine {min} fen is more than the most {max} fen"));
        }
        Some((min, max))
    };
    Ok(Violation { code: code.to_owned(), range_fen, source: source.to_owned(), description: description.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_is_the_handbooks_table() {
        let policy = InspectionPolicy::load(None).expect("valid");
        let range = |code: &str| policy.violation(code).map(|violation| violation.range_fen);
        // domain.md §3, from 001 §7.1 and 001 第三节.
        assert_eq!(range("language_or_image"), Some(Some((1_000, 5_000))));
        assert_eq!(range("attitude_or_inefficiency"), Some(Some((5_000, 10_000))));
        assert_eq!(range("operational_error"), Some(Some((5_000, 20_000))));
        assert_eq!(range("complaint_to_leadership"), Some(Some((5_000, 10_000))));
        assert_eq!(range("impolite_phone_words"), Some(Some((10_000, 10_000))));
        assert_eq!(range("refused_badge_or_surname"), Some(Some((10_000, 10_000))));
        assert_eq!(range("stalled_cargo_query"), Some(Some((20_000, 20_000))));
        assert_eq!(range("repeated_contact_unreported"), Some(Some((10_000, 10_000))));
        assert_eq!(range("conflict_or_media_exposure"), Some(None));
        assert_eq!(policy.violations.len(), 10);
        assert_eq!(policy.handling_after_report, Duration::hours(24));
        assert_eq!(policy.escalate_to, ["enterprise_management", "leadership"]);
        assert_eq!(policy, InspectionPolicy::handbook());
    }

    #[test]
    fn the_deployed_config_map_is_the_built_in_policy() {
        let deployed = include_str!("../../../deploy/base/inspection-policy.txt");
        assert_eq!(
            deployed, DEFAULT_POLICY,
            "deploy/base/inspection-policy.txt must equal services/inspection/src/inspection-policy.txt"
        );
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let text = "recurrence_window_days = 60\nfine smoking_in_vehicle = 20-80 yuan | board 2026-11 | smoking in a company vehicle\n";
        let policy = InspectionPolicy::parse_over(Some(InspectionPolicy::handbook()), text, "p").expect("valid");
        assert_eq!(policy.recurrence_window, Duration::days(60));
        assert_eq!(policy.violation("smoking_in_vehicle").and_then(|v| v.range_fen), Some((2_000, 8_000)));
        assert_eq!(policy.violations.len(), 11);
        assert_eq!(policy.handling_after_report, Duration::hours(24));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let parse = |text: &str| InspectionPolicy::parse_over(None, text, "inspection.txt").expect_err("invalid");
        let error = parse("# x\nfine x = 50-10 yuan | s | d\n");
        assert_eq!(error.line, 2);
        assert!(error.to_string().starts_with("inspection policy inspection.txt, line 2: fine x"), "{error}");
        assert!(parse("fine x = 10 | s | d").problem.contains("yuan"));
        assert!(parse("fine x = 10 yuan").problem.contains("<source>"));
        assert!(parse("fine X-1 = 10 yuan | s | d").problem.contains("lower-case"));
        assert!(parse("escalate_to = ,").problem.contains("names no one"));
        assert!(parse("handling_hours_after_report = 0").problem.contains("from 1"));
        assert!(parse("deadline = 3").problem.contains("unknown key"));
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// An operator's file with any line replaced by anything is read or refused naming a line
        /// of it (or none), never a panic.
        #[test]
        fn any_line_of_the_inspection_file_is_read_or_named(line in 0usize..200, junk in "\\PC{0,80}") {
            let lines: Vec<&str> = DEFAULT_POLICY.lines().collect();
            let mut text: Vec<&str> = lines.clone();
            let at = line % (lines.len() + 1);
            if at == lines.len() { text.push(&junk) } else { text[at] = &junk }
            let text = text.join("\n");
            if let Err(error) = InspectionPolicy::parse_over(None, &text, "fuzz") {
                prop_assert!(error.line <= text.lines().count(), "{error}");
            }
        }
    }
}
