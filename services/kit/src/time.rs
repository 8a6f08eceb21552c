//! Conversions between chrono times and protobuf timestamps and durations.

use chrono::{DateTime, Duration, Months, Utc};
use chrono_tz::Tz;

pub fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

/// The first and last years a time of kefu's may fall in: anything else is a typing error or an
/// attack (a COD collected in the year 1, a deadline in 9999), never a case.
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// The time a timestamp stands for, if it is a sane one: nanoseconds within a second, the year
/// within [`YEARS`].
pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok().filter(|nanos| *nanos < 1_000_000_000)?;
    DateTime::from_timestamp(timestamp.seconds, nanos).filter(|time| YEARS.contains(&chrono::Datelike::year(time)))
}

/// An optional time a caller gave: `None` if absent; `INVALID_ARGUMENT` naming `field` if given and
/// not a sane time (see [`from_timestamp`]) — never silently "now" or "unset".
pub fn optional_time(
    given: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, crate::error::FieldViolations> {
    match given {
        None => Ok(None),
        Some(timestamp) => from_timestamp(timestamp).map(|time| Some(to_micros(time))).ok_or_else(|| {
            crate::error::FieldViolations::of(
                field,
                format!(
                    "a time between the years {} and {}, with nanos from 0 to 999,999,999",
                    YEARS.start(),
                    YEARS.end()
                ),
            )
        }),
    }
}

pub fn to_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: duration.num_seconds(), nanos: duration.subsec_nanos() }
}

pub fn from_duration(duration: &prost_types::Duration) -> Option<Duration> {
    let whole = Duration::try_seconds(duration.seconds)?;
    whole.checked_add(&Duration::nanoseconds(i64::from(duration.nanos)))
}

/// Database timestamps are stored in UTC with microsecond precision (PostgreSQL's), so times
/// are truncated to microseconds before they are stored or returned, and a stored record reads
/// back exactly as it was returned when created.
pub fn to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// `months` calendar months after `time` on the company's calendar (the same local day and hour,
/// or the month's last day): a policy in months reads as people count them.
pub fn add_months(time: DateTime<Utc>, months: u32, time_zone: Tz) -> DateTime<Utc> {
    let local = time.with_timezone(&time_zone).naive_local();
    let later = local.checked_add_months(Months::new(months)).unwrap_or(local);
    later.and_local_timezone(time_zone).earliest().map(|later| later.with_timezone(&Utc)).unwrap_or(time)
}

#[cfg(test)]
mod sane_tests {
    use super::*;

    #[test]
    fn only_sane_times_are_times() {
        let at = |seconds: i64, nanos: i32| from_timestamp(&prost_types::Timestamp { seconds, nanos });
        assert!(at(1_764_000_000, 0).is_some(), "2025-11");
        assert!(at(1_764_000_000, -1).is_none(), "negative nanos");
        assert!(at(1_764_000_000, 1_000_000_000).is_none(), "a whole second of nanos");
        assert!(at(-62_135_596_800, 0).is_none(), "the year 1");
        assert!(at(253_402_300_799, 0).is_none(), "the year 9999");
        assert_eq!(optional_time(None, "as_of").ok(), Some(None));
        let refused = optional_time(Some(&prost_types::Timestamp { seconds: 0, nanos: -5 }), "as_of").expect_err("bad");
        assert_eq!(refused.fields().collect::<Vec<_>>(), ["as_of"]);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any timestamp is a sane time or none, and a sane one comes back as it was given.
        #[test]
        fn any_timestamp_is_a_sane_time_or_none(seconds in any::<i64>(), nanos in any::<i32>()) {
            let given = prost_types::Timestamp { seconds, nanos };
            if let Some(time) = from_timestamp(&given) {
                prop_assert!(YEARS.contains(&chrono::Datelike::year(&time)));
                prop_assert_eq!(to_timestamp(time), given);
            }
        }
    }
}
