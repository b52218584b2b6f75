//! Prometheus metrics (`prometheus-client`, OpenMetrics text on `/metrics`):
//!
//! - `meshguard_rls_requests_total{domain, code}`: `ShouldRateLimit` answers; `code` is `ok`,
//!   `over_limit`, `error` (Redis failed: answered with gRPC `UNKNOWN`) or `invalid` (a malformed
//!   request: `INVALID_ARGUMENT`). A domain the configuration does not have is `domain="unknown"`.
//! - `meshguard_rls_rule_hits_total{domain, rule, result}`: one per descriptor a limit applied to,
//!   by the rule's descriptor path (envoyproxy/ratelimit's stat name, so dashboards carry over);
//!   `result` is `within_limit`, `near_limit` (admitted with under 20% of the budget left),
//!   `over_limit`, `shadow_mode` (would have refused; answered OK) or `unlimited`. With
//!   `detailed_metric`, the rule carries the value; past [`MAX_DETAILED_RULES`] values a rule's
//!   further values count as `<rule>_other`, so a key flood cannot grow the metrics.
//! - `meshguard_rls_redis_errors_total{kind}`: failed decisions by cause (`unavailable`,
//!   `timeout`, `redis`, `malformed`).
//! - `meshguard_rls_redis_up`: 1 while the last Redis round trip worked.
//! - `meshguard_rls_decision_duration_seconds`: a Redis decision's round trip.
//! - `meshguard_rls_config_loads_total{result}` and `meshguard_rls_config_domains`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Distinct `detailed_metric` values counted per registry before further ones fold.
pub const MAX_DETAILED_RULES: usize = 1_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    domain: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    domain: String,
    rule: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The service's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rule_hits: Family<RuleLabels, Counter>,
    redis_errors: Family<KindLabels, Counter>,
    redis_up: Gauge,
    decision_seconds: Histogram,
    config_loads: Family<ResultLabels, Counter>,
    config_domains: Gauge,
    detailed: Mutex<HashSet<(String, String)>>,
}

/// What happened to one descriptor a limit applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleResult {
    /// Admitted with budget to spare.
    WithinLimit,
    /// Admitted with under 20% of the budget left.
    NearLimit,
    /// Refused.
    OverLimit,
    /// Would have been refused, but the limit is in shadow mode.
    ShadowMode,
    /// An unlimited descriptor.
    Unlimited,
}

impl RuleResult {
    fn label(self) -> &'static str {
        match self {
            Self::WithinLimit => "within_limit",
            Self::NearLimit => "near_limit",
            Self::OverLimit => "over_limit",
            Self::ShadowMode => "shadow_mode",
            Self::Unlimited => "unlimited",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "meshguard_rls_requests",
            "ShouldRateLimit answers by domain and code",
            requests.clone(),
        );
        let rule_hits = Family::<RuleLabels, Counter>::default();
        registry.register(
            "meshguard_rls_rule_hits",
            "Descriptors a limit applied to, by rule and result",
            rule_hits.clone(),
        );
        let redis_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "meshguard_rls_redis_errors",
            "Decisions that failed in Redis, answered with gRPC UNKNOWN",
            redis_errors.clone(),
        );
        // Every cause at 0 from the start: a series born at its first error has no earlier
        // sample, and `rate()` (the MeshguardRateLimitServiceRedisErrors alert) would miss it.
        for kind in ["unavailable", "timeout", "redis", "malformed"] {
            drop(redis_errors.get_or_create(&KindLabels { kind }));
        }
        let redis_up = Gauge::default();
        registry.register(
            "meshguard_rls_redis_up",
            "1 while the last Redis round trip succeeded",
            redis_up.clone(),
        );
        let decision_seconds = Histogram::new([
            0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
        ]);
        registry.register(
            "meshguard_rls_decision_duration_seconds",
            "Redis round trip of one decision",
            decision_seconds.clone(),
        );
        let config_loads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "meshguard_rls_config_loads",
            "Configuration loads by result",
            config_loads.clone(),
        );
        let config_domains = Gauge::default();
        registry.register(
            "meshguard_rls_config_domains",
            "Domains in the configuration in use",
            config_domains.clone(),
        );
        Self {
            registry,
            requests,
            rule_hits,
            redis_errors,
            redis_up,
            decision_seconds,
            config_loads,
            config_domains,
            detailed: Mutex::new(HashSet::new()),
        }
    }

    /// Counts an answer.
    pub fn request(&self, domain: &str, code: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                domain: domain.to_string(),
                code,
            })
            .inc();
    }

    /// Counts a descriptor's result under its rule. `detailed` says the rule carries a value.
    pub fn rule_hit(&self, domain: &str, rule: &str, base_rule: &str, result: RuleResult) {
        let rule = if rule == base_rule {
            rule.to_string()
        } else {
            self.bounded_detail(domain, rule, base_rule)
        };
        self.rule_hits
            .get_or_create(&RuleLabels {
                domain: domain.to_string(),
                rule,
                result: result.label(),
            })
            .inc();
    }

    fn bounded_detail(&self, domain: &str, rule: &str, base_rule: &str) -> String {
        let Ok(mut seen) = self.detailed.lock() else {
            return format!("{base_rule}_other");
        };
        let entry = (domain.to_string(), rule.to_string());
        if seen.contains(&entry) {
            return rule.to_string();
        }
        if seen.len() >= MAX_DETAILED_RULES {
            return format!("{base_rule}_other");
        }
        seen.insert(entry);
        rule.to_string()
    }

    /// Counts a failed decision.
    pub fn redis_error(&self, kind: &'static str) {
        self.redis_errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// Records whether Redis answered.
    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// Records a decision's Redis round trip.
    pub fn decision_time(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    /// Counts a configuration load; on success, records the number of domains.
    pub fn config_load(&self, domains: Option<usize>) {
        let result = if domains.is_some() {
            "success"
        } else {
            "error"
        };
        self.config_loads
            .get_or_create(&ResultLabels { result })
            .inc();
        if let Some(domains) = domains {
            self.config_domains
                .set(i64::try_from(domains).unwrap_or(i64::MAX));
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_their_labels() {
        let metrics = Metrics::new();
        metrics.request("edge", "over_limit");
        metrics.rule_hit("edge", "user", "user", RuleResult::OverLimit);
        metrics.redis_error("timeout");
        metrics.set_redis_up(true);
        metrics.config_load(Some(2));
        let text = metrics.encode().unwrap();
        for line in [
            "meshguard_rls_requests_total{domain=\"edge\",code=\"over_limit\"} 1",
            "meshguard_rls_rule_hits_total{domain=\"edge\",rule=\"user\",result=\"over_limit\"} 1",
            "meshguard_rls_redis_errors_total{kind=\"timeout\"} 1",
            // Every cause exists from the start, so rate() sees its first error.
            "meshguard_rls_redis_errors_total{kind=\"unavailable\"} 0",
            "meshguard_rls_redis_up 1",
            "meshguard_rls_config_loads_total{result=\"success\"} 1",
            "meshguard_rls_config_domains 2",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn detailed_rules_are_bounded() {
        let metrics = Metrics::new();
        for i in 0..MAX_DETAILED_RULES + 50 {
            metrics.rule_hit("d", &format!("ip_{i}"), "ip", RuleResult::WithinLimit);
        }
        let text = metrics.encode().unwrap();
        let series = text.matches("meshguard_rls_rule_hits_total{").count();
        assert_eq!(series, MAX_DETAILED_RULES + 1);
        assert!(text.contains("rule=\"ip_other\",result=\"within_limit\"} 50"));
    }
}
