//! End-to-end: the circuit-breaker filter in real Envoy 1.40 (V8) in front of the programmable
//! upstream, failing on command:
//!
//! - after the threshold the breaker opens: the upstream's hit counter stops rising while
//!   clients get the fallback with `x-meshguard-circuit: open` and `Retry-After`; after
//!   `openFor` one probe passes; a failing probe re-opens, a succeeding one closes;
//! - with two workers and many connections both workers share one window (it opens after the
//!   configured number of calls in total, not per worker) and one probe budget (exactly
//!   `permittedCalls` probes reach the upstream however the requests spread);
//! - a slow upstream opens a slow-call breaker;
//! - Envoy's own timeouts and connection failures count through `response.flags`, and breakers
//!   match on the route's cluster (`cluster_name`);
//! - invalid configuration keeps Envoy from starting, with the field named.
//!
//! Waits are short (`openFor` of 1 s) and every loop is bounded. Every scenario runs twice:
//! against the circuit-breaker module and against the `meshguard` pipeline module with the same
//! configuration in its `circuitBreaker` section.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use meshguard_testkit::http::{self, Response};
use meshguard_testkit::modules::stat;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Module, Route, Script, Stage, Upstream,
    scenarios,
};

scenarios!(
    breaker_opens_serves_the_fallback_probes_and_recovers,
    two_workers_share_one_window_and_one_probe_budget,
    a_slow_upstream_opens_a_slow_call_breaker,
    envoy_timeouts_and_connection_failures_count_through_response_flags,
    invalid_configuration_keeps_envoy_from_starting,
);

fn filter(module: Module, config: &str) -> FilterSpec {
    module
        .filter(Stage::CircuitBreaker, config)
        .expect("the module is built")
}

fn envoy(module: Module, upstream: &Upstream, config: &str, concurrency: u32) -> Envoy {
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("commerce", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(filter(module, config))
                .route(Route::prefix("/", "commerce")),
        );
    Envoy::start(&bootstrap, concurrency).unwrap()
}

fn get(envoy: &Envoy, path: &str) -> Response {
    http::get(&format!("{}{path}", envoy.url("edge")), &[]).unwrap()
}

/// The circuit header of a response (`open`, `half-open`, `full`), if it was answered locally.
fn circuit(response: &Response) -> Option<&str> {
    response.header("x-meshguard-circuit")
}

/// A breaker's stat, `meshguard.circuit_breaker.<plugin>.<breaker>.<name>` (Envoy prefixes
/// custom metrics with `wasmcustom.`).
fn metric(stats: &BTreeMap<String, i64>, breaker: &str, name: &str) -> i64 {
    stat(stats, Stage::CircuitBreaker, &format!("{breaker}.{name}"))
}

/// Requests until one is not short-circuited (the probe after `openFor`), every 50 ms for at
/// most 4 s; returns it.
fn wait_for_probe(envoy: &Envoy, path: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(4);
    for _ in 0..100 {
        let response = get(envoy, path);
        if circuit(&response).is_none() {
            return response;
        }
        assert_eq!(circuit(&response), Some("open"), "{response:?}");
        assert!(
            Instant::now() < deadline,
            "the breaker never let a probe through"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the breaker never let a probe through");
}

const PAYMENT: &str = r#"{"breakers":[{
    "name": "payment",
    "match": {"prefix": "/api/payments"},
    "window": {"type": "count", "size": 6},
    "minimumCalls": 4,
    "failureRateThreshold": 50,
    "openFor": "1s",
    "halfOpen": {"permittedCalls": 1, "successToClose": 1},
    "fallback": {"status": 200,
                 "headers": {"content-type": "application/json", "x-fallback": "static"},
                 "body": "{\"service\":\"payment\",\"status\":\"deferred\"}"}
}]}"#;

fn breaker_opens_serves_the_fallback_probes_and_recovers(module: Module) {
    let upstream = Upstream::start("payment").unwrap();
    let envoy = envoy(module, &upstream, PAYMENT, 1);

    for _ in 0..3 {
        let response = get(&envoy, "/api/payments");
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.header("x-upstream"), Some("payment"));
    }
    upstream.script("/api/payments", Script::status(503));
    // 3 successes + 3 failures = 50 % of 6 calls: the third failure opens the breaker.
    for _ in 0..3 {
        let response = get(&envoy, "/api/payments");
        assert_eq!(response.status, 503);
        assert_eq!(circuit(&response), None, "still closed: {response:?}");
    }
    assert_eq!(upstream.hits("/api/payments"), 6);

    for _ in 0..10 {
        let response = get(&envoy, "/api/payments/charge");
        assert_eq!(response.status, 200);
        assert_eq!(circuit(&response), Some("open"));
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.header("x-fallback"), Some("static"));
        assert_eq!(response.header("x-upstream"), None);
        assert_eq!(response.json().unwrap()["status"], "deferred");
    }
    assert_eq!(
        upstream.hits("/api/payments"),
        6,
        "the open breaker let requests through"
    );
    // Other services are not guarded by this breaker.
    assert_eq!(get(&envoy, "/api/products").status, 200);

    // The state gauge is set as the transition happens; read it before waiting for the
    // counters' flush, which takes longer than openFor (the breaker may be half-open by then).
    assert_eq!(metric(&envoy.stats().unwrap(), "payment", "state"), 1);
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "payment", "calls.success"), 3);
    assert_eq!(metric(&stats, "payment", "calls.failure"), 3);
    assert_eq!(metric(&stats, "payment", "short_circuited"), 10);
    assert_eq!(metric(&stats, "payment", "transitions.to_open"), 1);

    // After openFor one probe reaches the still-failing upstream and re-opens the breaker.
    let probe = wait_for_probe(&envoy, "/api/payments");
    assert_eq!(probe.status, 503);
    assert_eq!(upstream.hits("/api/payments"), 7);
    assert_eq!(circuit(&get(&envoy, "/api/payments")), Some("open"));
    assert_eq!(upstream.hits("/api/payments"), 7);

    // The service recovers; the next probe closes the breaker and traffic flows again.
    upstream.unscript("/api/payments");
    let probe = wait_for_probe(&envoy, "/api/payments");
    assert_eq!(probe.status, 200);
    for _ in 0..5 {
        let response = get(&envoy, "/api/payments");
        assert_eq!((response.status, circuit(&response)), (200, None));
    }
    assert_eq!(upstream.hits("/api/payments"), 13);

    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "payment", "state"), 0);
    assert_eq!(metric(&stats, "payment", "transitions.to_open"), 2);
    assert_eq!(metric(&stats, "payment", "transitions.to_half_open"), 2);
    assert_eq!(metric(&stats, "payment", "transitions.to_closed"), 1);
    let log = envoy.log();
    assert_eq!(log.matches("`payment`: closed -> open").count(), 1, "{log}");
    assert_eq!(log.matches("`payment`: half-open -> closed").count(), 1);
}

/// Runs `n` GETs at once, each on its own connection; returns the responses.
fn burst(envoy: &Envoy, path: &str, n: usize) -> Vec<Response> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    get(envoy, path)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn two_workers_share_one_window_and_one_probe_budget(module: Module) {
    let upstream = Upstream::start("payment").unwrap();
    let config = r#"{"breakers":[{"name":"payment","window":{"size":10},"minimumCalls":10,
        "failureRateThreshold":50,"openFor":"1s","halfOpen":{"permittedCalls":2,"successToClose":2}}]}"#;
    let envoy = envoy(module, &upstream, config, 2);

    upstream.script("/api/payments", Script::status(503));
    let mut responses = Vec::new();
    for _ in 0..6 {
        responses.extend(burst(&envoy, "/api/payments", 4));
    }
    let workers = envoy.connections_per_worker(2).unwrap();
    assert!(
        workers.iter().all(|&n| n > 0),
        "both workers must take connections: {workers:?}"
    );
    // One window for both workers: it opened after 10 calls in total (plus at most the three
    // others of the burst in flight when it opened), not after 10 per worker.
    let hits = upstream.hits("/api/payments");
    assert!(
        (10..=13).contains(&hits),
        "{hits} requests reached the upstream"
    );
    assert!(responses.iter().any(|r| circuit(r) == Some("open")));
    for response in burst(&envoy, "/api/payments", 8) {
        assert_eq!(response.status, 503);
        assert_eq!(circuit(&response), Some("open"), "{response:?}");
        assert!(response.body.contains("`payment` is open"));
    }
    assert_eq!(
        upstream.hits("/api/payments"),
        hits,
        "an open worker let requests through"
    );

    // Half-open: 8 requests at once over many connections; the upstream answers slowly so the
    // probes are still in flight when the others ask. Exactly 2 probes pass across workers.
    upstream.script(
        "/api/payments",
        Script::status(200).delayed(Duration::from_millis(700)),
    );
    std::thread::sleep(Duration::from_millis(1_200));
    let responses = burst(&envoy, "/api/payments", 8);
    let probes: Vec<&Response> = responses.iter().filter(|r| circuit(r).is_none()).collect();
    assert_eq!(probes.len(), 2, "{responses:?}");
    assert!(probes.iter().all(|r| r.status == 200));
    for refused in responses.iter().filter(|r| circuit(r).is_some()) {
        assert_eq!(circuit(refused), Some("half-open"));
        assert_eq!(refused.status, 503);
    }
    assert_eq!(upstream.hits("/api/payments"), hits + 2);

    // Both probes succeeded: closed for every worker.
    upstream.unscript("/api/payments");
    for response in burst(&envoy, "/api/payments", 6) {
        assert_eq!((response.status, circuit(&response)), (200, None));
    }
    // Each transition was made (and counted, and logged) by exactly one worker.
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "payment", "transitions.to_open"), 1);
    assert_eq!(metric(&stats, "payment", "transitions.to_half_open"), 1);
    assert_eq!(metric(&stats, "payment", "transitions.to_closed"), 1);
    let log = envoy.log();
    assert_eq!(log.matches("`payment`: closed -> open").count(), 1, "{log}");
    assert_eq!(
        log.matches("`payment`: open -> half-open").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("`payment`: half-open -> closed").count(),
        1,
        "{log}"
    );
}

fn a_slow_upstream_opens_a_slow_call_breaker(module: Module) {
    let upstream = Upstream::start("search").unwrap();
    let config = r#"{"breakers":[{"name":"search","match":{"prefix":"/api/search"},
        "window":{"size":4},"minimumCalls":3,"failureRateThreshold":100,
        "slowCall":{"duration":"200ms","rateThreshold":50},"openFor":"30s"}]}"#;
    let envoy = envoy(module, &upstream, config, 1);
    upstream.script(
        "/api/search",
        Script::status(200).delayed(Duration::from_millis(400)),
    );
    for _ in 0..3 {
        let response = get(&envoy, "/api/search?q=shoe");
        // Slow, but successful: the client gets the answer.
        assert_eq!((response.status, circuit(&response)), (200, None));
    }
    let response = get(&envoy, "/api/search?q=shoe");
    assert_eq!(response.status, 503);
    assert_eq!(circuit(&response), Some("open"));
    assert_eq!(response.header("retry-after"), Some("30"));
    assert_eq!(upstream.hits("/api/search"), 3);
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "search", "calls.slow"), 3);
    assert_eq!(metric(&stats, "search", "calls.failure"), 0);
    assert!(envoy.log().contains("slow-call rate 100.0% over 3 calls"));
}

fn envoy_timeouts_and_connection_failures_count_through_response_flags(module: Module) {
    let upstream = Upstream::start("search").unwrap();
    // A port nothing listens on: connections to it are refused (UF).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Statuses are switched off: only the flags can make these calls failures, and the
    // breakers match on the cluster the route picked.
    let config = r#"{"breakers":[
        {"name":"inventory","match":{"cluster":"inventory"},"window":{"size":3},"minimumCalls":3,
         "failureWhen":{"statuses":[],"responseFlags":["UF","URX"]},"openFor":"30s"},
        {"name":"search","match":{"cluster":"search"},"window":{"size":2},"minimumCalls":2,
         "failureWhen":{"statuses":[],"responseFlags":["UT"]},"openFor":"30s"}]}"#;
    let mut search_route = Route::prefix("/api/search", "search");
    search_route.timeout = Duration::from_millis(300);
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("inventory", dead))
        .cluster(Cluster::new("search", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(filter(module, config))
                .route(Route::prefix("/api/inventory", "inventory"))
                .route(search_route),
        );
    let envoy = Envoy::start(&bootstrap, 1).unwrap();

    for _ in 0..3 {
        let response = get(&envoy, "/api/inventory/p-100");
        assert_eq!(
            (response.status, circuit(&response)),
            (503, None),
            "{response:?}"
        );
    }
    let response = get(&envoy, "/api/inventory/p-100");
    assert_eq!(circuit(&response), Some("open"), "{response:?}");
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "inventory", "calls.failure"), 3);

    upstream.script(
        "/api/search",
        Script::status(200).delayed(Duration::from_secs(1)),
    );
    for _ in 0..2 {
        let response = get(&envoy, "/api/search");
        assert_eq!(
            (response.status, circuit(&response)),
            (504, None),
            "{response:?}"
        );
    }
    assert_eq!(circuit(&get(&envoy, "/api/search")), Some("open"));
    assert_eq!(upstream.hits("/api/search"), 2);
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "search", "calls.failure"), 2);
    // The inventory breaker did not see the search calls, nor the other way round.
    assert_eq!(metric(&stats, "inventory", "calls.failure"), 3);
}

fn invalid_configuration_keeps_envoy_from_starting(module: Module) {
    let upstream = Upstream::start("payment").unwrap();
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("commerce", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(filter(
                    module,
                    r#"{"breakers":[{"name":"payment","halfOpen":{"permittedCalls":1,"successToClose":2}}]}"#,
                ))
                .route(Route::prefix("/", "commerce")),
        );
    let err = Envoy::start(&bootstrap, 1).expect_err("Envoy must refuse the configuration");
    let text = format!("{err:#}");
    let field = match module {
        Module::Single => "breakers[0].halfOpen.successToClose",
        Module::Pipeline => "circuitBreaker.breakers[0].halfOpen.successToClose",
    };
    assert!(
        text.contains(&format!("invalid configuration at `{field}`")),
        "{text}"
    );
}
