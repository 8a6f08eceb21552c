//! When a case file may go (`003 第25条`: files past their retention period are destroyed as the
//! rules say, and a destruction is itself recorded), without I/O:
//!
//! - a file is kept until the end of its retention period ([`crate::policy::retention_rule`]), to
//!   the instant: the day before it is refused, on the day it may be destroyed;
//! - a file under legal hold is never destroyed, whatever its period; a destroyed file is not held;
//! - a destruction is proposed by one member of the archives and carried out by another, a
//!   supervisor (four eyes), and a file is destroyed once.
//!
//! Who may propose or destroy is [`crate::custody`]'s; the refusals are its [`Refusal`]s.

use chrono::{DateTime, Utc};
use kefu_kit::caller::Caller;

use crate::custody::{CaseFile, Refusal};

#[cfg(test)]
mod tests;

/// Whether a legal hold may be placed on the file or lifted: not once it was destroyed.
pub fn may_hold(file: &CaseFile) -> Result<(), Refusal> {
    if file.destroy_time.is_some() {
        return Err(Refusal::HoldAfterDestruction { file: file.name.clone() });
    }
    Ok(())
}

/// Whether the file may be destroyed at `now`: never under legal hold, never before its retention ends.
pub fn may_be_destroyed(file: &CaseFile, now: DateTime<Utc>) -> Result<(), Refusal> {
    if file.legal_hold {
        return Err(Refusal::UnderLegalHold { file: file.name.clone(), reason: file.legal_hold_reason.clone() });
    }
    if now < file.retain_until {
        return Err(Refusal::Retained {
            file: file.name.clone(),
            until: file.retain_until,
            rule: file.retention_rule.clone(),
        });
    }
    Ok(())
}

/// Whether destroying the file may be proposed at `now`: it is still there and may be destroyed.
pub fn may_propose_destruction(file: &CaseFile, now: DateTime<Utc>) -> Result<(), Refusal> {
    if file.destroy_time.is_some() {
        return Err(Refusal::DestroyedBefore { file: file.name.clone(), record: None });
    }
    may_be_destroyed(file, now)
}

/// Whether `caller` may destroy the file at `now`, given the record of an earlier destruction
/// (`record`, its name) and the member of the archives who proposed this one (`proposer`).
pub fn may_destroy(
    file: &CaseFile,
    record: Option<&str>,
    proposer: Option<&str>,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if let Some(record) = record {
        return Err(Refusal::DestroyedBefore { file: file.name.clone(), record: Some(record.to_owned()) });
    }
    may_be_destroyed(file, now)?;
    match proposer {
        None => Err(Refusal::NotProposed { file: file.name.clone() }),
        Some(proposer) if proposer == caller.user => {
            Err(Refusal::FourEyes { file: file.name.clone(), proposer: proposer.to_owned() })
        }
        Some(_) => Ok(()),
    }
}
