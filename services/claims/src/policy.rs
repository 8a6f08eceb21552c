//! The claims policy: the numbers of the compensation standards (`001 §10`) and the authority limit
//! above which a supervisor approves. The handbook's numbers are built in
//! (`compensation-policy.txt` beside this file); `KEFU_CLAIMS_POLICY` names a file that replaces
//! any of them.

use std::path::Path;

use kefu_kit::policy_file::{self, PolicyError};

pub const DEFAULT_POLICY: &str = include_str!("compensation-policy.txt");
const POLICY: &str = "claims policy";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompensationPolicy {
    pub declared_insured_percent: u32,
    pub declared_uninsured_percent: u32,
    pub undeclared_with_list_percent: u32,
    pub no_list_freight_multiple: u32,
    pub fragile_normal_breakage_basis_points: u32,
    pub fragile_pay_percent: u32,
    /// An agreed amount above this needs a supervisor's approval.
    pub authority_limit_fen: i64,
}

impl CompensationPolicy {
    /// The file at `path`, or the built-in policy when there is none.
    pub fn load(path: Option<&Path>) -> Result<CompensationPolicy, PolicyError> {
        let (text, source_name) = policy_file::read(POLICY, path, DEFAULT_POLICY)?;
        CompensationPolicy::parse(&text, &source_name)
    }

    /// The handbook's numbers (`001 §10`); `compensation-policy.txt` states the same (a test checks).
    pub const fn handbook() -> CompensationPolicy {
        CompensationPolicy {
            declared_insured_percent: 100,
            declared_uninsured_percent: 70,
            undeclared_with_list_percent: 50,
            no_list_freight_multiple: 10,
            fragile_normal_breakage_basis_points: 300,
            fragile_pay_percent: 50,
            authority_limit_fen: 500_000,
        }
    }

    /// Reads `key = value` lines over the handbook's numbers.
    pub fn parse(text: &str, source_name: &str) -> Result<CompensationPolicy, PolicyError> {
        let mut policy = CompensationPolicy::handbook();
        for entry in policy_file::key_values(POLICY, source_name, text) {
            let entry = entry?;
            let (key, value) = (entry.key, entry.value);
            let error = |problem: String| entry.error(problem);
            let number = |max: i64| {
                value
                    .replace('_', "")
                    .parse::<i64>()
                    .ok()
                    .filter(|number| (0..=max).contains(number))
                    .ok_or_else(|| error(format!("{key} = {value:?}: expected a whole number from 0 to {max}")))
            };
            let percent = || number(100).map(|n| n as u32);
            match key {
                "declared_insured_percent" => policy.declared_insured_percent = percent()?,
                "declared_uninsured_percent" => policy.declared_uninsured_percent = percent()?,
                "undeclared_with_list_percent" => policy.undeclared_with_list_percent = percent()?,
                "fragile_pay_percent" => policy.fragile_pay_percent = percent()?,
                "no_list_freight_multiple" => policy.no_list_freight_multiple = number(1_000)? as u32,
                "fragile_normal_breakage_basis_points" => {
                    policy.fragile_normal_breakage_basis_points = number(10_000)? as u32
                }
                "authority_limit_fen" => policy.authority_limit_fen = number(crate::compensation::MAX_FEN)?,
                _ => {
                    return Err(error(format!(
                        "unknown key {key:?}; the keys are declared_insured_percent, declared_uninsured_percent, \
                         undeclared_with_list_percent, no_list_freight_multiple, \
                         fragile_normal_breakage_basis_points, fragile_pay_percent, authority_limit_fen"
                    )));
                }
            }
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_has_the_handbooks_numbers() {
        let policy = CompensationPolicy::load(None).expect("valid");
        assert_eq!(
            (policy.declared_insured_percent, policy.declared_uninsured_percent, policy.undeclared_with_list_percent),
            (100, 70, 50)
        );
        assert_eq!(policy.no_list_freight_multiple, 10);
        assert_eq!((policy.fragile_normal_breakage_basis_points, policy.fragile_pay_percent), (300, 50));
        assert_eq!(policy, CompensationPolicy::handbook(), "the built-in file states the handbook's numbers");
        assert_eq!(policy, CompensationPolicy::parse("", "empty").expect("defaults"));
    }

    #[test]
    fn the_deployed_config_map_is_the_built_in_policy() {
        let deployed = include_str!("../../../deploy/base/claims-policy.txt");
        assert_eq!(
            deployed, DEFAULT_POLICY,
            "deploy/base/claims-policy.txt must equal services/claims/src/compensation-policy.txt"
        );
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let policy =
            CompensationPolicy::parse("declared_uninsured_percent = 60 # board decision\n", "p").expect("valid");
        assert_eq!(policy.declared_uninsured_percent, 60);
        assert_eq!(policy.declared_insured_percent, 100);
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let error = CompensationPolicy::parse("# x\nfragile_pay_percent = 150\n", "claims.txt").expect_err("over 100");
        assert_eq!(error.line, 2);
        assert!(error.to_string().starts_with("claims policy claims.txt, line 2: fragile_pay_percent"), "{error}");
        let error = CompensationPolicy::parse("fragile = 3\n", "p").expect_err("unknown key");
        assert!(error.problem.contains("unknown key \"fragile\""), "{error}");
        let error = CompensationPolicy::parse("authority_limit_fen\n", "p").expect_err("no value");
        assert!(error.problem.contains("key = value"), "{error}");
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
        fn any_line_of_the_claims_file_is_read_or_named(line in 0usize..200, junk in "\\PC{0,80}") {
            let lines: Vec<&str> = DEFAULT_POLICY.lines().collect();
            let mut text: Vec<&str> = lines.clone();
            let at = line % (lines.len() + 1);
            if at == lines.len() { text.push(&junk) } else { text[at] = &junk }
            let text = text.join("\n");
            if let Err(error) = CompensationPolicy::parse(&text, "fuzz") {
                prop_assert!(error.line <= text.lines().count(), "{error}");
            }
        }
    }
}
