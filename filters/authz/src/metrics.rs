//! The filter's counters, `meshguard.authz.<plugin>.<stat>` (the one stats scheme,
//! [`meshguard_filter_core::stats`]; Envoy shows them under `wasmcustom.`): decisions, denials
//! by reason, errors by kind, and the decision cache.
//!
//! | stat | counts |
//! |---|---|
//! | `allowed` | requests the policy allowed |
//! | `denied.policy` | requests the policy denied |
//! | `denied.error` | requests denied because of an error (`onError: deny`) |
//! | `denied.body_too_large` | requests whose body is over `withRequestBody.maxRequestBytes` (413) |
//! | `allowed.on_error` | requests let through despite an error (`onError: allow`) |
//! | `error.<kind>` | errors by kind: `input`, `limit`, `evaluation`, `undefined`, `invalid_decision` |
//! | `cache.hit`, `cache.miss` | decisions answered from the cache, and evaluated then cached |
//!
//! Requests bump counts inside the module; the root context adds them to Envoy's stats on its
//! tick, as every meshguard filter does ([`meshguard_filter_core::counters`]).

use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::{Host, Stats};

use crate::stage::{Action, Decided, ErrorKind};

/// The counters of one root context.
#[derive(Debug)]
pub struct Metrics {
    allowed: Counter,
    denied_policy: Counter,
    denied_error: Counter,
    denied_body_too_large: Counter,
    allowed_on_error: Counter,
    errors: Vec<Counter>,
    cache_hit: Counter,
    cache_miss: Counter,
}

impl Metrics {
    /// Defines every counter in `stats` (`meshguard.authz.<plugin>.`).
    pub fn define(host: &mut dyn Host, stats: &Stats) -> Self {
        let mut counter = |name: &str| stats.counter(host, name);
        Self {
            allowed: counter("allowed"),
            denied_policy: counter("denied.policy"),
            denied_error: counter("denied.error"),
            denied_body_too_large: counter("denied.body_too_large"),
            allowed_on_error: counter("allowed.on_error"),
            errors: ErrorKind::ALL
                .iter()
                .map(|kind| counter(&format!("error.{}", kind.name())))
                .collect(),
            cache_hit: counter("cache.hit"),
            cache_miss: counter("cache.miss"),
        }
    }

    /// Counts a decision.
    pub fn record(&self, decided: &Decided) {
        let allowed = matches!(decided.action, Action::Allow(_));
        match &decided.error {
            None if allowed => self.allowed.bump(),
            None => self.denied_policy.bump(),
            Some((kind, _)) => {
                if let Some(counter) = ErrorKind::ALL
                    .iter()
                    .position(|known| known == kind)
                    .and_then(|index| self.errors.get(index))
                {
                    counter.bump();
                }
                if allowed {
                    self.allowed_on_error.bump();
                } else {
                    self.denied_error.bump();
                }
            }
        }
        match decided.cache_hit {
            Some(true) => self.cache_hit.bump(),
            Some(false) => self.cache_miss.bump(),
            None => {}
        }
    }

    /// Counts a body over the bound.
    pub fn body_too_large(&self) {
        self.denied_body_too_large.bump();
    }

    /// Adds the pending counts to the host's stats.
    pub fn flush(&self, host: &mut dyn Host) {
        for counter in [
            &self.allowed,
            &self.denied_policy,
            &self.denied_error,
            &self.denied_body_too_large,
            &self.allowed_on_error,
            &self.cache_hit,
            &self.cache_miss,
        ]
        .into_iter()
        .chain(self.errors.iter())
        {
            counter.flush(host);
        }
    }
}
