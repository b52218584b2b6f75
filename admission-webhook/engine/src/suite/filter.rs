//! `--run`, as gator's filter reads it: `REGEX` selects tests whose name matches and cases whose
//! name (or whose test's name) matches; `TEST//CASE` selects cases matching CASE in tests
//! matching TEST. Regular expressions match anywhere in the name (anchor with ^ and $).

use regex::Regex;

use super::Test;

/// Which tests and cases to run.
#[derive(Debug, Default)]
pub enum Filter {
    /// Everything.
    #[default]
    All,
    /// One expression for test or case names.
    Or(Regex),
    /// Test expression and case expression.
    And(Regex, Regex),
}

impl Filter {
    /// Parses `--run`; the error says what is wrong with it.
    pub fn parse(run: Option<&str>) -> Result<Filter, String> {
        let Some(run) = run.filter(|r| !r.is_empty()) else {
            return Ok(Filter::All);
        };
        let compile = |re: &str| {
            Regex::new(re)
                .map_err(|err| format!("--run: {re:?} is not a valid regular expression: {err}"))
        };
        let parts: Vec<&str> = run.split("//").collect();
        match parts.as_slice() {
            [one] => Ok(Filter::Or(compile(one)?)),
            [test, case] => Ok(Filter::And(compile(test)?, compile(case)?)),
            _ => Err("--run: a filter may include at most one \"//\" (TEST//CASE)".into()),
        }
    }

    /// Whether to run a test.
    pub fn matches_test(&self, test: &Test) -> bool {
        match self {
            Filter::All => true,
            Filter::Or(re) => {
                re.is_match(&test.name) || test.cases.iter().any(|c| re.is_match(&c.name))
            }
            Filter::And(test_re, _) => test_re.is_match(&test.name),
        }
    }

    /// Whether to run a case of a test.
    pub fn matches_case(&self, test: &str, case: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Or(re) => re.is_match(case) || re.is_match(test),
            Filter::And(test_re, case_re) => test_re.is_match(test) && case_re.is_match(case),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Filter;

    #[test]
    fn or_and_and_filters_follow_gator() {
        let f = Filter::parse(Some("missing-label")).unwrap();
        assert!(f.matches_case("required-labels", "missing-label"));
        assert!(f.matches_case("forbid-missing-label", "with-foo"));
        assert!(!f.matches_case("probes", "allowed"));
        let f = Filter::parse(Some("^require-foo$//empty")).unwrap();
        assert!(f.matches_case("require-foo", "an-empty-object"));
        assert!(!f.matches_case("not-require-foo", "empty"));
        assert!(Filter::parse(Some("a//b//c")).is_err());
        assert!(Filter::parse(Some("(")).is_err());
        assert!(matches!(Filter::parse(Some("")).unwrap(), Filter::All));
    }
}
