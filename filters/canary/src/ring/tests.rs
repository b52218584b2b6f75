//! Ring layout, distribution and the monotone-rollout property, checked over many keys.

use super::*;
use crate::hash::bucket;

/// SplitMix64: a small seeded generator, so property runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    /// A key that looks like what the filter sees: a user id, a session cookie, an IP.
    fn key(&mut self) -> String {
        match self.below(3) {
            0 => format!("user-{}", self.next() % 10_000_000),
            1 => format!("{:016x}{:016x}", self.next(), self.next()),
            _ => format!(
                "10.{}.{}.{}",
                self.below(256),
                self.below(256),
                self.below(256)
            ),
        }
    }
}

fn two(stable: u32, canary: u32) -> Ring {
    Ring::new(vec![
        Version {
            name: "v1".into(),
            buckets: stable,
        },
        Version {
            name: "v2".into(),
            buckets: canary,
        },
    ])
    .unwrap()
}

/// A stable/canary ring with the canary at `percent` hundredths of a percent.
fn canary_at(buckets: u32) -> Ring {
    two(BUCKETS - buckets, buckets)
}

#[test]
fn versions_own_contiguous_ranges_in_list_order() {
    let ring = Ring::new(vec![
        Version {
            name: "v1".into(),
            buckets: 8000,
        },
        Version {
            name: "v2".into(),
            buckets: 0,
        },
        Version {
            name: "v3".into(),
            buckets: 2000,
        },
    ])
    .unwrap();
    assert_eq!(ring.range(0), 0..8000);
    assert_eq!(ring.range(1), 8000..8000);
    assert_eq!(ring.range(2), 8000..10_000);
    for (bucket, expected) in [(0, 0), (7999, 0), (8000, 2), (9999, 2)] {
        assert_eq!(ring.version_at(bucket), expected, "bucket {bucket}");
    }
    assert_eq!(ring.find("V3"), Some(2));
    assert_eq!(ring.find("v4"), None);
}

#[test]
fn a_single_version_takes_everything() {
    let ring = Ring::new(vec![Version {
        name: "v1".into(),
        buckets: BUCKETS,
    }])
    .unwrap();
    assert_eq!(ring.version_at(0), 0);
    assert_eq!(ring.version_at(BUCKETS - 1), 0);
}

#[test]
fn shares_must_fill_the_ring() {
    for (shares, message) in [
        (vec![9000, 500], "add up to 95,"),
        (vec![9000, 1050], "add up to 100.5,"),
        (vec![], "at least one version"),
    ] {
        let versions = shares
            .into_iter()
            .enumerate()
            .map(|(i, buckets)| Version {
                name: format!("v{i}"),
                buckets,
            })
            .collect();
        let err = Ring::new(versions).unwrap_err();
        assert!(err.message.contains(message), "{err}");
    }
}

#[test]
fn weights_render_as_percentages() {
    for (buckets, text) in [
        (0, "0"),
        (1000, "10"),
        (950, "9.5"),
        (1, "0.01"),
        (10_050, "100.5"),
    ] {
        assert_eq!(format_weight(buckets), text);
    }
}

#[test]
fn a_90_10_split_over_100k_keys_is_within_one_point() {
    let ring = two(9000, 1000);
    let mut rng = Rng(0x5eed_0001);
    let mut counts = [0u32; 2];
    let total = 100_000;
    for _ in 0..total {
        let key = rng.key();
        counts[ring.version_at(bucket("product", key.as_bytes()))] += 1;
    }
    let share = |n: u32| f64::from(n) * 100.0 / f64::from(total);
    assert!((share(counts[0]) - 90.0).abs() <= 1.0, "{counts:?}");
    assert!((share(counts[1]) - 10.0).abs() <= 1.0, "{counts:?}");
}

#[test]
fn sequential_user_ids_spread_evenly_across_buckets() {
    // Ids like `user-1`, `user-2`... differ in their last bytes only: FNV alone clusters
    // them, the finalizer must not. Each decile of the ring gets 10 % +- 1 point.
    let mut deciles = [0u32; 10];
    for id in 0..100_000 {
        let b = bucket("order", format!("user-{id}").as_bytes());
        deciles[(b / 1000) as usize] += 1;
    }
    for (decile, count) in deciles.iter().enumerate() {
        assert!(
            (9_000..=11_000).contains(count),
            "decile {decile}: {deciles:?}"
        );
    }
}

#[test]
fn every_weight_from_1_to_99_is_met_within_one_point() {
    let mut rng = Rng(0x5eed_0002);
    let keys: Vec<u32> = (0..20_000)
        .map(|_| bucket("cart", rng.key().as_bytes()))
        .collect();
    for percent in 1..100 {
        let ring = canary_at(percent * 100);
        let canary = keys.iter().filter(|b| ring.version_at(**b) == 1).count();
        let share = canary as f64 * 100.0 / keys.len() as f64;
        assert!(
            (share - f64::from(percent)).abs() <= 1.0,
            "canary at {percent}% got {share:.2}%"
        );
    }
}

/// The rollout property: a key in the canary at weight w is in it at every w' > w. Checked for
/// 2,000 random keys at every whole percentage, and at 2,000 random pairs of fine-grained
/// weights (0.01 % resolution).
#[test]
fn raising_the_canary_weight_never_moves_a_user_out_of_it() {
    let mut rng = Rng(0x5eed_0003);
    let rings: Vec<Ring> = (0..=100).map(|percent| canary_at(percent * 100)).collect();
    for _ in 0..2_000 {
        let key = rng.key();
        let b = bucket("payment", key.as_bytes());
        let mut entered_at = None;
        for (percent, ring) in rings.iter().enumerate() {
            let in_canary = ring.version_at(b) == 1;
            match (entered_at, in_canary) {
                (None, true) => entered_at = Some(percent),
                (Some(at), false) => {
                    panic!("{key:?} joined the canary at {at}% and left it at {percent}%")
                }
                _ => {}
            }
        }
        assert!(rings[100].version_at(b) == 1, "everyone is in at 100%");
    }
    for _ in 0..2_000 {
        let (a, b) = (rng.below(BUCKETS + 1), rng.below(BUCKETS + 1));
        let (low, high) = (canary_at(a.min(b)), canary_at(a.max(b)));
        for _ in 0..50 {
            let key = rng.key();
            let position = bucket("search", key.as_bytes());
            if low.version_at(position) == 1 {
                assert_eq!(
                    high.version_at(position),
                    1,
                    "{key:?} left the canary going from {} to {} buckets",
                    a.min(b),
                    a.max(b)
                );
            }
        }
    }
}

#[test]
fn a_rollback_moves_exactly_the_users_the_rollout_moved() {
    let mut rng = Rng(0x5eed_0004);
    let (ten, twenty) = (canary_at(1000), canary_at(2000));
    for _ in 0..10_000 {
        let b = bucket("inventory", rng.key().as_bytes());
        let moved_up = ten.version_at(b) != twenty.version_at(b);
        // Anyone who moved did so from v1 into v2, so rolling back to 10 % moves them back.
        if moved_up {
            assert_eq!((ten.version_at(b), twenty.version_at(b)), (0, 1));
        }
    }
}

#[test]
fn moving_weight_between_neighbours_moves_users_only_between_them() {
    let three = |a: u32, b: u32, c: u32| {
        Ring::new(
            [("v1", a), ("v2", b), ("v3", c)]
                .into_iter()
                .map(|(name, buckets)| Version {
                    name: name.into(),
                    buckets,
                })
                .collect(),
        )
        .unwrap()
    };
    let (before, after) = (three(8000, 1000, 1000), three(8000, 500, 1500));
    let mut rng = Rng(0x5eed_0005);
    for _ in 0..10_000 {
        let b = bucket("user", rng.key().as_bytes());
        let (from, to) = (before.version_at(b), after.version_at(b));
        assert!(
            from == to || (from, to) == (1, 2),
            "bucket {b}: {from} -> {to}"
        );
    }
}

#[test]
fn assignment_is_deterministic_for_identical_configs() {
    let (a, b) = (canary_at(1234), canary_at(1234));
    let mut rng = Rng(0x5eed_0006);
    for _ in 0..1_000 {
        let key = rng.key();
        assert_eq!(
            a.version_at(bucket("product", key.as_bytes())),
            b.version_at(bucket("product", key.as_bytes()))
        );
    }
}

#[test]
fn positions_are_independent_across_services() {
    // Being in product's 10 % canary should say nothing about cart's.
    let ring = two(9000, 1000);
    let mut rng = Rng(0x5eed_0007);
    let (mut in_product, mut in_both) = (0u32, 0u32);
    for _ in 0..100_000 {
        let key = rng.key();
        let product = ring.version_at(bucket("product", key.as_bytes())) == 1;
        let cart = ring.version_at(bucket("cart", key.as_bytes())) == 1;
        in_product += u32::from(product);
        in_both += u32::from(product && cart);
    }
    let conditional = f64::from(in_both) * 100.0 / f64::from(in_product);
    assert!(
        (conditional - 10.0).abs() <= 1.5,
        "P(cart canary | product canary) = {conditional:.2}%"
    );
}
