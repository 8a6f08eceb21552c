//! Every way an inspection request can fail, and the one mapping to a gRPC status.

use kefu_kit::error::{Failure, FieldViolations};
use tonic::Status;

use crate::case::CaseError;

#[derive(Debug)]
pub enum Error {
    /// `INVALID_ARGUMENT`, naming every offending field.
    Invalid(FieldViolations),
    /// `FAILED_PRECONDITION`: the case is not in a state, or lacks a record, the rule needs.
    Precondition(String),
    /// `NOT_FOUND`.
    NotFound(String),
    /// `ABORTED`: another request changed the case at the same moment.
    Conflict,
    /// `UNAVAILABLE`: no unused case number could be drawn; a retry may succeed.
    Unavailable(&'static str),
    /// A failure of kefu's machinery (the database), mapped by the kit.
    Failure(Failure),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(violations) => violations.into_status(),
            Error::Precondition(message) => Status::failed_precondition(message),
            Error::NotFound(message) => Status::not_found(message),
            Error::Conflict => {
                Status::aborted("the case was changed by another request at the same moment; read it and retry")
            }
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Failure(failure) => failure.into(),
        }
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Error {
        Error::Invalid(violations)
    }
}

impl From<CaseError> for Error {
    fn from(error: CaseError) -> Error {
        match error {
            CaseError::Invalid(violations) => Error::Invalid(violations),
            CaseError::Precondition(message) => Error::Precondition(message),
        }
    }
}

/// Database failures, logged and returned without internals.
pub fn db(context: &'static str) -> impl FnOnce(sea_orm::DbErr) -> Error {
    move |error| Error::Failure(Failure::Database { context, error })
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        Error::Failure(failure)
    }
}
