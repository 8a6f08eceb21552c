//! Policy files: the rules operators may change without a rebuild (the routing policy, the claims
//! compensation policy, …). Each has the handbook's numbers built in; a file named by an
//! environment variable replaces them. A malformed file stops start-up with the line that is wrong.

use std::{borrow::Cow, path::Path};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{policy} {source_name}, line {line}: {problem}")]
pub struct PolicyError {
    /// Which policy: `routing policy`, `claims policy`.
    pub policy: &'static str,
    /// The file, or `(built in)`.
    pub source_name: String,
    /// 1-based; 0 when the problem is not on one line.
    pub line: usize,
    pub problem: String,
}

/// The text of the policy file at `path`, or `built_in` when there is none, with the name errors
/// should give it.
pub fn read(
    policy: &'static str,
    path: Option<&Path>,
    built_in: &'static str,
) -> Result<(Cow<'static, str>, String), PolicyError> {
    match path {
        None => Ok((Cow::Borrowed(built_in), "(built in)".into())),
        Some(path) => {
            let source_name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => Ok((Cow::Owned(text), source_name)),
                Err(error) => {
                    Err(PolicyError { policy, source_name, line: 0, problem: format!("cannot read the file: {error}") })
                }
            }
        }
    }
}

/// The lines of a policy text that say something (not blank, not `#` comments), numbered from 1,
/// with trailing `# comments` removed.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.split_once(" #").map_or(line, |(before, _)| before).trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// One `key = value` line of a policy file, trimmed, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub policy: &'static str,
    pub source_name: &'a str,
    /// 1-based.
    pub line: usize,
    pub key: &'a str,
    pub value: &'a str,
}

impl Entry<'_> {
    /// A problem with this line.
    pub fn error(&self, problem: String) -> PolicyError {
        PolicyError { policy: self.policy, source_name: self.source_name.to_owned(), line: self.line, problem }
    }
}

/// The `key = value` lines of `policy`'s text read from `source_name`; a line that is not
/// `key = value` is an error naming it.
pub fn key_values<'a>(
    policy: &'static str,
    source_name: &'a str,
    text: &'a str,
) -> impl Iterator<Item = Result<Entry<'a>, PolicyError>> + 'a {
    lines(text).map(move |(line, text)| match text.split_once('=') {
        Some((key, value)) => Ok(Entry { policy, source_name, line, key: key.trim(), value: value.trim() }),
        None => Err(PolicyError {
            policy,
            source_name: source_name.to_owned(),
            line,
            problem: format!("expected `key = value`, found {text:?}"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_are_trimmed_numbered_and_a_stray_line_is_named() {
        let text = "# comment\n a = 1 # note\n\nb=two\noops\n";
        let read: Vec<_> = key_values("test policy", "t", text).collect();
        let entry = |line, key, value| Entry { policy: "test policy", source_name: "t", line, key, value };
        assert_eq!(read[0], Ok(entry(2, "a", "1")));
        assert_eq!(read[1], Ok(entry(4, "b", "two")));
        let stray = read[2].clone().expect_err("a stray line");
        assert_eq!((stray.line, stray.problem.as_str()), (5, "expected `key = value`, found \"oops\""));
    }
}
