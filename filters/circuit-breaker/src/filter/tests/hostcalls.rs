//! Hostcalls per request, pinned: in Envoy each one crosses into V8 (a microsecond or more), so
//! a new read on the hot path must show up here as a failing count, not as benchmark noise.

use std::collections::BTreeMap;

use super::*;

/// The benchmark's breaker (`cargo xtask bench`): closed, count window of 100, failure-rate and
/// slow-call thresholds.
const BENCH: &str = r#"{"breakers":[{"name":"product","match":{"prefix":"/api/products"},
    "window":{"type":"count","size":100},"minimumCalls":20,
    "failureRateThreshold":50,"slowCall":{"duration":"2s","rateThreshold":80},
    "openFor":"30s","halfOpen":{"permittedCalls":5,"successToClose":3}}]}"#;

fn counts(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    pairs.iter().copied().collect()
}

/// One whole healthy call in the steady state (after earlier calls, so the state exists and
/// the worker's snapshot is in its usual place); the host calls it made.
fn steady_call(config: &str, path: &str) -> BTreeMap<&'static str, u32> {
    let (mut total, at_log) = steady_phases(config, path);
    for (name, count) in at_log {
        *total.entry(name).or_insert(0) += count;
    }
    total
}

/// The host calls of [`steady_call`] split at the response: those made while the request and
/// the response headers pass (the answer waits for them), and those of `on_log`.
fn steady_phases(
    config: &str,
    path: &str,
) -> (BTreeMap<&'static str, u32>, BTreeMap<&'static str, u32>) {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    w.call(path, ok());
    w.call(path, ok());
    w.host.reset_hostcalls();
    let (mut http, decision) = w.start(path);
    assert_eq!(decision, Decision::Continue);
    w.host.advance(Duration::from_millis(3));
    w.host.response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    assert_eq!(
        http.on_response_headers(&mut w.host, false),
        Decision::Continue
    );
    let answered = w.host.hostcall_counts();
    w.host.reset_hostcalls();
    http.on_log(&mut w.host);
    (answered, w.host.hostcall_counts())
}

#[test]
fn a_healthy_call_is_settled_by_its_response_headers() {
    // Judged and recorded as the headers pass; on_log has nothing left to do.
    let (answered, at_log) = steady_phases(BENCH, "/api/products");
    assert_eq!(answered.values().sum::<u32>(), 7);
    assert_eq!(at_log, counts(&[]));
}
#[test]
fn a_healthy_call_through_the_benchmark_breaker_makes_seven() {
    // :path (matcher), :status, content-type (a 200 may be gRPC); the clock at both ends (the
    // latency `slowCall` judges); one shared-data read (admission) and one CAS write (the
    // outcome). Counters wait for the tick.
    assert_eq!(
        steady_call(BENCH, "/api/products"),
        counts(&[
            ("header", 3),
            ("now", 2),
            ("shared_get", 1),
            ("shared_set", 1),
        ])
    );
}

#[test]
fn without_slow_calls_a_closed_count_window_never_reads_the_clock() {
    let config = BENCH.replace(r#""slowCall":{"duration":"2s","rateThreshold":80},"#, "");
    assert_eq!(
        steady_call(&config, "/api/products"),
        counts(&[("header", 3), ("shared_get", 1), ("shared_set", 1),])
    );
    // A time window needs the time of the outcome (its bucket), once.
    let timed = config.replace(r#""type":"count","size":100"#, r#""type":"time","size":10"#);
    assert_eq!(steady_call(&timed, "/api/products").get("now"), Some(&1));
}

#[test]
fn content_type_is_only_read_while_grpc_statuses_are_judged() {
    let config = BENCH.replace(
        r#""minimumCalls":20,"#,
        r#""minimumCalls":20,"failureWhen":{"grpcStatuses":[]},"#,
    );
    assert_eq!(
        steady_call(&config, "/api/products").get("header"),
        Some(&2)
    );
}

#[test]
fn a_request_no_breaker_guards_costs_the_reads_of_the_match() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BENCH);
    w.host.reset_hostcalls();
    let (mut http, decision) = w.start("/api/orders");
    assert_eq!(decision, Decision::Continue);
    w.host.response_headers = vec![(":status".into(), "200".into())];
    http.on_response_headers(&mut w.host, false);
    http.on_log(&mut w.host);
    assert_eq!(w.host.hostcall_counts(), counts(&[("header", 1)]));
}

#[test]
fn an_open_breaker_answers_with_one_read_and_one_clock_read() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    w.fail_four();
    assert_eq!(w.phase(), Phase::Open);
    w.host.reset_hostcalls();
    let decision = w.call("/api/payments", ok());
    assert!(is_short_circuit(&decision, "open"), "{decision:?}");
    assert_eq!(
        w.host.hostcall_counts(),
        counts(&[("header", 1), ("now", 1), ("shared_get", 1),])
    );
}

#[test]
fn a_transition_still_reads_the_clock_when_the_outcome_arrives() {
    // BASIC has no slowCall, so nothing reads the clock until the failure that opens it: the
    // open phase must start at that response, not at its request.
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    for upstream in [ok(), fail(), ok()] {
        w.call("/api/payments", upstream);
    }
    w.call("/api/payments", Upstream::Status(503, 400));
    assert_eq!(w.phase(), Phase::Open);
    w.host.advance(Duration::from_millis(999));
    assert!(is_short_circuit(&w.call("/api/payments", ok()), "open"));
    w.host.advance(Duration::from_millis(1));
    assert_eq!(w.call("/api/payments", ok()), Decision::Continue);
}
