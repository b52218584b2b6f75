//! Expectations of a suite step, checked against the host's [`Outcome`] and the plugin.
//!
//! Each failed check becomes one line that says what was expected and what happened, so a
//! failing suite reads like a diff.

use std::collections::BTreeMap;

use meshguard_wasm_host::{Outcome, Plugin, Verdict};

/// What must hold after a request (for repeated requests: after each one).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Status the client gets.
    status: Option<u16>,
    /// Whether the request reaches the upstream.
    forwarded: Option<bool>,
    /// Whether the filter answered locally.
    local_reply: Option<bool>,
    /// Cluster the request reaches.
    cluster: Option<String>,
    /// Response headers (`null`: must be absent).
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    /// Headers the upstream receives (`null`: must be absent).
    #[serde(default)]
    upstream_headers: BTreeMap<String, Option<String>>,
    /// Exact response body.
    body: Option<String>,
    /// Text the response body contains.
    body_contains: Option<String>,
    /// Number of callouts this request made.
    callouts: Option<usize>,
    /// Text some log line of this request contains.
    log_contains: Option<String>,
    /// Plugin metrics (by the name the filter defined) after the step.
    #[serde(default)]
    metrics: BTreeMap<String, i64>,
    /// Whether the stream is still pending (waiting for a callout or the clock).
    pending: Option<bool>,
}

impl Expect {
    /// Every mismatch, as readable lines.
    pub fn check(&self, outcome: &Outcome, plugin: &Plugin) -> Vec<String> {
        let mut failures = Vec::new();
        let mut want = |ok: bool, what: String| {
            if !ok {
                failures.push(what);
            }
        };
        if let Some(status) = self.status {
            want(
                outcome.status() == Some(status),
                format!("status {}, expected {status}", show(outcome.status())),
            );
        }
        if let Some(forwarded) = self.forwarded {
            want(
                outcome.forwarded() == forwarded,
                format!("forwarded: {}, expected {forwarded}", outcome.forwarded()),
            );
        }
        if let Some(local) = self.local_reply {
            let got = outcome.local_reply.is_some();
            want(
                got == local,
                format!("local reply: {got}, expected {local}"),
            );
        }
        if let Some(pending) = self.pending {
            let got = outcome.verdict == Verdict::Pending;
            want(
                got == pending,
                format!("pending: {got}, expected {pending}"),
            );
        }
        if let Some(cluster) = &self.cluster {
            let got = outcome.upstream.as_ref().map(|u| u.cluster.as_str());
            want(
                got == Some(cluster.as_str()),
                format!("cluster {}, expected {cluster}", show(got)),
            );
        }
        for (name, value) in &self.headers {
            let got = outcome.response_header(name);
            want(
                got == value.as_deref(),
                format!(
                    "response header {name}: {}, expected {}",
                    show(got),
                    show(value.as_deref())
                ),
            );
        }
        for (name, value) in &self.upstream_headers {
            let got = outcome.upstream_header(name);
            want(
                got == value.as_deref(),
                format!(
                    "upstream header {name}: {}, expected {}",
                    show(got),
                    show(value.as_deref())
                ),
            );
        }
        if let Some(body) = &self.body {
            let got = outcome.body_text();
            want(&got == body, format!("body {got:?}, expected {body:?}"));
        }
        if let Some(text) = &self.body_contains {
            let got = outcome.body_text();
            want(
                got.contains(text.as_str()),
                format!("body {got:?} does not contain {text:?}"),
            );
        }
        if let Some(count) = self.callouts {
            let got = outcome.callouts.len();
            want(got == count, format!("{got} callouts, expected {count}"));
        }
        if let Some(text) = &self.log_contains {
            let found = outcome
                .logs
                .iter()
                .any(|l| l.message.contains(text.as_str()));
            want(
                found,
                format!("no log line of this request contains {text:?}"),
            );
        }
        if let Some(failure) = &outcome.vm_failure {
            failures.push(format!("the VM failed: {failure}"));
        }
        failures.extend(self.check_plugin(plugin));
        failures
    }

    /// The checks that need no request (metrics), for `advance` steps too.
    pub fn check_plugin(&self, plugin: &Plugin) -> Vec<String> {
        self.metrics
            .iter()
            .filter_map(|(name, value)| {
                let got = plugin.metric(name);
                (got != Some(*value))
                    .then(|| format!("metric {name}: {}, expected {value}", show(got)))
            })
            .collect()
    }

    /// Whether only plugin-level checks are set (allowed after `advance`).
    pub fn plugin_only(&self) -> bool {
        self.status.is_none()
            && self.forwarded.is_none()
            && self.local_reply.is_none()
            && self.cluster.is_none()
            && self.headers.is_empty()
            && self.upstream_headers.is_empty()
            && self.body.is_none()
            && self.body_contains.is_none()
            && self.callouts.is_none()
            && self.log_contains.is_none()
            && self.pending.is_none()
    }
}

fn show<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}
