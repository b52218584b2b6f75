//! The one stats naming scheme: `meshguard.<filter>.<plugin>.<stat>`.
//!
//! `<filter>` is the filter's [`crate::Filter::NAME`] (`jwt_auth`, `rate_limit`, `canary`,
//! `circuit_breaker`), the same in a single-purpose module and in the `meshguard` pipeline, so
//! dashboards carry over; `<plugin>` is the plugin's name (Envoy's `plugin_name`, the
//! WasmPlugin's name in Istio), so two plugins of one filter never add into one stat; `<stat>`
//! may have several dot-separated parts (`orders.allowed`, `product.v2.requests`). Envoy shows
//! custom wasm stats with a `wasmcustom.` prefix: `wasmcustom.meshguard.rate_limit.edge.
//! orders.allowed`.
//!
//! Every root context defines the same names, and Envoy keeps one stat per name, so counts add
//! up across workers. Counters are batched in the module ([`Counter`]); gauges are set at once.

use crate::counters::Counter;
use crate::{Host, MetricKind};

/// The stats of one filter in one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    prefix: String,
}

impl Stats {
    /// The scope `meshguard.<filter>.<plugin>`. Dots in the plugin name become `_`, so the
    /// name stays one segment of the stat name.
    pub fn new(filter: &str, plugin: &str) -> Self {
        let plugin = if plugin.is_empty() {
            "default".to_string()
        } else {
            plugin.replace('.', "_")
        };
        Self {
            prefix: format!("meshguard.{filter}.{plugin}"),
        }
    }

    /// The full name of `stat`.
    pub fn name(&self, stat: &str) -> String {
        format!("{}.{stat}", self.prefix)
    }

    /// Defines the counter `stat`.
    pub fn counter(&self, host: &mut dyn Host, stat: &str) -> Counter {
        Counter::define(host, &self.name(stat))
    }

    /// Defines the gauge `stat`.
    pub fn gauge(&self, host: &mut dyn Host, stat: &str) -> Gauge {
        Gauge {
            id: host.define_metric(MetricKind::Gauge, &self.name(stat)),
        }
    }
}

/// A gauge: set when its value changes (rare events, not per request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauge {
    id: Option<u32>,
}

impl Gauge {
    /// Sets the gauge (nothing when the host refused the definition).
    pub fn set(&self, host: &mut dyn Host, value: u64) {
        if let Some(id) = self.id {
            host.record_metric(id, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    #[test]
    fn names_follow_the_scheme() {
        let stats = Stats::new("rate_limit", "edge");
        assert_eq!(
            stats.name("orders.allowed"),
            "meshguard.rate_limit.edge.orders.allowed"
        );
        assert_eq!(
            Stats::new("canary", "a.b").name("x"),
            "meshguard.canary.a_b.x"
        );
        assert_eq!(
            Stats::new("canary", "").name("x"),
            "meshguard.canary.default.x"
        );
    }

    #[test]
    fn counters_and_gauges_reach_the_host() {
        let mut host = MockHost::new();
        let stats = Stats::new("circuit_breaker", "edge");
        let counter = stats.counter(&mut host, "pay.calls.success");
        let gauge = stats.gauge(&mut host, "pay.state");
        counter.bump();
        counter.flush(&mut host);
        gauge.set(&mut host, 2);
        assert_eq!(
            host.metric("meshguard.circuit_breaker.edge.pay.calls.success"),
            1
        );
        assert_eq!(host.metric("meshguard.circuit_breaker.edge.pay.state"), 2);
    }
}
