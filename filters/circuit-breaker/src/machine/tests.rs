//! The state machine with a fake clock: every transition, both window kinds, minimum calls,
//! slow calls, half-open permits and stale outcomes.

use super::*;
use crate::config::parse_config;

const T0: u64 = 1_700_000_000_000;
const OK: Outcome = Outcome {
    failed: false,
    slow: false,
};
const FAIL: Outcome = Outcome {
    failed: true,
    slow: false,
};
const SLOW: Outcome = Outcome {
    failed: false,
    slow: true,
};

fn breaker(extra: &str) -> Breaker {
    let json = format!(r#"{{"breakers":[{{"name":"b"{extra}}}]}}"#);
    parse_config(json.as_bytes()).unwrap().breakers.remove(0)
}

/// A breaker plus its state and a clock, driven one call at a time.
struct Sim {
    config: Breaker,
    state: State,
    now: u64,
    transitions: Vec<Transition>,
}

impl Sim {
    fn new(extra: &str) -> Self {
        let config = breaker(extra);
        Self {
            state: State::new(&config, T0),
            config,
            now: T0,
            transitions: Vec::new(),
        }
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now += ms;
    }

    fn phase(&self) -> Phase {
        self.state.header.phase
    }

    fn admit(&mut self) -> Admission {
        let (admission, effect) = self.state.header.admit(&self.config, self.now);
        self.transitions.extend(effect.transition);
        admission
    }

    fn ticket(&mut self) -> Ticket {
        match self.admit() {
            Admission::Admit(ticket) => ticket,
            Admission::Reject(rejection) => panic!("rejected: {rejection:?}"),
        }
    }

    fn finish(&mut self, ticket: Ticket, outcome: Outcome) -> Effect {
        let effect = self.state.record(&self.config, self.now, ticket, outcome);
        self.transitions.extend(effect.transition);
        effect
    }

    /// Admits one call and records its outcome.
    fn call(&mut self, outcome: Outcome) {
        let ticket = self.ticket();
        self.finish(ticket, outcome);
    }

    fn calls(&mut self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            self.call(*outcome);
        }
    }

    fn reasons(&self) -> Vec<(Phase, Phase)> {
        self.transitions.iter().map(|t| (t.from, t.to)).collect()
    }
}

const COUNT4: &str = r#","window":{"size":4},"minimumCalls":4,"failureRateThreshold":50,"openFor":"10s","halfOpen":{"permittedCalls":2,"successToClose":2}"#;

#[test]
fn closed_admits_without_writing() {
    let mut sim = Sim::new(COUNT4);
    let (admission, effect) = sim.state.header.admit(&sim.config, sim.now);
    assert!(matches!(
        admission,
        Admission::Admit(Ticket { probe: false, .. })
    ));
    assert_eq!(effect, Effect::default());
}

#[test]
fn closed_to_open_when_the_failure_rate_reaches_the_threshold() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[OK, FAIL, OK]);
    assert_eq!(sim.phase(), Phase::Closed);
    // 2 of 4 = 50 %: at the threshold, which opens (Resilience4j: rate >= threshold).
    sim.call(FAIL);
    assert_eq!(sim.phase(), Phase::Open);
    assert_eq!(sim.reasons(), vec![(Phase::Closed, Phase::Open)]);
    assert!(matches!(
        sim.transitions[0].reason,
        Reason::FailureRate(Aggregate {
            calls: 4,
            failures: 2,
            ..
        })
    ));
    assert_eq!(sim.state.header.generation, 1);
}

#[test]
fn below_the_threshold_stays_closed_as_the_window_slides() {
    let mut sim = Sim::new(COUNT4);
    // Alternating 1 failure in 4 (25 %), many times round the window.
    for _ in 0..10 {
        sim.calls(&[FAIL, OK, OK, OK]);
    }
    assert_eq!(sim.phase(), Phase::Closed);
    assert!(sim.transitions.is_empty());
}

#[test]
fn minimum_calls_hold_the_breaker_closed() {
    let mut sim = Sim::new(r#","window":{"size":10},"minimumCalls":5,"openFor":"10s""#);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    // 100 % failures, but only 4 calls of the 5 required.
    assert_eq!(sim.phase(), Phase::Closed);
    sim.call(FAIL);
    assert_eq!(sim.phase(), Phase::Open);
}

#[test]
fn open_rejects_with_retry_after_until_open_for_elapses() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    assert_eq!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::Open,
            retry_after_s: 10
        })
    );
    sim.advance_ms(8_500);
    assert_eq!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::Open,
            retry_after_s: 2
        })
    );
    sim.advance_ms(1_499);
    assert_eq!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::Open,
            retry_after_s: 1
        })
    );
    assert_eq!(sim.phase(), Phase::Open);
}

#[test]
fn open_to_half_open_after_open_for_and_the_first_caller_is_a_probe() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(10_000);
    let ticket = sim.ticket();
    assert!(ticket.probe);
    assert_eq!(sim.phase(), Phase::HalfOpen);
    assert_eq!(sim.state.header.probes_issued, 1);
    assert_eq!(
        sim.reasons(),
        vec![(Phase::Closed, Phase::Open), (Phase::Open, Phase::HalfOpen)]
    );
    assert_eq!(sim.transitions[1].reason, Reason::OpenElapsed);
}

#[test]
fn half_open_admits_only_the_permitted_probes() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(10_000);
    let first = sim.ticket();
    let second = sim.ticket();
    assert!(first.probe && second.probe);
    for _ in 0..5 {
        assert_eq!(
            sim.admit(),
            Admission::Reject(Rejection {
                phase: Phase::HalfOpen,
                retry_after_s: 1
            })
        );
    }
    assert_eq!(sim.state.header.probes_issued, 2);
}

#[test]
fn half_open_to_closed_after_success_to_close_probes_with_an_empty_window() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(10_000);
    let (a, b) = (sim.ticket(), sim.ticket());
    sim.finish(a, OK);
    assert_eq!(sim.phase(), Phase::HalfOpen);
    assert_eq!(sim.state.header.probe_successes, 1);
    sim.finish(b, OK);
    assert_eq!(sim.phase(), Phase::Closed);
    assert_eq!(
        sim.transitions.last().unwrap().reason,
        Reason::ProbesSucceeded(2)
    );
    assert_eq!(
        sim.state.window.aggregate(sim.now / 1000),
        Aggregate::default()
    );
    // Closed again: the old failures are forgotten, three new ones don't open it yet.
    sim.calls(&[FAIL, FAIL, FAIL]);
    assert_eq!(sim.phase(), Phase::Closed);
}

#[test]
fn half_open_to_open_on_a_failed_probe_restarts_the_wait() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(10_000);
    let (a, b) = (sim.ticket(), sim.ticket());
    sim.finish(a, OK);
    sim.advance_ms(300);
    sim.finish(b, FAIL);
    assert_eq!(sim.phase(), Phase::Open);
    assert_eq!(sim.transitions.last().unwrap().reason, Reason::ProbeFailed);
    assert_eq!(sim.state.header.since_ms, sim.now);
    sim.advance_ms(9_999);
    assert!(matches!(sim.admit(), Admission::Reject(_)));
    sim.advance_ms(1);
    assert!(sim.ticket().probe);
}

#[test]
fn a_slow_probe_reopens_only_when_slow_calls_are_configured() {
    let mut sim = Sim::new(
        r#","window":{"size":2},"minimumCalls":2,"openFor":"1s","slowCall":{"duration":"1s","rateThreshold":100},"halfOpen":{"permittedCalls":1}"#,
    );
    sim.calls(&[SLOW, SLOW]);
    assert_eq!(sim.phase(), Phase::Open);
    assert!(matches!(sim.transitions[0].reason, Reason::SlowCallRate(_)));
    sim.advance_ms(1_000);
    sim.call(SLOW);
    assert_eq!(sim.phase(), Phase::Open);
    assert_eq!(sim.transitions.last().unwrap().reason, Reason::ProbeSlow);
    sim.advance_ms(1_000);
    sim.call(OK);
    assert_eq!(sim.phase(), Phase::Closed);
}

#[test]
fn slow_call_rate_opens_independently_of_failures() {
    let mut sim = Sim::new(
        r#","window":{"size":10},"minimumCalls":4,"failureRateThreshold":100,"slowCall":{"duration":"200ms","rateThreshold":75}"#,
    );
    sim.calls(&[SLOW, OK, SLOW]);
    assert_eq!(sim.phase(), Phase::Closed);
    // 2 of 4 slow = 50 % < 75 %.
    sim.call(OK);
    assert_eq!(sim.phase(), Phase::Closed);
    // 3 of 5, 4 of 6 and 5 of 7 stay below 75 %; 6 of 8 reaches it.
    sim.calls(&[SLOW, SLOW, SLOW]);
    assert_eq!(sim.phase(), Phase::Closed);
    sim.call(SLOW);
    assert_eq!(sim.phase(), Phase::Open);
    assert!(matches!(
        sim.transitions[0].reason,
        Reason::SlowCallRate(Aggregate {
            calls: 8,
            slow: 6,
            failures: 0
        })
    ));
}

#[test]
fn slow_outcomes_do_not_open_a_breaker_without_slow_call_config() {
    let mut sim = Sim::new(r#","window":{"size":4},"minimumCalls":4"#);
    sim.calls(&[SLOW, SLOW, SLOW, SLOW, SLOW]);
    assert_eq!(sim.phase(), Phase::Closed);
}

#[test]
fn time_window_forgets_failures_older_than_its_size() {
    let mut sim = Sim::new(
        r#","window":{"type":"time","size":10},"minimumCalls":4,"failureRateThreshold":50,"openFor":"5s""#,
    );
    sim.calls(&[FAIL, FAIL, FAIL]);
    // Ten seconds later those failures have left the window.
    sim.advance_ms(10_000);
    sim.calls(&[FAIL, OK, OK]);
    assert_eq!(sim.phase(), Phase::Closed);
    // Within the window: 2 failures of 4 opens.
    sim.advance_ms(3_000);
    sim.call(FAIL);
    assert_eq!(sim.phase(), Phase::Open);
    assert!(matches!(
        sim.transitions[0].reason,
        Reason::FailureRate(Aggregate {
            calls: 4,
            failures: 2,
            ..
        })
    ));
}

#[test]
fn time_window_aggregates_across_its_buckets() {
    let mut sim = Sim::new(
        r#","window":{"type":"time","size":5},"minimumCalls":5,"failureRateThreshold":60"#,
    );
    for _ in 0..4 {
        sim.call(FAIL);
        sim.advance_ms(1_000);
    }
    assert_eq!(sim.phase(), Phase::Closed);
    sim.call(OK);
    // 4 of 5 within the last five seconds = 80 %.
    assert_eq!(sim.phase(), Phase::Open);
}

#[test]
fn outcomes_of_an_earlier_generation_are_not_applied() {
    let mut sim = Sim::new(COUNT4);
    let late = sim.ticket();
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    assert_eq!(sim.phase(), Phase::Open);
    sim.advance_ms(10_000);
    let probe = sim.ticket();
    // The call admitted while closed fails now: it must not re-open the half-open breaker.
    let effect = sim.finish(late, FAIL);
    assert_eq!(effect, Effect::default());
    assert_eq!(sim.phase(), Phase::HalfOpen);
    // And a probe of a previous half-open does not count in the next one.
    sim.finish(probe, FAIL);
    sim.advance_ms(10_000);
    let _fresh = sim.ticket();
    let effect = sim.finish(probe, OK);
    assert_eq!(effect, Effect::default());
    assert_eq!(sim.state.header.probe_successes, 0);
}

#[test]
fn an_ignored_probe_returns_its_permit() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(10_000);
    let a = sim.ticket();
    let _b = sim.ticket();
    assert!(matches!(sim.admit(), Admission::Reject(_)));
    assert!(sim.state.header.release(a).changed);
    assert!(sim.ticket().probe);
    // Releasing a closed ticket or a stale probe changes nothing.
    let closed = Ticket {
        generation: sim.state.header.generation,
        probe: false,
    };
    assert!(!sim.state.header.release(closed).changed);
    let stale = Ticket {
        generation: sim.state.header.generation.wrapping_sub(1),
        probe: true,
    };
    assert!(!sim.state.header.release(stale).changed);
}

#[test]
fn half_open_reopens_when_max_wait_passes_without_a_decision() {
    let mut sim = Sim::new(
        r#","window":{"size":2},"minimumCalls":2,"openFor":"1s","halfOpen":{"permittedCalls":1,"maxWait":"5s"}"#,
    );
    sim.calls(&[FAIL, FAIL]);
    sim.advance_ms(1_000);
    let stuck = sim.ticket();
    sim.advance_ms(4_999);
    assert!(matches!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::HalfOpen,
            ..
        })
    ));
    sim.advance_ms(1);
    assert!(matches!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::Open,
            ..
        })
    ));
    assert_eq!(
        sim.transitions.last().unwrap().reason,
        Reason::HalfOpenTimedOut
    );
    // The stuck probe finally succeeds: too late, it belongs to the previous generation.
    assert_eq!(sim.finish(stuck, OK), Effect::default());
    assert_eq!(sim.phase(), Phase::Open);
}

#[test]
fn advance_alone_moves_open_to_half_open_without_issuing_permits() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.advance_ms(9_999);
    assert_eq!(
        sim.state.header.advance(&sim.config, sim.now),
        Effect::default()
    );
    sim.advance_ms(1);
    let effect = sim.state.header.advance(&sim.config, sim.now);
    assert!(effect.changed);
    assert_eq!(sim.phase(), Phase::HalfOpen);
    assert_eq!(sim.state.header.probes_issued, 0);
    // Idempotent.
    assert_eq!(
        sim.state.header.advance(&sim.config, sim.now),
        Effect::default()
    );
}

#[test]
fn full_cycle_closed_open_half_open_open_half_open_closed() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, OK, FAIL]);
    sim.advance_ms(10_000);
    sim.call(FAIL);
    sim.advance_ms(10_000);
    sim.calls(&[OK, OK]);
    assert_eq!(
        sim.reasons(),
        vec![
            (Phase::Closed, Phase::Open),
            (Phase::Open, Phase::HalfOpen),
            (Phase::HalfOpen, Phase::Open),
            (Phase::Open, Phase::HalfOpen),
            (Phase::HalfOpen, Phase::Closed),
        ]
    );
    assert_eq!(sim.state.header.generation, 5);
    let shown: Vec<String> = sim.transitions.iter().map(ToString::to_string).collect();
    assert_eq!(shown[0], "closed -> open (failure rate 75.0% over 4 calls)");
    assert_eq!(shown[4], "half-open -> closed (2 probes succeeded)");
}

#[test]
fn a_clock_that_steps_back_does_not_panic_or_reopen_early() {
    let mut sim = Sim::new(COUNT4);
    sim.calls(&[FAIL, FAIL, FAIL, FAIL]);
    sim.now -= 60_000;
    assert!(matches!(
        sim.admit(),
        Admission::Reject(Rejection {
            phase: Phase::Open,
            retry_after_s: 70
        })
    ));
}

#[test]
fn phase_names_and_gauge_values() {
    assert_eq!(
        [Phase::Closed, Phase::Open, Phase::HalfOpen].map(Phase::gauge),
        [0, 1, 2]
    );
    assert_eq!(Phase::HalfOpen.name(), "half-open");
}

#[test]
fn fits_checks_the_window_shape() {
    let count = breaker(r#","window":{"size":5}"#);
    let time = breaker(r#","window":{"type":"time","size":5}"#);
    let state = State::new(&count, T0);
    assert!(state.fits(&count));
    assert!(!state.fits(&time));
    assert!(!state.fits(&breaker(r#","window":{"size":6}"#)));
}
