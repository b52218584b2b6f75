//! End-to-end: the canary filter in real Envoy 1.40 (V8, two workers) in front of two versions
//! of the product service, each its own cluster. The route table matches the `x-mesh-version`
//! header the filter sets, exactly like the VirtualServices in `istio/canary/`:
//!
//! - a user lands on the version the documented hash assigns, on every request and every new
//!   connection (and the wasm build computes the same hash as the native one);
//! - a tester override works only with the gate header;
//! - a client-sent route header is stripped, and Envoy re-selects the route after the filter
//!   sets the header (the request's first route match used the client's header);
//! - raising the canary weight (a second Envoy with the new config) keeps every earlier canary
//!   user in the canary;
//! - anonymous users are pinned with a cookie;
//! - a header value that is not UTF-8 (clients send any bytes) neither panics the filter's VM
//!   nor breaks later requests on any worker.
//!
//! Every scenario runs twice: against the canary module and against the `meshguard` pipeline
//! module with the same configuration in its `canary` section.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use meshguard_canary::hash::bucket;
use meshguard_testkit::modules::stat;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, Listener, Module, Route, Stage, Upstream, http, scenarios,
};

scenarios!(
    each_user_stays_on_one_version_across_requests_and_connections,
    an_override_works_only_with_the_gate_header,
    a_spoofed_route_header_is_stripped_and_envoy_reselects_the_route,
    raising_the_canary_weight_keeps_earlier_canary_users_there,
    anonymous_users_are_pinned_by_a_cookie,
    header_values_that_are_not_utf8_do_not_break_the_filter,
    invalid_weights_are_rejected_and_envoy_refuses_to_start,
);

/// Two product versions and the clusters in front of them.
struct Versions {
    v1: Upstream,
    v2: Upstream,
}

impl Versions {
    fn start() -> Self {
        Self {
            v1: Upstream::start("v1").unwrap(),
            v2: Upstream::start("v2").unwrap(),
        }
    }
}

/// The filter configuration with the canary at `canary_percent`.
fn config(canary_percent: u32) -> String {
    format!(
        r#"{{
          "pinCookie": {{"name": "mesh-canary", "maxAgeSeconds": 3600}},
          "services": [{{
            "name": "product",
            "match": {{"hosts": ["127.0.0.1", "product.commerce.svc.cluster.local"],
                       "prefix": "/api/products"}},
            "versions": [{{"name": "v1", "weight": {}}}, {{"name": "v2", "weight": {canary_percent}}}],
            "stickyKey": [{{"header": "x-user-id"}}, {{"cookie": "session"}}],
            "overrides": {{"header": "x-canary-version",
                           "onlyWithHeader": {{"name": "x-internal-caller", "value": "qa"}}}}
          }}]
        }}"#,
        100 - canary_percent
    )
}

fn envoy(module: Module, versions: &Versions, canary_percent: u32) -> Envoy {
    let canary = module
        .filter(Stage::Canary, &config(canary_percent))
        .expect("the module is built");
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("product-v1", versions.v1.addr()))
        .cluster(Cluster::new("product-v2", versions.v2.addr()))
        .listener(
            Listener::new("edge")
                .filter(canary)
                .route(Route::prefix("/", "product-v2").header("x-mesh-version", "v2"))
                .route(Route::prefix("/", "product-v1").header("x-mesh-version", "v1"))
                // No route header (the filter matched no service): the stable version.
                .route(Route::prefix("/", "product-v1")),
        );
    Envoy::start(&bootstrap, 2).unwrap()
}

/// The version the documented hash assigns to `user` at `canary_percent`.
fn expected(user: &str, canary_percent: u32) -> &'static str {
    if bucket("product", user.as_bytes()) >= (100 - canary_percent) * 100 {
        "v2"
    } else {
        "v1"
    }
}

/// GET on a new connection; returns (version that answered, echo of what it received).
fn get(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> (String, serde_json::Value) {
    let response = http::get(&format!("{}{path}", envoy.url("edge")), headers).unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let echo = response.json().unwrap();
    (echo["upstream"].as_str().unwrap().to_string(), echo)
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i:04}")).collect()
}

/// Several requests on one kept-alive HTTP/1.1 connection; returns who answered each.
fn on_one_connection(envoy: &Envoy, users: &[String]) -> Vec<String> {
    let address = envoy.url("edge").trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    users
        .iter()
        .map(|user| {
            write!(
                writer,
                "GET /api/products HTTP/1.1\r\nhost: {address}\r\nx-user-id: {user}\r\n\r\n"
            )
            .unwrap();
            let (mut upstream, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "x-upstream" => upstream = value.trim().to_string(),
                        "content-length" => length = value.trim().parse().unwrap(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            upstream
        })
        .collect()
}

fn each_user_stays_on_one_version_across_requests_and_connections(module: Module) {
    let versions = Versions::start();
    let envoy = envoy(module, &versions, 10);
    let users = users(200);
    let mut canary = 0;
    for user in &users {
        let want = expected(user, 10);
        for _ in 0..2 {
            let (version, echo) = get(&envoy, "/api/products/p-100", &[("x-user-id", user)]);
            assert_eq!(version, want, "{user}");
            assert_eq!(echo["headers"]["x-mesh-version"], want, "{echo}");
        }
        canary += usize::from(want == "v2");
    }
    // The same users again, many per kept-alive connection.
    for chunk in users.chunks(50) {
        let answered = on_one_connection(&envoy, chunk);
        for (user, version) in chunk.iter().zip(answered) {
            assert_eq!(
                version,
                expected(user, 10),
                "{user} on a kept-alive connection"
            );
        }
    }
    assert!(
        (8..=36).contains(&canary),
        "about 10% of 200 users in v2: {canary}"
    );
    let v2_requests = 3 * canary as u64;
    assert_eq!(versions.v2.hits("/api/products"), v2_requests);
    assert_eq!(
        versions.v1.hits("/api/products"),
        3 * users.len() as u64 - v2_requests
    );
    let stats = envoy.flushed_stats().unwrap();
    let stat = |name: &str| stat(&stats, Stage::Canary, name);
    assert_eq!(stat("product.v2.requests"), v2_requests as i64);
    assert_eq!(
        stat("product.v1.requests") + stat("product.v2.requests"),
        3 * users.len() as i64
    );
}

fn an_override_works_only_with_the_gate_header(module: Module) {
    let versions = Versions::start();
    let envoy = envoy(module, &versions, 10);
    let user = users(100)
        .into_iter()
        .find(|u| expected(u, 10) == "v1")
        .unwrap();
    for (extra, want) in [
        (vec![], "v1"),
        (vec![("x-internal-caller", "someone")], "v1"),
        (vec![("x-internal-caller", "qa")], "v2"),
    ] {
        let mut headers = vec![("x-user-id", user.as_str()), ("x-canary-version", "v2")];
        headers.extend(extra.iter().copied());
        let (version, _) = get(&envoy, "/api/products", &headers);
        assert_eq!(version, want, "{headers:?}");
    }
    let stats = envoy.flushed_stats().unwrap();
    let stat = |name: &str| stat(&stats, Stage::Canary, name);
    assert_eq!(stat("product.overrides_used"), 1);
    assert_eq!(stat("product.overrides_denied"), 2);
}

fn a_spoofed_route_header_is_stripped_and_envoy_reselects_the_route(module: Module) {
    let versions = Versions::start();
    let envoy = envoy(module, &versions, 10);
    let all = users(100);
    let stable = all.iter().find(|u| expected(u, 10) == "v1").unwrap();
    let canary = all.iter().find(|u| expected(u, 10) == "v2").unwrap();
    // The client's header picks the first route match; the filter's header must win.
    for (user, spoof, want) in [(stable, "v2", "v1"), (canary, "v1", "v2")] {
        let (version, echo) = get(
            &envoy,
            "/api/products",
            &[("x-user-id", user), ("x-mesh-version", spoof)],
        );
        assert_eq!(version, want, "{user} spoofing {spoof}");
        assert_eq!(echo["headers"]["x-mesh-version"], want, "{echo}");
    }
    // A canary user without any route header: the first match is the fallback (v1); only a
    // re-selected route reaches v2.
    let (version, _) = get(&envoy, "/api/products", &[("x-user-id", canary)]);
    assert_eq!(version, "v2");
    // Outside the service (another path, another host): the spoofed header is removed, not
    // passed on.
    for (path, host) in [
        ("/api/orders", None),
        ("/api/products", Some("search.commerce")),
    ] {
        let mut headers = vec![("x-mesh-version", "v2"), ("x-user-id", canary.as_str())];
        headers.extend(host.map(|host| ("host", host)));
        let (version, echo) = get(&envoy, path, &headers);
        assert_eq!(version, "v1", "{path} {host:?}");
        assert!(echo["headers"].get("x-mesh-version").is_none(), "{echo}");
    }
    // The service's other host name (with a port) is the same service.
    let (version, _) = get(
        &envoy,
        "/api/products",
        &[
            ("x-user-id", canary),
            ("host", "product.commerce.svc.cluster.local:8080"),
        ],
    );
    assert_eq!(version, "v2");

    let stats = envoy.flushed_stats().unwrap();
    let stat = |name: &str| stat(&stats, Stage::Canary, name);
    assert_eq!(stat("route_header_stripped"), 4);
    assert_eq!(stat("unmatched"), 2);
}

fn raising_the_canary_weight_keeps_earlier_canary_users_there(module: Module) {
    let versions = Versions::start();
    let users = users(200);
    let assign = |envoy: &Envoy| -> Vec<String> {
        users
            .iter()
            .map(|user| get(envoy, "/api/products", &[("x-user-id", user)]).0)
            .collect()
    };
    let at_10 = assign(&envoy(module, &versions, 10));
    let at_30 = assign(&envoy(module, &versions, 30));
    let in_canary = |assigned: &[String]| assigned.iter().filter(|v| *v == "v2").count();
    for ((user, before), after) in users.iter().zip(&at_10).zip(&at_30) {
        assert_eq!(before, expected(user, 10));
        assert_eq!(after, expected(user, 30));
        if before == "v2" {
            assert_eq!(
                after, "v2",
                "{user} left the canary when its weight went up"
            );
        }
    }
    assert!(
        in_canary(&at_30) > in_canary(&at_10) + 20,
        "the canary grew: {} -> {}",
        in_canary(&at_10),
        in_canary(&at_30)
    );
}

fn anonymous_users_are_pinned_by_a_cookie(module: Module) {
    let versions = Versions::start();
    let envoy = envoy(module, &versions, 50);
    for _ in 0..10 {
        let response = http::get(&format!("{}/api/products", envoy.url("edge")), &[]).unwrap();
        let version = response.header("x-upstream").unwrap().to_string();
        let cookie = response
            .header("set-cookie")
            .expect("a pin cookie")
            .to_string();
        assert!(cookie.contains("Max-Age=3600"), "{cookie}");
        let pin = cookie.split(';').next().unwrap().to_string();
        let value = pin.trim_start_matches("mesh-canary=");
        assert_eq!(
            version,
            expected(value, 50),
            "the pin is hashed like a user id"
        );
        for _ in 0..3 {
            let again = http::get(
                &format!("{}/api/products", envoy.url("edge")),
                &[("cookie", &pin)],
            )
            .unwrap();
            assert_eq!(again.header("x-upstream"), Some(version.as_str()));
            assert_eq!(
                again.header("set-cookie"),
                None,
                "no new pin for a pinned user"
            );
        }
    }
    assert_eq!(
        stat(
            &envoy.flushed_stats().unwrap(),
            Stage::Canary,
            "product.pins_issued"
        ),
        10
    );
}

/// Sends one raw request with the given `x-user-id` bytes on a new connection; returns the
/// status line.
fn raw_status(envoy: &Envoy, user_id: &[u8]) -> String {
    let address = envoy.url("edge").trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "GET /api/products HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\nx-user-id: "
    )
    .into_bytes();
    request.extend_from_slice(user_id);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

fn header_values_that_are_not_utf8_do_not_break_the_filter(module: Module) {
    let versions = Versions::start();
    let envoy = envoy(module, &versions, 10);
    // New connections spread over both workers.
    for _ in 0..8 {
        let status = raw_status(&envoy, b"\xff\xfe-user-\xc3\x28");
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "{status}\n{}",
            envoy.log()
        );
    }
    for user in users(20) {
        let (version, _) = get(&envoy, "/api/products", &[("x-user-id", &user)]);
        assert_eq!(version, expected(&user, 10), "{user}");
    }
    let log = envoy.log();
    assert!(!log.contains("panicked"), "{log}");
}

fn invalid_weights_are_rejected_and_envoy_refuses_to_start(module: Module) {
    let versions = Versions::start();
    let canary = module
        .filter(
            Stage::Canary,
            r#"{"services":[{"name":"product","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":90},{"name":"v2","weight":20}]}]}"#,
        )
        .unwrap();
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("product-v1", versions.v1.addr()))
        .listener(
            Listener::new("edge")
                .filter(canary)
                .route(Route::prefix("/", "product-v1")),
        );
    let err = Envoy::start(&bootstrap, 1).expect_err("Envoy must refuse the configuration");
    let text = format!("{err:#}");
    let field = match module {
        Module::Single => "services[0].versions",
        Module::Pipeline => "canary.services[0].versions",
    };
    assert!(
        text.contains(&format!(
            "invalid configuration at `{field}`: weights add up to 110"
        )),
        "{text}"
    );
}
