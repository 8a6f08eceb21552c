//! Every way an intake request can fail, and the one mapping to a gRPC status.

use kefu_kit::error::{Failure, FieldViolations};
use tonic::Status;

use crate::domain::State;

#[derive(Debug)]
pub enum Error {
    /// `INVALID_ARGUMENT`, naming every offending field.
    Invalid(FieldViolations),
    /// `NOT_FOUND`: no such complaint, reply or visit (or none the caller's branch may see).
    NotFound(String),
    /// `FAILED_PRECONDITION`: the rule of a transition does not allow it in the case's state.
    Refused { complaint: String, state: State, why: String },
    /// `FAILED_PRECONDITION`: any other rule the request breaks (a visit announced too late, a
    /// duplicate of a duplicate, an owner's event about a case it does not own).
    Precondition(String),
    /// `PERMISSION_DENIED`: the caller's role may not do this (approving takes a manager).
    NotAllowed(String),
    /// `ALREADY_EXISTS`: a request id used before, for a case the caller may not see.
    RequestIdTaken,
    /// `UNAVAILABLE`: no unused case number could be drawn, or intake is shutting down.
    Unavailable(&'static str),
    /// `INTERNAL`: kefu could not do its own part (sealing a webhook's secret); logged with the
    /// cause, answered without it.
    Internal(String),
    /// A failure of kefu's machinery (the database, a lost race), mapped by the kit.
    Failure(Failure),
}

impl Error {
    /// A rule refuses the transition of `complaint`, which is in `state`.
    pub fn refused(complaint: &str, state: State, why: impl Into<String>) -> Error {
        Error::Refused { complaint: complaint.to_owned(), state, why: why.into() }
    }

    pub fn no_complaint(name: &str) -> Error {
        Error::NotFound(format!("no complaint named {name}"))
    }

    /// Whether the database refused a row for a unique key (a request id or case number taken).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::Failure(failure) if failure.is_unique_violation())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(violations) => violations.into_status(),
            Error::NotFound(message) => Status::not_found(message),
            Error::Refused { complaint, state, why } => {
                Status::failed_precondition(format!("{complaint} is {state}: {why}"))
            }
            Error::Precondition(message) => Status::failed_precondition(message),
            Error::NotAllowed(message) => Status::permission_denied(message),
            Error::RequestIdTaken => {
                Status::already_exists("this request_id was used before, for another case: send a fresh one (a UUID)")
            }
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Internal(cause) => {
                tracing::error!(%cause, "intake failed");
                Status::internal("intake could not complete the request; the cause is in its log")
            }
            Error::Failure(failure) => failure.into(),
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        Error::Failure(failure)
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Error {
        Error::Invalid(violations)
    }
}

/// The mapping of a database error met while `context`, for `map_err`.
pub fn db(context: &'static str) -> impl FnOnce(sea_orm::DbErr) -> Error {
    move |error| Error::Failure(Failure::Database { context, error })
}
