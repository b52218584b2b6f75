//! One breaker at run time: its shared-data keys, its metrics, and every step of the state
//! machine applied to shared data with CAS.
//!
//! Each method reads the breaker's state, runs the pure step from [`crate::machine`], and writes
//! back only when the step changed something (a closed breaker admits without writing). The
//! worker whose write carries a transition is the one that logs it and counts it, so a
//! transition appears once however many workers raced for it.
//!
//! The time of a step comes from a [`Clock`], read from the host only when the step asks for
//! it: a closed breaker admits, and records into a count window, without a clock hostcall.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::shared::{Cas, Snapshot, StoreError, Write};
use meshguard_filter_core::stats::{Gauge, Stats};
use meshguard_filter_core::{Host, LogLevel};

use crate::codec;
use crate::config::Breaker;
use crate::machine::{Admission, Effect, Header, Now, Outcome, Phase, State, Ticket};

/// Milliseconds since the epoch.
pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The time of one callback: read from the host on first use, then reused, so a step that does
/// not depend on the time costs no clock hostcall and one that does costs exactly one.
#[derive(Debug, Default)]
pub struct Clock(Cell<Option<SystemTime>>);

impl Clock {
    /// A clock not read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time, read from `host` on the first call.
    pub fn read(&self, host: &dyn Host) -> SystemTime {
        if let Some(time) = self.0.get() {
            return time;
        }
        let time = host.now();
        self.0.set(Some(time));
        time
    }

    /// This clock as the machine's [`Now`], reading `host` if a step asks.
    pub fn on<'a>(&'a self, host: &'a dyn Host) -> HostNow<'a> {
        HostNow { clock: self, host }
    }
}

/// A [`Clock`] with the host it reads.
pub struct HostNow<'a> {
    clock: &'a Clock,
    host: &'a dyn Host,
}

impl Now for HostNow<'_> {
    fn ms(&self) -> u64 {
        millis(self.clock.read(self.host))
    }
}

/// Stats of one breaker (per VM; Envoy aggregates same-named metrics across workers). The
/// state gauge is set when it changes; counters are batched and added on the root's tick
/// ([`meshguard_filter_core::counters`]).
#[derive(Debug, Default)]
struct Metrics {
    state: Gauge,
    success: Counter,
    failure: Counter,
    slow: Counter,
    ignored: Counter,
    short_circuited: Counter,
    bulkhead_full: Counter,
    transitions: Counter,
    to_open: Counter,
    to_half_open: Counter,
    to_closed: Counter,
    contended: Counter,
}

impl Metrics {
    fn counters(&self) -> [&Counter; 11] {
        [
            &self.success,
            &self.failure,
            &self.slow,
            &self.ignored,
            &self.short_circuited,
            &self.bulkhead_full,
            &self.transitions,
            &self.to_open,
            &self.to_half_open,
            &self.to_closed,
            &self.contended,
        ]
    }
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A call that did not fail.
    Success,
    /// A call that failed.
    Failure,
    /// A slow call (besides success or failure).
    Slow,
    /// An admitted call without an outcome.
    Ignored,
    /// A request answered locally because the breaker was open or half-open.
    ShortCircuited,
    /// A request refused by the bulkhead.
    BulkheadFull,
    /// Shared data stayed contended and an update was dropped.
    Contended,
}

/// One configured breaker, ready to run.
#[derive(Debug)]
pub struct Guard {
    /// Shared-data key of the state.
    pub key: String,
    /// Shared-data key of the bulkhead's in-flight counter.
    pub inflight_key: String,
    metrics: Metrics,
    /// This worker's last read of `key`, so recording an outcome right after an admission can
    /// write without reading again.
    snapshot: Snapshot,
}

impl Guard {
    /// Keys are scoped by plugin name so two plugins in one VM keep separate breakers; stats
    /// are `meshguard.circuit_breaker.<plugin>.<breaker>.<stat>`.
    pub fn new(host: &mut dyn Host, plugin: &str, stats: &Stats, breaker: &Breaker) -> Self {
        let key = format!("meshguard.circuit_breaker.v1.{plugin}.{}", breaker.name);
        let name = |metric: &str| format!("{}.{metric}", breaker.name);
        let state = stats.gauge(host, &name("state"));
        let mut counter = |metric: &str| stats.counter(host, &name(metric));
        let metrics = Metrics {
            state,
            success: counter("calls.success"),
            failure: counter("calls.failure"),
            slow: counter("calls.slow"),
            ignored: counter("calls.ignored"),
            short_circuited: counter("short_circuited"),
            bulkhead_full: counter("bulkhead_full"),
            transitions: counter("transitions"),
            to_open: counter("transitions.to_open"),
            to_half_open: counter("transitions.to_half_open"),
            to_closed: counter("transitions.to_closed"),
            contended: counter("cas_contended"),
        };
        Self {
            inflight_key: format!("{key}.inflight"),
            key,
            metrics,
            snapshot: Snapshot::default(),
        }
    }

    /// Bumps a counter (Envoy sees it after the next [`Guard::flush_counters`]).
    pub fn count(&self, count: Count) {
        let counter = match count {
            Count::Success => &self.metrics.success,
            Count::Failure => &self.metrics.failure,
            Count::Slow => &self.metrics.slow,
            Count::Ignored => &self.metrics.ignored,
            Count::ShortCircuited => &self.metrics.short_circuited,
            Count::BulkheadFull => &self.metrics.bulkhead_full,
            Count::Contended => &self.metrics.contended,
        };
        counter.bump();
    }

    /// Adds this worker's pending counts to Envoy's stats.
    pub fn flush_counters(&self, host: &mut dyn Host) {
        for counter in self.metrics.counters() {
            counter.flush(host);
        }
    }

    fn show(&self, host: &mut dyn Host, phase: Phase) {
        self.metrics.state.set(host, phase.gauge());
    }

    /// Logs and counts the transition of a step whose write won.
    fn announce(&self, host: &mut dyn Host, breaker: &Breaker, effect: Effect) {
        let Some(transition) = effect.transition else {
            return;
        };
        let level = if transition.to == Phase::Open {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        host.log(
            level,
            &format!("meshguard circuit breaker `{}`: {transition}", breaker.name),
        );
        let per_target = match transition.to {
            Phase::Open => &self.metrics.to_open,
            Phase::HalfOpen => &self.metrics.to_half_open,
            Phase::Closed => &self.metrics.to_closed,
        };
        self.metrics.transitions.bump();
        per_target.bump();
        self.show(host, transition.to);
    }

    fn dropped(&self, host: &mut dyn Host, breaker: &Breaker, what: &str, err: StoreError) {
        self.count(Count::Contended);
        host.log(
            LogLevel::Warn,
            &format!(
                "meshguard circuit breaker `{}`: {what} dropped: {err}",
                breaker.name
            ),
        );
    }

    /// Makes sure a usable state is stored (a fresh one if none, or if the stored one is
    /// corrupt or shaped for another window) and shows its phase. Called at configure time.
    pub fn init(&self, host: &mut dyn Host, breaker: &Breaker) {
        let clock = Clock::new();
        let result = Cas::new(&self.key)
            .snapshot(&self.snapshot)
            .update(host, |host, bytes| match bytes.map(codec::decode) {
                Some(Ok(state)) if state.fits(breaker) => (Write::Keep, state.header.phase),
                _ => (
                    Write::Put(codec::encode(&State::new(breaker, clock.on(host).ms()))),
                    Phase::Closed,
                ),
            });
        match result {
            Ok(phase) => self.show(host, phase),
            Err(err) => self.dropped(host, breaker, "initialisation", err),
        }
    }

    /// Admission of one request. On a store failure the request is admitted without a ticket
    /// (failing open: a breaker that cannot reach its state must not take the service down).
    /// `clock` is the request's, read only if admission depends on the time (a breaker that
    /// is not closed, or no usable stored state).
    pub fn admit(
        &self,
        host: &mut dyn Host,
        breaker: &Breaker,
        clock: &Clock,
    ) -> Option<Admission> {
        let result = Cas::new(&self.key)
            .snapshot(&self.snapshot)
            .update(host, |host, bytes| {
                let now = clock.on(host);
                let header = bytes.and_then(|bytes| codec::decode_header(bytes).ok());
                match (bytes, header) {
                    (Some(bytes), Some(mut header)) => {
                        let (admission, effect) = header.admit(breaker, &now);
                        match effect.changed {
                            false => (Write::Keep, (admission, effect)),
                            true => match codec::patch_header(bytes, &header) {
                                Ok(patched) => (Write::Put(patched), (admission, effect)),
                                Err(_) => fresh_admission(breaker, now.ms()),
                            },
                        }
                    }
                    _ => fresh_admission(breaker, now.ms()),
                }
            });
        match result {
            Ok((admission, effect)) => {
                self.announce(host, breaker, effect);
                Some(admission)
            }
            Err(err) => {
                self.dropped(host, breaker, "admission", err);
                None
            }
        }
    }

    /// Records the outcome of a call admitted with `ticket`, judged at the time of `clock`
    /// (read only if the step depends on it).
    pub fn record(
        &self,
        host: &mut dyn Host,
        breaker: &Breaker,
        ticket: Ticket,
        outcome: Outcome,
        clock: &Clock,
    ) {
        self.count(if outcome.failed {
            Count::Failure
        } else {
            Count::Success
        });
        if outcome.slow {
            self.count(Count::Slow);
        }
        let result = Cas::new(&self.key)
            .snapshot(&self.snapshot)
            .update(host, |host, bytes| {
                let now = clock.on(host);
                let stored = bytes
                    .and_then(|bytes| codec::decode(bytes).ok())
                    .filter(|state| state.fits(breaker));
                let fresh = stored.is_none();
                let mut state = stored.unwrap_or_else(|| State::new(breaker, now.ms()));
                let effect = state.record(breaker, &now, ticket, outcome);
                if effect.changed || fresh {
                    (Write::Put(codec::encode(&state)), effect)
                } else {
                    (Write::Keep, effect)
                }
            });
        match result {
            Ok(effect) => self.announce(host, breaker, effect),
            Err(err) => self.dropped(host, breaker, "an outcome", err),
        }
    }

    /// An admitted call ended without an outcome: count it and return a probe's permit.
    pub fn ignore(&self, host: &mut dyn Host, breaker: &Breaker, ticket: Ticket) {
        self.count(Count::Ignored);
        self.release_permit(host, breaker, ticket);
    }

    /// Returns the half-open permit of `ticket` (if it is a probe of the current phase).
    pub fn release_permit(&self, host: &mut dyn Host, breaker: &Breaker, ticket: Ticket) {
        if !ticket.probe {
            return;
        }
        let result = Cas::new(&self.key)
            .snapshot(&self.snapshot)
            .update(host, |_, bytes| {
                let Some(bytes) = bytes else {
                    return (Write::Keep, ());
                };
                let Ok(mut header) = codec::decode_header(bytes) else {
                    return (Write::Keep, ());
                };
                if !header.release(ticket).changed {
                    return (Write::Keep, ());
                }
                match codec::patch_header(bytes, &header) {
                    Ok(patched) => (Write::Put(patched), ()),
                    Err(_) => (Write::Keep, ()),
                }
            });
        if let Err(err) = result {
            self.dropped(host, breaker, "a probe permit release", err);
        }
    }

    /// Periodic work: time-driven transitions (so the state gauge moves to half-open without
    /// traffic) and refreshing the gauge from the shared state.
    pub fn tick(&self, host: &mut dyn Host, breaker: &Breaker) {
        let clock = Clock::new();
        let result = Cas::new(&self.key)
            .snapshot(&self.snapshot)
            .update(host, |host, bytes| {
                let Some(bytes) = bytes else {
                    return (Write::Keep, None);
                };
                let Ok(mut header) = codec::decode_header(bytes) else {
                    return (Write::Keep, None);
                };
                let effect = header.advance(breaker, clock.on(host));
                match (effect.changed, codec::patch_header(bytes, &header)) {
                    (true, Ok(patched)) => (Write::Put(patched), Some((header, effect))),
                    _ => (Write::Keep, Some((header, Effect::default()))),
                }
            });
        match result {
            Ok(Some((header, effect))) => {
                self.announce(host, breaker, effect);
                self.show(host, header.phase);
            }
            Ok(None) => {}
            Err(err) => self.dropped(host, breaker, "a timer step", err),
        }
    }

    /// Takes a bulkhead slot if fewer than `max` calls are in flight: `Some(true)` taken,
    /// `Some(false)` full, `None` when the counter could not be updated (the caller then lets
    /// the call through without a slot: failing open, like admission).
    pub fn acquire_slot(&self, host: &mut dyn Host, breaker: &Breaker, max: u32) -> Option<bool> {
        let result = Cas::new(&self.inflight_key).update(host, |_, bytes| {
            let inflight = bytes.map_or(0, codec::decode_count);
            if inflight >= max {
                (Write::Keep, false)
            } else {
                (Write::Put(codec::encode_count(inflight + 1).to_vec()), true)
            }
        });
        match result {
            Ok(taken) => Some(taken),
            Err(err) => {
                self.dropped(host, breaker, "a bulkhead slot", err);
                None
            }
        }
    }

    /// Returns a bulkhead slot.
    pub fn release_slot(&self, host: &mut dyn Host, breaker: &Breaker) {
        let result = Cas::new(&self.inflight_key).update(host, |_, bytes| {
            let inflight = bytes.map_or(0, codec::decode_count);
            (
                Write::Put(codec::encode_count(inflight.saturating_sub(1)).to_vec()),
                (),
            )
        });
        if let Err(err) = result {
            self.dropped(host, breaker, "a bulkhead release", err);
        }
    }
}

fn fresh_admission(breaker: &Breaker, now_ms: u64) -> (Write, (Admission, Effect)) {
    let mut state = State::new(breaker, now_ms);
    let (admission, effect) = state.header.admit(breaker, now_ms);
    (Write::Put(codec::encode(&state)), (admission, effect))
}

/// The stored header of a breaker, for tests and diagnostics.
pub fn stored_header(host: &dyn Host, key: &str) -> Option<Header> {
    host.shared_get(key)
        .and_then(|(bytes, _)| codec::decode_header(&bytes).ok())
}
