//! Who keeps what, and where a case file is (`003 第18条`, `第22条`, `001 §8 4.9.1`), without I/O:
//!
//! - the archives (档案室) alone classify, hold and destroy files and keep their registers; the audit
//!   log, which names every file, is read only by an archivist cleared top secret;
//! - classified files are handled by named people only (第22条): no one classifies a file above their
//!   own clearance;
//! - a closed case's documents are the working papers of the departments that handled it for two
//!   months, then move to the archives (`001 §8 4.9.1`), where they stay until destroyed;
//! - customer files are kept, and customers graded, by the service department (第18条) and the archives.
//!
//! When a file may be held or destroyed is [`crate::retention`]'s; who may read it, [`crate::access`]'s.
//! Every refusal is a [`Refusal`], which says why in the handbook's words.

use std::fmt;

use chrono::{DateTime, Utc};
use kefu_kit::caller::Caller;

use crate::{
    access::Denial,
    policy::{self, Classification},
};

#[cfg(test)]
mod tests;

/// A case file as the rules of its keeping see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFile {
    /// `caseFiles/{case_number}`.
    pub name: String,
    /// The department that handled the case (inspection, claims or settlement).
    pub owner: String,
    /// When it moves from the departments to the archives.
    pub archive_time: DateTime<Utc>,
    pub classification: Classification,
    /// The code of the retention rule it is kept under ([`crate::policy::RetentionRule`]).
    pub retention_rule: String,
    pub retain_until: DateTime<Utc>,
    pub legal_hold: bool,
    pub legal_hold_reason: String,
    pub destroy_time: Option<DateTime<Utc>>,
}

/// Where a case file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// With the service center and settlement, as their working documents.
    ServiceCenter,
    Archives,
    /// Its content is gone; its hash and destruction record remain.
    Destroyed,
}

impl CaseFile {
    /// Where the file is at `now`.
    pub fn location(&self, now: DateTime<Utc>) -> Location {
        if self.destroy_time.is_some() {
            Location::Destroyed
        } else if now < self.archive_time {
            Location::ServiceCenter
        } else {
            Location::Archives
        }
    }

    /// Whether the file is still `caller`'s working documents at `now`: before the move to the
    /// archives, the service center, settlement and the department that handled the case read it
    /// without an access request.
    pub fn is_working_document_of(&self, caller: &Caller, now: DateTime<Utc>) -> bool {
        now < self.archive_time
            && (policy::WORKING_DEPARTMENTS.contains(&caller.department.as_str()) || caller.department == self.owner)
    }

    /// Whether anything of the file is left to read: a destroyed file's content is gone.
    pub fn may_be_read(&self) -> Result<(), Refusal> {
        match self.destroy_time {
            Some(time) => Err(Refusal::Destroyed { file: self.name.clone(), time, rule: self.retention_rule.clone() }),
            None => Ok(()),
        }
    }
}

/// What only the archives do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    Classify,
    LegalHold,
    ListDueForDestruction,
    ProposeDestruction,
    Destroy,
    ListDestructionRecords,
    ReadBorrowingRegister,
    ReadAuditLog,
}

impl Duty {
    /// The duty as a refusal names it: "only the archives may …".
    pub fn what(self) -> &'static str {
        match self {
            Duty::Classify => "classify files",
            Duty::LegalHold => "place or lift legal holds",
            Duty::ListDueForDestruction => "list files due for destruction",
            Duty::ProposeDestruction => "propose destructions",
            Duty::Destroy => "destroy files",
            Duty::ListDestructionRecords => "list destruction records",
            Duty::ReadBorrowingRegister => "read the borrowing register",
            Duty::ReadAuditLog => "read the audit log",
        }
    }
}

/// Why the rules of keeping, retention or destruction refuse a thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The duty is the archives', and the caller is not of the archives.
    ArchivesOnly(Duty),
    /// The audit log names every file, so it needs top-secret clearance.
    AuditNeedsTopSecret,
    /// No one classifies a file above their own clearance (第22条).
    BeyondClearance(Classification),
    /// Customer files are kept by the service department and the archives (第18条).
    CustomerFileKeepersOnly,
    /// Customers are graded by the service department (客户分级).
    GradersOnly,
    /// A destruction is approved by a supervisor of the archives.
    SupervisorApproves,
    /// Four eyes: whoever proposed destroying a file does not destroy it.
    FourEyes { file: String, proposer: String },
    /// The file's content was destroyed: there is nothing to read.
    Destroyed { file: String, time: DateTime<Utc>, rule: String },
    /// A destroyed file is neither held nor released.
    HoldAfterDestruction { file: String },
    /// The file was destroyed before; `record` names its destruction record when known.
    DestroyedBefore { file: String, record: Option<String> },
    /// A held file is never destroyed (第25条 yields to the hold).
    UnderLegalHold { file: String, reason: String },
    /// The file's retention period has not ended.
    Retained { file: String, until: DateTime<Utc>, rule: String },
    /// A destruction needs a proposal by a member of the archives first.
    NotProposed { file: String },
}

impl Refusal {
    /// Whether the caller is refused (PERMISSION_DENIED), rather than the file's state (FAILED_PRECONDITION).
    pub fn is_the_callers(&self) -> bool {
        matches!(
            self,
            Refusal::ArchivesOnly(_)
                | Refusal::AuditNeedsTopSecret
                | Refusal::BeyondClearance(_)
                | Refusal::CustomerFileKeepersOnly
                | Refusal::GradersOnly
                | Refusal::SupervisorApproves
                | Refusal::FourEyes { .. }
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ArchivesOnly(duty) => {
                write!(f, "only the archives (department {}) may {}", policy::ARCHIVES_DEPARTMENT, duty.what())
            }
            Refusal::AuditNeedsTopSecret => {
                write!(f, "the audit log mentions every file: it needs top_secret clearance")
            }
            Refusal::BeyondClearance(level) => write!(f, "your clearance does not reach {}", level.as_str()),
            Refusal::CustomerFileKeepersOnly => {
                write!(f, "customer files are kept by the service department and the archives (003 第18条)")
            }
            Refusal::GradersOnly => write!(f, "customers are graded by the service department (003 客户分级)"),
            Refusal::SupervisorApproves => {
                write!(f, "a destruction is approved by the archives' supervisor (role supervisor)")
            }
            Refusal::FourEyes { file, proposer } => write!(
                f,
                "four eyes: {proposer} proposed destroying {file}, so another supervisor of the archives destroys it"
            ),
            Refusal::Destroyed { file, time, rule } => write!(
                f,
                "{file} was destroyed on {} under rule {rule}; its destruction record remains",
                time.to_rfc3339()
            ),
            Refusal::HoldAfterDestruction { file } => write!(f, "{file} was destroyed"),
            Refusal::DestroyedBefore { file, record: None } => write!(f, "{file} was destroyed before"),
            Refusal::DestroyedBefore { file, record: Some(record) } => {
                write!(f, "{file} was destroyed before: {record}")
            }
            Refusal::UnderLegalHold { file, reason } => {
                write!(f, "{file} is under legal hold ({reason}); a held file is never destroyed — lift the hold first")
            }
            Refusal::Retained { file, until, rule } => {
                write!(f, "{file} is kept until {} under rule {rule}", until.to_rfc3339())
            }
            Refusal::NotProposed { file } => write!(
                f,
                "no one has proposed destroying {file}: a member of the archives proposes it (ProposeDestruction), \
                 and another destroys it"
            ),
        }
    }
}

impl From<Refusal> for Denial {
    fn from(refusal: Refusal) -> Denial {
        if refusal.is_the_callers() {
            Denial::Permission(refusal.to_string())
        } else {
            Denial::Precondition(refusal.to_string())
        }
    }
}

/// Only the archives perform `duty`.
pub fn archivist_only(caller: &Caller, duty: Duty) -> Result<(), Refusal> {
    if caller.department == policy::ARCHIVES_DEPARTMENT { Ok(()) } else { Err(Refusal::ArchivesOnly(duty)) }
}

/// The audit log is read by archivists cleared for everything it may mention.
pub fn auditor_only(caller: &Caller) -> Result<(), Refusal> {
    archivist_only(caller, Duty::ReadAuditLog)?;
    if Classification::clearance_of(caller) != Classification::TopSecret {
        return Err(Refusal::AuditNeedsTopSecret);
    }
    Ok(())
}

/// A destruction is carried out by a supervisor of the archives.
pub fn destruction_approver_only(caller: &Caller) -> Result<(), Refusal> {
    archivist_only(caller, Duty::Destroy)?;
    if !caller.is_supervisor() {
        return Err(Refusal::SupervisorApproves);
    }
    Ok(())
}

/// An archivist classifies a file at most as high as their own clearance reaches.
pub fn may_classify_as(caller: &Caller, level: Classification) -> Result<(), Refusal> {
    if Classification::clearance_of(caller).covers(level) { Ok(()) } else { Err(Refusal::BeyondClearance(level)) }
}

/// The departments that keep customer files (第18条) and grade customers.
const CUSTOMER_FILE_KEEPERS: [&str; 2] = [policy::SERVICE_DEPARTMENT, policy::ARCHIVES_DEPARTMENT];

/// Customer files are opened by the service department and the archives.
pub fn customer_file_keepers_only(caller: &Caller) -> Result<(), Refusal> {
    if CUSTOMER_FILE_KEEPERS.contains(&caller.department.as_str()) {
        Ok(())
    } else {
        Err(Refusal::CustomerFileKeepersOnly)
    }
}

/// Customers are scored on the scoring sheet by the service department (and the archives).
pub fn graders_only(caller: &Caller) -> Result<(), Refusal> {
    if CUSTOMER_FILE_KEEPERS.contains(&caller.department.as_str()) { Ok(()) } else { Err(Refusal::GradersOnly) }
}
