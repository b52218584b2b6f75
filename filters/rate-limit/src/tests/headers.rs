//! Response headers, the denial response, all-or-none across limits, and shadow limits.

use std::time::Duration;

use meshguard_filter_core::LogLevel;

use super::Worker;

fn config(headers: &str) -> String {
    format!(
        r#"{{"limits":[{{"name":"orders","key":[{{"header":"x-user"}}],
            "rate":{{"requests":10,"per":"minute"}},"burst":5}}],
            "response":{{"body":"{{\"error\":\"slow down\"}}","contentType":"application/json"}},
            "headers":"{headers}"}}"#
    )
}

const ALICE: &[(&str, &str)] = &[("x-user", "alice")];

#[test]
fn ietf_headers_on_admitted_and_denied_responses() {
    let mut worker = Worker::new(&config("ietf"));
    let first = worker.get("/api/orders", ALICE);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"orders\";q=15;w=90")
    );
    assert_eq!(first.header("ratelimit"), Some("\"orders\";r=14;t=6"));
    for _ in 0..13 {
        worker.get("/api/orders", ALICE);
    }
    let last = worker.get("/api/orders", ALICE);
    assert_eq!(last.header("ratelimit"), Some("\"orders\";r=0;t=90"));
    worker.advance(Duration::from_millis(1500));
    let denied = worker.get("/api/orders", ALICE);
    let response = denied.response();
    assert_eq!(response.status, 429);
    assert_eq!(response.body, br#"{"error":"slow down"}"#);
    assert_eq!(denied.header("content-type"), Some("application/json"));
    assert_eq!(denied.header("retry-after"), Some("5"), "4.5 s rounded up");
    assert_eq!(denied.header("x-envoy-ratelimited"), Some("true"));
    assert_eq!(
        denied.header("ratelimit-policy"),
        Some("\"orders\";q=15;w=90")
    );
    assert_eq!(denied.header("ratelimit"), Some("\"orders\";r=0;t=89"));
}

#[test]
fn x_ratelimit_headers_as_envoy_emits() {
    let mut worker = Worker::new(&config("xRateLimit"));
    let first = worker.get("/", ALICE);
    assert_eq!(first.header("x-ratelimit-limit"), Some("15, 15;w=90"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("14"));
    assert_eq!(first.header("x-ratelimit-reset"), Some("6"));
    assert_eq!(first.header("ratelimit"), None);
}

#[test]
fn no_rate_headers_by_default_but_retry_after_on_denial() {
    let mut worker = Worker::new(&config("none"));
    let first = worker.get("/", ALICE);
    assert_eq!(first, super::Answer::Admitted(Vec::new()));
    for _ in 0..14 {
        worker.get("/", ALICE);
    }
    let denied = worker.get("/", ALICE);
    assert_eq!(denied.header("retry-after"), Some("6"));
    assert_eq!(denied.header("x-ratelimit-limit"), None);
    assert_eq!(denied.header("ratelimit"), None);
}

const TWO_LIMITS: &str = r#"{"limits":[
    {"name":"per-user","match":{"prefix":"/api/orders"},"key":[{"header":"x-user"}],
     "rate":{"requests":2,"per":"minute"}},
    {"name":"global","match":{"prefix":"/api/"},"key":[{"constant":"all"}],
     "rate":{"requests":5,"per":"minute"}}
  ],"headers":"ietf"}"#;

#[test]
fn every_matching_limit_must_admit_and_only_admitted_requests_consume() {
    let mut worker = Worker::new(TWO_LIMITS);
    assert_eq!(worker.admitted(2, "/api/orders", ALICE), 2);
    // Denied by per-user: the global budget must not move.
    for _ in 0..10 {
        let denied = worker.get("/api/orders", ALICE);
        assert_eq!(denied.response().status, 429);
        assert_eq!(
            denied.header("ratelimit"),
            Some("\"per-user\";r=0;t=60, \"global\";r=3;t=24")
        );
    }
    assert_eq!(worker.metric("global", "allowed"), 2);
    assert_eq!(worker.metric("per-user", "limited"), 10);
    assert_eq!(worker.metric("global", "limited"), 0);
    // Three global cells are left: products (global only) get exactly three.
    assert_eq!(worker.admitted(10, "/api/products", &[]), 3);
    // Now global denies bob, whose own per-user budget stays untouched.
    assert!(!worker.get("/api/orders", &[("x-user", "bob")]).admitted());
    worker.advance(Duration::from_secs(12));
    assert_eq!(worker.admitted(10, "/api/orders", &[("x-user", "bob")]), 1);
    assert_eq!(worker.metric("per-user", "allowed"), 3);
}

#[test]
fn headers_list_every_enforced_limit_and_x_ratelimit_picks_the_tightest() {
    let mut worker = Worker::new(&TWO_LIMITS.replace("\"ietf\"", "\"xRateLimit\""));
    let first = worker.get("/api/orders", ALICE);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2, 2;w=60, 5;w=60"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(first.header("x-ratelimit-reset"), Some("30"));
}

#[test]
fn shadow_limits_count_and_log_but_never_deny() {
    let mut worker = Worker::new(
        r#"{"limits":[{"name":"trial","key":[{"header":"x-user"}],"rate":{"requests":3,"per":"minute"},
            "shadow":true}],"headers":"ietf"}"#,
    );
    let answers: Vec<_> = (0..10).map(|_| worker.get("/", ALICE)).collect();
    assert!(answers.iter().all(super::Answer::admitted));
    assert_eq!(worker.metric("trial", "allowed"), 3);
    assert_eq!(worker.metric("trial", "shadow_limited"), 7);
    assert_eq!(worker.metric("trial", "limited"), 0);
    // Shadow limits are invisible to clients.
    assert!(answers.iter().all(|a| a.header("ratelimit").is_none()));
    let logs = worker.host.logs.borrow();
    let shadow_logs = logs
        .iter()
        .filter(|(level, line)| {
            *level == LogLevel::Info && line.contains("`trial` (shadow) would deny key `alice`")
        })
        .count();
    assert_eq!(shadow_logs, 7);
}

#[test]
fn a_shadow_limit_beside_an_enforced_one() {
    let mut worker = Worker::new(
        r#"{"limits":[
            {"name":"enforced","key":[{"header":"x-user"}],"rate":{"requests":5,"per":"minute"}},
            {"name":"candidate","key":[{"header":"x-user"}],"rate":{"requests":2,"per":"minute"},"shadow":true}
        ]}"#,
    );
    assert_eq!(worker.admitted(10, "/", ALICE), 5);
    assert_eq!(worker.metric("candidate", "allowed"), 2);
    assert_eq!(worker.metric("candidate", "shadow_limited"), 8);
    assert_eq!(worker.metric("enforced", "limited"), 5);
}
