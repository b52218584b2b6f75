//! The Redis script against the reference in plain Rust, in a real Redis: every decision of a
//! long random sequence must come out the same, state included. The reference runs on the clock
//! the script read (`Outcome::now`), so the comparison is exact although Redis keeps real time.

use std::time::Duration;

use meshguard_rls::Unit;
use meshguard_testkit::Redis;

use super::reference::ReferenceStore;
use super::*;
use crate::config::Rate;
use crate::gcra::cost;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(redis: &Redis) -> RedisStore {
    RedisStore::new(&RedisSettings {
        url: redis.url(),
        connections: 2,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[test]
fn the_script_decides_exactly_as_the_reference() {
    let redis = Redis::start().unwrap();
    runtime().block_on(async {
        let redis_store = store(&redis);
        let reference = ReferenceStore::default();
        // (key, rate, enforced): per-second to per-day, odd rates, a shadow and a zero limit.
        let keys: Vec<(&str, Rate, bool)> = vec![
            (
                "t:a#second",
                Rate {
                    requests_per_unit: 3,
                    unit: Unit::Second,
                },
                true,
            ),
            (
                "t:b#minute",
                Rate {
                    requests_per_unit: 7,
                    unit: Unit::Minute,
                },
                true,
            ),
            (
                "t:c#hour",
                Rate {
                    requests_per_unit: 5,
                    unit: Unit::Hour,
                },
                false,
            ),
            (
                "t:d#day",
                Rate {
                    requests_per_unit: 1,
                    unit: Unit::Day,
                },
                true,
            ),
            (
                "t:e#second",
                Rate {
                    requests_per_unit: 1_000,
                    unit: Unit::Second,
                },
                true,
            ),
            (
                "t:z#second",
                Rate {
                    requests_per_unit: 0,
                    unit: Unit::Second,
                },
                true,
            ),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut admitted = 0;
        let mut refused = 0;
        for step in 0..400 {
            let count = 1 + rng.below(3) as usize;
            let items: Vec<Item> = (0..count)
                .map(|_| {
                    let (key, rate, enforced) = keys[rng.below(keys.len() as u64) as usize];
                    let hits = rng.below(u64::from(rate.requests_per_unit) + 2);
                    let mode = if rate.requests_per_unit == 0 {
                        Mode::Refuse
                    } else if rng.below(10) == 0 {
                        Mode::Refund
                    } else {
                        Mode::Charge
                    };
                    Item {
                        key: key.to_string(),
                        cost: cost(hits, rate),
                        per_unit: rate.requests_per_unit.max(1),
                        tau_micros: rate.unit_micros(),
                        enforced,
                        mode,
                    }
                })
                .collect();
            let from_redis = redis_store.decide(&items).await.unwrap();
            reference
                .now
                .store(from_redis.now, std::sync::atomic::Ordering::SeqCst);
            let from_reference = reference.decide(&items).await.unwrap();
            assert_eq!(from_redis, from_reference, "step {step}: {items:#?}");
            if from_redis.refused {
                refused += 1;
            } else {
                admitted += 1;
            }
        }
        // The sequence exercised both outcomes plenty.
        assert!(
            admitted > 50 && refused > 50,
            "{admitted} admitted, {refused} refused"
        );
    });
    // Every key expires when its state does: no TTL beyond its unit (plus the 1 ms rounding).
    for (key, unit_ms) in [
        ("t:a#second", 1_000),
        ("t:b#minute", 60_000),
        ("t:c#hour", 3_600_000),
        ("t:d#day", 86_400_000),
    ] {
        let ttl: i64 = redis.command(&["PTTL", key]).unwrap().parse().unwrap();
        assert!(
            ttl == -2 || (0 < ttl && ttl <= unit_ms + 1),
            "{key}: PTTL {ttl}"
        );
    }
    assert_eq!(redis.command(&["EXISTS", "t:z#second"]).unwrap(), "0");
}

#[test]
fn a_restarted_redis_reloads_the_script_and_unreadable_state_is_fresh() {
    let mut redis = Redis::start().unwrap();
    let rt = runtime();
    let _context = rt.enter();
    let store = store(&redis);
    let rate = Rate {
        requests_per_unit: 2,
        unit: Unit::Hour,
    };
    let item = |key: &str| Item {
        key: key.to_string(),
        cost: cost(1, rate),
        per_unit: 2,
        tau_micros: rate.unit_micros(),
        enforced: true,
        mode: Mode::Charge,
    };
    rt.block_on(async {
        assert!(!store.decide(&[item("k")]).await.unwrap().refused);
        assert!(!store.decide(&[item("k")]).await.unwrap().refused);
        assert!(store.decide(&[item("k")]).await.unwrap().refused);
    });
    // A restart empties Redis and its script cache: EVALSHA fails with NOSCRIPT, the script is
    // loaded again, and the key starts fresh.
    redis.restart().unwrap();
    redis.command(&["SET", "garbage", "not-a-tat"]).unwrap();
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let outcome = loop {
            match store.decide(&[item("k")]).await {
                Ok(outcome) => break outcome,
                Err(err) if std::time::Instant::now() < deadline => {
                    assert!(
                        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)),
                        "{err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("redis did not come back: {err}"),
            }
        };
        assert!(!outcome.refused);
        let outcome = store.decide(&[item("garbage")]).await.unwrap();
        assert!(!outcome.refused, "an unreadable value is a fresh key");
        assert_eq!(
            outcome.items[0].1.floor + 1_800_000_000,
            outcome.now + 3_600_000_000
        );
    });
}

#[test]
fn a_malformed_reply_is_an_error() {
    assert!(parse_reply(&[1, 0, 1, 2], 1).is_err());
    assert!(parse_reply(&[1, 0, 1, -2, 0], 1).is_err());
    let outcome = parse_reply(&[10, 1, 0, 12, 3], 1).unwrap();
    assert_eq!(outcome.now, 10);
    assert!(outcome.refused);
    assert_eq!(outcome.items, vec![(false, Tat { floor: 12, frac: 3 })]);
}
