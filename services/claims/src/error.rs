//! Every way a claims request can fail, and the one mapping to a gRPC status.

use kefu_kit::error::{Failure, FieldViolations};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{claim::ClaimError, compensation::QuoteError};

#[derive(Debug)]
pub enum Error {
    /// `INVALID_ARGUMENT`, naming every offending field.
    Invalid(FieldViolations),
    /// `FAILED_PRECONDITION`: traffic accident or theft without these documents (`001 §10 4.4`).
    MissingDocuments(Vec<&'static str>),
    /// `FAILED_PRECONDITION`: the claim is not in a state, or lacks a record, the rule needs.
    Precondition(String),
    /// `PERMISSION_DENIED`: not a supervisor, or four eyes.
    NotSupervisor(String),
    /// `NOT_FOUND`.
    NotFound(String),
    /// `RESOURCE_EXHAUSTED`: an evidence quota, with `google.rpc.QuotaFailure` naming its subject
    /// (the claim, or the principal).
    Quota { subject: String, message: String },
    /// `ABORTED`: another request changed the claim at the same moment.
    Conflict,
    /// A failure of kefu's machinery (the database), mapped by the kit.
    Failure(Failure),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(violations) => violations.into_status(),
            Error::MissingDocuments(missing) => {
                let mut details = ErrorDetails::new();
                for document in &missing {
                    details.add_precondition_failure_violation(
                        "MISSING_DOCUMENT",
                        *document,
                        "traffic accident or theft: the shipper must provide the shipping list and the invoice (001 §10 4.4)",
                    );
                }
                Status::with_error_details(
                    Code::FailedPrecondition,
                    format!(
                        "no amount until the shipper provides the {} (001 §10 4.4: traffic accident or theft)",
                        missing.join(" and ")
                    ),
                    details,
                )
            }
            Error::Precondition(message) => Status::failed_precondition(message),
            Error::NotSupervisor(message) => Status::permission_denied(message),
            Error::NotFound(message) => Status::not_found(message),
            Error::Quota { subject, message } => {
                let mut details = ErrorDetails::new();
                details.add_quota_failure_violation(subject, message.clone());
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            Error::Conflict => {
                Status::aborted("the claim was changed by another request at the same moment; read it and retry")
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

impl From<QuoteError> for Error {
    fn from(error: QuoteError) -> Error {
        match error {
            QuoteError::Invalid(violations) => Error::Invalid(violations),
            QuoteError::MissingDocuments(missing) => Error::MissingDocuments(missing),
        }
    }
}

impl From<ClaimError> for Error {
    fn from(error: ClaimError) -> Error {
        match error {
            ClaimError::Invalid(violations) => Error::Invalid(violations),
            ClaimError::Precondition(message) => Error::Precondition(message),
            ClaimError::NotSupervisor(message) | ClaimError::FourEyes(message) => Error::NotSupervisor(message),
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        Error::Failure(failure)
    }
}

/// Database failures, logged and returned without internals.
pub fn db(context: &'static str) -> impl FnOnce(sea_orm::DbErr) -> Error {
    move |error| Error::Failure(Failure::Database { context, error })
}
