//! Printing check results: readable (grouped by object), JSON, SARIF 2.1.0 (code scanning) and
//! GitHub Actions annotations (`::error file=..,line=..::message`).
//!
//! SARIF is built with `serde-sarif`, whose types are generated from the OASIS SARIF 2.1.0
//! schema, so the document is valid by construction. The GitHub Actions workflow commands stay
//! hand-written: each is one line with two documented escaping rules (`escape_data` and
//! `escape_property`, tested below), so a dependency would add more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use meshguard_policy_engine::{EnforcementAction, PolicySet};
use serde_json::json;
use serde_sarif::sarif;

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
pub fn sarif(findings: &[Finding], set: &PolicySet) -> anyhow::Result<String> {
    let properties = |pairs: Vec<(&str, serde_json::Value)>| {
        sarif::PropertyBag::builder()
            .additional_properties(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<BTreeMap<_, _>>(),
            )
            .build()
    };
    let rules: Vec<sarif::ReportingDescriptor> = set
        .constraints()
        .map(|constraint| {
            let id = constraint.id.to_string();
            let description = match set.template(&constraint.id.kind) {
                Some(t) => format!("Gatekeeper constraint {id} (ConstraintTemplate {})", t.name),
                None => format!("Gatekeeper constraint {id}"),
            };
            sarif::ReportingDescriptor::builder()
                .id(id)
                .name(constraint.id.name.clone())
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(description)
                        .build(),
                )
                .properties(properties(vec![(
                    "template",
                    constraint.id.kind.clone().into(),
                )]))
                .build()
        })
        .collect();
    let results: Vec<sarif::Result> = findings
        .iter()
        .map(|f| {
            let level = match action_word(f) {
                "deny" => sarif::ResultLevel::Error,
                "warn" => sarif::ResultLevel::Warning,
                _ => sarif::ResultLevel::Note,
            };
            let location = sarif::Location::builder()
                .physical_location(
                    sarif::PhysicalLocation::builder()
                        .artifact_location(
                            sarif::ArtifactLocation::builder()
                                .uri(f.file.clone())
                                .build(),
                        )
                        .region(
                            sarif::Region::builder()
                                .start_line(i64::try_from(f.line).unwrap_or(i64::MAX))
                                .build(),
                        )
                        .build(),
                )
                .build();
            sarif::Result::builder()
                .rule_id(f.constraint.clone())
                .level(level)
                .message(
                    sarif::Message::builder()
                        .text(format!("{}: {}", f.object, f.message))
                        .build(),
                )
                .locations(vec![location])
                .properties(properties(vec![
                    ("enforcementAction", action_word(f).into()),
                    ("details", f.details.clone()),
                ]))
                .build()
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("meshguard")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules)
        .build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .build();
    let doc = sarif::Sarif::builder()
        .schema(sarif::SCHEMA_URL)
        .version(serde_json::to_value(sarif::Version::V2_1_0)?)
        .runs(vec![run])
        .build();
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
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
