//! What the monthly reports of every department share: the company's calendar month, and CSV
//! fields that spreadsheets read safely.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::FieldViolations;

/// A calendar month in the company's time zone, as the UTC instants it runs between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Month {
    /// `"2026-11"` in `time_zone`.
    pub fn parse(text: &str, time_zone: Tz) -> Result<Month, FieldViolations> {
        let refuse = || FieldViolations::of("month", format!("expected a month like 2026-11, not {text:?}"));
        let (year, month) = text.split_once('-').ok_or_else(refuse)?;
        let (year, month): (i32, u32) = (year.parse().map_err(|_| refuse())?, month.parse().map_err(|_| refuse())?);
        let first =
            NaiveDate::from_ymd_opt(year, month, 1).filter(|_| (2000..=2200).contains(&year)).ok_or_else(refuse)?;
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        }
        .ok_or_else(refuse)?;
        let midnight = |date: NaiveDate| {
            time_zone
                .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
                .earliest()
                .map(|time| time.with_timezone(&Utc))
                .ok_or_else(refuse)
        };
        Ok(Month { label: format!("{year:04}-{month:02}"), start: midnight(first)?, end: midnight(next)? })
    }
}

/// A week, Monday to Sunday in the company's time zone, as the UTC instants it runs between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week {
    /// Its Monday, "2026-11-23".
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Week {
    /// The week holding the date `"2026-11-25"`, in `time_zone`.
    pub fn parse(text: &str, time_zone: Tz) -> Result<Week, FieldViolations> {
        use chrono::{Datelike, Days};
        let refuse =
            || FieldViolations::of("week", format!("expected a date in the week, like 2026-11-23, not {text:?}"));
        let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| refuse())?;
        if !(2000..=2200).contains(&date.year()) {
            return Err(refuse());
        }
        let monday = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
        let midnight = |date: NaiveDate| {
            time_zone
                .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
                .earliest()
                .map(|time| time.with_timezone(&Utc))
                .ok_or_else(refuse)
        };
        Ok(Week { label: monday.to_string(), start: midnight(monday)?, end: midnight(monday + Days::new(7))? })
    }
}

/// Quotes a CSV field when it needs it (RFC 4180), and defuses spreadsheet formulas.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_runs_from_monday_in_the_company_time_zone() {
        let week = Week::parse("2026-11-25", chrono_tz::Asia::Shanghai).expect("a Wednesday");
        assert_eq!(week.label, "2026-11-23");
        assert_eq!(week.start.to_rfc3339(), "2026-11-22T16:00:00+00:00");
        assert_eq!(week.end.to_rfc3339(), "2026-11-29T16:00:00+00:00");
        assert!(Week::parse("last week", chrono_tz::Asia::Shanghai).is_err());
    }

    #[test]
    fn a_month_is_the_company_calendar_month() {
        let month = Month::parse("2026-11", chrono_tz::Asia::Shanghai).expect("valid");
        assert_eq!(month.start.to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert_eq!(month.end.to_rfc3339(), "2026-11-30T16:00:00+00:00");
        let december = Month::parse("2026-12", chrono_tz::Asia::Shanghai).expect("valid");
        assert_eq!(december.end.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        for bad in ["2026-13", "2026", "26-1x", "", "1900-01"] {
            assert!(Month::parse(bad, chrono_tz::Asia::Shanghai).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
