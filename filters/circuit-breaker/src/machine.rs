//! The breaker's state machine: closed -> open -> half-open -> closed (or open again), as a pure
//! function of the configuration, the stored state, the time and the outcome.
//!
//! Nothing here touches the host. The shell reads the shared state, calls one of these steps,
//! and writes the result back with compare-and-swap; an [`Effect`] says whether there is
//! anything to write and which transition (if any) the step made, so the worker whose write wins
//! is the only one that logs and counts it.
//!
//! Semantics (Resilience4j's, with `successToClose` from Sentinel/Polly):
//! - **Closed**: every call is admitted; outcomes go into the sliding window. Once the window
//!   holds `minimumCalls`, a failure rate at or above `failureRateThreshold` or a slow-call rate
//!   at or above `slowCall.rateThreshold` opens the breaker.
//! - **Open**: every call is rejected until `openFor` has passed, then the breaker is half-open.
//! - **Half-open**: at most `permittedCalls` probes are admitted (across all workers, because the
//!   count lives in shared data). The first failed or slow probe opens the breaker again;
//!   `successToClose` successful probes close it with an empty window. A probe that ends without
//!   an outcome (the client went away) returns its permit. With `maxWait`, a half-open state
//!   that has not decided by then opens again.
//! - Every transition bumps a generation; outcomes of calls admitted under an older generation
//!   are not applied (a call admitted while closed that fails after the breaker opened must not
//!   count as a probe).
//!
//! Steps take the time as a [`Now`] and ask for it only when their result depends on it: a
//! closed breaker admits, and records into a count window, without it. The shell can then leave
//! the clock unread on its hot path (in Envoy every clock read is a hostcall).

use crate::config::Breaker;
use crate::config::WindowConfig;
use crate::window::{Aggregate, CountWindow, TimeWindow, Window};

/// The time of a step, in milliseconds since the epoch, asked for only when the step's result
/// depends on it. A plain `u64` is a time already known; the shell passes a clock that is read
/// on first use.
pub trait Now {
    /// Milliseconds since the epoch.
    fn ms(&self) -> u64;
}

impl Now for u64 {
    fn ms(&self) -> u64 {
        *self
    }
}

impl<T: Now + ?Sized> Now for &T {
    fn ms(&self) -> u64 {
        (**self).ms()
    }
}

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Calls flow; outcomes are recorded.
    Closed,
    /// Calls are answered locally.
    Open,
    /// A few probes test the service.
    HalfOpen,
}

impl Phase {
    /// The gauge value (Resilience4j's numbering: 0 closed, 1 open, 2 half-open).
    pub fn gauge(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    /// Lowercase name for logs and headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// The small part of the state every request reads: the phase and the half-open accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Current phase.
    pub phase: Phase,
    /// Bumped on every transition.
    pub generation: u32,
    /// When the current phase began (ms since the epoch).
    pub since_ms: u64,
    /// Half-open: permits handed out and not returned.
    pub probes_issued: u32,
    /// Half-open: probes that succeeded.
    pub probe_successes: u32,
}

/// The whole stored state of one breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Phase and half-open accounting.
    pub header: Header,
    /// Outcomes of the closed phase.
    pub window: Window,
}

/// Proof that a call was admitted, kept by the stream until its outcome is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Generation the call was admitted under.
    pub generation: u32,
    /// Whether it is a half-open probe.
    pub probe: bool,
}

/// What admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Let the call through.
    Admit(Ticket),
    /// Answer locally.
    Reject(Rejection),
}

/// Why and for how long calls are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Open, or half-open with every permit taken.
    pub phase: Phase,
    /// Seconds until it is worth trying again (`Retry-After`).
    pub retry_after_s: u64,
}

/// How one call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// It failed (`failureWhen`).
    pub failed: bool,
    /// It was slow (`slowCall.duration`).
    pub slow: bool,
}

/// Why a transition happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Closed -> open: the failure rate reached the threshold.
    FailureRate(Aggregate),
    /// Closed -> open: the slow-call rate reached the threshold.
    SlowCallRate(Aggregate),
    /// Open -> half-open: `openFor` passed.
    OpenElapsed,
    /// Half-open -> open: a probe failed.
    ProbeFailed,
    /// Half-open -> open: a probe was slow.
    ProbeSlow,
    /// Half-open -> closed: enough probes succeeded.
    ProbesSucceeded(u32),
    /// Half-open -> open: `maxWait` passed without a decision.
    HalfOpenTimedOut,
}

/// A change of phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// Phase before.
    pub from: Phase,
    /// Phase after.
    pub to: Phase,
    /// Why.
    pub reason: Reason,
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} (", self.from.name(), self.to.name())?;
        match self.reason {
            Reason::FailureRate(total) => write!(
                f,
                "failure rate {:.1}% over {} calls",
                total.failure_rate(),
                total.calls
            )?,
            Reason::SlowCallRate(total) => write!(
                f,
                "slow-call rate {:.1}% over {} calls",
                total.slow_rate(),
                total.calls
            )?,
            Reason::OpenElapsed => write!(f, "open period elapsed; probing")?,
            Reason::ProbeFailed => write!(f, "a probe failed")?,
            Reason::ProbeSlow => write!(f, "a probe was slow")?,
            Reason::ProbesSucceeded(n) => write!(f, "{n} probes succeeded")?,
            Reason::HalfOpenTimedOut => write!(f, "probes did not decide within maxWait")?,
        }
        write!(f, ")")
    }
}

/// What a step did to the state.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Effect {
    /// The state changed and must be written back.
    pub changed: bool,
    /// The transition made, if any.
    pub transition: Option<Transition>,
}

impl Effect {
    fn merge(self, other: Effect) -> Effect {
        Effect {
            changed: self.changed || other.changed,
            transition: other.transition.or(self.transition),
        }
    }
}

// === impl Header ===

impl Header {
    /// A closed breaker that began at `now_ms`.
    pub fn closed(now_ms: u64) -> Self {
        Self {
            phase: Phase::Closed,
            generation: 0,
            since_ms: now_ms,
            probes_issued: 0,
            probe_successes: 0,
        }
    }

    fn enter(&mut self, to: Phase, now_ms: u64, reason: Reason) -> Effect {
        let from = self.phase;
        self.phase = to;
        self.generation = self.generation.wrapping_add(1);
        self.since_ms = now_ms;
        self.probes_issued = 0;
        self.probe_successes = 0;
        Effect {
            changed: true,
            transition: Some(Transition { from, to, reason }),
        }
    }

    /// When the open phase ends (ms since the epoch).
    pub fn open_until_ms(&self, config: &Breaker) -> u64 {
        self.since_ms
            .saturating_add(config.open_for.as_millis() as u64)
    }

    /// Applies the transitions that only depend on time: open -> half-open after `openFor`,
    /// half-open -> open after `maxWait`. A closed breaker (or a half-open one without
    /// `maxWait`) does not ask for the time.
    pub fn advance(&mut self, config: &Breaker, now: impl Now) -> Effect {
        match (self.phase, config.half_open.max_wait) {
            (Phase::Open, _) => {
                let now_ms = now.ms();
                if now_ms >= self.open_until_ms(config) {
                    return self.enter(Phase::HalfOpen, now_ms, Reason::OpenElapsed);
                }
                Effect::default()
            }
            (Phase::HalfOpen, Some(wait)) => {
                let now_ms = now.ms();
                if now_ms >= self.since_ms.saturating_add(wait.as_millis() as u64) {
                    return self.enter(Phase::Open, now_ms, Reason::HalfOpenTimedOut);
                }
                Effect::default()
            }
            _ => Effect::default(),
        }
    }

    /// Decides whether a call may go to the upstream now. Closed admits without changing
    /// anything (the hot path writes nothing) and without asking for the time; half-open hands
    /// out one of the permits.
    pub fn admit(&mut self, config: &Breaker, now: impl Now) -> (Admission, Effect) {
        let advanced = self.advance(config, &now);
        let (admission, effect) = match self.phase {
            Phase::Closed => (
                Admission::Admit(Ticket {
                    generation: self.generation,
                    probe: false,
                }),
                Effect::default(),
            ),
            Phase::Open => {
                let remaining_ms = self.open_until_ms(config).saturating_sub(now.ms());
                (
                    Admission::Reject(Rejection {
                        phase: Phase::Open,
                        retry_after_s: remaining_ms.div_ceil(1000).max(1),
                    }),
                    Effect::default(),
                )
            }
            Phase::HalfOpen if self.probes_issued < config.half_open.permitted_calls => {
                self.probes_issued += 1;
                (
                    Admission::Admit(Ticket {
                        generation: self.generation,
                        probe: true,
                    }),
                    Effect {
                        changed: true,
                        transition: None,
                    },
                )
            }
            Phase::HalfOpen => (
                Admission::Reject(Rejection {
                    phase: Phase::HalfOpen,
                    retry_after_s: 1,
                }),
                Effect::default(),
            ),
        };
        (admission, advanced.merge(effect))
    }

    /// Returns the permit of a probe that ended without an outcome.
    pub fn release(&mut self, ticket: Ticket) -> Effect {
        if ticket.probe
            && ticket.generation == self.generation
            && self.phase == Phase::HalfOpen
            && self.probes_issued > 0
        {
            self.probes_issued -= 1;
            Effect {
                changed: true,
                transition: None,
            }
        } else {
            Effect::default()
        }
    }
}

// === impl State ===

impl State {
    /// A closed breaker with an empty window shaped by `config`.
    pub fn new(config: &Breaker, now_ms: u64) -> Self {
        Self {
            header: Header::closed(now_ms),
            window: empty_window(config.window),
        }
    }

    /// Whether the stored window has the shape `config` asks for (a reconfigured window size
    /// makes the old state unusable).
    pub fn fits(&self, config: &Breaker) -> bool {
        match (&self.window, config.window) {
            (Window::Count(window), WindowConfig::Count { size }) => window.size == size,
            (Window::Time(window), WindowConfig::Time { seconds }) => window.seconds() == seconds,
            _ => false,
        }
    }

    /// Applies the outcome of a call admitted with `ticket`. Asks for the time only for a time
    /// window, a phase that can time out, or a transition.
    pub fn record(
        &mut self,
        config: &Breaker,
        now: impl Now,
        ticket: Ticket,
        outcome: Outcome,
    ) -> Effect {
        let advanced = self.header.advance(config, &now);
        if ticket.generation != self.header.generation {
            // Admitted under an earlier phase: it says nothing about the current one.
            return advanced;
        }
        let effect = match (self.header.phase, ticket.probe) {
            (Phase::Closed, false) => self.record_closed(config, &now, outcome),
            (Phase::HalfOpen, true) => self.record_probe(config, &now, outcome),
            _ => Effect::default(),
        };
        advanced.merge(effect)
    }

    fn record_closed(&mut self, config: &Breaker, now: &dyn Now, outcome: Outcome) -> Effect {
        self.window.record(now, outcome.failed, outcome.slow);
        let total = self.window.aggregate(now);
        let recorded = Effect {
            changed: true,
            transition: None,
        };
        if total.calls < config.minimum_calls {
            return recorded;
        }
        if total.failure_rate() >= config.failure_rate_threshold {
            return self
                .header
                .enter(Phase::Open, now.ms(), Reason::FailureRate(total));
        }
        if let Some(slow) = config.slow_call
            && total.slow_rate() >= slow.rate_threshold
        {
            return self
                .header
                .enter(Phase::Open, now.ms(), Reason::SlowCallRate(total));
        }
        recorded
    }

    fn record_probe(&mut self, config: &Breaker, now: &dyn Now, outcome: Outcome) -> Effect {
        if outcome.failed {
            return self
                .header
                .enter(Phase::Open, now.ms(), Reason::ProbeFailed);
        }
        if outcome.slow && config.slow_call.is_some() {
            return self.header.enter(Phase::Open, now.ms(), Reason::ProbeSlow);
        }
        self.header.probe_successes += 1;
        if self.header.probe_successes >= config.half_open.success_to_close {
            let successes = self.header.probe_successes;
            self.window.clear();
            return self
                .header
                .enter(Phase::Closed, now.ms(), Reason::ProbesSucceeded(successes));
        }
        Effect {
            changed: true,
            transition: None,
        }
    }
}

/// An empty window of the configured shape.
pub fn empty_window(config: WindowConfig) -> Window {
    match config {
        WindowConfig::Count { size } => Window::Count(CountWindow::new(size)),
        WindowConfig::Time { seconds } => Window::Time(TimeWindow::new(seconds)),
    }
}

#[cfg(test)]
mod tests;
