//! Running the tests: each `test_*` rule is evaluated on the loaded engine, as `opa test` does.
//!
//! A test passes when its rule is defined and `true`; undefined or any other value fails it; an
//! evaluation error (a conflict, a strict builtin, a timeout) is an error, reported as such and
//! counted with the failures. Output of `print()` is gathered per test.

use std::time::{Duration, Instant};

use regex::Regex;
use regorus::{Engine, Value};

use super::discover::TestCase;
use super::explain::{Explanation, explain};

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Defined and true.
    Pass,
    /// Undefined, or a value other than true.
    Fail,
    /// Evaluation raised an error.
    Error,
    /// A `todo_` rule, or excluded by nothing else (filtered tests are not reported).
    Skip,
}

impl Status {
    /// The word reports use.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Skip => "SKIPPED",
        }
    }
}

/// The result of one test.
#[derive(Debug)]
pub struct TestResult {
    /// The test.
    pub test: TestCase,
    /// Its outcome.
    pub status: Status,
    /// Evaluation time.
    pub duration: Duration,
    /// Why it failed or errored.
    pub message: Option<String>,
    /// Lines printed with `print()` while it ran.
    pub prints: Vec<String>,
    /// The failing expression and the values around it (`-v`).
    pub explanation: Option<Explanation>,
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed or errored.
    pub failed: usize,
    /// `todo_` tests.
    pub skipped: usize,
}

impl Counts {
    /// Tallies results.
    pub fn of(results: &[TestResult]) -> Counts {
        let mut counts = Counts::default();
        for r in results {
            match r.status {
                Status::Pass => counts.passed += 1,
                Status::Fail | Status::Error => counts.failed += 1,
                Status::Skip => counts.skipped += 1,
            }
        }
        counts
    }

    /// `N passed, N failed` (`, N skipped` when some were skipped).
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }
}

/// Runs the tests selected by `filter` (all when `None`).
pub fn run_tests(
    engine: &mut Engine,
    tests: &[TestCase],
    filter: Option<&Regex>,
    explain_failures: bool,
) -> Vec<TestResult> {
    let mut results = Vec::new();
    for test in tests {
        let full = test.full_name();
        if filter.is_some_and(|re| !re.is_match(&full)) {
            continue;
        }
        if test.todo {
            results.push(TestResult {
                test: test.clone(),
                status: Status::Skip,
                duration: Duration::ZERO,
                message: None,
                prints: Vec::new(),
                explanation: None,
            });
            continue;
        }
        let start = Instant::now();
        let outcome = engine.eval_rule(full);
        let duration = start.elapsed();
        let prints = engine.take_prints().unwrap_or_default();
        let (status, message) = match outcome {
            Ok(Value::Bool(true)) => (Status::Pass, None),
            Ok(Value::Undefined) => (Status::Fail, Some("the test rule is undefined".to_string())),
            Ok(other) => (
                Status::Fail,
                Some(format!("the test rule evaluated to {}", render(&other))),
            ),
            Err(err) => (Status::Error, Some(format!("{err:#}"))),
        };
        let explanation =
            (explain_failures && status == Status::Fail).then(|| explain(engine, test));
        results.push(TestResult {
            test: test.clone(),
            status,
            duration,
            message,
            prints,
            explanation,
        });
    }
    results
}

/// A value as compact JSON (sets as arrays), for messages.
pub fn render(value: &Value) -> String {
    match value {
        Value::Undefined => "undefined".to_string(),
        other => other.to_json_str().map_or_else(
            |_| format!("{other:?}"),
            |s| serde_json::from_str::<serde_json::Value>(&s).map_or(s, |v| v.to_string()),
        ),
    }
}
