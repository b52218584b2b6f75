//! The webhook's Prometheus metrics, on `prometheus-client` (the official Rust client), with
//! Gatekeeper's names and labels so existing dashboards and alerts keep working:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `gatekeeper_validation_request_count` | counter | `admission_status` (`allow`, `deny`, or `error` for a review answered by the failure policy), `admission_dryrun` |
//! | `gatekeeper_validation_request_duration_seconds` | histogram | `admission_status` |
//! | `gatekeeper_constraint_templates` | gauge | `status` (`active`, `error`: not enforced) |
//! | `gatekeeper_constraints` | gauge | `enforcement_action`, `status` (`active`, `error`) |
//! | `gatekeeper_violations` | gauge (last audit) | `enforcement_action` |
//! | `gatekeeper_audit_duration_seconds` | histogram | |
//! | `gatekeeper_audit_last_run_time` | gauge (Unix seconds) | |
//! | `gatekeeper_sync` | gauge | `kind`, `status` |
//!
//! and meshguard's own counters: `meshguard_validation_violations{constraint_kind,
//! constraint_name, enforcement_action}` (violations at admission), `meshguard_validation_errors
//! {reason, failure_policy}` (reviews answered by the failure policy),
//! `meshguard_validation_rejected{reason}` (malformed or oversized reviews answered with 400),
//! `meshguard_webhook_certificate_expiry_timestamp_seconds` (the served certificate's
//! `notAfter`, as cert-manager's `certmanager_certificate_expiration_timestamp_seconds`) and
//! `meshguard_decision_cache_hits` / `_misses` (constraint decisions answered from the engine's
//! decision cache, or evaluated).
//!
//! Counter samples carry the `_total` suffix the exposition formats require
//! (`gatekeeper_validation_request_count_total`), which is also what Gatekeeper has exposed since
//! it moved to OpenTelemetry (3.15); dashboards written for older Gatekeeper query the bare name.
//! Every counter lives as long as the process: the registry belongs to the webhook's state, not
//! to a policy set, and the decision cache's counts come from the engine's `CacheCounters`, which
//! the state hands to every policy set it loads, so no counter goes down when policies reload.
//!
//! # Reusing this module
//!
//! The Gatekeeper families are specific to the webhook; the rest is the pattern every meshguard
//! service follows: one [`Registry`] per process owned by the service's state, typed label sets
//! (`#[derive(EncodeLabelSet)]`), a [`Collector`] for values owned elsewhere, and [`Exposition`]
//! to answer `/metrics` in the format the scraper asks for (Prometheus text 0.0.4 by default,
//! OpenMetrics when the `Accept` header asks for it).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use meshguard_policy_engine::CacheCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Webhook latency buckets in seconds (Gatekeeper's webhook buckets extended downwards: reviews
/// here take around a millisecond), up to past the API server's longest `timeoutSeconds` we
/// ship (5 s): a p99 near the evaluation deadline (2 s), which the
/// `MeshguardWebhookLatencyNearTimeout` alert watches, must fall inside a finite bucket.
const REQUEST_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28,
    2.56, 5.12,
];

/// Audit latency buckets in seconds.
const AUDIT_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// `admission_status`, `admission_dryrun`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `allow`, `deny` or `error`.
    pub admission_status: &'static str,
    /// `true` or `false`.
    pub admission_dryrun: &'static str,
}

/// `admission_status`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AdmissionStatusLabels {
    /// `allow`, `deny` or `error`.
    pub admission_status: &'static str,
}

/// `status` of templates: `active` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabels {
    /// `active` or `error`.
    pub status: &'static str,
}

/// `enforcement_action`, `status` of constraints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ConstraintLabels {
    /// `deny`, `dryrun`, `warn`, `scoped`.
    pub enforcement_action: String,
    /// `active` or `error`.
    pub status: &'static str,
}

/// `enforcement_action`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    /// `deny`, `dryrun` or `warn`.
    pub enforcement_action: &'static str,
}

/// `kind`, `status` of synced objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SyncLabels {
    /// The object kind.
    pub kind: String,
    /// `active`.
    pub status: &'static str,
}

/// A violation at admission: the constraint and the action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ViolationLabels {
    /// The constraint's kind.
    pub constraint_kind: String,
    /// The constraint's name.
    pub constraint_name: String,
    /// `deny`, `dryrun` or `warn`.
    pub enforcement_action: &'static str,
}

/// A review answered by the failure policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `timeout`, `overloaded` or `internal`.
    pub reason: &'static str,
    /// `Fail` or `Ignore`.
    pub failure_policy: &'static str,
}

/// A review answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `content_type`, `oversized`, `malformed`, `body` or `body_timeout`.
    pub reason: &'static str,
}

/// The webhook's metrics.
pub struct Metrics {
    registry: Registry,
    /// `gatekeeper_validation_request_count`.
    pub requests: Family<RequestLabels, Counter>,
    /// `gatekeeper_validation_request_duration_seconds`.
    pub request_duration: Family<AdmissionStatusLabels, Histogram, fn() -> Histogram>,
    /// `gatekeeper_constraint_templates`.
    pub constraint_templates: Family<StatusLabels, Gauge>,
    /// `gatekeeper_constraints`.
    pub constraints: Family<ConstraintLabels, Gauge>,
    /// `gatekeeper_violations` (last audit).
    pub audit_violations: Family<ActionLabels, Gauge>,
    /// `gatekeeper_audit_duration_seconds`.
    pub audit_duration: Histogram,
    /// `gatekeeper_audit_last_run_time`.
    pub audit_last_run: Gauge<f64, AtomicU64>,
    /// `gatekeeper_sync`.
    pub sync: Family<SyncLabels, Gauge>,
    /// `meshguard_validation_violations`.
    pub violations: Family<ViolationLabels, Counter>,
    /// `meshguard_validation_errors`.
    pub errors: Family<ErrorLabels, Counter>,
    /// `meshguard_validation_rejected`.
    pub rejected: Family<ReasonLabels, Counter>,
    /// `meshguard_webhook_certificate_expiry_timestamp_seconds`: the served certificate's
    /// `notAfter` (0 until a certificate is served).
    pub certificate_expiry: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every family; the decision cache's counts are read from `cache` at each scrape.
    pub fn new(cache: Arc<CacheCounters>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "gatekeeper_validation_request_count",
            "The number of requests that are routed to validation webhook",
            requests.clone(),
        );
        let request_duration =
            Family::<AdmissionStatusLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                request_histogram,
            );
        registry.register(
            "gatekeeper_validation_request_duration_seconds",
            "The validation webhook response time in seconds",
            request_duration.clone(),
        );
        let constraint_templates = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "gatekeeper_constraint_templates",
            "Number of observed constraint templates",
            constraint_templates.clone(),
        );
        let constraints = Family::<ConstraintLabels, Gauge>::default();
        registry.register(
            "gatekeeper_constraints",
            "Current number of known constraints",
            constraints.clone(),
        );
        let audit_violations = Family::<ActionLabels, Gauge>::default();
        registry.register(
            "gatekeeper_violations",
            "Total number of audited violations",
            audit_violations.clone(),
        );
        let audit_duration = Histogram::new(AUDIT_BUCKETS);
        registry.register(
            "gatekeeper_audit_duration_seconds",
            "Latency of audit operation in seconds",
            audit_duration.clone(),
        );
        let audit_last_run = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "gatekeeper_audit_last_run_time",
            "Timestamp of last audit run starting time",
            audit_last_run.clone(),
        );
        let sync = Family::<SyncLabels, Gauge>::default();
        registry.register(
            "gatekeeper_sync",
            "Total number of resources of each kind being cached",
            sync.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "meshguard_validation_violations",
            "Violations found at admission, by constraint and enforcement action",
            violations.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "meshguard_validation_errors",
            "Reviews that timed out or failed, answered by the failure policy",
            errors.clone(),
        );
        let rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "meshguard_validation_rejected",
            "Malformed or oversized admission reviews answered with 400",
            rejected.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "meshguard_webhook_certificate_expiry_timestamp_seconds",
            "Unix time at which the served TLS certificate expires (its notAfter)",
            certificate_expiry.clone(),
        );
        registry.register_collector(Box::new(CacheCollector(cache)));
        Self {
            registry,
            requests,
            request_duration,
            constraint_templates,
            constraints,
            audit_violations,
            audit_duration,
            audit_last_run,
            sync,
            violations,
            errors,
            rejected,
            certificate_expiry,
        }
    }

    /// Creates, at 0, the series every review outcome and failure reason will count in, for
    /// the webhook's `failure_policy`. A series that appears only at its first increment has no
    /// earlier sample, so `rate()` and `increase()` miss that increment: the first timeout
    /// after a restart would never raise `MeshguardWebhookFailurePolicyAnswers`.
    pub fn initialize(&self, failure_policy: &'static str) {
        for admission_status in ["allow", "deny", "error"] {
            for admission_dryrun in ["false", "true"] {
                drop(self.requests.get_or_create(&RequestLabels {
                    admission_status,
                    admission_dryrun,
                }));
            }
            drop(
                self.request_duration
                    .get_or_create(&AdmissionStatusLabels { admission_status }),
            );
        }
        for reason in ["timeout", "overloaded", "internal"] {
            drop(self.errors.get_or_create(&ErrorLabels {
                reason,
                failure_policy,
            }));
        }
        for reason in [
            "content_type",
            "oversized",
            "malformed",
            "body",
            "body_timeout",
        ] {
            drop(self.rejected.get_or_create(&ReasonLabels { reason }));
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        Exposition::Prometheus.encode(&self.registry)
    }

    /// The exposition the `Accept` header asks for, with its content type.
    pub fn render_for(&self, accept: Option<&str>) -> (&'static str, String) {
        let format = Exposition::negotiate(accept);
        (format.content_type(), format.encode(&self.registry))
    }
}

/// The decision cache's counters, read from the engine at each scrape.
#[derive(Debug)]
struct CacheCollector(Arc<CacheCounters>);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.0.stats();
        for (name, help, value) in [
            (
                "meshguard_decision_cache_hits",
                "Constraint decisions answered from the decision cache",
                stats.hits,
            ),
            (
                "meshguard_decision_cache_misses",
                "Constraint decisions evaluated because the cache could not answer",
                stats.misses,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

// === exposition (reusable) ===

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// Prometheus text format 0.0.4 (what every scraper reads).
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Exposition {
    /// OpenMetrics when the `Accept` header lists it, as Prometheus' own clients negotiate.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => {
                Exposition::OpenMetrics
            }
            _ => Exposition::Prometheus,
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The registry's metrics in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut out = String::new();
        let written = match self {
            Exposition::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            }
            Exposition::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, registry)
            }
        };
        if written.is_err() {
            // Writing into a String cannot fail; keep what was written.
            tracing::error!("encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_the_cache_collector_render() {
        let cache = Arc::new(CacheCounters::default());
        let metrics = Metrics::new(cache);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                admission_status: "deny",
                admission_dryrun: "false",
            })
            .inc_by(2);
        metrics
            .request_duration
            .get_or_create(&AdmissionStatusLabels {
                admission_status: "deny",
            })
            .observe(0.003);
        metrics.initialize("Fail");
        let text = metrics.render();
        assert!(
            text.contains(
                "meshguard_validation_errors_total{reason=\"timeout\",failure_policy=\"Fail\"} 0"
            ),
            "{text}"
        );
        assert!(text.contains(
            "gatekeeper_validation_request_count_total{admission_status=\"deny\",admission_dryrun=\"false\"} 2"
        ), "{text}");
        assert!(text.contains(
            "gatekeeper_validation_request_duration_seconds_bucket{admission_status=\"deny\",le=\"0.004\"} 1"
        ), "{text}");
        assert!(
            text.contains("meshguard_decision_cache_hits_total 0"),
            "{text}"
        );
        let (content_type, open) = metrics.render_for(Some("application/openmetrics-text"));
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
