//! Stats per limit, by the one naming scheme: `meshguard.rate_limit.<plugin>.<limit>.<stat>`
//! (Envoy shows them under `wasmcustom.`).

use meshguard_filter_core::Host;
use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::stats::{Gauge, Stats};

/// Stats of one limit: counters batched per worker and added on the root's tick
/// ([`meshguard_filter_core::counters`]), and the tracked-keys gauge the sweep sets.
#[derive(Debug, Default)]
pub struct LimitMetrics {
    /// Requests this limit admitted and charged.
    pub allowed: Counter,
    /// Requests this (enforced) limit denied.
    pub limited: Counter,
    /// Requests this shadow limit would have denied.
    pub shadow_limited: Counter,
    /// Compare-and-swap mismatches on this limit's shared data.
    pub cas_retries: Counter,
    /// Keys forgotten: idle records reused for new keys, and records removed by the sweep.
    pub evictions: Counter,
    /// Requests judged on the shared overflow cell because their bucket was full.
    pub overflow: Counter,
    /// Keys tracked at the end of the last full sweep.
    pub keys: Gauge,
}

impl LimitMetrics {
    /// Defines the stats of limit `name`.
    pub fn define(host: &mut dyn Host, stats: &Stats, name: &str) -> Self {
        let mut counter = |stat: &str| stats.counter(host, &format!("{name}.{stat}"));
        Self {
            allowed: counter("allowed"),
            limited: counter("limited"),
            shadow_limited: counter("shadow_limited"),
            cas_retries: counter("cas_retries"),
            evictions: counter("evictions"),
            overflow: counter("overflow"),
            keys: stats.gauge(host, &format!("{name}.keys")),
        }
    }

    /// Adds this worker's pending counts to Envoy's stats.
    pub fn flush(&self, host: &mut dyn Host) {
        for counter in [
            &self.allowed,
            &self.limited,
            &self.shadow_limited,
            &self.cas_retries,
            &self.evictions,
            &self.overflow,
        ] {
            counter.flush(host);
        }
    }
}
