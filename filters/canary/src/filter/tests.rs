//! The filter against a [`MockHost`]: headers in, route header and cookies out, stats counted.

use meshguard_filter_core::Stream;
use meshguard_filter_core::mock::MockHost;

use super::*;
use crate::hash::bucket;

/// The plugin name the tests configure: stats are `meshguard.canary.edge.*`.
const PLUGIN: &str = "edge";

const CONFIG: &str = r#"{
  "pinCookie": {"name": "mesh-pin", "maxAgeSeconds": 3600},
  "services": [
    {"name": "product", "match": {"hosts": ["product", "product.commerce.svc.cluster.local"],
     "prefix": "/api/products"},
     "versions": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}],
     "stickyKey": [{"header": "x-user-id"}, "clientIp"],
     "overrides": {"header": "x-canary", "onlyWithHeader": {"name": "x-internal-caller"}}},
    {"name": "cart", "match": {"hosts": ["cart"]},
     "versions": [{"name": "v1", "weight": 50}, {"name": "v2", "weight": 50}],
     "stickyKey": [{"cookie": "session"}]}
  ]
}"#;

fn root(config: &str, host: &mut MockHost) -> CanaryRoot {
    Canary::configure(host, &Env::single(PLUGIN), config.as_bytes()).unwrap()
}

/// One request through a fresh stream: returns the route header the upstream would see and the
/// `set-cookie` the client would get.
fn request(
    root: &CanaryRoot,
    host: &mut MockHost,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Option<String>, Option<String>) {
    host.request_headers = vec![
        (":authority".into(), authority.into()),
        (":path".into(), path.into()),
        (":method".into(), "GET".into()),
    ];
    host.request_headers
        .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    host.response_headers = vec![(":status".into(), "200".into())];
    let mut http = Stream::new(root.new_http(7));
    assert_eq!(http.on_request_headers(host, true), Decision::Continue);
    assert_eq!(http.on_response_headers(host, true), Decision::Continue);
    let route: Vec<String> = host
        .request_headers
        .iter()
        .filter(|(k, _)| k == "x-mesh-version")
        .map(|(_, v)| v.clone())
        .collect();
    assert!(route.len() <= 1, "one route header at most: {route:?}");
    (
        route.into_iter().next(),
        host.header(HeaderMap::Response, "set-cookie"),
    )
}

fn expected_version(service: &str, key: &str, canary_from: u32) -> &'static str {
    if bucket(service, key.as_bytes()) >= canary_from {
        "v2"
    } else {
        "v1"
    }
}

#[test]
fn each_user_is_routed_by_the_hash_of_their_key_every_time() {
    let mut host = MockHost::new();
    let mut root = root(CONFIG, &mut host);
    for user in 0..300 {
        let user = format!("user-{user}");
        let want = expected_version("product", &user, 9000);
        for _ in 0..3 {
            let (route, cookie) = request(
                &root,
                &mut host,
                "product:8080",
                "/api/products/p-1",
                &[("x-user-id", &user)],
            );
            assert_eq!(route.as_deref(), Some(want), "{user}");
            assert_eq!(cookie, None, "a keyed user needs no pin");
        }
    }
    root.on_tick(&mut host);
    let (v1, v2) = (
        host.metric("meshguard.canary.edge.product.v1.requests"),
        host.metric("meshguard.canary.edge.product.v2.requests"),
    );
    assert_eq!(v1 + v2, 900);
    assert!((30..=150).contains(&v2), "about 10% of 900 in v2: {v2}");
}

#[test]
fn two_workers_agree_on_every_user() {
    // Each Envoy worker has its own VM and root; they share nothing yet must agree.
    let (mut a, mut b) = (MockHost::new().with_seed(1), MockHost::new().with_seed(2));
    let (root_a, root_b) = (root(CONFIG, &mut a), root(CONFIG, &mut b));
    for user in 0..200 {
        let session = format!("session=s-{user}");
        let headers = [("cookie", session.as_str())];
        assert_eq!(
            request(&root_a, &mut a, "cart", "/", &headers),
            request(&root_b, &mut b, "cart", "/", &headers)
        );
    }
}

#[test]
fn cookies_are_found_in_any_cookie_header() {
    let mut host = MockHost::new();
    let root = root(CONFIG, &mut host);
    for user in 0..50 {
        let session = format!("session=s-{user}");
        let one = request(&root, &mut host, "cart", "/", &[("cookie", &session)]);
        let split = request(
            &root,
            &mut host,
            "cart",
            "/",
            &[("cookie", "theme=dark"), ("cookie", &session)],
        );
        assert_eq!(one, split, "{session}");
        assert_eq!(
            one.0.as_deref(),
            Some(expected_version("cart", &format!("s-{user}"), 5000))
        );
    }
}

#[test]
fn a_spoofed_route_header_is_replaced_or_removed() {
    let mut host = MockHost::new();
    let mut root = root(CONFIG, &mut host);
    let user = (0..)
        .map(|n| format!("u{n}"))
        .find(|u| expected_version("product", u, 9000) == "v1")
        .unwrap();
    // Matched: the client's `v2` is replaced by the user's own version.
    let (route, _) = request(
        &root,
        &mut host,
        "product",
        "/api/products",
        &[("x-mesh-version", "v2"), ("x-user-id", &user)],
    );
    assert_eq!(route.as_deref(), Some("v1"));
    // Unmatched (no service for this host, or path outside the prefix): removed.
    for (authority, path) in [("orders", "/api/orders"), ("product", "/admin")] {
        let (route, _) = request(
            &root,
            &mut host,
            authority,
            path,
            &[("x-mesh-version", "v2")],
        );
        assert_eq!(route, None, "{authority}{path}");
    }
    root.on_tick(&mut host);
    assert_eq!(
        host.metric("meshguard.canary.edge.route_header_stripped"),
        3
    );
    assert_eq!(host.metric("meshguard.canary.edge.unmatched"), 2);
}

#[test]
fn an_override_needs_the_gate_header() {
    let mut host = MockHost::new();
    let mut root = root(CONFIG, &mut host);
    let user = (0..)
        .map(|n| format!("u{n}"))
        .find(|u| expected_version("product", u, 9000) == "v1")
        .unwrap();
    let ask = |host: &mut MockHost, extra: &[(&str, &str)]| {
        let mut headers = vec![("x-user-id", user.as_str()), ("x-canary", "v2")];
        headers.extend_from_slice(extra);
        request(&root, host, "product", "/api/products", &headers).0
    };
    assert_eq!(ask(&mut host, &[]).as_deref(), Some("v1"));
    assert_eq!(
        ask(&mut host, &[("x-internal-caller", "qa-bot")]).as_deref(),
        Some("v2")
    );
    root.on_tick(&mut host);
    assert_eq!(
        host.metric("meshguard.canary.edge.product.overrides_used"),
        1
    );
    assert_eq!(
        host.metric("meshguard.canary.edge.product.overrides_denied"),
        1
    );
}

#[test]
fn anonymous_users_get_a_pin_cookie_and_keep_their_version() {
    let mut host = MockHost::new().with_seed(42);
    let mut root = root(CONFIG, &mut host);
    let mut versions = std::collections::BTreeMap::new();
    for _ in 0..200 {
        // No user id and no client IP: the pin decides.
        let (route, cookie) = request(&root, &mut host, "product", "/api/products", &[]);
        let cookie = cookie.expect("a pin is issued");
        assert!(
            cookie.ends_with("; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"),
            "{cookie}"
        );
        let pin = cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("mesh-pin="))
            .unwrap()
            .to_string();
        let route = route.unwrap();
        assert_eq!(route, expected_version("product", &pin, 9000));
        // The returning client sends the pin and stays put, without a new cookie.
        let jar = format!("theme=dark; mesh-pin={pin}");
        for _ in 0..2 {
            let (again, cookie) = request(
                &root,
                &mut host,
                "product",
                "/api/products",
                &[("cookie", &jar)],
            );
            assert_eq!(again.as_deref(), Some(route.as_str()));
            assert_eq!(cookie, None);
        }
        *versions.entry(route).or_insert(0) += 1;
    }
    root.on_tick(&mut host);
    assert_eq!(
        host.metric("meshguard.canary.edge.product.pins_issued"),
        200
    );
    assert!(versions.get("v2").copied().unwrap_or(0) > 0, "{versions:?}");
}

#[test]
fn the_client_ip_is_a_fallback_key() {
    let mut host = MockHost::new().with_property("source.address", b"10.9.8.7:51000");
    let root = root(CONFIG, &mut host);
    let (route, cookie) = request(&root, &mut host, "product", "/api/products", &[]);
    assert_eq!(
        route.as_deref(),
        Some(expected_version("product", "10.9.8.7", 9000))
    );
    assert_eq!(cookie, None);
}

#[test]
fn without_key_or_pin_the_pick_is_random_per_request() {
    let config = r#"{"services":[{"name":"cart","match":{"hosts":["*"]},
        "versions":[{"name":"v1","weight":50},{"name":"v2","weight":50}]}]}"#;
    let mut host = MockHost::new().with_seed(7);
    let mut root = root(config, &mut host);
    for _ in 0..400 {
        request(&root, &mut host, "cart", "/", &[]);
    }
    root.on_tick(&mut host);
    let v2 = host.metric("meshguard.canary.edge.cart.v2.requests");
    assert!((140..=260).contains(&v2), "{v2}");
    assert_eq!(host.metric("meshguard.canary.edge.cart.unkeyed"), 400);
}

#[test]
fn a_custom_route_header_is_the_one_set_and_stripped() {
    let config = r#"{"routeHeader":"X-Subset","services":[{"name":"cart","match":{"hosts":["cart"]},
        "versions":[{"name":"stable","weight":0},{"name":"canary","weight":100}]}]}"#;
    let mut host = MockHost::new();
    let mut root = root(config, &mut host);
    request(&root, &mut host, "cart", "/", &[("x-subset", "stable")]);
    assert_eq!(
        host.header(HeaderMap::Request, "x-subset").as_deref(),
        Some("canary")
    );
    root.on_tick(&mut host);
    assert_eq!(host.metric("meshguard.canary.edge.cart.canary.requests"), 1);
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let mut host = MockHost::new();
    let err = Canary::configure(
        &mut host,
        &Env::single(PLUGIN),
        br#"{"services":[{"name":"p","match":{"hosts":["*"]},"versions":[{"name":"v1","weight":99}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "services[0].versions");
}

#[test]
fn every_stat_is_defined_at_configure_time() {
    let mut host = MockHost::new();
    root(CONFIG, &mut host);
    let names: Vec<&str> = host.metrics.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "meshguard.canary.edge.cart.overrides_denied",
            "meshguard.canary.edge.cart.overrides_used",
            "meshguard.canary.edge.cart.pins_issued",
            "meshguard.canary.edge.cart.unkeyed",
            "meshguard.canary.edge.cart.v1.requests",
            "meshguard.canary.edge.cart.v2.requests",
            "meshguard.canary.edge.product.overrides_denied",
            "meshguard.canary.edge.product.overrides_used",
            "meshguard.canary.edge.product.pins_issued",
            "meshguard.canary.edge.product.unkeyed",
            "meshguard.canary.edge.product.v1.requests",
            "meshguard.canary.edge.product.v2.requests",
            "meshguard.canary.edge.route_header_stripped",
            "meshguard.canary.edge.unmatched",
        ]
    );
}

mod hostcalls;
