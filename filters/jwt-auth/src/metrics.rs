//! The filter's counters, by the one naming scheme `meshguard.jwt_auth.<plugin>.<name>` (Envoy
//! shows them under `wasmcustom.`): allowed and public requests, denials by reason,
//! JWKS fetches, verified-token cache hits and misses, and which path verified signatures.
//!
//! Requests only bump counts inside the module; the root context adds them to Envoy's stats on
//! each tick ([`crate::filter::METRICS_FLUSH_PERIOD`] at most), as every meshguard filter does
//! ([`meshguard_filter_core::counters`]).

use meshguard_filter_core::counters::Counter as Batched;
use meshguard_filter_core::{Host, Stats};

use crate::failure::Failure;

/// A counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A request passed with its requirement satisfied by tokens.
    Allowed,
    /// A request passed without authentication (public rule, CORS preflight).
    Public,
    /// A request was refused, for this reason.
    Denied(&'static str),
    /// A JWKS fetch succeeded.
    JwksFetchOk,
    /// A JWKS fetch failed.
    JwksFetchFailed,
    /// A token was found in the verified-token cache.
    CacheHit,
    /// A token had to be verified.
    CacheMiss,
    /// A signature was checked by Envoy's `verify_signature`.
    VerifiedOnHost,
    /// A signature was checked inside the module.
    VerifiedInWasm,
}

const FIXED: [(&str, Counter); 8] = [
    ("allowed", Counter::Allowed),
    ("public", Counter::Public),
    ("jwks_fetch.ok", Counter::JwksFetchOk),
    ("jwks_fetch.failed", Counter::JwksFetchFailed),
    ("cache.hit", Counter::CacheHit),
    ("cache.miss", Counter::CacheMiss),
    ("verify.host", Counter::VerifiedOnHost),
    ("verify.wasm", Counter::VerifiedInWasm),
];

/// The counters, defined once per root context, in slot order.
#[derive(Debug)]
pub struct Metrics {
    counters: Vec<Batched>,
}

impl Metrics {
    /// Defines every counter under `meshguard.jwt_auth.<plugin>.`.
    pub fn define(host: &mut dyn Host, stats: &Stats) -> Self {
        let names = FIXED.iter().map(|(name, _)| (*name).to_string()).chain(
            Failure::REASONS
                .iter()
                .map(|reason| format!("denied.{reason}")),
        );
        Self {
            counters: names.map(|name| stats.counter(host, &name)).collect(),
        }
    }

    fn slot(counter: Counter) -> Option<usize> {
        match counter {
            Counter::Denied(reason) => Failure::REASONS
                .iter()
                .position(|known| *known == reason)
                .map(|index| FIXED.len() + index),
            fixed => FIXED.iter().position(|(_, known)| *known == fixed),
        }
    }

    /// Counts one `counter` (added to Envoy's stats at the next flush).
    pub fn increment(&mut self, counter: Counter) {
        if let Some(counter) = Self::slot(counter).and_then(|slot| self.counters.get(slot)) {
            counter.bump();
        }
    }

    /// Adds the pending counts to Envoy's stats.
    pub fn flush(&mut self, host: &mut dyn Host) {
        for counter in &self.counters {
            counter.flush(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use meshguard_filter_core::mock::MockHost;

    use super::*;

    #[test]
    fn counts_are_batched_until_flushed() {
        let mut host = MockHost::new();
        let mut metrics = Metrics::define(&mut host, &Stats::new("jwt_auth", "edge"));
        metrics.increment(Counter::Allowed);
        metrics.increment(Counter::Allowed);
        metrics.increment(Counter::Denied("expired"));
        metrics.increment(Counter::Denied("no such reason"));
        assert_eq!(host.metric("meshguard.jwt_auth.edge.allowed"), 0);
        metrics.flush(&mut host);
        assert_eq!(host.metric("meshguard.jwt_auth.edge.allowed"), 2);
        assert_eq!(host.metric("meshguard.jwt_auth.edge.denied.expired"), 1);
        metrics.flush(&mut host);
        assert_eq!(
            host.metric("meshguard.jwt_auth.edge.allowed"),
            2,
            "flushed counts are not added twice"
        );
        assert_eq!(host.metrics.len(), FIXED.len() + Failure::REASONS.len());
    }
}
