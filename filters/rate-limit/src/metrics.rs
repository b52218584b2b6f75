//! Envoy stats per limit.
//!
//! Every root context defines the same names; Envoy keeps one stat per name, so counters add up
//! across workers. Names are `meshguard_rate_limit.<limit>.<stat>` (Envoy may show custom wasm
//! stats under a `wasmcustom.` prefix).

use meshguard_filter_core::{Host, MetricKind};

/// Metric ids of one limit (ids are per VM; `None` when the host refused the definition).
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitMetrics {
    /// Requests this limit admitted and charged.
    pub allowed: Option<u32>,
    /// Requests this (enforced) limit denied.
    pub limited: Option<u32>,
    /// Requests this shadow limit would have denied.
    pub shadow_limited: Option<u32>,
    /// Compare-and-swap mismatches on this limit's shared data.
    pub cas_retries: Option<u32>,
    /// Keys forgotten: idle records reused for new keys, and records removed by the sweep.
    pub evictions: Option<u32>,
    /// Requests judged on the shared overflow cell because their bucket was full.
    pub overflow: Option<u32>,
    /// Keys tracked at the end of the last full sweep (gauge).
    pub keys: Option<u32>,
}

impl LimitMetrics {
    /// Defines the stats of limit `name`.
    pub fn define(host: &mut dyn Host, name: &str) -> Self {
        let mut counter = |stat: &str| {
            host.define_metric(
                MetricKind::Counter,
                &format!("meshguard_rate_limit.{name}.{stat}"),
            )
        };
        let allowed = counter("allowed");
        let limited = counter("limited");
        let shadow_limited = counter("shadow_limited");
        let cas_retries = counter("cas_retries");
        let evictions = counter("evictions");
        let overflow = counter("overflow");
        let keys = host.define_metric(
            MetricKind::Gauge,
            &format!("meshguard_rate_limit.{name}.keys"),
        );
        Self {
            allowed,
            limited,
            shadow_limited,
            cas_retries,
            evictions,
            overflow,
            keys,
        }
    }
}

/// Adds `delta` to a counter when it is defined and `delta` is not zero.
pub fn add(host: &mut dyn Host, id: Option<u32>, delta: u64) {
    if let Some(id) = id
        && delta > 0
    {
        host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
    }
}
