//! Every way an archives request can fail, and the one mapping to a gRPC status.

use kefu_kit::error::{Failure, FieldViolations};
use tonic::Status;

use crate::access::Denial;

#[derive(Debug)]
pub enum Error {
    /// `INVALID_ARGUMENT`, naming every offending field.
    Invalid(FieldViolations),
    /// `NOT_FOUND`: absent, or above the caller's clearance (the two are told apart to no one).
    NotFound(String),
    /// `PERMISSION_DENIED`: the rules do not let this caller; the message says who may.
    Denied(String),
    /// `FAILED_PRECONDITION`: not now (held, retained, decided, destroyed); the message says why.
    Precondition(String),
    /// `ALREADY_EXISTS`.
    AlreadyExists(String),
    /// `ABORTED`: another request changed the record at the same moment.
    Conflict,
    /// `DATA_LOSS`: a sealed file no longer matches its hash.
    Corrupt(String),
    /// A failure of kefu's machinery (the database), mapped by the kit.
    Failure(Failure),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(violations) => violations.into_status(),
            Error::NotFound(message) => Status::not_found(message),
            Error::Denied(message) => Status::permission_denied(message),
            Error::Precondition(message) => Status::failed_precondition(message),
            Error::AlreadyExists(message) => Status::already_exists(message),
            Error::Conflict => {
                Status::aborted("the record was changed by another request at the same moment; read it and retry")
            }
            Error::Corrupt(message) => Status::data_loss(message),
            Error::Failure(failure) => failure.into(),
        }
    }
}

impl From<FieldViolations> for Error {
    fn from(violations: FieldViolations) -> Error {
        Error::Invalid(violations)
    }
}

impl From<Denial> for Error {
    fn from(denial: Denial) -> Error {
        match denial {
            Denial::Permission(message) => Error::Denied(message),
            Denial::Precondition(message) => Error::Precondition(message),
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
