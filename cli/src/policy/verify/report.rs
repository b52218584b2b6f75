//! Printing suite results: per suite, test and case with timings (failures with gator's
//! messages), one JSON document, or JUnit XML (written with `quick-junit`, one testsuite per suite
//! file and one testcase per case, or per test when it has no cases to run); then the summary
//! line `N passed, N failed[, N skipped]`.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use crate::policy::regotest::millis;
use meshguard_policy_engine::suite::{CaseResult, Counts, SuiteResult, TestResult};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// The readable report. `verbose` also lists each case's violations.
pub fn pretty(results: &[SuiteResult], verbose: bool) -> String {
    let mut out = String::new();
    for suite in results {
        let failed = suite_failed(suite);
        for test in &suite.tests {
            if verbose || !test.skipped {
                test_lines(&mut out, test, verbose);
            }
        }
        let status = if suite.skipped || suite.tests.iter().all(|t| t.skipped) {
            "skip"
        } else if failed {
            "FAIL"
        } else {
            "ok"
        };
        let _ = writeln!(
            out,
            "{status:<5} {}  ({})",
            suite.path,
            millis(suite.duration)
        );
    }
    out.push_str(&Counts::of(results).summary_line());
    out.push('\n');
    out
}

fn test_lines(out: &mut String, test: &TestResult, verbose: bool) {
    let label = if test.skipped {
        "skip"
    } else if test_failed(test) {
        "FAIL"
    } else {
        "ok"
    };
    let kind = if test.invalid { " [invalid]" } else { "" };
    let _ = writeln!(
        out,
        "  {label:<5} {}{kind}  ({})",
        test.name,
        millis(test.duration)
    );
    if let Some(error) = &test.error {
        for line in error.lines() {
            let _ = writeln!(out, "          {line}");
        }
    }
    for case in &test.cases {
        if verbose || !case.skipped {
            case_lines(out, case, verbose);
        }
    }
}

fn case_lines(out: &mut String, case: &CaseResult, verbose: bool) {
    let label = match (case.skipped, &case.error) {
        (true, _) => "skip",
        (false, Some(_)) => "FAIL",
        (false, None) => "ok",
    };
    let _ = writeln!(
        out,
        "    {label:<5} {}  ({})",
        case.name,
        millis(case.duration)
    );
    if let Some(error) = &case.error {
        for line in error.lines() {
            let _ = writeln!(out, "            {line}");
        }
    }
    if verbose || case.error.is_some() {
        for (constraint, message) in &case.violations {
            let _ = writeln!(out, "            violation [{constraint}] {message}");
        }
    }
}

fn test_failed(test: &TestResult) -> bool {
    test.failed()
}

fn suite_failed(suite: &SuiteResult) -> bool {
    suite.failed()
}

/// JUnit XML: a testsuite per suite file, a testcase per case (`test/case`), or per test for
/// tests that have no cases to run (invalid tests, tests that failed to load).
pub fn junit(results: &[SuiteResult]) -> anyhow::Result<String> {
    let mut report = Report::new("meshguard policy verify");
    for suite in results {
        let mut junit_suite = TestSuite::new(suite.path.clone());
        junit_suite.set_time(suite.duration);
        for test in &suite.tests {
            let status = |skipped: bool, error: &Option<String>| match (skipped, error) {
                (true, _) => TestCaseStatus::skipped(),
                (false, None) => TestCaseStatus::success(),
                (false, Some(error)) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(error.lines().next().unwrap_or_default());
                    status.set_description(error.clone());
                    status
                }
            };
            if test.cases.is_empty() || test.error.is_some() {
                let mut case = TestCase::new(test.name.clone(), status(test.skipped, &test.error));
                case.set_classname(suite.path.clone())
                    .set_time(test.duration);
                junit_suite.add_test_case(case);
                continue;
            }
            for result in &test.cases {
                let skipped = test.skipped || result.skipped;
                let mut case = TestCase::new(
                    format!("{}/{}", test.name, result.name),
                    status(skipped, &result.error),
                );
                case.set_classname(suite.path.clone())
                    .set_time(result.duration);
                if !result.violations.is_empty() {
                    let lines: Vec<String> = result
                        .violations
                        .iter()
                        .map(|(constraint, message)| format!("violation [{constraint}] {message}"))
                        .collect();
                    case.set_system_out(lines.join("\n"));
                }
                junit_suite.add_test_case(case);
            }
        }
        report.add_test_suite(junit_suite);
    }
    let mut text = report.to_string()?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// One JSON document with every suite, test and case.
pub fn json(results: &[SuiteResult]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let suites: Vec<serde_json::Value> = results
        .iter()
        .map(|suite| {
            let tests: Vec<serde_json::Value> = suite
                .tests
                .iter()
                .map(|test| {
                    let cases: Vec<serde_json::Value> = test
                        .cases
                        .iter()
                        .map(|case| {
                            json!({
                                "name": case.name,
                                "skipped": case.skipped,
                                "passed": !case.skipped && case.error.is_none(),
                                "error": case.error,
                                "duration_ms": ms(case.duration),
                                "violations": case.violations.iter().map(|(c, m)| json!({"constraint": c, "message": m})).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    json!({
                        "name": test.name,
                        "skipped": test.skipped,
                        "invalid": test.invalid,
                        "passed": !test.skipped && !test_failed(test),
                        "error": test.error,
                        "duration_ms": ms(test.duration),
                        "cases": cases,
                    })
                })
                .collect();
            json!({
                "path": suite.path,
                "skipped": suite.skipped,
                "passed": !suite.skipped && !suite_failed(suite),
                "duration_ms": ms(suite.duration),
                "tests": tests,
            })
        })
        .collect();
    let counts = Counts::of(results);
    let doc = json!({
        "suites": suites,
        "summary": {"passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped},
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
