//! Personal data: a customer's name and phone. Who sees them whole on a complaint is one rule
//! ([`Caller::sees_personal_data_of`]); everyone else sees them masked ([`mask_name`],
//! [`mask_phone`]), never left out, so a screen still tells one customer from another.

use crate::caller::Caller;

/// The department of the service center, which takes every complaint and calls customers back.
pub const SERVICE_CENTER: &str = "intake";
/// The department of outsiders who borrow files (003 第20条): never company staff.
pub const OUTSIDERS: &str = "external";

impl Caller {
    /// Whether this caller sees every customer's name and phone in the cases it may read: the
    /// service center (intake), and a branch office's system (which reads its own branch's cases
    /// alone, see [`Caller::branch_scope`]).
    pub fn sees_all_personal_data(&self) -> bool {
        self.department == SERVICE_CENTER || self.branch_scope().is_some()
    }

    /// Whether this caller sees the customer's name and phone of a case owned by `owner` (the
    /// department the case was routed to): as [`Caller::sees_all_personal_data`], or as a member of
    /// the owning department. Other departments, managers and outsiders see them masked.
    pub fn sees_personal_data_of(&self, owner: &str) -> bool {
        self.sees_all_personal_data() || (!owner.is_empty() && self.department == owner)
    }
}

/// A name with all but its first character hidden: 张** .
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// A phone number with all but its first three and last four digits hidden: 138****5678.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    chars.iter().enumerate().map(|(index, c)| if index < 3 || index >= chars.len() - 4 { *c } else { '*' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(department: &str, roles: &[&str], branch: &str) -> Caller {
        Caller {
            user: "U1".into(),
            department: department.into(),
            branch: branch.into(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            clearance: String::new(),
        }
    }

    #[test]
    fn the_service_center_branch_systems_and_the_owner_see_the_customer() {
        assert!(caller("intake", &["agent"], "").sees_personal_data_of("claims"));
        assert!(caller("", &["branch_system"], "SH01").sees_personal_data_of("claims"));
        assert!(caller("claims", &["agent"], "").sees_personal_data_of("claims"));
        for other in [
            caller("inspection", &["agent"], ""),
            caller("archives", &["archivist"], ""),
            caller("", &["general_manager"], ""),
            caller("external", &["agent"], ""),
        ] {
            assert!(!other.sees_personal_data_of("claims"), "{other:?}");
        }
        assert!(!caller("", &["agent"], "").sees_personal_data_of(""), "no department owns an unrouted case");
    }

    #[test]
    fn masks_keep_enough_to_tell_customers_apart() {
        assert_eq!(mask_name("王先生"), "王**");
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert_eq!(mask_phone("1234567"), "*******");
        assert_eq!(mask_name(""), "");
    }
}
