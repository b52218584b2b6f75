//! Prometheus metrics with Gatekeeper's names, so existing dashboards and alerts keep working:
//!
//! - `gatekeeper_validation_request_count{admission_status, admission_dryrun}` (counter;
//!   `admission_status` is `allow`, `deny`, or `error` for a review answered by the failure policy)
//! - `gatekeeper_validation_request_duration_seconds{admission_status}` (histogram)
//! - `gatekeeper_constraint_templates{status}`, `gatekeeper_constraints{enforcement_action, status}`
//! - `gatekeeper_violations{enforcement_action}` (last audit), `gatekeeper_audit_duration_seconds`,
//!   `gatekeeper_audit_last_run_time`
//! - `gatekeeper_sync{kind, status}` (inventory objects per kind)
//!
//! and meshguard's own: `meshguard_validation_violations_total{constraint_kind, constraint_name,
//! enforcement_action}` (violations by constraint at admission), `meshguard_validation_errors_total
//! {reason, failure_policy}` (timeouts and internal errors answered by the failure policy) and
//! `meshguard_validation_rejected_total{reason}` (malformed or oversized reviews), and
//! `meshguard_decision_cache_hits_total` / `meshguard_decision_cache_misses_total` (constraint
//! decisions answered from the engine's decision cache or evaluated; they restart from zero when
//! the policy set is reloaded).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Histogram bucket bounds in seconds (Gatekeeper's webhook buckets extended downwards: reviews
/// here take around a millisecond).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Store {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The webhook's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    store: Mutex<Store>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "gatekeeper_validation_request_count",
        "counter",
        "The number of requests that are routed to validation webhook",
    ),
    (
        "gatekeeper_validation_request_duration_seconds",
        "histogram",
        "The validation webhook response time in seconds",
    ),
    (
        "gatekeeper_constraint_templates",
        "gauge",
        "Number of observed constraint templates",
    ),
    (
        "gatekeeper_constraints",
        "gauge",
        "Current number of known constraints",
    ),
    (
        "gatekeeper_violations",
        "gauge",
        "Total number of audited violations",
    ),
    (
        "gatekeeper_audit_duration_seconds",
        "histogram",
        "Latency of audit operation in seconds",
    ),
    (
        "gatekeeper_audit_last_run_time",
        "gauge",
        "Timestamp of last audit run starting time",
    ),
    (
        "gatekeeper_sync",
        "gauge",
        "Total number of resources of each kind being cached",
    ),
    (
        "meshguard_validation_violations_total",
        "counter",
        "Violations found at admission, by constraint and enforcement action",
    ),
    (
        "meshguard_validation_errors_total",
        "counter",
        "Reviews that timed out or failed, answered by the failure policy",
    ),
    (
        "meshguard_validation_rejected_total",
        "counter",
        "Malformed or oversized admission reviews answered with 400",
    ),
    (
        "meshguard_decision_cache_hits_total",
        "counter",
        "Constraint decisions answered from the decision cache (since the policy set was loaded)",
    ),
    (
        "meshguard_decision_cache_misses_total",
        "counter",
        "Constraint decisions evaluated because the cache had none (since the policy set was loaded)",
    ),
];

impl Metrics {
    /// Adds `by` to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        if let Ok(mut store) = self.store.lock() {
            *store.counters.entry((name, own(labels))).or_default() += by;
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        if let Ok(mut store) = self.store.lock() {
            store.gauges.insert((name, own(labels)), value);
        }
    }

    /// Removes every series of a gauge (before setting a fresh snapshot).
    pub fn clear_gauge(&self, name: &'static str) {
        if let Ok(mut store) = self.store.lock() {
            store.gauges.retain(|(n, _), _| *n != name);
        }
    }

    /// Records an observation in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        if let Ok(mut store) = self.store.lock() {
            let histogram = store.histograms.entry((name, own(labels))).or_default();
            for (index, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound
                    && let Some(count) = histogram.counts.get_mut(index)
                {
                    *count += 1;
                }
            }
            histogram.sum += seconds;
            histogram.count += 1;
        }
    }

    /// A counter's value (tests, demo).
    pub fn counter(&self, name: &str, labels: &[(&'static str, &str)]) -> u64 {
        let labels = own(labels);
        self.store
            .lock()
            .map(|store| {
                store
                    .counters
                    .iter()
                    .filter(|((n, l), _)| *n == name && labels.iter().all(|kv| l.contains(kv)))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let Ok(store) = self.store.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), value) in &store.counters {
                if n == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for ((n, labels), value) in &store.gauges {
                if n == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for ((n, labels), histogram) in &store.histograms {
                if n != name {
                    continue;
                }
                for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                    let le = bound.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.inc(
            "gatekeeper_validation_request_count",
            &[("admission_status", "deny"), ("admission_dryrun", "false")],
            2,
        );
        metrics.observe(
            "gatekeeper_validation_request_duration_seconds",
            &[("admission_status", "deny")],
            0.003,
        );
        let text = metrics.render();
        assert!(text.contains(
            "gatekeeper_validation_request_count{admission_status=\"deny\",admission_dryrun=\"false\"} 2"
        ));
        assert!(text.contains(
            "gatekeeper_validation_request_duration_seconds_bucket{admission_status=\"deny\",le=\"0.002\"} 0"
        ));
        assert!(text.contains(
            "gatekeeper_validation_request_duration_seconds_bucket{admission_status=\"deny\",le=\"0.004\"} 1"
        ));
        assert!(text.contains(
            "gatekeeper_validation_request_duration_seconds_count{admission_status=\"deny\"} 1"
        ));
        assert_eq!(
            metrics.counter(
                "gatekeeper_validation_request_count",
                &[("admission_status", "deny")]
            ),
            2
        );
    }
}
