//! Who may read what (`003 第19–23条`), without I/O: the signatures an access request needs, who may
//! give them, whether an approval still holds, and how personal data is masked.
//!
//! - 第20条: a request names the file, purpose, reason and requester; the requester's department head
//!   signs it and the service department approves it; outsiders, and anyone for a classified file,
//!   also need the general manager.
//! - 第23条: copying or excerpting needs the general manager's or a supervisor's approval of its own.
//! - Each signature is another person's: one call signs one, and a signer signs no other
//!   ([`Request::sign`]).
//! - Archived files are never lent: every read is entered in the borrowing register (done by the api),
//!   and every read names the approved request it is made under ([`may_read`]).
//! - A request is seen by its requester, the archives, and whoever may sign it ([`Request::visible_to`]).

use chrono::{DateTime, Utc};
use kefu_kit::caller::Caller;
use serde::{Deserialize, Serialize};

use crate::policy::{self, Classification};

/// A signature an access request may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    /// 查阅单位(部门)负责人签字.
    DepartmentHead,
    /// 服务部审核批准.
    ServiceDepartment,
    /// 总经理批准: outsiders and classified files.
    GeneralManager,
    /// 非经总经理或主管批准,不得复制和摘抄.
    CopyApproval,
}

impl Signature {
    pub fn as_str(self) -> &'static str {
        match self {
            Signature::DepartmentHead => "department_head",
            Signature::ServiceDepartment => "service_department",
            Signature::GeneralManager => "general_manager",
            Signature::CopyApproval => "copy_approval",
        }
    }

    /// Who may give this signature on a request by someone of `requester_department`.
    pub fn who(self, requester_department: &str) -> String {
        match self {
            Signature::DepartmentHead => format!("the head of {requester_department} (role department_head)"),
            Signature::ServiceDepartment => {
                format!("the service department (department {}, role department_head)", policy::SERVICE_DEPARTMENT)
            }
            Signature::GeneralManager => "the general manager (role general_manager)".into(),
            Signature::CopyApproval => "the general manager or a supervisor".into(),
        }
    }

    /// Whether `caller` may sign this on a request by someone of `requester_department`.
    pub fn may_sign(self, caller: &Caller, requester_department: &str) -> bool {
        let head = caller.has_role(policy::DEPARTMENT_HEAD_ROLE);
        match self {
            Signature::DepartmentHead => head && caller.department == requester_department,
            Signature::ServiceDepartment => head && caller.department == policy::SERVICE_DEPARTMENT,
            Signature::GeneralManager => caller.has_role(policy::GENERAL_MANAGER_ROLE),
            Signature::CopyApproval => caller.has_role(policy::GENERAL_MANAGER_ROLE) || caller.is_supervisor(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Read,
    Copy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Copy => "copy",
        }
    }

    /// The kind [`Kind::as_str`] wrote; anything else is a read.
    pub fn parse(text: &str) -> Kind {
        if text == "copy" { Kind::Copy } else { Kind::Read }
    }
}

/// An access request names its requester (第20条 1): an anonymous caller asks for nothing.
pub fn requester_named(caller: &Caller) -> Result<(), Denial> {
    if caller.user == kefu_kit::caller::ANONYMOUS {
        return Err(Denial::Permission("an access request names its requester: call with your identity".into()));
    }
    Ok(())
}

/// Whether `caller` may read `file` at `now` under the access request they named (`named`, empty
/// when they named none), found as `asked` (`None` when there is no such request).
pub fn may_read(
    caller: &Caller,
    file: &str,
    named: &str,
    asked: Option<&Request>,
    now: DateTime<Utc>,
) -> Result<(), Denial> {
    if named.is_empty() {
        return Err(Denial::Permission(format!(
            "reading {file} needs an approved access request (003 第20条): ask with CreateAccessRequest and name it \
             in access_request"
        )));
    }
    match asked {
        Some(asked) => asked.permits(caller, file, now),
        None => Err(Denial::Permission(format!("there is no access request {named}"))),
    }
}

/// Whether the requester is outside the company (第20条 4).
pub fn is_external(department: &str) -> bool {
    department.is_empty() || department == policy::EXTERNAL_DEPARTMENT
}

/// The signatures a request needs, in the order the handbook lists them.
pub fn required_signatures(requester_department: &str, file_level: Classification, kind: Kind) -> Vec<Signature> {
    let external = is_external(requester_department);
    let mut required = Vec::new();
    // An outsider has no department head in the company: the general manager signs instead. For
    // the service department's own staff, their head and the service department are one office:
    // its approval is the one signature (each signature is another person's, so asking it twice
    // would need two heads of one department).
    if !external && requester_department != policy::SERVICE_DEPARTMENT {
        required.push(Signature::DepartmentHead);
    }
    required.push(Signature::ServiceDepartment);
    if external || file_level > Classification::Ordinary {
        required.push(Signature::GeneralManager);
    }
    if kind == Kind::Copy {
        required.push(Signature::CopyApproval);
    }
    required
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub signature: Signature,
    pub approver: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Refused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> State {
        match text {
            "approved" => State::Approved,
            "refused" => State::Refused,
            _ => State::Pending,
        }
    }
}

/// An access request as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub file: String,
    pub kind: Kind,
    pub requester: String,
    pub requester_department: String,
    pub personal_data: bool,
    pub required: Vec<Signature>,
    pub approvals: Vec<Approval>,
    pub state: State,
    pub expire_time: Option<DateTime<Utc>>,
}

/// Why a caller may not do something: PERMISSION_DENIED, or FAILED_PRECONDITION where the request's
/// state is wrong rather than the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Permission(String),
    Precondition(String),
}

impl Request {
    /// The signatures still missing.
    pub fn missing(&self) -> Vec<Signature> {
        self.required
            .iter()
            .copied()
            .filter(|needed| !self.approvals.iter().any(|given| given.signature == *needed))
            .collect()
    }

    /// Signs one missing signature `caller` may give; approves the request when none is missing,
    /// good until `now` plus the policy's validity. The requester never signs their own request.
    ///
    /// Each signature is another person's (`003 第19–23条`: the requester's department head signs,
    /// the service department approves, the general manager approves, and a copy needs an approval
    /// of its own — checks by different people, not one person's roles counted several times). So
    /// one call gives one signature, and whoever signed a request signs none of its others.
    ///
    /// When the caller could give several, they give the one the fewest others could: the general
    /// manager's first, then a department head's (the requester's department before the service
    /// department's), and a copy approval — any supervisor's — last. Giving the scarce one leaves
    /// the rest to the many; the other way round, a general manager who approved the copy would
    /// leave the request waiting for a second general manager.
    pub fn sign(&mut self, caller: &Caller, now: DateTime<Utc>) -> Result<Signature, Denial> {
        if self.state != State::Pending {
            return Err(Denial::Precondition(format!("the request is {} already", self.state.as_str())));
        }
        if caller.user == self.requester {
            return Err(Denial::Permission("a requester cannot approve their own access request".into()));
        }
        let missing = self.missing();
        let awaits = || {
            let who: Vec<String> = missing.iter().map(|needed| needed.who(&self.requester_department)).collect();
            who.join("; ")
        };
        if let Some(given) = self.approvals.iter().find(|given| given.approver == caller.user) {
            return Err(Denial::Permission(format!(
                "you signed this request already, as {}: each of its signatures is another person's (003 第19–23条), so another person must sign; it awaits {}",
                given.signature.as_str(),
                awaits()
            )));
        }
        const SCARCEST_FIRST: [Signature; 4] = [
            Signature::GeneralManager,
            Signature::DepartmentHead,
            Signature::ServiceDepartment,
            Signature::CopyApproval,
        ];
        let Some(signature) = SCARCEST_FIRST
            .into_iter()
            .find(|needed| missing.contains(needed) && needed.may_sign(caller, &self.requester_department))
        else {
            return Err(Denial::Permission(format!("this request awaits {}", awaits())));
        };
        self.approvals.push(Approval { signature, approver: caller.user.clone(), time: now });
        if self.missing().is_empty() {
            self.state = State::Approved;
            self.expire_time = Some(now + policy::approval_valid_for());
        }
        Ok(signature)
    }

    /// Refuses the request; only someone whose signature it awaits may.
    pub fn refuse(&mut self, caller: &Caller) -> Result<(), Denial> {
        if self.state != State::Pending {
            return Err(Denial::Precondition(format!("the request is {} already", self.state.as_str())));
        }
        if !self.missing().iter().any(|needed| needed.may_sign(caller, &self.requester_department)) {
            return Err(Denial::Permission("only someone whose signature the request awaits may refuse it".into()));
        }
        self.state = State::Refused;
        Ok(())
    }

    /// Whether the request waits for a signature `caller` may give now (never its requester's, nor
    /// anyone's who signed it already).
    pub fn awaits(&self, caller: &Caller) -> bool {
        self.state == State::Pending
            && caller.user != self.requester
            && !self.approvals.iter().any(|given| given.approver == caller.user)
            && self.missing().iter().any(|needed| needed.may_sign(caller, &self.requester_department))
    }

    /// Whether `caller` may see this request: its requester, the archives, and whoever may sign it.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        caller.user == self.requester
            || caller.department == policy::ARCHIVES_DEPARTMENT
            || self.required.iter().any(|signature| signature.may_sign(caller, &self.requester_department))
    }

    /// Whether `caller` may read `file` under this request at `now`.
    pub fn permits(&self, caller: &Caller, file: &str, now: DateTime<Utc>) -> Result<(), Denial> {
        if self.file != file {
            return Err(Denial::Permission(format!("the access request is for {}, not {file}", self.file)));
        }
        if self.requester != caller.user {
            return Err(Denial::Permission(format!(
                "the access request is {}'s; each reader needs their own",
                self.requester
            )));
        }
        match self.state {
            State::Pending => {
                let who: Vec<String> =
                    self.missing().iter().map(|needed| needed.who(&self.requester_department)).collect();
                Err(Denial::Permission(format!("the access request is not approved yet: it awaits {}", who.join("; "))))
            }
            State::Refused => Err(Denial::Permission("the access request was refused".into())),
            State::Approved => match self.expire_time {
                Some(expire) if now < expire => Ok(()),
                Some(expire) => Err(Denial::Permission(format!(
                    "the approval expired at {}; ask again with CreateAccessRequest",
                    expire.to_rfc3339()
                ))),
                None => Err(Denial::Permission("the approval has no expiry recorded; ask again".into())),
            },
        }
    }
}

/// The masks of personal data are the kit's, one for every service.
pub use kefu_kit::personal::{mask_name, mask_phone};

#[cfg(test)]
mod tests;
