//! Conversions between chrono times and protobuf timestamps and durations.

use chrono::{DateTime, Duration, Months, Utc};
use chrono_tz::Tz;

pub fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).ok()?)
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
