//! Every query of the archives, one file per room, and nothing else: no rule is decided here.
//!
//! - [`case_files`]: the sealed case files (content sealed with its SHA-256, emptied only by
//!   destruction), their classification, retention and legal hold;
//! - [`customers`]: customer files, their phones and their grades;
//! - [`access_requests`]: access requests and the borrowing register;
//! - [`destruction`]: destruction proposals and destruction records;
//! - [`audit_log`]: the audit log's entries and head (sealed by [`crate::audit`]);
//! - [`schema`]: the migrations that create these tables.
//!
//! Functions take any connection, so that a handler composes them in one transaction from
//! [`begin`] and commits it when every step, and its audit entry, is written.

pub mod access_requests;
pub mod audit_log;
pub mod case_files;
pub mod customers;
pub mod destruction;
pub mod schema;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};

pub use access_requests::{access_request, borrowing};
pub use case_files::case_file;
pub use customers::{customer, customer_phone};
pub use destruction::{destruction_proposal, destruction_record};

/// Opens the transaction a request's changes and their audit entries are written in together.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin().await
}
