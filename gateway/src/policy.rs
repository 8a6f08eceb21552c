//! The routing policy: complaint category → owning service, responsible unit and handling time
//! (`domain.md` §2, `001 §8 4.8`). It is data, not code: the handbook's table is built in
//! (`routing-policy.txt` beside this file, also the ConfigMap in `deploy/`), and a file named by
//! `KEFU_ROUTING_POLICY` replaces it. A malformed policy stops start-up with the line that is wrong.

use std::{collections::BTreeMap, path::Path};

use chrono::Duration;
use kefu_kit::config::ServiceName;

/// The handbook's table, the built-in default.
pub const DEFAULT_POLICY: &str = include_str!("routing-policy.txt");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub owner: ServiceName,
    pub responsible_unit: String,
    pub handling_time: Duration,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingPolicy {
    routes: BTreeMap<String, Route>,
}

pub use kefu_kit::policy_file::PolicyError;

const POLICY: &str = "routing policy";

impl RoutingPolicy {
    /// The file at `path`, or the built-in table when there is none.
    pub fn load(path: Option<&Path>) -> Result<RoutingPolicy, PolicyError> {
        let (text, source_name) = kefu_kit::policy_file::read(POLICY, path, DEFAULT_POLICY)?;
        RoutingPolicy::parse(&text, &source_name)
    }

    pub fn parse(text: &str, source_name: &str) -> Result<RoutingPolicy, PolicyError> {
        let mut routes = BTreeMap::new();
        for (line_number, line) in kefu_kit::policy_file::lines(text) {
            let error = |problem: String| PolicyError {
                policy: POLICY,
                source_name: source_name.to_owned(),
                line: line_number,
                problem,
            };
            let mut columns = line.split_whitespace();
            let (Some(category), Some(owner), Some(responsible), Some(time)) =
                (columns.next(), columns.next(), columns.next(), columns.next())
            else {
                return Err(error(format!(
                    "expected `category owner responsible_unit handling_time [label]`, found {line:?}"
                )));
            };
            let label = columns.collect::<Vec<_>>().join(" ");
            if !category.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                || category.len() > 64
            {
                return Err(error(format!("category {category:?}: use lowercase letters, digits and _, at most 64")));
            }
            let owner = match owner.parse::<ServiceName>() {
                Ok(ServiceName::Archives) => {
                    return Err(error("owner archives: archives keeps closed files and owns no complaints; use intake, inspection, claims or settlement".into()));
                }
                Ok(owner) => owner,
                Err(_) => {
                    return Err(error(format!(
                        "unknown owner service {owner:?}; use intake, inspection, claims or settlement"
                    )));
                }
            };
            if responsible.len() > 64 {
                return Err(error("responsible unit: at most 64 characters".into()));
            }
            let handling_time = parse_handling_time(time).map_err(error)?;
            let route = Route { owner, responsible_unit: responsible.to_owned(), handling_time, label };
            if routes.insert(category.to_owned(), route).is_some() {
                return Err(error(format!("category {category:?} appears twice")));
            }
        }
        if routes.is_empty() {
            return Err(PolicyError {
                policy: POLICY,
                source_name: source_name.to_owned(),
                line: 0,
                problem: "no categories: the policy must route at least one".into(),
            });
        }
        Ok(RoutingPolicy { routes })
    }

    pub fn route(&self, category: &str) -> Option<&Route> {
        self.routes.get(category)
    }

    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }
}

/// `90m`, `48h`, `7d`.
fn parse_handling_time(text: &str) -> Result<Duration, String> {
    let problem =
        || format!("handling time {text:?}: expected minutes, hours or days like 90m, 48h, 7d, at most a year");
    let unit = text.chars().last().ok_or_else(problem)?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| problem())?;
    let duration = match unit {
        'm' => Duration::try_minutes(number),
        'h' => Duration::try_hours(number),
        'd' => Duration::try_days(number),
        _ => None,
    }
    .ok_or_else(problem)?;
    if duration <= Duration::zero() || duration > Duration::days(366) {
        return Err(problem());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_is_the_handbooks_table() {
        let policy = RoutingPolicy::load(None).expect("the built-in policy parses");
        let owner = |category: &str| policy.route(category).map(|route| route.owner);
        // 001 §8 4.8.1–4.8.10.
        assert_eq!(owner("attitude"), Some(ServiceName::Inspection));
        assert_eq!(owner("branch_violation"), Some(ServiceName::Inspection));
        assert_eq!(owner("late_delivery"), Some(ServiceName::Inspection));
        assert_eq!(owner("late_remittance"), Some(ServiceName::Settlement));
        assert_eq!(owner("delivery_delay"), Some(ServiceName::Inspection));
        assert_eq!(owner("mis_sort"), Some(ServiceName::Inspection));
        assert_eq!(owner("cargo_damage"), Some(ServiceName::Claims));
        assert_eq!(owner("paperwork_error"), Some(ServiceName::Inspection));
        assert_eq!(owner("freight_rate"), Some(ServiceName::Inspection));
        assert_eq!(owner("slow_feedback"), Some(ServiceName::Inspection));
        assert_eq!(policy.categories().count(), 10);
        assert_eq!(policy.route("branch_violation").map(|r| r.responsible_unit.as_str()), Some("branch_management"));
        assert_eq!(policy.route("cargo_damage").map(|r| r.label.as_str()), Some("货损货差"));
    }

    #[test]
    fn the_deployed_config_map_is_the_built_in_policy() {
        let deployed = include_str!("../../deploy/base/routing-policy.txt");
        assert_eq!(
            deployed, DEFAULT_POLICY,
            "deploy/base/routing-policy.txt must equal gateway/src/routing-policy.txt"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = "# comment\nattitude inspection staff 72h\nlate_delivery warehouse branch 48h\n";
        let error = RoutingPolicy::parse(text, "policy.txt").expect_err("unknown owner");
        assert_eq!(error.line, 3);
        assert!(error.to_string().contains("policy.txt, line 3"), "{error}");
        assert!(error.problem.contains("warehouse"));

        let error = RoutingPolicy::parse("attitude inspection staff\n", "p").expect_err("missing column");
        assert_eq!(error.line, 1);
        let error = RoutingPolicy::parse("attitude inspection staff 3w\n", "p").expect_err("bad time");
        assert!(error.problem.contains("3w"));
        let error = RoutingPolicy::parse("a inspection s 1h\na claims s 1h\n", "p").expect_err("duplicate");
        assert_eq!(error.line, 2);
        let error = RoutingPolicy::parse("a archives s 1h\n", "p").expect_err("archives owns nothing");
        assert!(error.problem.contains("archives"));
        assert!(RoutingPolicy::parse("# nothing\n", "p").is_err());
    }

    #[test]
    fn a_file_can_add_categories_and_move_owners() {
        let text = "lost_receipt intake service_center 90m 回单遗失\ncargo_damage inspection branch 2d\n";
        let policy = RoutingPolicy::parse(text, "p").expect("valid");
        assert_eq!(policy.route("lost_receipt").map(|r| r.handling_time), Some(Duration::minutes(90)));
        assert_eq!(policy.route("cargo_damage").map(|r| r.owner), Some(ServiceName::Inspection));
        assert_eq!(policy.route("attitude"), None);
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
        fn any_line_of_the_routing_file_is_read_or_named(line in 0usize..200, junk in "\\PC{0,80}") {
            let lines: Vec<&str> = DEFAULT_POLICY.lines().collect();
            let mut text: Vec<&str> = lines.clone();
            let at = line % (lines.len() + 1);
            if at == lines.len() { text.push(&junk) } else { text[at] = &junk }
            let text = text.join("\n");
            if let Err(error) = RoutingPolicy::parse(&text, "fuzz") {
                prop_assert!(error.line <= text.lines().count(), "{error}");
            }
        }
    }
}
