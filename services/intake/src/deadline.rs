//! Deadlines that keep time. Every case has one (所有的投诉处理都要规定结束的期限, `000 §15.3`),
//! computed from a rule — the routing policy's handling time for a complaint's category, or the
//! service center's rule for its kind of request — scaled by the complaint's severity and the
//! customer's grade, counted in calendar time or in working hours in the company's time zone, and
//! moved by the time the case waited on the customer. No I/O: the inputs are kept on the case, so
//! the same computation explains the deadline later ([`compute`] gives each step in words).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::{Kind, Severity};

/// The service center's working hours, in the company's time zone. Inquiry calls are taken until
/// 18:30 (`001 第一节 8`); the morning start is the service center's, early enough that a reply
/// due "before 09:00 the next morning" can be made in working hours.
pub const WORK_START: (u32, u32) = (8, 30);
pub const WORK_END: (u32, u32) = (18, 30);

/// How a rule's time is counted (kept in the `deadline_counting` column by its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sea_orm::DeriveValueType)]
#[sea_orm(value_type = "String")]
pub enum Counting {
    Calendar,
    /// Only 08:30–18:30 counts, every day.
    WorkingHours,
}

impl Counting {
    pub fn as_str(self) -> &'static str {
        match self {
            Counting::Calendar => "calendar",
            Counting::WorkingHours => "working_hours",
        }
    }
}

impl std::str::FromStr for Counting {
    type Err = String;

    fn from_str(text: &str) -> Result<Counting, String> {
        match text {
            "calendar" => Ok(Counting::Calendar),
            "working_hours" => Ok(Counting::WorkingHours),
            other => Err(format!("unknown counting {other:?} in the complaints table")),
        }
    }
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a case's time allowed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// In words, with its source: "category late_delivery: 48h (routing policy)".
    pub name: String,
    pub allowed: Duration,
    pub counting: Counting,
}

impl Rule {
    /// A complaint: the routing policy's handling time for its category.
    pub fn for_category(category: &str, handling_time: Duration) -> Rule {
        Rule {
            name: format!("category {category}: {} (routing policy)", words(handling_time)),
            allowed: handling_time,
            counting: Counting::Calendar,
        }
    }

    /// Requests other than complaints, by the service center's rules.
    pub fn for_kind(kind: Kind) -> Option<Rule> {
        let (name, allowed, counting) = match kind {
            Kind::Complaint => return None,
            // 客户查询货物，半小时内给予回复 (001 第一节 9).
            Kind::Inquiry => (
                "cargo inquiry answered within 30 minutes (001 第一节 9)",
                Duration::minutes(30),
                Counting::WorkingHours,
            ),
            // What the service center can answer at once it answers at once (001 §8 4.7); a
            // consultation is held to the inquiry's half hour.
            Kind::Consultation => (
                "consultation answered within 30 minutes, as inquiries (001 第一节 9, §8 4.7)",
                Duration::minutes(30),
                Counting::WorkingHours,
            ),
            Kind::Suggestion => (
                "suggestion acknowledged and answered within 7 days (service center)",
                Duration::days(7),
                Counting::Calendar,
            ),
            // Handling within 24 hours of the written report (001 §8 4.5).
            Kind::ChangeRequest => {
                ("change request handled within 24 hours (001 §8 4.5)", Duration::hours(24), Counting::Calendar)
            }
        };
        Some(Rule { name: name.into(), allowed, counting })
    }

    /// A deadline its owner set (an inspection's written report is handled within 24 hours of it,
    /// `001 §8 4.5`): a fixed time, which only time waited on the customer moves.
    pub fn set_by_owner(owner: &str, reason: &str) -> Rule {
        Rule { name: format!("set by {owner}: {reason}"), allowed: Duration::zero(), counting: Counting::Calendar }
    }

    /// A reopened case: handled again within 24 hours of the customer's new report (001 §8 4.5).
    pub fn reopened() -> Rule {
        Rule {
            name: "reopened: handled again within 24 hours (001 §8 4.5)".into(),
            allowed: Duration::hours(24),
            counting: Counting::Calendar,
        }
    }
}

/// The share of the rule's time a complaint of this severity is allowed: graver complaints are
/// handled sooner.
pub fn severity_percent(severity: Severity) -> i64 {
    match severity {
        Severity::General => 100,
        Severity::Serious => 50,
        Severity::Critical => 25,
    }
}

/// The share of the rule's time for a customer of this grade: A customers are served first
/// (`000 第3条`, `003 客户分级标准表`).
pub fn grade_percent(grade: &str) -> i64 {
    match grade {
        "A" => 50,
        "B" => 75,
        _ => 100,
    }
}

/// What a deadline is computed from; all of it is kept on the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs<'a> {
    /// When the time started: registration, conversion or reopening.
    pub start: DateTime<Utc>,
    pub rule: &'a Rule,
    pub severity: Severity,
    /// A–D, or empty when archives has not graded the customer.
    pub grade: &'a str,
    /// Time waited on the customer, counted as the rule counts.
    pub paused: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    pub deadline: DateTime<Utc>,
    /// Each step, in words with its numbers.
    pub steps: Vec<String>,
}

/// The deadline for `inputs`, and how it was reached.
pub fn compute(inputs: &Inputs<'_>, time_zone: Tz) -> Computed {
    let local = |time: DateTime<Utc>| time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M %Z").to_string();
    let mut steps = vec![format!("rule: {}", inputs.rule.name), format!("started {}", local(inputs.start))];
    let severity = severity_percent(inputs.severity);
    let grade = grade_percent(inputs.grade);
    let mut allowed = inputs.rule.allowed;
    // A fixed time (an owner's) is not scaled.
    let scaled = allowed > Duration::zero();
    if scaled && severity != 100 {
        allowed = allowed * severity as i32 / 100;
        steps.push(format!("severity {}: {severity}% of the time, {}", inputs.severity.as_str(), words(allowed)));
    }
    if !scaled {
    } else if grade != 100 {
        allowed = allowed * grade as i32 / 100;
        steps.push(format!("customer grade {}: {grade}% of the time, {}", inputs.grade, words(allowed)));
    } else if !inputs.grade.is_empty() {
        steps.push(format!("customer grade {}: the full time", inputs.grade));
    }
    if inputs.paused > Duration::zero() {
        steps.push(format!("waited on the customer {}: added", words(inputs.paused)));
    }
    let total = allowed + inputs.paused;
    let deadline = match inputs.rule.counting {
        Counting::Calendar => {
            steps.push(format!("{} counted in calendar time", words(total)));
            inputs.start + total
        }
        Counting::WorkingHours => {
            steps.push(format!(
                "{} counted in working hours, {:02}:{:02}–{:02}:{:02} every day",
                words(total),
                WORK_START.0,
                WORK_START.1,
                WORK_END.0,
                WORK_END.1
            ));
            add_working(inputs.start, total, time_zone)
        }
    };
    steps.push(format!("deadline {}", local(deadline)));
    Computed { deadline, steps }
}

fn at(date: NaiveDate, (hour, minute): (u32, u32)) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN))
}

fn to_utc(local: NaiveDateTime, time_zone: Tz) -> DateTime<Utc> {
    time_zone.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc)).unwrap_or_else(|| local.and_utc())
}

/// `start` plus `duration` of working time.
pub fn add_working(start: DateTime<Utc>, duration: Duration, time_zone: Tz) -> DateTime<Utc> {
    let mut now = start.with_timezone(&time_zone).naive_local();
    let mut remaining = duration;
    loop {
        let date = now.date();
        if now < at(date, WORK_START) {
            now = at(date, WORK_START);
        }
        let end = at(date, WORK_END);
        if now >= end {
            now = at(date + Duration::days(1), WORK_START);
            continue;
        }
        let available = end - now;
        if remaining <= available {
            return to_utc(now + remaining, time_zone);
        }
        remaining -= available;
        now = at(date + Duration::days(1), WORK_START);
    }
}

/// The working time between `from` and `to`.
pub fn working_between(from: DateTime<Utc>, to: DateTime<Utc>, time_zone: Tz) -> Duration {
    let from = from.with_timezone(&time_zone).naive_local();
    let to = to.with_timezone(&time_zone).naive_local();
    let mut total = Duration::zero();
    let mut date = from.date();
    while date <= to.date() {
        let start = at(date, WORK_START).max(from);
        let end = at(date, WORK_END).min(to);
        if end > start {
            total += end - start;
        }
        date += Duration::days(1);
    }
    total
}

/// The time between `from` and `to` as `counting` counts it.
pub fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>, counting: Counting, time_zone: Tz) -> Duration {
    match counting {
        Counting::Calendar => (to - from).max(Duration::zero()),
        Counting::WorkingHours => working_between(from, to, time_zone),
    }
}

/// When a reply that did not reach the customer is due again: the next morning at the start of
/// work, so that it is made before 09:00 (`001 第一节 8`).
pub fn next_morning(now: DateTime<Utc>, time_zone: Tz) -> DateTime<Utc> {
    let tomorrow = now.with_timezone(&time_zone).date_naive() + Duration::days(1);
    to_utc(at(tomorrow, WORK_START), time_zone)
}

/// 90 minutes → "90m", 48 hours → "48h", 7 days → "7d" (as the routing policy writes them).
pub fn words(duration: Duration) -> String {
    let minutes = duration.num_minutes();
    if minutes % (24 * 60) == 0 && minutes >= 7 * 24 * 60 {
        format!("{}d", minutes / (24 * 60))
    } else if minutes % 60 == 0 && minutes > 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn shanghai(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        to_utc(at(NaiveDate::from_ymd_opt(y, mo, d).expect("a date"), (h, mi)), SHANGHAI)
    }

    #[test]
    fn an_inquiry_at_six_in_the_evening_is_due_the_next_morning() {
        let rule = Rule::for_kind(Kind::Inquiry).expect("inquiries have a rule");
        let inputs = Inputs {
            start: shanghai(2026, 11, 23, 18, 10),
            rule: &rule,
            severity: Severity::General,
            grade: "",
            paused: Duration::zero(),
        };
        // 20 minutes until 18:30, the other 10 from 08:30 the next day.
        assert_eq!(compute(&inputs, SHANGHAI).deadline, shanghai(2026, 11, 24, 8, 40));
        // Before work starts, the half hour counts from 08:30.
        let early = Inputs { start: shanghai(2026, 11, 23, 7, 0), ..inputs.clone() };
        assert_eq!(compute(&early, SHANGHAI).deadline, shanghai(2026, 11, 23, 9, 0));
    }

    #[test]
    fn severity_and_grade_shorten_the_time_and_say_so() {
        let rule = Rule::for_category("late_delivery", Duration::hours(48));
        let start = shanghai(2026, 11, 23, 10, 0);
        let inputs = Inputs { start, rule: &rule, severity: Severity::Serious, grade: "A", paused: Duration::zero() };
        let computed = compute(&inputs, SHANGHAI);
        // 48h × 50% × 50% = 12h.
        assert_eq!(computed.deadline, start + Duration::hours(12));
        assert!(
            computed.steps.iter().any(|step| step == "severity serious: 50% of the time, 24h"),
            "{:?}",
            computed.steps
        );
        assert!(computed.steps.iter().any(|step| step == "customer grade A: 50% of the time, 12h"));
        let waited = Inputs { paused: Duration::hours(5), ..inputs };
        assert_eq!(compute(&waited, SHANGHAI).deadline, start + Duration::hours(17));
    }

    #[test]
    fn an_owner_s_deadline_is_moved_only_by_time_waited() {
        let rule = Rule::set_by_owner("inspection", "written report in: handled within 24 hours (001 §8 4.5)");
        let due = shanghai(2026, 11, 24, 10, 0);
        let inputs =
            Inputs { start: due, rule: &rule, severity: Severity::Critical, grade: "A", paused: Duration::hours(3) };
        let computed = compute(&inputs, SHANGHAI);
        assert_eq!(computed.deadline, due + Duration::hours(3));
        assert!(computed.steps.iter().all(|step| !step.contains("% of the time")), "{:?}", computed.steps);
        assert_eq!(
            computed.steps[0],
            "rule: set by inspection: written report in: handled within 24 hours (001 §8 4.5)"
        );
    }

    #[test]
    fn working_time_between_two_moments_skips_the_night() {
        let from = shanghai(2026, 11, 23, 18, 0);
        let to = shanghai(2026, 11, 24, 9, 0);
        assert_eq!(working_between(from, to, SHANGHAI), Duration::minutes(60));
        assert_eq!(working_between(to, from, SHANGHAI), Duration::zero());
        assert_eq!(next_morning(shanghai(2026, 11, 23, 23, 50), SHANGHAI), shanghai(2026, 11, 24, 8, 30));
        assert_eq!(next_morning(shanghai(2026, 11, 24, 0, 10), SHANGHAI), shanghai(2026, 11, 25, 8, 30));
    }
}
