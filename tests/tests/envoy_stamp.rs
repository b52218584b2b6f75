//! End-to-end: the workspace's trivial filter, built for wasm32-wasip1, runs in real Envoy 1.40
//! (V8) with two workers, and the upstream sees the header it set.

use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};

fn bootstrap(upstream: &Upstream, config: &str) -> Bootstrap {
    let module = filter_module("meshguard_stamp").expect("the stamp module is built");
    Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(FilterSpec::wasm("stamp", module, config))
                .route(Route::prefix("/", "backend")),
        )
}

#[test]
fn stamp_filter_runs_in_envoy_v8_with_two_workers() {
    let upstream = Upstream::start("backend").unwrap();
    let envoy = Envoy::start(
        &bootstrap(
            &upstream,
            r#"{"header":"x-meshguard-stamp","value":"from-wasm"}"#,
        ),
        2,
    )
    .unwrap();

    for i in 0..20 {
        // A client-sent copy is replaced, never passed through.
        let response = http::get(
            &format!("{}/api/products?i={i}", envoy.url("edge")),
            &[("x-meshguard-stamp", "spoofed")],
        )
        .unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        let echo = response.json().unwrap();
        assert_eq!(echo["headers"]["x-meshguard-stamp"], "from-wasm", "{echo}");
    }
    assert_eq!(upstream.hits("/api/products"), 20);

    let stats = envoy.stats().unwrap();
    assert!(
        stats
            .get("wasm.envoy.wasm.runtime.v8.created")
            .copied()
            .unwrap_or(0)
            >= 1,
        "no V8 wasm VM was created: {stats:?}"
    );
    assert!(
        stats
            .get("wasm.envoy.wasm.runtime.v8.active")
            .copied()
            .unwrap_or(0)
            >= 1,
        "no active V8 wasm VM"
    );
}

#[test]
fn invalid_config_is_rejected_and_envoy_refuses_to_start() {
    let upstream = Upstream::start("backend").unwrap();
    let err = Envoy::start(&bootstrap(&upstream, r#"{"header":"Not Valid"}"#), 1)
        .expect_err("Envoy must refuse a listener whose wasm filter rejects its configuration");
    let text = format!("{err:#}");
    assert!(
        text.contains("invalid configuration at `header`"),
        "the filter's own message naming the field is in Envoy's log: {text}"
    );
}

#[test]
fn missing_module_fails_instead_of_skipping() {
    let upstream = Upstream::start("backend").unwrap();
    let broken = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(FilterSpec::wasm("stamp", "/nonexistent/stamp.wasm", "{}"))
                .route(Route::prefix("/", "backend")),
        );
    assert!(
        Envoy::start(&broken, 1).is_err(),
        "Envoy must not start without its module"
    );
}
