//! The canary module in the wasmtime host: users land on the version the documented hash
//! assigns, stay there, and the route header the filter sets picks the cluster — the host
//! re-selects the route after the filter changed the headers, as Envoy does.

use meshguard_canary::hash::bucket;
use meshguard_testkit::paths::filter_module;
use meshguard_wasm_host::{Plugin, PluginOptions, Request, Route, WasmModule};

fn config(canary_percent: u32) -> String {
    format!(
        r#"{{
          "pinCookie": {{"name": "mesh-canary", "maxAgeSeconds": 3600}},
          "services": [{{
            "name": "product", "match": {{"hosts": ["*"], "prefix": "/api/products"}},
            "versions": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {canary_percent}}}],
            "stickyKey": [{{"header": "x-user-id"}}, {{"cookie": "session"}}],
            "overrides": {{"header": "x-canary-version",
                           "onlyWithHeader": {{"name": "x-internal-caller", "value": "qa"}}}}
          }}]
        }}"#,
        100 - canary_percent
    )
}

fn start(canary_percent: u32) -> Plugin {
    let module =
        WasmModule::from_file(filter_module("meshguard_canary").expect("canary is built")).unwrap();
    let options = PluginOptions::new(config(canary_percent))
        .named("canary")
        .workers(2)
        .route(Route::prefix("/", "product-v2").header("x-mesh-version", "v2"))
        .route(Route::prefix("/", "product-v1").header("x-mesh-version", "v1"))
        .route(Route::prefix("/", "product-v1"));
    Plugin::start(&module, options).unwrap()
}

fn expected(user: &str, canary_percent: u32) -> &'static str {
    if bucket("product", user.as_bytes()) >= (100 - canary_percent) * 100 {
        "v2"
    } else {
        "v1"
    }
}

#[test]
fn users_land_on_their_hashed_version_on_every_worker() {
    let mut plugin = start(20);
    let mut canary_users = 0;
    for i in 0..60 {
        let user = format!("user-{i}");
        let want = expected(&user, 20);
        canary_users += usize::from(want == "v2");
        for _ in 0..2 {
            let outcome = plugin
                .send(Request::get("/api/products/p-100").header("x-user-id", &user))
                .unwrap();
            assert_eq!(
                outcome.upstream_header("x-mesh-version"),
                Some(want),
                "{user}"
            );
            assert_eq!(
                outcome.upstream.as_ref().unwrap().cluster,
                format!("product-{want}")
            );
        }
    }
    assert!(
        (3..=25).contains(&canary_users),
        "{canary_users} of 60 in a 20% canary"
    );
}

#[test]
fn a_client_sent_route_header_is_replaced_and_overrides_need_the_gate() {
    let mut plugin = start(0);
    let spoofed = plugin
        .send(
            Request::get("/api/products")
                .header("x-user-id", "eve")
                .header("x-mesh-version", "v2"),
        )
        .unwrap();
    assert_eq!(spoofed.upstream_header("x-mesh-version"), Some("v1"));
    assert_eq!(spoofed.upstream.as_ref().unwrap().cluster, "product-v1");

    let ungated = plugin
        .send(
            Request::get("/api/products")
                .header("x-user-id", "qa")
                .header("x-canary-version", "v2"),
        )
        .unwrap();
    assert_eq!(ungated.upstream_header("x-mesh-version"), Some("v1"));
    let gated = plugin
        .send(
            Request::get("/api/products")
                .header("x-user-id", "qa")
                .header("x-canary-version", "v2")
                .header("x-internal-caller", "qa"),
        )
        .unwrap();
    assert_eq!(gated.upstream.as_ref().unwrap().cluster, "product-v2");
}

#[test]
fn anonymous_users_are_pinned_with_a_cookie() {
    let mut plugin = start(50);
    let first = plugin.send(Request::get("/api/products")).unwrap();
    let cookie = first
        .response_header("set-cookie")
        .expect("an anonymous user gets a pin cookie")
        .to_string();
    assert!(cookie.starts_with("mesh-canary="), "{cookie}");
    let pinned = cookie.split(';').next().unwrap().to_string();
    let version = first.upstream_header("x-mesh-version").unwrap().to_string();
    for _ in 0..5 {
        let again = plugin
            .send(Request::get("/api/products").header("cookie", &pinned))
            .unwrap();
        assert_eq!(
            again.upstream_header("x-mesh-version"),
            Some(version.as_str())
        );
    }
}

#[test]
fn other_paths_take_the_stable_route_untouched() {
    let mut plugin = start(100);
    let outcome = plugin
        .send(Request::get("/api/orders").header("x-user-id", "zed"))
        .unwrap();
    assert_eq!(outcome.upstream_header("x-mesh-version"), None);
    assert_eq!(outcome.upstream.unwrap().cluster, "product-v1");
}
