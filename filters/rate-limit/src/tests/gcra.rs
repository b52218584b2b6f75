//! governor's GCRA over shared data against a fake clock: steady rate, burst, refill, and the
//! same decisions as governor's own in-memory limiter.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};

use super::{Worker, per_user};

const ALICE: &[(&str, &str)] = &[("x-user", "alice")];

#[test]
fn a_fresh_key_gets_requests_plus_burst_then_waits() {
    // 10 per minute plus 5: 15 at once, then one cell every 6 s.
    let mut worker = Worker::new(&per_user(10, "minute", 5));
    assert_eq!(worker.admitted(40, "/api/orders", ALICE), 15);
    let denied = worker.get("/api/orders", ALICE);
    assert_eq!(denied.response().status, 429);
    assert_eq!(denied.header("retry-after"), Some("6"));
    assert_eq!(worker.metric("user", "allowed"), 15);
    assert_eq!(worker.metric("user", "limited"), 26);
}

#[test]
fn steady_rate_admits_one_cell_per_emission_interval() {
    let mut worker = Worker::new(&per_user(60, "minute", 0));
    assert_eq!(worker.admitted(100, "/", ALICE), 60);
    // Each second brings back exactly one cell, no more.
    for _ in 0..30 {
        worker.advance(Duration::from_secs(1));
        assert_eq!(worker.admitted(3, "/", ALICE), 1);
    }
    // Just short of the interval: nothing.
    worker.advance(Duration::from_millis(999));
    assert_eq!(worker.admitted(1, "/", ALICE), 0);
    worker.advance(Duration::from_millis(1));
    assert_eq!(worker.admitted(1, "/", ALICE), 1);
}

#[test]
fn refill_restores_the_whole_burst_and_no_more() {
    let mut worker = Worker::new(&per_user(10, "minute", 5));
    assert_eq!(worker.admitted(15, "/", ALICE), 15);
    worker.advance(Duration::from_secs(6));
    assert_eq!(worker.admitted(5, "/", ALICE), 1);
    // 90 s refill the 15-cell budget completely; an hour more adds nothing.
    worker.advance(Duration::from_secs(3600));
    assert_eq!(worker.admitted(40, "/", ALICE), 15);
}

#[test]
fn per_second_and_per_hour_rates() {
    let mut fast = Worker::new(&per_user(5, "second", 0));
    assert_eq!(fast.admitted(10, "/", ALICE), 5);
    fast.advance(Duration::from_millis(200));
    assert_eq!(fast.admitted(10, "/", ALICE), 1);

    let mut slow = Worker::new(&per_user(2, "hour", 1));
    assert_eq!(slow.admitted(10, "/", ALICE), 3);
    slow.advance(Duration::from_secs(1799));
    assert_eq!(slow.admitted(1, "/", ALICE), 0);
    slow.advance(Duration::from_secs(1));
    assert_eq!(slow.admitted(5, "/", ALICE), 1);
    let denied = slow.get("/", ALICE);
    assert_eq!(denied.header("retry-after"), Some("1800"));
}

#[test]
fn decisions_equal_governors_in_memory_limiter() {
    // The same schedule through governor's own direct limiter and through shared data.
    let quota =
        Quota::per_second(NonZeroU32::new(7).unwrap()).allow_burst(NonZeroU32::new(10).unwrap());
    let clock = FakeRelativeClock::default();
    let reference = RateLimiter::direct_with_clock(quota, clock.clone());
    let mut worker = Worker::new(&per_user(7, "second", 3));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut agreed = 0;
    for step in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let gap = Duration::from_micros(state % 300_000);
        clock.advance(gap);
        worker.advance(gap);
        let expected = reference.check().is_ok();
        let actual = worker.get("/", ALICE).admitted();
        assert_eq!(actual, expected, "step {step}");
        agreed += usize::from(expected);
    }
    assert!(
        agreed > 500 && agreed < 3000,
        "the schedule exercises both outcomes: {agreed}"
    );
}

#[test]
fn denied_requests_do_not_consume() {
    let mut worker = Worker::new(&per_user(1, "minute", 0));
    assert!(worker.get("/", ALICE).admitted());
    // Hammering while limited must not push the next cell further away.
    for _ in 0..100 {
        assert!(!worker.get("/", ALICE).admitted());
    }
    worker.advance(Duration::from_secs(60));
    assert!(worker.get("/", ALICE).admitted());
}
