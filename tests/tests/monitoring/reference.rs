//! The metrics reference (README.md): its tables, and the check that every exposed family is
//! listed there.

use super::*;

/// Where a family is scraped from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    Envoy,
    Webhook,
    Rls,
}

/// One row of the reference: name (as queried), type, labels.
#[derive(Debug, Clone)]
pub(super) struct Documented {
    pub(super) source: Source,
    pub(super) kind: String,
    pub(super) labels: Vec<String>,
}

/// The reference tables of README.md: under a `###` heading naming its source ("(Envoy)",
/// "(webhook)", "(rate-limit service)"), rows `` | `name` | type | `label`, ... | meaning | ``.
pub(super) fn reference() -> BTreeMap<String, Documented> {
    let mut source = None;
    let mut out = BTreeMap::new();
    for line in read("README.md").lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            source = if heading.contains("(Envoy)") {
                Some(Source::Envoy)
            } else if heading.contains("(webhook)") {
                Some(Source::Webhook)
            } else if heading.contains("(rate-limit service)") {
                Some(Source::Rls)
            } else {
                None
            };
            continue;
        }
        let (Some(source), Some(row)) = (source, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[0].trim_end_matches('`').to_string();
        if !(name.starts_with("meshguard_") || name.starts_with("gatekeeper_")) {
            continue;
        }
        let labels = cells[2]
            .split(',')
            .map(|label| label.trim().trim_matches('`').to_string())
            .filter(|label| !label.is_empty() && label != "none")
            .collect();
        let previous = out.insert(
            name.clone(),
            Documented {
                source,
                kind: cells[1].to_string(),
                labels,
            },
        );
        assert!(previous.is_none(), "{name} is documented twice");
    }
    assert!(
        out.len() > 30,
        "the reference tables were not found: {out:?}"
    );
    out
}

/// `# TYPE name kind` lines of an exposition, for meshguard's and Gatekeeper's families.
pub(super) fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            let name = words.next()?.to_string();
            let kind = words.next()?.to_string();
            (name.starts_with("meshguard_") || name.starts_with("gatekeeper_"))
                .then_some((name, kind))
        })
        .collect()
}

/// Fails for a family the reference does not list (or lists with another type or source).
pub(super) fn check_listed(
    source: Source,
    exposed: &BTreeMap<String, String>,
    documented: &BTreeMap<String, Documented>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, kind) in exposed {
        // The text format names a counter's family with or without `_total`; the reference
        // uses the sample name PromQL queries.
        let row = documented
            .get(name)
            .or_else(|| documented.get(&format!("{name}_total")));
        match row {
            None => problems.push(format!(
                "{name} ({kind}, from {source:?}) is not in the metrics reference \
                 (admission-webhook/deploy/monitoring/README.md)"
            )),
            Some(row) if row.kind != *kind || row.source != source => problems.push(format!(
                "{name}: exposed as a {kind} by {source:?}, documented as a {} of {:?}",
                row.kind, row.source
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Families the scenario does not produce a sample of, and why (a family without a sample is
/// still checked against the reference through its `# TYPE` line).
pub(super) const NOT_EXERCISED: &[(&str, &str)] = &[
    ("gatekeeper_violations", "audit is off in the test"),
    (
        "gatekeeper_audit_duration_seconds",
        "audit is off in the test",
    ),
    ("gatekeeper_audit_last_run_time", "audit is off in the test"),
    ("gatekeeper_sync", "files mode syncs nothing"),
    (
        "meshguard_rls_config_loads_total",
        "counted on reloads only",
    ),
];
