//! Printing check results: readable (grouped by object), JSON, SARIF 2.1.0 (code scanning) and
//! GitHub Actions annotations (`::error file=..,line=..::message`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use meshguard_policy_engine::{EnforcementAction, PolicySet};
use serde_json::json;

use super::{Finding, Summary};

fn action_word(f: &Finding) -> &'static str {
    if f.actions.contains(&EnforcementAction::Deny) {
        "deny"
    } else if f.actions.contains(&EnforcementAction::Warn) {
        "warn"
    } else {
        "dryrun"
    }
}

fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let count = |w: &str| findings.iter().filter(|f| action_word(f) == w).count();
    (count("deny"), count("warn"), count("dryrun"))
}

fn summary_line(findings: &[Finding], summary: &Summary) -> String {
    let (deny, warn, dryrun) = counts(findings);
    format!(
        "checked {} objects against {} constraints: {} violations ({deny} deny, {warn} warn, {dryrun} dryrun)",
        summary.objects,
        summary.constraints,
        findings.len()
    )
}

/// Violations grouped by object, Gatekeeper's `[constraint] message` lines, then a summary.
pub fn pretty(findings: &[Finding], summary: &Summary) -> String {
    let mut out = String::new();
    let mut last: Option<(&str, usize)> = None;
    for f in findings {
        if last != Some((f.file.as_str(), f.document)) {
            let _ = writeln!(
                out,
                "{}:{} (document {}) {}",
                f.file, f.line, f.document, f.object
            );
            last = Some((f.file.as_str(), f.document));
        }
        let _ = writeln!(
            out,
            "  {:<6} [{}] {}",
            action_word(f),
            f.constraint_name,
            f.message
        );
    }
    out.push_str(&summary_line(findings, summary));
    out.push('\n');
    out
}

/// One JSON document: every violation and the counts.
pub fn json(findings: &[Finding], summary: &Summary) -> String {
    let (deny, warn, dryrun) = counts(findings);
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            json!({
                "file": f.file,
                "line": f.line,
                "document": f.document,
                "object": f.object,
                "constraint": f.constraint,
                "enforcementAction": action_word(f),
                "actions": f.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "message": f.message,
                "details": f.details,
                "fails": f.fails,
            })
        })
        .collect();
    let doc = json!({
        "violations": results,
        "summary": {
            "objects": summary.objects,
            "constraints": summary.constraints,
            "violations": findings.len(),
            "deny": deny, "warn": warn, "dryrun": dryrun,
            "failed": findings.iter().any(|f| f.fails),
        },
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// SARIF 2.1.0: one rule per constraint, one result per violation at the object's first line.
pub fn sarif(findings: &[Finding], set: &PolicySet) -> String {
    let mut rules: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for constraint in set.constraints() {
        let id = constraint.id.to_string();
        let description = match set.template(&constraint.id.kind) {
            Some(t) => format!("Gatekeeper constraint {id} (ConstraintTemplate {})", t.name),
            None => format!("Gatekeeper constraint {id}"),
        };
        rules.insert(
            id.clone(),
            json!({
                "id": id,
                "name": constraint.id.name,
                "shortDescription": {"text": description},
                "properties": {"template": constraint.id.kind},
            }),
        );
    }
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let level = match action_word(f) {
                "deny" => "error",
                "warn" => "warning",
                _ => "note",
            };
            json!({
                "ruleId": f.constraint,
                "level": level,
                "message": {"text": format!("{}: {}", f.object, f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": f.line},
                    },
                }],
                "properties": {"enforcementAction": action_word(f), "details": f.details},
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "meshguard",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// GitHub Actions workflow commands: `::error` for deny, `::warning` for warn, `::notice` for
/// dryrun, each on the object's first line; then the summary as a notice.
pub fn github(findings: &[Finding], summary: &Summary) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match action_word(f) {
            "deny" => "error",
            "warn" => "warning",
            _ => "notice",
        };
        let _ = writeln!(
            out,
            "::{command} file={},line={},title={}::{}",
            escape_property(&f.file),
            f.line,
            escape_property(&format!("[{}] {}", f.constraint_name, f.object)),
            escape_data(&f.message)
        );
    }
    let _ = writeln!(
        out,
        "::notice title=meshguard policy check::{}",
        escape_data(&summary_line(findings, summary))
    );
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    #[test]
    fn github_escaping() {
        assert_eq!(super::escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(super::escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
