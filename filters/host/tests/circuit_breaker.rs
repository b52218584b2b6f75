//! The circuit-breaker module in the wasmtime host: it opens on failures, serves the fallback,
//! lets one probe through after `openFor` of virtual time, and counts slow calls whose latency
//! is virtual too.

use std::time::Duration;

use meshguard_testkit::paths::filter_module;
use meshguard_wasm_host::{Plugin, PluginOptions, Request, UpstreamResponse, Verdict, WasmModule};

fn start(config: &str, workers: usize) -> Plugin {
    let module = WasmModule::from_file(
        filter_module("meshguard_circuit_breaker").expect("circuit-breaker is built"),
    )
    .unwrap();
    let options = PluginOptions::new(config)
        .named("circuit-breaker")
        .workers(workers);
    Plugin::start(&module, options).unwrap()
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

fn payment(status: u16) -> Request {
    Request::get("/api/payments").upstream(UpstreamResponse::status(status))
}

#[test]
fn opens_after_failures_serves_the_fallback_then_probes_and_closes() {
    let mut plugin = start(PAYMENT, 2);
    for _ in 0..3 {
        assert_eq!(
            plugin.send(payment(200)).unwrap().verdict,
            Verdict::Forwarded
        );
    }
    for _ in 0..3 {
        let outcome = plugin.send(payment(503)).unwrap();
        assert_eq!(
            (outcome.verdict, outcome.status()),
            (Verdict::Forwarded, Some(503))
        );
    }
    let open = plugin.send(payment(200)).unwrap();
    assert_eq!(open.verdict, Verdict::LocalReply, "{open:#?}");
    assert_eq!(open.response_header("x-fallback"), Some("static"));
    assert_eq!(open.response_header("x-meshguard-circuit"), Some("open"));
    assert!(open.body_text().contains("deferred"));

    // Still open just before openFor; one probe after it.
    plugin.advance(Duration::from_millis(900)).unwrap();
    assert_eq!(
        plugin.send(payment(200)).unwrap().verdict,
        Verdict::LocalReply
    );
    plugin.advance(Duration::from_millis(100)).unwrap();
    let probe = plugin.send(payment(200)).unwrap();
    assert_eq!(probe.verdict, Verdict::Forwarded, "{probe:#?}");
    // The successful probe closed it.
    assert_eq!(
        plugin.send(payment(200)).unwrap().verdict,
        Verdict::Forwarded
    );
}

#[test]
fn a_failing_probe_reopens() {
    let mut plugin = start(PAYMENT, 1);
    for _ in 0..4 {
        plugin.send(payment(503)).unwrap();
    }
    assert_eq!(
        plugin.send(payment(200)).unwrap().verdict,
        Verdict::LocalReply
    );
    plugin.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(
        plugin.send(payment(503)).unwrap().verdict,
        Verdict::Forwarded
    );
    assert_eq!(
        plugin.send(payment(200)).unwrap().verdict,
        Verdict::LocalReply
    );
}

#[test]
fn slow_calls_open_a_slow_call_breaker_on_virtual_latency() {
    let config = r#"{"breakers":[{"name":"search","match":{"prefix":"/api/search"},
        "window":{"size":4},"minimumCalls":3,"failureRateThreshold":100,
        "slowCall":{"duration":"200ms","rateThreshold":50},"openFor":"30s"}]}"#;
    let mut plugin = start(config, 1);
    let slow = || {
        Request::get("/api/search?q=shoe")
            .upstream(UpstreamResponse::status(200).delayed(Duration::from_millis(400)))
    };
    for _ in 0..3 {
        let id = plugin.send(slow()).unwrap().stream;
        assert_eq!(plugin.outcome(id).unwrap().verdict, Verdict::Pending);
        plugin.advance(Duration::from_millis(400)).unwrap();
        assert_eq!(plugin.outcome(id).unwrap().status(), Some(200));
    }
    let open = plugin.send(slow()).unwrap();
    assert_eq!(open.status(), Some(503), "{open:#?}");
    assert_eq!(open.response_header("retry-after"), Some("30"));
    // Counts reach the stats on the roots' next tick.
    plugin.advance(Duration::from_secs(1)).unwrap();
    let metrics = plugin.metrics();
    let slow_calls: i64 = metrics
        .iter()
        .filter(|(name, _)| name.ends_with("search.calls.slow"))
        .map(|(_, m)| m.value)
        .sum();
    assert_eq!(slow_calls, 3, "{metrics:#?}");
}

#[test]
fn route_timeouts_count_as_failures_through_response_flags() {
    let config = r#"{"breakers":[{"name":"search","window":{"size":4},"minimumCalls":2,
        "failureRateThreshold":50,"openFor":"30s"}]}"#;
    let mut plugin = Plugin::start(
        &WasmModule::from_file(filter_module("meshguard_circuit_breaker").unwrap()).unwrap(),
        {
            let mut options = PluginOptions::new(config).named("circuit-breaker");
            options.route_timeout = Duration::from_millis(500);
            options
        },
    )
    .unwrap();
    for _ in 0..2 {
        let id = plugin
            .send(
                Request::get("/api/search")
                    .upstream(UpstreamResponse::status(200).delayed(Duration::from_secs(2))),
            )
            .unwrap()
            .stream;
        plugin.advance(Duration::from_secs(1)).unwrap();
        let outcome = plugin.outcome(id).unwrap();
        assert_eq!(outcome.status(), Some(504), "{outcome:#?}");
        assert_eq!(
            outcome.local_reply.unwrap().details,
            "upstream_response_timeout"
        );
    }
    assert_eq!(
        plugin.send(Request::get("/api/search")).unwrap().status(),
        Some(503)
    );
}
