//! Counters that requests bump inside the module and that the root context adds to Envoy's
//! stats on its tick.
//!
//! In Envoy every `proxy_increment_metric` is a hostcall across the V8 boundary, and on a
//! filter's common path it costs about as much as any of the calls the decision needs (a header
//! read, a shared-data CAS). Batching takes it off the request path. Nothing an operator sees is
//! lost: Envoy flushes its stats to sinks every 5 s by default (`stats_flush_interval`), and a
//! count that reaches the stats store within one tick (a second) is as useful as a live one.
//! Every root context ticks (the main thread's and each worker's), and streams only bump the
//! counters of their own worker's root, so each count is added exactly once. Counts still
//! pending when a VM is torn down (a configuration change) are lost: at most one tick's worth.
//!
//! Gauges stay immediate: they are set on rare events (a breaker's state), not per request.

use std::cell::Cell;

use crate::host::{Host, MetricKind};

/// One counter: its id in the host (`None` when the host refused the definition) and the count
/// not yet added to it.
#[derive(Debug, Default)]
pub struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    /// Defines counter `name` in the host.
    pub fn define(host: &mut dyn Host, name: &str) -> Self {
        Self {
            id: host.define_metric(MetricKind::Counter, name),
            pending: Cell::new(0),
        }
    }

    /// Counts one (added to the host's stat at the next [`Counter::flush`]).
    pub fn bump(&self) {
        self.add(1);
    }

    /// Counts `delta`.
    pub fn add(&self, delta: u64) {
        self.pending.set(self.pending.get().saturating_add(delta));
    }

    /// Counts not yet added to the host's stat.
    pub fn pending(&self) -> u64 {
        self.pending.get()
    }

    /// Adds the pending count to the host's stat (no hostcall when nothing is pending).
    pub fn flush(&self, host: &mut dyn Host) {
        let delta = self.pending.replace(0);
        if delta > 0
            && let Some(id) = self.id
        {
            host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    #[test]
    fn counts_reach_the_host_only_when_flushed_and_only_once() {
        let mut host = MockHost::new();
        let counter = Counter::define(&mut host, "requests");
        counter.bump();
        counter.add(2);
        assert_eq!(host.metric("requests"), 0);
        assert_eq!(counter.pending(), 3);
        host.reset_hostcalls();
        counter.flush(&mut host);
        assert_eq!(host.metric("requests"), 3);
        assert_eq!(host.hostcalls(), 1);
        counter.flush(&mut host);
        assert_eq!(host.metric("requests"), 3, "a flush adds nothing twice");
        assert_eq!(host.hostcalls(), 1, "an idle flush makes no hostcall");
    }

    #[test]
    fn an_undefined_counter_counts_without_a_host_stat() {
        let mut host = MockHost::new();
        let counter = Counter::default();
        counter.bump();
        counter.flush(&mut host);
        assert_eq!(counter.pending(), 0);
        assert_eq!(host.hostcalls(), 0);
    }
}
