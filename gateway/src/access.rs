//! The access table: which principals may call which RPC. It is data, not code —
//! `access-policy.txt` beside this file is the built-in default, a file named by
//! `KEFU_ACCESS_POLICY` replaces it (the ConfigMap `kefu-access-policy`) — and it is enforced in one
//! place, the gateway's front door ([`crate::forward`]).
//!
//! Deny by default: a method the table does not name is refused, and a table that leaves out a
//! method of kefu's contracts, or names one that does not exist, stops the gateway at start with
//! the methods it must add or remove.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
};

use kefu_kit::{config::ServiceName, policy_file::PolicyError};
use prost::Message;

use crate::identity::{self, Principal};

const POLICY: &str = "access policy";
pub const DEFAULT_POLICY: &str = include_str!("access-policy.txt");

/// One entry of who may call a method.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    Role { role: String, department: Option<String> },
    Service(ServiceName),
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Role { role, department: None } => f.write_str(role),
            Grant::Role { role, department: Some(department) } => write!(f, "{role}@{department}"),
            Grant::Service(service) => write!(f, "service:{service}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTable {
    /// By method, as `package.Service/Method`; an empty list is `nobody`.
    rules: HashMap<String, Vec<Grant>>,
}

impl AccessTable {
    /// The file at `path`, or the built-in table when there is none.
    pub fn load(path: Option<&Path>) -> Result<AccessTable, PolicyError> {
        let (text, source_name) = kefu_kit::policy_file::read(POLICY, path, DEFAULT_POLICY)?;
        AccessTable::parse(&text, &source_name)
    }

    pub fn parse(text: &str, source_name: &str) -> Result<AccessTable, PolicyError> {
        let error = |line: usize, problem: String| PolicyError {
            policy: POLICY,
            source_name: source_name.to_owned(),
            line,
            problem,
        };
        let methods = every_method();
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        let mut rules = HashMap::new();
        for (line_number, line) in kefu_kit::policy_file::lines(text) {
            let error = |problem: String| error(line_number, problem);
            if let Some(definition) = line.strip_prefix("group ") {
                let (name, roles) =
                    definition.split_once('=').ok_or_else(|| error("expected `group NAME = role role …`".into()))?;
                let name = name.trim();
                let roles: Vec<String> = roles.split_whitespace().map(str::to_owned).collect();
                if let Some(unknown) = roles.iter().find(|role| !identity::ROLES.contains(&role.as_str())) {
                    return Err(error(format!(
                        "group {name}: unknown role {unknown:?}; the roles are {}",
                        identity::ROLES.join(", ")
                    )));
                }
                if identity::ROLES.contains(&name) || groups.insert(name.to_owned(), roles).is_some() {
                    return Err(error(format!("group {name:?} is defined twice or shadows a role")));
                }
                continue;
            }
            let mut columns = line.split_whitespace();
            let Some(method) = columns.next() else { continue };
            if !methods.contains(method) {
                return Err(error(format!(
                    "{method:?} is not a method of kefu's contracts (write package.Service/Method)"
                )));
            }
            let mut grants = Vec::new();
            let mut nobody = false;
            for entry in columns {
                if entry == "nobody" {
                    nobody = true;
                    continue;
                }
                if let Some(service) = entry.strip_prefix("service:") {
                    let service = service.parse::<ServiceName>().map_err(error)?;
                    grants.push(Grant::Service(service));
                    continue;
                }
                let (name, department) = match entry.split_once('@') {
                    Some((name, department)) => {
                        if !identity::DEPARTMENTS.contains(&department) {
                            return Err(error(format!(
                                "{entry}: unknown department; the departments are {}",
                                identity::DEPARTMENTS.join(", ")
                            )));
                        }
                        (name, Some(department.to_owned()))
                    }
                    None => (entry, None),
                };
                let roles = match groups.get(name) {
                    Some(roles) => roles.clone(),
                    None if identity::ROLES.contains(&name) => vec![name.to_owned()],
                    None => {
                        return Err(error(format!(
                            "{entry}: not a role, a group defined above, service:NAME or nobody"
                        )));
                    }
                };
                grants.extend(roles.into_iter().map(|role| Grant::Role { role, department: department.clone() }));
            }
            if nobody != grants.is_empty() {
                return Err(error(format!("{method}: name who may call it, or `nobody` alone")));
            }
            if rules.insert(method.to_owned(), grants).is_some() {
                return Err(error(format!("{method} appears twice")));
            }
        }
        let missing: Vec<&String> = methods.iter().filter(|method| !rules.contains_key(*method)).collect();
        if !missing.is_empty() {
            let list: Vec<&str> = missing.iter().map(|method| method.as_str()).collect();
            return Err(error(
                0,
                format!(
                    "these methods are in no line, so no one could call them — add a line for each (or `nobody`): {}",
                    list.join(", ")
                ),
            ));
        }
        Ok(AccessTable { rules })
    }

    /// Whether `principal` may call the method at `path` (`/package.Service/Method`).
    pub fn allows(&self, path: &str, principal: &Principal) -> bool {
        let Some(grants) = self.rules.get(path.trim_start_matches('/')) else { return false };
        grants.iter().any(|grant| match grant {
            Grant::Service(service) => principal.service() == Some(*service),
            Grant::Role { role, department } => {
                principal.service().is_none()
                    && principal.caller.has_role(role)
                    && match department {
                        Some(department) => *department == principal.caller.department,
                        // A role alone is the company's: outsiders are named as `role@external`.
                        None => principal.caller.department != identity::EXTERNAL,
                    }
            }
        })
    }

    /// Who may call the method, as the table says it: for messages that tell a caller whom to ask.
    pub fn who_may(&self, path: &str) -> String {
        match self.rules.get(path.trim_start_matches('/')) {
            None => "no one: the access table does not name it".into(),
            Some(grants) if grants.is_empty() => "no one through the gateway".into(),
            Some(grants) => grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        }
    }

    /// The methods the table names.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// Every method of kefu's contracts, as `package.Service/Method`, from the compiled descriptors.
pub fn every_method() -> BTreeSet<String> {
    let Ok(set) = prost_types::FileDescriptorSet::decode(kefu_proto::FILE_DESCRIPTOR_SET) else {
        return BTreeSet::new();
    };
    let mut methods = BTreeSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
}

#[cfg(test)]
mod tests {
    use kefu_kit::caller::Caller;

    use super::*;
    use crate::identity::Kind;

    fn principal(roles: &[&str], department: &str) -> Principal {
        Principal {
            caller: Caller {
                user: "A1".into(),
                department: department.into(),
                branch: String::new(),
                roles: roles.iter().map(|role| role.to_string()).collect(),
                clearance: String::new(),
            },
            kind: Kind::Token("tokens/01".into()),
            expires: None,
        }
    }

    #[test]
    fn the_built_in_table_covers_every_method_of_the_contracts() {
        let table = AccessTable::load(None).expect("the built-in table is valid");
        let named: BTreeSet<String> = table.methods().map(str::to_owned).collect();
        assert_eq!(named, every_method(), "every method, and only those");
        assert!(every_method().len() > 100, "the descriptors were read");
    }

    #[test]
    fn the_deployed_table_is_the_built_in_one() {
        let deployed = include_str!("../../deploy/base/access-policy.txt");
        assert_eq!(deployed, DEFAULT_POLICY, "deploy/base/access-policy.txt must equal gateway/src/access-policy.txt");
    }

    #[test]
    fn roles_departments_and_services_are_matched_and_the_rest_denied() {
        let table = AccessTable::load(None).expect("valid");
        let approve = "/kefu.settlement.v1.Settlement/ReverseLedgerEntry";
        assert!(table.allows(approve, &principal(&["supervisor"], "settlement")));
        assert!(!table.allows(approve, &principal(&["supervisor"], "claims")), "the department matters");
        assert!(!table.allows(approve, &principal(&["agent"], "settlement")), "the role matters");
        assert!(!table.allows("/kefu.intake.v1.Intake/RegisterComplaint", &principal(&["general_manager"], "intake")));
        assert!(!table.allows("/kefu.unknown.v1.X/Y", &principal(&["general_manager"], "intake")), "unnamed: denied");
        let admin = principal(&["admin"], "");
        assert!(table.allows("/kefu.gateway.v1.Tokens/CreateToken", &admin));
        assert!(!table.allows("/kefu.gateway.v1.Complaints/CreateComplaint", &admin), "admin is tokens only");
        let settlement = Principal { kind: Kind::Service(ServiceName::Settlement), ..principal(&[], "settlement") };
        assert!(table.allows("/kefu.gateway.v1.Complaints/CreateComplaint", &settlement));
        assert!(!table.allows("/kefu.gateway.v1.Complaints/GetComplaint", &settlement));
    }

    #[test]
    fn a_table_missing_a_method_or_naming_a_stranger_is_refused() {
        let missing = AccessTable::parse("kefu.gateway.v1.Tokens/CreateToken admin\n", "t").expect_err("incomplete");
        assert!(missing.problem.contains("kefu.archives.v1.Archives/GetCaseFile"), "{}", missing.problem);
        let stranger = format!("{DEFAULT_POLICY}\nkefu.gateway.v1.Tokens/MintMoney admin\n");
        assert!(AccessTable::parse(&stranger, "t").expect_err("unknown method").problem.contains("MintMoney"));
        let bad_role = DEFAULT_POLICY.replace("Tokens/CreateToken                 admin", "Tokens/CreateToken wizard");
        assert!(AccessTable::parse(&bad_role, "t").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// An operator's file with any line replaced by anything is read or refused naming a line
        /// of it (or none), never a panic.
        #[test]
        fn any_line_of_the_access_file_is_read_or_named(line in 0usize..200, junk in "\\PC{0,80}") {
            let lines: Vec<&str> = DEFAULT_POLICY.lines().collect();
            let mut text: Vec<&str> = lines.clone();
            let at = line % (lines.len() + 1);
            if at == lines.len() { text.push(&junk) } else { text[at] = &junk }
            let text = text.join("\n");
            if let Err(error) = AccessTable::parse(&text, "fuzz") {
                prop_assert!(error.line <= text.lines().count(), "{error}");
            }
        }
    }
}
