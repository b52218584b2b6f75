//! Printing test results: a readable report, JSON for tools, JUnit XML for CI dashboards (written
//! with `quick-junit`, the writer cargo-nextest uses, so escaping and the schema's attributes are
//! its concern).
//!
//! Every format ends with (pretty) or goes with (on stderr, for the machine formats) the summary
//! line `N passed, N failed[, N skipped]`, which CI reads.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use super::coverage::Coverage;
use super::runner::{Counts, Status, TestResult};

/// Longest value shown in an explanation before it is cut.
const MAX_VALUE_CHARS: usize = 400;

/// The readable report.
pub fn pretty(results: &[TestResult], coverage: Option<&Coverage>, verbose: bool) -> String {
    let mut out = String::new();
    let mut current_file: Option<&str> = None;
    for r in results {
        if current_file != Some(r.test.file.as_str()) {
            let _ = writeln!(out, "{}:", r.test.file);
            current_file = Some(&r.test.file);
        }
        let _ = writeln!(
            out,
            "  {:<7} {} ({}:{}, {})",
            r.status.label(),
            r.test.full_name(),
            r.test.file,
            r.test.line,
            millis(r.duration)
        );
        if matches!(r.status, Status::Fail | Status::Error) {
            if let Some(message) = &r.message {
                for line in message.lines() {
                    let _ = writeln!(out, "          {line}");
                }
            }
            if let Some(ex) = &r.explanation {
                if let (Some(line), Some(expr)) = (ex.line, &ex.expression) {
                    let _ = writeln!(out, "          failed at line {line}: {}", one_line(expr));
                }
                for (name, value) in &ex.values {
                    let _ = writeln!(out, "            {name} = {}", cut(value));
                }
            }
        }
        if verbose || matches!(r.status, Status::Fail | Status::Error) {
            for line in &r.prints {
                let _ = writeln!(out, "          print: {line}");
            }
        }
    }
    if let Some(coverage) = coverage {
        let _ = writeln!(out, "coverage:");
        for file in &coverage.files {
            let _ = write!(
                out,
                "  {:>6.2}%  {}  ({} of {} lines)",
                file.percent,
                file.file,
                file.covered,
                file.covered + file.not_covered
            );
            if verbose && !file.uncovered_lines.is_empty() {
                let _ = write!(out, "  not covered: {}", file.uncovered_lines.join(", "));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "  {:>6.2}%  total", coverage.percent);
    }
    out.push_str(&Counts::of(results).summary_line());
    out.push('\n');
    out
}

/// One JSON document with every test, the counts and (when asked) the coverage.
pub fn json(results: &[TestResult], coverage: Option<&Coverage>) -> String {
    let tests: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut v = json!({
                "package": r.test.package,
                "name": r.test.name,
                "file": r.test.file,
                "line": r.test.line,
                "col": r.test.col,
                "status": r.status.label().to_ascii_lowercase(),
                "duration_ns": r.duration.as_nanos() as u64,
            });
            if let Some(message) = &r.message {
                v["message"] = json!(message);
            }
            if !r.prints.is_empty() {
                v["output"] = json!(r.prints);
            }
            if let Some(ex) = &r.explanation {
                v["explanation"] = json!({
                    "line": ex.line,
                    "expression": ex.expression,
                    "values": ex.values.iter().map(|(n, val)| json!({"name": n, "value": val})).collect::<Vec<_>>(),
                });
            }
            v
        })
        .collect();
    let counts = Counts::of(results);
    let mut doc = json!({
        "tests": tests,
        "summary": {"passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped},
    });
    if let Some(coverage) = coverage {
        doc["coverage"] = serde_json::to_value(coverage).unwrap_or_default();
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// JUnit XML (written with `quick-junit`): one `<testsuite>` per test file, one `<testcase>`
/// per test with its file and line, failures explained, `print()` output as `system-out`.
pub fn junit(results: &[TestResult]) -> anyhow::Result<String> {
    let mut report = Report::new("meshguard policy test");
    report.set_time(results.iter().map(|r| r.duration).sum());
    let mut files: Vec<&str> = results.iter().map(|r| r.test.file.as_str()).collect();
    files.dedup();
    for file in files {
        let mut suite = TestSuite::new(file);
        let group: Vec<&TestResult> = results.iter().filter(|r| r.test.file == file).collect();
        suite.set_time(group.iter().map(|r| r.duration).sum());
        for r in group {
            let message = r.message.as_deref().unwrap_or("");
            let status = match r.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Skip => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message("todo");
                    status
                }
                Status::Fail => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status
                        .set_message(message)
                        .set_description(failure_detail(r));
                    status
                }
                Status::Error => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                    status.set_message(message);
                    status
                }
            };
            let mut case = TestCase::new(r.test.name.clone(), status);
            case.set_classname(r.test.package.clone())
                .set_time(r.duration);
            case.extra.insert("file".into(), r.test.file.clone().into());
            case.extra
                .insert("line".into(), r.test.line.to_string().into());
            if !r.prints.is_empty() {
                case.set_system_out(r.prints.join("\n"));
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    let mut text = report.to_string()?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn failure_detail(r: &TestResult) -> String {
    let mut detail = String::new();
    if let Some(ex) = &r.explanation {
        if let (Some(line), Some(expr)) = (ex.line, &ex.expression) {
            let _ = writeln!(detail, "failed at line {line}: {}", one_line(expr));
        }
        for (name, value) in &ex.values {
            let _ = writeln!(detail, "  {name} = {}", cut(value));
        }
    }
    detail
}

/// A duration in milliseconds with enough precision for sub-millisecond tests.
pub fn millis(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1000.0)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        return value.to_string();
    }
    let head: String = value.chars().take(MAX_VALUE_CHARS).collect();
    format!("{head}... ({} chars)", value.chars().count())
}
