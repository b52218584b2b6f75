//! A bound on the parsing work a module's brackets cause, checked before regorus parses it.
//!
//! Why: regorus 0.14's parser reads a `[` or `{` by trying a comprehension first and, when
//! that fails at the closing bracket, parsing the same text again as an array, set or object.
//! So each level of nesting doubles the work: a bracket inside `k` others is parsed `2^k`
//! times. Measured on one module, release build: 12 nested `[` parse in about 10 ms, 16 in
//! 0.1 s, 18 in 0.5 s, and every two more levels multiply that by four. The `authz_config`
//! fuzz target found a 788-byte configuration (21 nested `[`) that held the filter's
//! `on_configure` for over 20 seconds; a ConstraintTemplate would hold the webhook the same
//! way. OPA's parser is linear, so nothing else bounds it.
//!
//! The check sums `2^depth` over the module's brackets outside strings and comments (the
//! parser's work, in bracket parses) and refuses a module above [`MAX_WORK`], naming the line
//! of the bracket that crossed it. Parentheses do not backtrack and are not counted. The
//! budget is far above real Rego: the costliest file in the repository, a test whose `with
//! input as` reviews nest deepest (`policies/capabilities/src_test.rego`), costs 11,832, about
//! 1/90 of it (pinned by a test below), while a single nest of 21 brackets exceeds it.

use crate::rego_scan::{TokenKind, tokenize};

/// The most bracket parses a module may cause (about a second of parsing at worst).
pub const MAX_WORK: u64 = 1 << 20;

/// A module whose brackets nest too deeply for the parser. Its message leaves out the line, so
/// callers write `<module>:<line>: <message>` as regorus' own errors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line of the bracket that crossed the budget.
    pub line: usize,
    /// Its depth (brackets enclosing it, plus one).
    pub depth: u32,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "brackets nest {} deep here; the module's nesting would cost the parser more than \
             {MAX_WORK} bracket parses (each level doubles it): flatten the literal or \
             comprehension, or move the data to `data`",
            self.depth
        )
    }
}

impl std::error::Error for TooDeep {}

/// The parse work of `text`'s brackets (see the module docs).
pub fn work(text: &str) -> u64 {
    walk(text).0
}

/// `Ok` when `text` is within [`MAX_WORK`].
pub fn check(text: &str) -> Result<(), TooDeep> {
    match walk(text).1 {
        Some(too_deep) => Err(too_deep),
        None => Ok(()),
    }
}

fn walk(text: &str) -> (u64, Option<TooDeep>) {
    let mut work = 0u64;
    let mut stack: Vec<char> = Vec::new();
    let mut first_over = None;
    for token in tokenize(text) {
        match token.kind {
            TokenKind::Punct(open @ ('[' | '{')) => {
                let depth = u32::try_from(stack.len()).unwrap_or(u32::MAX);
                work = work.saturating_add(1u64.checked_shl(depth).unwrap_or(u64::MAX));
                stack.push(open);
                if work > MAX_WORK && first_over.is_none() {
                    first_over = Some(TooDeep {
                        line: token.line,
                        depth: depth.saturating_add(1),
                    });
                }
            }
            TokenKind::Punct(']' | '}') => {
                stack.pop();
            }
            _ => {}
        }
    }
    (work, first_over)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "package p\n\nx := {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn each_level_doubles_the_work() {
        assert_eq!(work("package p\nx := [1, [2], {3}]\n"), 1 + 2 + 2);
        assert_eq!(work(&nested(10)), (1 << 10) - 1);
        assert_eq!(
            work("package p\nx := {\"a\": {\"b\": [1]}}\n"),
            1 + 2 + 4,
            "objects, sets and arrays all count"
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = "package p\n# [[[[[[[[\nx := \"[[[[{{{{\"\ny := `[[[[`\n";
        assert_eq!(work(text), 0);
    }

    #[test]
    fn a_deep_nest_is_refused_at_the_bracket_that_crosses_the_budget() {
        assert_eq!(check(&nested(20)), Ok(()), "2^20 - 1 parses is within");
        let err = check(&nested(21)).unwrap_err();
        assert_eq!(err, TooDeep { line: 3, depth: 21 });
        assert!(
            err.to_string().starts_with("brackets nest 21 deep here"),
            "{err}"
        );
        // Many moderate nests add up.
        let many = format!(
            "package p\n{}",
            "x contains [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]\n".repeat(40)
        );
        assert!(check(&many).is_err());
        assert!(
            check(&"x := [".repeat(10_000)).is_err(),
            "unclosed brackets count too"
        );
    }
}

#[cfg(test)]
mod repository {
    use std::path::{Path, PathBuf};

    /// Every `.rego` file and Gatekeeper YAML in the repository (whole YAML files are an upper
    /// bound on their Rego's work: the YAML around it adds few brackets).
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "rego" || ext == "yaml")
            {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_repositorys_rego_is_far_below_the_budget() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut paths = Vec::new();
        for dir in [
            "policies",
            "gatekeeper",
            "istio/authz",
            "filters/host/examples",
        ] {
            files(&root.join(dir), &mut paths);
        }
        assert!(paths.len() > 20, "found only {paths:?}");
        let (most, path) = paths
            .iter()
            .map(|path| (super::work(&std::fs::read_to_string(path).unwrap()), path))
            .max()
            .unwrap();
        eprintln!("most bracket work: {most} in {}", path.display());
        assert!(
            most <= super::MAX_WORK / 16,
            "{} costs {most} bracket parses, within 16x of the budget",
            path.display()
        );
    }
}
