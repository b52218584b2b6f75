//! Hostcalls per request, pinned: in Envoy each one crosses into V8 (a microsecond or more), so
//! a new read on the hot path must show up here as a failing count, not as benchmark noise.

use std::collections::BTreeMap;

use super::Worker;

/// The benchmark's limit (`cargo xtask bench`): keyed by a header, never exceeded.
const BENCH: &str = r#"{"limits":[{"name":"per-user","key":[{"header":"x-user-id"}],
    "rate":{"requests":1000000,"per":"second"}}]}"#;

fn counts(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    pairs.iter().copied().collect()
}

/// The host calls of one admitted request of a key already in the table.
fn steady(config: &str, path: &str, headers: &[(&str, &str)]) -> BTreeMap<&'static str, u32> {
    let mut worker = Worker::new(config);
    assert!(worker.get(path, headers).admitted());
    worker.host.reset_hostcalls();
    assert!(worker.get(path, headers).admitted());
    worker.host.hostcall_counts()
}

#[test]
fn an_admitted_request_makes_four() {
    // The key's header, the clock (GCRA), the key's bucket read and its CAS write. Counters
    // wait for the tick; the response is not touched.
    assert_eq!(
        steady(BENCH, "/api/products", &[("x-user-id", "user-0042")]),
        counts(&[
            ("header", 1),
            ("now", 1),
            ("shared_get", 1),
            ("shared_set", 1),
        ])
    );
}

#[test]
fn rate_limit_headers_cost_one_call_each() {
    let config = BENCH.replace(r#"{"limits""#, r#"{"headers":"ietf","limits""#);
    let calls = steady(&config, "/api/products", &[("x-user-id", "user-0042")]);
    assert_eq!(calls.get("set_header"), Some(&2));
    assert_eq!(calls.values().sum::<u32>(), 6);
}

#[test]
fn a_request_no_limit_applies_to_reads_only_what_the_match_needs() {
    // Without its key header the limit is skipped: no clock, no shared data.
    assert_eq!(
        steady(BENCH, "/api/products", &[]),
        counts(&[("header", 1)])
    );
    // A path condition that does not hold: the key is never read either.
    let config = BENCH.replace(r#""key":"#, r#""match":{"prefix":"/api/login"},"key":"#);
    assert_eq!(
        steady(&config, "/api/products", &[("x-user-id", "user-0042")]),
        counts(&[("header", 1)])
    );
}
