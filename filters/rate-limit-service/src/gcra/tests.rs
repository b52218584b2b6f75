use std::time::Duration;

use meshguard_rls::Unit;

use super::*;

const NOW: u64 = 1_765_000_000_000_000; // µs, December 2025

fn rate(requests_per_unit: u32, unit: Unit) -> Rate {
    Rate {
        requests_per_unit,
        unit,
    }
}

/// Runs `count` one-hit requests at `now`, returning how many were admitted and the final TAT.
fn burst(mut tat: Option<Tat>, now: u64, count: u32, rate: Rate) -> (u32, Option<Tat>) {
    let mut admitted = 0;
    for _ in 0..count {
        let (ok, next) = decide(tat, now, cost(1, rate), rate);
        admitted += u32::from(ok);
        tat = Some(next);
    }
    (admitted, tat)
}

#[test]
fn a_fresh_key_admits_exactly_one_unit_at_once() {
    for (per_unit, unit) in [
        (1, Unit::Second),
        (7, Unit::Minute),
        (3, Unit::Hour),
        (100, Unit::Minute),
        (999_983, Unit::Second),
        (5, Unit::Year),
        (u32::MAX, Unit::Day),
    ] {
        let rate = rate(per_unit, unit);
        let count = per_unit.saturating_add(5).min(1_000_100);
        let (admitted, _) = burst(None, NOW, count, rate);
        assert_eq!(admitted, per_unit.min(count), "{per_unit}/{unit:?}");
    }
}

#[test]
fn budget_returns_one_request_every_emission_interval() {
    // 7 per minute: T = 60/7 s = 8_571_428 + 4/7 µs, which never rounds here.
    let rate = rate(7, Unit::Minute);
    let (admitted, tat) = burst(None, NOW, 7, rate);
    assert_eq!(admitted, 7);
    let tat = tat.unwrap();
    assert_eq!(
        tat,
        Tat {
            floor: NOW + 60_000_000,
            frac: 0
        }
    );
    // One microsecond short of T: still refused; at T exactly: admitted.
    let t = 60_000_000 / 7; // 8_571_428, plus 4/7 µs
    let (ok, _) = decide(Some(tat), NOW + t, cost(1, rate), rate);
    assert!(!ok);
    let (ok, after) = decide(Some(tat), NOW + t + 1, cost(1, rate), rate);
    assert!(ok);
    assert_eq!(after.floor, NOW + 60_000_000 + t);
    // Seven intervals later, exactly seven more in total, none extra.
    let mut state = Some(tat);
    let mut admitted = 0;
    for step in 1..=7 * 20 {
        let now = NOW + (60_000_000 * step) / (7 * 20);
        let (ok, next) = decide(state, now, cost(1, rate), rate);
        admitted += u32::from(ok);
        state = Some(next);
    }
    assert_eq!(admitted, 7);
}

#[test]
fn remaining_and_until_full_follow_the_tat() {
    let rate = rate(10, Unit::Minute);
    assert_eq!(
        remaining(
            NOW,
            Tat {
                floor: NOW,
                frac: 0
            },
            rate
        ),
        10
    );
    let (_, tat) = burst(None, NOW, 4, rate);
    let tat = tat.unwrap();
    assert_eq!(remaining(NOW, tat, rate), 6);
    assert_eq!(until_full(NOW, tat, rate), Duration::from_secs(24));
    // Half an interval later nothing more is back; a whole one later, one more.
    assert_eq!(remaining(NOW + 3_000_000, tat, rate), 6);
    assert_eq!(remaining(NOW + 6_000_000, tat, rate), 7);
    assert_eq!(remaining(NOW + 60_000_000, tat, rate), 10);
    assert_eq!(until_full(NOW + 60_000_000, tat, rate), Duration::ZERO);
}

#[test]
fn wait_is_the_time_until_the_request_fits() {
    let rate = rate(2, Unit::Minute);
    let (_, tat) = burst(None, NOW, 2, rate);
    let tat = tat.unwrap();
    assert_eq!(remaining(NOW, tat, rate), 0);
    assert_eq!(wait(NOW, tat, cost(1, rate), rate), Duration::from_secs(30));
    assert_eq!(wait(NOW, tat, cost(2, rate), rate), Duration::from_secs(60));
    assert_eq!(
        wait(NOW + 10_000_000, tat, cost(1, rate), rate),
        Duration::from_secs(20)
    );
    // After exactly that wait it is admitted.
    let (ok, _) = decide(Some(tat), NOW + 30_000_000, cost(1, rate), rate);
    assert!(ok);
    // Fractions of a microsecond round up, never down (7 per second: 142_857 + 1/7 µs).
    let rate = rate_of(7);
    let (_, tat) = burst(None, NOW, 7, rate);
    let d = wait(NOW, tat.unwrap(), cost(1, rate), rate);
    assert_eq!(d, Duration::from_nanos(142_857_143));
}

fn rate_of(per_second: u32) -> Rate {
    rate(per_second, Unit::Second)
}

#[test]
fn more_hits_than_the_burst_are_never_admitted_and_cost_nothing() {
    let rate = rate(5, Unit::Hour);
    let (ok, tat) = decide(None, NOW, cost(6, rate), rate);
    assert!(!ok);
    assert_eq!(
        tat,
        Tat {
            floor: NOW,
            frac: 0
        }
    );
    let (ok, _) = decide(None, NOW, cost(5, rate), rate);
    assert!(ok);
    // The cost is capped, so huge hit counts stay far from overflow.
    let huge = cost(u64::MAX, rate);
    assert_eq!(huge, cost(6, rate));
    assert!(huge.floor < (1 << 53));
}

#[test]
fn an_expired_state_is_a_fresh_key() {
    let rate = rate(3, Unit::Second);
    let stale = Tat {
        floor: NOW - 5,
        frac: 2,
    };
    assert_eq!(
        decide(Some(stale), NOW, cost(1, rate), rate),
        decide(None, NOW, cost(1, rate), rate)
    );
}

#[test]
fn costs_are_exact_fractions() {
    let rate = rate(7, Unit::Minute);
    assert_eq!(
        cost(1, rate),
        Cost {
            floor: 8_571_428,
            frac: 4
        }
    );
    assert_eq!(
        cost(7, rate),
        Cost {
            floor: 60_000_000,
            frac: 0
        }
    );
    assert_eq!(
        cost(0, rate),
        Cost { floor: 0, frac: 0 },
        "zero hits is a peek: admitted, nothing charged"
    );
    let (ok, tat) = decide(None, NOW, cost(0, rate), rate);
    assert!(ok);
    assert_eq!(
        tat,
        Tat {
            floor: NOW,
            frac: 0
        }
    );
}
