//! Every way a settlement request can fail, and the one mapping to a gRPC status.

use kefu_kit::error::{Failure, FieldViolations};
use tonic::Status;

use crate::waybill::Refusal;

#[derive(Debug)]
pub enum Error {
    /// `INVALID_ARGUMENT`, naming every offending field.
    Invalid(FieldViolations),
    /// `FAILED_PRECONDITION`: the rule does not allow it now; the message says why and what to do.
    Precondition(String),
    /// `PERMISSION_DENIED`: only a supervisor may.
    NotSupervisor(String),
    /// `NOT_FOUND`.
    NotFound(String),
    /// `ALREADY_EXISTS`.
    AlreadyExists(String),
    /// `ABORTED`: another request changed the waybill at the same moment.
    Conflict,
    /// A failure of kefu's machinery (the database), mapped by the kit.
    Failure(Failure),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(violations) => violations.into_status(),
            Error::Precondition(message) => Status::failed_precondition(message),
            Error::NotSupervisor(message) => Status::permission_denied(message),
            Error::NotFound(message) => Status::not_found(message),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::Conflict => {
                Status::aborted("the waybill was changed by another request at the same moment; read it and retry")
            }
            Error::Failure(failure) => failure.into(),
        }
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Error {
        Error::Invalid(violations)
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        match refusal {
            Refusal::Invalid(violations) => Error::Invalid(violations),
            Refusal::Precondition(message) => Error::Precondition(message),
            Refusal::NotSupervisor(message) => Error::NotSupervisor(message),
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
