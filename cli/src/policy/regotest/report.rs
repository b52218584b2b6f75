//! Printing test results: a readable report, JSON for tools, JUnit XML for CI dashboards.
//!
//! Every format ends with (pretty) or goes with (on stderr, for the machine formats) the summary
//! line `N passed, N failed[, N skipped]`, which CI reads.

use std::fmt::Write as _;
use std::time::Duration;

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

/// JUnit XML: one `<testsuite>` per test file.
pub fn junit(results: &[TestResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts = Counts::of(results);
    let errors = results.iter().filter(|r| r.status == Status::Error).count();
    let total: Duration = results.iter().map(|r| r.duration).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"meshguard policy test\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{}\" time=\"{:.6}\">",
        results.len(),
        counts.failed - errors,
        counts.skipped,
        total.as_secs_f64()
    );
    let mut files: Vec<&str> = results.iter().map(|r| r.test.file.as_str()).collect();
    files.dedup();
    for file in files {
        let group: Vec<&TestResult> = results.iter().filter(|r| r.test.file == file).collect();
        let count = |s: Status| group.iter().filter(|r| r.status == s).count();
        let time: Duration = group.iter().map(|r| r.duration).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6}\">",
            xml(file),
            group.len(),
            count(Status::Fail),
            count(Status::Error),
            count(Status::Skip),
            time.as_secs_f64()
        );
        for r in group {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.6}\"",
                xml(&r.test.name),
                xml(&r.test.package),
                xml(&r.test.file),
                r.test.line,
                r.duration.as_secs_f64()
            );
            let message = r.message.as_deref().unwrap_or("");
            match r.status {
                Status::Pass if r.prints.is_empty() => out.push_str("/>\n"),
                status => {
                    out.push_str(">\n");
                    match status {
                        Status::Fail => {
                            let _ = writeln!(
                                out,
                                "      <failure message=\"{}\">{}</failure>",
                                xml(message),
                                xml(&failure_detail(r))
                            );
                        }
                        Status::Error => {
                            let _ = writeln!(out, "      <error message=\"{}\"/>", xml(message));
                        }
                        Status::Skip => out.push_str("      <skipped message=\"todo\"/>\n"),
                        Status::Pass => {}
                    }
                    if !r.prints.is_empty() {
                        let _ = writeln!(
                            out,
                            "      <system-out>{}</system-out>",
                            xml(&r.prints.join("\n"))
                        );
                    }
                    out.push_str("    </testcase>\n");
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
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

/// Escapes text for XML attributes and content.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
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
