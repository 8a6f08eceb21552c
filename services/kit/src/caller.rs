//! Who is calling. The gateway establishes the caller's identity (today from the `x-kefu-*`
//! headers the caller sends; when authentication comes, from its credentials) and sets these
//! metadata keys on every call it makes or forwards; services read them with [`Caller::from_metadata`]
//! and record who did what. Events carry the caller too (`kefu.type.v1.Caller`).
//!
//! | key | meaning |
//! |---|---|
//! | `x-kefu-user` | the user's id, e.g. a staff badge number; `anonymous` when none is given |
//! | `x-kefu-department` | the user's department, e.g. `intake`, `inspection` |
//! | `x-kefu-branch` | the branch office code, for branch-office systems |
//! | `x-kefu-roles` | comma-separated roles, e.g. `agent,supervisor` |
//! | `x-kefu-clearance` | the highest classification the user may read: `confidential`, `top_secret`; none for ordinary files only |

use kefu_proto::types::v1 as pb;
use tonic::metadata::{MetadataMap, MetadataValue};

pub const USER: &str = "x-kefu-user";
pub const DEPARTMENT: &str = "x-kefu-department";
pub const BRANCH: &str = "x-kefu-branch";
pub const ROLES: &str = "x-kefu-roles";
pub const CLEARANCE: &str = "x-kefu-clearance";
pub const ANONYMOUS: &str = "anonymous";
/// The role that may approve what needs a supervisor (a claim above the limit, a change of a
/// waybill's money, a reversal in the ledger).
pub const SUPERVISOR_ROLE: &str = "supervisor";

/// The role of a branch office's system, which acts for its own `branch` alone.
pub const BRANCH_SYSTEM_ROLE: &str = "branch_system";

/// The longest value accepted in one identity key.
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub department: String,
    pub branch: String,
    pub roles: Vec<String>,
    /// The highest classification the caller may read; empty for ordinary files only.
    pub clearance: String,
}

impl Default for Caller {
    fn default() -> Self {
        Self {
            user: ANONYMOUS.into(),
            department: String::new(),
            branch: String::new(),
            roles: Vec::new(),
            clearance: String::new(),
        }
    }
}

impl Caller {
    pub fn is_supervisor(&self) -> bool {
        self.has_role(SUPERVISOR_ROLE)
    }

    /// Reads the identity keys; missing, non-ASCII or overlong values count as absent.
    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        let get = |key: &str| {
            metadata
                .get(key)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty() && value.len() <= MAX_LEN)
                .map(str::to_owned)
        };
        Caller {
            user: get(USER).unwrap_or_else(|| ANONYMOUS.into()),
            department: get(DEPARTMENT).unwrap_or_default(),
            branch: get(BRANCH).unwrap_or_default(),
            roles: get(ROLES)
                .map(|roles| {
                    roles.split(',').map(str::trim).filter(|role| !role.is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
            clearance: get(CLEARANCE).unwrap_or_default(),
        }
    }

    /// The branch a branch office's system acts for: it files and sees that branch's cases alone.
    /// `None` for staff, who see every branch.
    pub fn branch_scope(&self) -> Option<&str> {
        self.has_role(BRANCH_SYSTEM_ROLE).then_some(self.branch.as_str())
    }

    /// Whether a case of `branch` is hidden from this caller (a branch system's view of another
    /// branch's case): it is then answered exactly like a case that does not exist.
    pub fn cannot_see_branch(&self, branch: &str) -> bool {
        self.branch_scope().is_some_and(|scope| scope != branch)
    }

    /// The branch a new case of this caller is filed for: `given`, which a branch system may leave
    /// empty for its own and may not set to another's.
    pub fn filing_branch<'a>(&'a self, given: &'a str) -> Result<&'a str, tonic::Status> {
        match self.branch_scope() {
            None => Ok(given),
            Some(scope) if given.trim().is_empty() || given.trim() == scope => Ok(scope),
            Some(scope) => Err(tonic::Status::permission_denied(format!(
                "a branch office's system files cases for its own branch ({scope}) only, not for {}",
                given.trim()
            ))),
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Replaces whatever identity keys the metadata holds with this caller's.
    pub fn write_metadata(&self, metadata: &mut MetadataMap) {
        for key in [USER, DEPARTMENT, BRANCH, ROLES, CLEARANCE] {
            metadata.remove(key);
        }
        let mut set = |key: &'static str, value: &str| {
            if let Ok(value) = MetadataValue::try_from(value)
                && !value.is_empty()
            {
                metadata.insert(key, value);
            }
        };
        set(USER, &self.user);
        set(DEPARTMENT, &self.department);
        set(BRANCH, &self.branch);
        set(ROLES, &self.roles.join(","));
        set(CLEARANCE, &self.clearance);
    }

    pub fn to_proto(&self) -> pb::Caller {
        pb::Caller {
            user: self.user.clone(),
            department: self.department.clone(),
            branch: self.branch.clone(),
            roles: self.roles.clone(),
            clearance: self.clearance.clone(),
        }
    }

    pub fn from_proto(caller: Option<&pb::Caller>) -> Self {
        match caller {
            Some(caller) if !caller.user.is_empty() => Caller {
                user: caller.user.clone(),
                department: caller.department.clone(),
                branch: caller.branch.clone(),
                roles: caller.roles.clone(),
                clearance: caller.clearance.clone(),
            },
            _ => Caller::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_a_hop_through_metadata() {
        let caller = Caller {
            user: "A1024".into(),
            department: "intake".into(),
            branch: "SH01".into(),
            roles: vec!["agent".into(), "supervisor".into()],
            clearance: "confidential".into(),
        };
        let mut metadata = MetadataMap::new();
        metadata.insert(USER, MetadataValue::from_static("spoofed"));
        caller.write_metadata(&mut metadata);
        assert_eq!(Caller::from_metadata(&metadata), caller);
    }

    #[test]
    fn missing_identity_is_anonymous() {
        let caller = Caller::from_metadata(&MetadataMap::new());
        assert_eq!(caller.user, ANONYMOUS);
        assert!(caller.roles.is_empty());
    }
}
