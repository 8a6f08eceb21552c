//! How failures become gRPC statuses. Each service has one error enum with one exhaustive
//! `From<Error> for tonic::Status`; the pieces they share are here: field violations
//! (`INVALID_ARGUMENT` with `google.rpc.BadRequest`) and internal failures, which are logged with
//! their cause and returned without internals.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The longest description of one violation, in characters: a description may quote the caller's
/// input, and an error never echoes unbounded input.
const MAX_DESCRIPTION: usize = 160;
/// The most violations one status names; the rest are counted.
const MAX_LISTED: usize = 20;
/// The status message lists violations up to about this many characters, then counts the rest
/// (the details list up to [`MAX_LISTED`]).
const MAX_MESSAGE: usize = 400;

/// `text` cut to at most `max` characters, marked where it was cut.
pub fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// The offending fields of a request, collected so the caller learns of all of them at once.
/// However many there are and whatever the caller sent, the status they become stays small: each
/// description is cut at [`MAX_DESCRIPTION`] characters and at most [`MAX_LISTED`] are named.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations {
    violations: Vec<(String, String)>,
}

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations
            .push((shortened(&field.into(), MAX_DESCRIPTION), shortened(&description.into(), MAX_DESCRIPTION)));
    }

    pub fn extend(&mut self, other: FieldViolations) {
        self.violations.extend(other.violations);
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations, less those of `field`.
    pub fn without(self, field: &str) -> FieldViolations {
        FieldViolations { violations: self.violations.into_iter().filter(|(name, _)| name != field).collect() }
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.violations.iter().map(|(field, _)| field.as_str())
    }

    /// `Ok(())` when nothing is wrong, else every violation (an `INVALID_ARGUMENT` status naming
    /// every field, once converted).
    pub fn into_result(self) -> Result<(), FieldViolations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Violations of one field.
    pub fn of(field: &str, description: impl Into<String>) -> FieldViolations {
        let mut violations = FieldViolations::new();
        violations.add(field, description);
        violations
    }

    /// The same violations with each field name prefixed, e.g. `facts.compensation.`.
    pub fn prefixed(self, prefix: &str) -> FieldViolations {
        FieldViolations {
            violations: self
                .violations
                .into_iter()
                .map(|(field, description)| (format!("{prefix}{field}"), description))
                .collect(),
        }
    }

    /// The same violations with the leading `from` of each field name replaced by `to`.
    pub fn renamed(self, from: &str, to: &str) -> FieldViolations {
        FieldViolations {
            violations: self
                .violations
                .into_iter()
                .map(|(field, description)| match field.strip_prefix(from) {
                    Some(rest) => (format!("{to}{rest}"), description),
                    None => (field, description),
                })
                .collect(),
        }
    }

    pub fn into_status(self) -> Status {
        let total = self.violations.len();
        let mut message = String::new();
        let mut named = 0;
        for (field, description) in &self.violations {
            if named > 0 && message.chars().count() + field.len() + description.chars().count() > MAX_MESSAGE {
                break;
            }
            if named > 0 {
                message.push_str("; ");
            }
            message.push_str(&format!("{field}: {description}"));
            named += 1;
        }
        if named < total {
            message.push_str(&format!("; and {} more offending field(s)", total - named));
        }
        let mut details = ErrorDetails::new();
        for (field, description) in self.violations.into_iter().take(MAX_LISTED) {
            details.add_bad_request_violation(field, description);
        }
        if total > MAX_LISTED {
            details.add_bad_request_violation("…", format!("and {} more offending field(s)", total - MAX_LISTED));
        }
        Status::with_error_details(Code::InvalidArgument, message, details)
    }

    /// The field violations carried by a status, if it has any (to merge two services' answers).
    pub fn from_status(status: &Status) -> FieldViolations {
        let mut violations = FieldViolations::new();
        if let Some(bad_request) = status.get_details_bad_request() {
            for violation in bad_request.field_violations {
                violations.add(violation.field, violation.description);
            }
        }
        violations
    }
}

impl From<FieldViolations> for Status {
    fn from(violations: FieldViolations) -> Status {
        violations.into_status()
    }
}

/// The longest `request_id` (AIP-155 idempotency key) accepted.
pub const MAX_REQUEST_ID: usize = 128;

/// Checks an idempotency key: empty (none given) or at most [`MAX_REQUEST_ID`] printable characters.
pub fn check_request_id(violations: &mut FieldViolations, field: &str, request_id: &str) {
    if request_id.chars().count() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        violations.add(field, format!("at most {MAX_REQUEST_ID} printable characters; a UUID is recommended"));
    }
}

/// The idempotency key of a request, if one was given.
pub fn idempotency_key(request_id: &str) -> Option<&str> {
    Some(request_id).filter(|id| !id.is_empty())
}

/// The parsed value of a request, or every violation at once: those `found` before, the parse's,
/// and the request id's (field `request_id`).
pub fn collect_violations<T>(
    mut found: FieldViolations,
    parsed: Result<T, FieldViolations>,
    request_id: &str,
) -> Result<T, FieldViolations> {
    let parsed = parsed.map_err(|more| found.extend(more));
    check_request_id(&mut found, "request_id", request_id);
    match parsed {
        Ok(value) if found.is_empty() => Ok(value),
        _ => Err(found),
    }
}

/// A single violation as a status.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    FieldViolations::of(field, description).into_status()
}

/// Logs an unexpected failure with its cause and returns a status that reveals nothing of it.
pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Status {
    tracing::error!(%cause, "{context}");
    Status::internal(format!(
        "{context}: internal error, logged on the server; retrying with the same request_id is safe"
    ))
}

/// Database failures are internal, except when the database is unreachable, which the caller
/// can retry: `UNAVAILABLE`, logged at most once per [`QUIET_FOR`] for each context.
pub fn from_db(context: &str, error: sea_orm::DbErr) -> Status {
    if is_unreachable(&error) {
        log_unreachable(context, &error);
        return Status::unavailable(format!(
            "{context}: the database is unreachable; retry in a few seconds with the same request_id"
        ));
    }
    internal(context, &error)
}

/// Whether `error` says the database cannot be reached now, rather than that a statement failed:
/// no connection to be had within the wait, a connection lost, or the server shutting down or
/// starting up (SQLSTATE classes 08 and 57P). These pass by themselves; everything else is a bug
/// or a broken database and is internal.
pub fn is_unreachable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(error))
        | DbErr::Exec(RuntimeErr::SqlxError(error))
        | DbErr::Query(RuntimeErr::SqlxError(error)) => error,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(error) => {
            error.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

/// How long the log stays quiet about one unreachable database after saying so.
pub const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// Kinds [`now_and_then`] remembers at most before it forgets the quiet ones.
const MAX_KEYS: usize = 10_000;

/// Logs that the database is unreachable while `context`, at most once per [`QUIET_FOR`] for each
/// context, counting the failures it left out: while PostgreSQL is down every call and every
/// background round fails alike, and one line per cause is what an operator can read.
pub fn log_unreachable(context: &str, cause: &dyn std::fmt::Display) {
    if let Some(left_out) = now_and_then(context) {
        tracing::error!(%cause, failures_not_logged = left_out, "{context}: the database is unreachable");
    }
}

/// Logs a database failure met in the background (a relay's or a job's round): unreachable,
/// quietly as [`log_unreachable`] does; anything else, each time.
pub fn log_db(context: &str, error: &sea_orm::DbErr) {
    if is_unreachable(error) {
        log_unreachable(context, error);
    } else {
        tracing::error!(%error, "{context}");
    }
}

/// Whether a failure of the kind `key` should be logged now: the first time, and then once per
/// [`QUIET_FOR`], with how many of its kind were not logged since (`Some(left_out)`); `None`
/// means stay quiet. For failures that repeat by the hundred while one cause lasts.
pub fn now_and_then(key: &str) -> Option<u64> {
    use std::{
        collections::HashMap,
        sync::{LazyLock, Mutex},
        time::Instant,
    };
    static LAST: LazyLock<Mutex<HashMap<String, (Instant, u64)>>> = LazyLock::new(Default::default);
    let mut last = LAST.lock().ok()?;
    let now = Instant::now();
    // Keys may name peer addresses: past a bound, the quiet ones are forgotten (a forgotten key is
    // logged at its next failure, as a new one).
    if last.len() >= MAX_KEYS && !last.contains_key(key) {
        last.retain(|_, (said, _)| now.duration_since(*said) < QUIET_FOR);
    }
    match last.get_mut(key) {
        Some((said, left_out)) if now.duration_since(*said) < QUIET_FOR => {
            *left_out += 1;
            None
        }
        Some((said, left_out)) => {
            *said = now;
            Some(std::mem::take(left_out))
        }
        None => {
            last.insert(key.to_owned(), (now, 0));
            Some(0)
        }
    }
}

/// A failure of kefu's own machinery, never of the request: every service's error enum carries it
/// in one variant and maps it here, so that a database failure is logged with its cause and answered
/// without internals, the same way everywhere.
#[derive(Debug)]
pub enum Failure {
    /// The database failed while kefu was `context` (e.g. "saving a claim").
    Database { context: &'static str, error: sea_orm::DbErr },
    /// Another request changed `what` between this request's read and its write: `ABORTED`, and
    /// the caller's retry with the same request id is safe.
    Conflict { what: String },
}

impl Failure {
    /// The mapping of a database error met while `context`, for `map_err`.
    pub fn db(context: &'static str) -> impl FnOnce(sea_orm::DbErr) -> Failure {
        move |error| Failure::Database { context, error }
    }
}

impl Failure {
    /// Whether the database refused a row for a unique key (a key or request id taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Failure::Database { error, .. } if is_unique_violation(error))
    }

    /// Whether the database could not be reached ([`is_unreachable`]): trying again at once fails alike.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Failure::Database { error, .. } if is_unreachable(error))
    }
}

impl From<Failure> for Status {
    fn from(failure: Failure) -> Status {
        match failure {
            Failure::Database { context, error } => from_db(context, error),
            Failure::Conflict { what } => Status::aborted(format!(
                "{what} was changed by another request at the same moment; read it and retry with the same request_id"
            )),
        }
    }
}

/// Whether a database error is a unique-key violation (a concurrent duplicate).
pub fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(error.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_travel_in_bad_request_details() {
        let mut violations = FieldViolations::new();
        violations.add("complaint.category", "required");
        violations.add("complaint.waybill_number", "required");
        let status = violations.into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        let back = FieldViolations::from_status(&status);
        assert_eq!(back.fields().collect::<Vec<_>>(), ["complaint.category", "complaint.waybill_number"]);
    }
}

#[cfg(test)]
mod bounded_tests {
    use super::*;

    #[test]
    fn a_status_of_violations_stays_small_whatever_the_input() {
        let mut violations = FieldViolations::new();
        violations.add("month", format!("expected a month like 2026-11, not {:?}", "9".repeat(6_000)));
        for n in 0..20_000 {
            violations.add(format!("webhook.events[{n}]"), format!("unknown event {:?}", format!("x{n}")));
        }
        let status = violations.into_status();
        assert!(status.message().len() < 1_000, "{}", status.message().len());
        assert!(
            status.message().ends_with("and 20000 more offending field(s)")
                || status.message().contains("more offending"),
            "{}",
            status.message()
        );
        let bad = status.get_details_bad_request().expect("details");
        assert_eq!(bad.field_violations.len(), MAX_LISTED + 1);
        assert_eq!(bad.field_violations[0].field, "month");
        assert!(bad.field_violations[0].description.chars().count() <= MAX_DESCRIPTION + 1);
        assert!(status.details().len() < 8 * 1024, "{}", status.details().len());
    }
}
