//! Readable output of what a filter did to a request.

use std::fmt::Write as _;

use meshguard_wasm_host::{HeaderChange, Metric, Outcome, Plugin, Verdict};

/// One request's outcome as indented text.
pub fn outcome(label: &str, outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{label}  (vm {}, context {})",
        outcome.vm, outcome.context_id
    );
    let verdict = match outcome.verdict {
        Verdict::Forwarded => {
            let cluster = outcome
                .upstream
                .as_ref()
                .map_or("?", |u| u.cluster.as_str());
            format!("continued: forwarded to cluster `{cluster}`")
        }
        Verdict::LocalReply => match &outcome.local_reply {
            Some(reply) if reply.sent_in == "router" => {
                format!("answered by the router ({})", reply.details)
            }
            Some(reply) => format!("answered locally by the filter in {}", reply.sent_in),
            None => "answered locally".to_string(),
        },
        Verdict::Reset => "reset by the filter (the client gets no response)".to_string(),
        Verdict::VmFailed => "the VM failed; Envoy answers 503".to_string(),
        Verdict::Pending => format!(
            "pending in {} (waiting for a callout, a tick or more time)",
            outcome.waiting_in.as_deref().unwrap_or("?")
        ),
    };
    let _ = writeln!(out, "  {verdict}");
    if let Some(failure) = &outcome.vm_failure {
        let _ = writeln!(out, "  VM failure: {failure}");
    }
    if !outcome.header_changes.is_empty() {
        let _ = writeln!(out, "  request headers changed:");
        for change in &outcome.header_changes {
            let line = match change {
                HeaderChange::Added { name, value } => format!("+ {name}: {value}"),
                HeaderChange::Removed { name, value } => format!("- {name}: {value}"),
                HeaderChange::Changed { name, from, to } => format!("~ {name}: {from} -> {to}"),
            };
            let _ = writeln!(out, "    {line}");
        }
    }
    if let Some(response) = &outcome.response {
        let _ = writeln!(out, "  response: {}", response.status);
        for (name, value) in response.headers.iter().filter(|(k, _)| k != ":status") {
            let _ = writeln!(out, "    {name}: {value}");
        }
        let body = response.text();
        if !body.is_empty() {
            let shown: String = body.chars().take(400).collect();
            let more = if body.chars().count() > 400 {
                " ..."
            } else {
                ""
            };
            let _ = writeln!(out, "    body: {shown}{more}");
        }
    }
    if !outcome.callouts.is_empty() {
        let _ = writeln!(out, "  callouts:");
        for call in &outcome.callouts {
            let _ = writeln!(
                out,
                "    {} {} {} -> {:?}",
                call.cluster,
                call.method(),
                call.path(),
                call.state
            );
        }
    }
    if !outcome.logs.is_empty() {
        let _ = writeln!(out, "  logs:");
        for line in &outcome.logs {
            let _ = writeln!(out, "    [{}] {}", line.level.name(), line.message);
        }
    }
    out
}

/// Plugin-wide facts: metrics, callouts from root contexts, reports.
pub fn plugin(plugin: &Plugin) -> String {
    let mut out = String::new();
    let metrics = plugin.metrics();
    if !metrics.is_empty() {
        let _ = writeln!(out, "metrics:");
        for (name, metric) in &metrics {
            let _ = writeln!(out, "  {name} = {}", metric_value(metric));
        }
    }
    let root_calls: Vec<_> = plugin
        .callouts()
        .into_iter()
        .filter(|c| {
            !plugin
                .outcomes()
                .iter()
                .any(|o| o.vm == c.vm && o.context_id == c.context_id)
        })
        .collect();
    if !root_calls.is_empty() {
        let _ = writeln!(out, "callouts from root contexts:");
        for call in root_calls {
            let _ = writeln!(
                out,
                "  vm {} {} {} {} -> {:?}",
                call.vm,
                call.cluster,
                call.method(),
                call.path(),
                call.state
            );
        }
    }
    for report in plugin.reports() {
        let _ = writeln!(out, "note: {report}");
    }
    for (vm, failure) in plugin.vm_failures() {
        let _ = writeln!(out, "VM {vm} failed: {failure}");
    }
    out
}

fn metric_value(metric: &Metric) -> String {
    if metric.samples.is_empty() {
        metric.value.to_string()
    } else {
        format!("{} samples {:?}", metric.samples.len(), metric.samples)
    }
}
