//! The filter's counters, as proxy-wasm metrics (Envoy shows them as
//! `wasmcustom.jwt_auth.<plugin>.<name>`): allowed and public requests, denials by reason,
//! JWKS fetches, verified-token cache hits and misses, and which path verified signatures.
//!
//! Requests only bump counts inside the module; the root context adds them to Envoy's stats on
//! each tick ([`crate::filter::METRICS_FLUSH_PERIOD`] at most). A host call per counter per request
//! would cost more than the cached path of the filter itself, and stats a second late are as
//! useful to an operator as live ones.

use meshguard_filter_core::{Host, MetricKind};

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

const SLOTS: usize = FIXED.len() + Failure::REASONS.len();

/// Metric ids (defined once per root context) and the counts not yet flushed.
#[derive(Debug, Clone)]
pub struct Metrics {
    ids: [Option<u32>; SLOTS],
    pending: [u32; SLOTS],
}

impl Metrics {
    /// Defines every counter under `jwt_auth.<plugin>.`.
    pub fn define(host: &mut dyn Host, plugin: &str) -> Self {
        let mut ids = [None; SLOTS];
        let names = FIXED.iter().map(|(name, _)| (*name).to_string()).chain(
            Failure::REASONS
                .iter()
                .map(|reason| format!("denied.{reason}")),
        );
        for (slot, name) in ids.iter_mut().zip(names) {
            *slot = host.define_metric(MetricKind::Counter, &format!("jwt_auth.{plugin}.{name}"));
        }
        Self {
            ids,
            pending: [0; SLOTS],
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
        if let Some(count) = Self::slot(counter).and_then(|slot| self.pending.get_mut(slot)) {
            *count = count.saturating_add(1);
        }
    }

    /// Adds the pending counts to Envoy's stats.
    pub fn flush(&mut self, host: &mut dyn Host) {
        for (id, count) in self.ids.iter().zip(self.pending.iter_mut()) {
            if *count > 0 {
                if let Some(id) = id {
                    host.increment_metric(*id, i64::from(*count));
                }
                *count = 0;
            }
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
        let mut metrics = Metrics::define(&mut host, "edge");
        metrics.increment(Counter::Allowed);
        metrics.increment(Counter::Allowed);
        metrics.increment(Counter::Denied("expired"));
        metrics.increment(Counter::Denied("no such reason"));
        assert_eq!(host.metric("jwt_auth.edge.allowed"), 0);
        metrics.flush(&mut host);
        assert_eq!(host.metric("jwt_auth.edge.allowed"), 2);
        assert_eq!(host.metric("jwt_auth.edge.denied.expired"), 1);
        metrics.flush(&mut host);
        assert_eq!(
            host.metric("jwt_auth.edge.allowed"),
            2,
            "flushed counts are not added twice"
        );
        assert_eq!(host.metrics.len(), SLOTS);
    }
}
