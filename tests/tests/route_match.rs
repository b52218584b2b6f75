//! Differential: the route matcher every meshguard filter uses decides as Envoy's own route
//! table does. The same matches go into an Envoy route table (one listener, each route
//! answering with its number) and into the canary filter's services (another listener, each
//! service setting a route header that a route answers for); a table of requests with query
//! strings, percent-encoded characters, trailing slashes, case and header variants goes to
//! both, and every answer must agree. First match wins on both sides.
//!
//! It also pins what Envoy 1.40 does with a `prefix` and a query string: its documentation says
//! a prefix matches the beginning of `:path`, but the route table compares the path without its
//! query, so `prefix: /search?q=` never matches (meshguard refuses such a prefix).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use meshguard_testkit::{Bootstrap, Envoy, Listener, Module, Route, Stage};
use serde_json::{Value, json};

/// Each match as Envoy spells it and as meshguard does.
fn matches() -> Vec<(Value, Value)> {
    let header = |prefix: &str, envoy: Value, ours: Value| {
        (
            json!({"prefix": prefix, "headers": [envoy]}),
            json!({"prefix": prefix, "headers": [ours]}),
        )
    };
    vec![
        (
            json!({"path": "/api/orders"}),
            json!({"path": "/api/orders"}),
        ),
        (
            json!({"prefix": "/api/orders/"}),
            json!({"prefix": "/api/orders/"}),
        ),
        (
            json!({"safe_regex": {"regex": "/api/items/[0-9]+"}}),
            json!({"regex": "/api/items/[0-9]+"}),
        ),
        (json!({"path": "/a%20b"}), json!({"path": "/a%20b"})),
        (json!({"path": "/trailing/"}), json!({"path": "/trailing/"})),
        (json!({"path": "/Case"}), json!({"path": "/Case"})),
        (
            json!({"safe_regex": {"regex": "/v\\d+/.*"}}),
            json!({"regex": "/v\\d+/.*"}),
        ),
        header(
            "/h/exact",
            json!({"name": "x-env", "string_match": {"exact": "prod"}}),
            json!({"name": "x-env", "exact": "prod"}),
        ),
        header(
            "/h/invert",
            json!({"name": "x-env", "string_match": {"exact": "prod"}, "invert_match": true}),
            json!({"name": "x-env", "exact": "prod", "invert": true}),
        ),
        header(
            "/h/prefix",
            json!({"name": "x-tier", "string_match": {"prefix": "gold"}}),
            json!({"name": "x-tier", "prefix": "gold"}),
        ),
        header(
            "/h/regex",
            json!({"name": "x-id", "string_match": {"safe_regex": {"regex": "[a-f0-9]{4}"}}}),
            json!({"name": "x-id", "regex": "[a-f0-9]{4}"}),
        ),
        // RE2 runs in UTF-8 mode: `.` is one character, so `é` (two bytes) is one `.`.
        header(
            "/h/utf8",
            json!({"name": "x-word", "string_match": {"safe_regex": {"regex": "caf."}}}),
            json!({"name": "x-word", "regex": "caf."}),
        ),
        header(
            "/h/utf8-literal",
            json!({"name": "x-word", "string_match": {"safe_regex": {"regex": "café|caf\\xC3\\xA9s"}}}),
            json!({"name": "x-word", "regex": "café|caf\\xC3\\xA9s"}),
        ),
        header(
            "/h/present",
            json!({"name": "x-flag", "present_match": true}),
            json!({"name": "x-flag", "present": true}),
        ),
        header(
            "/h/absent",
            json!({"name": "x-flag", "present_match": false}),
            json!({"name": "x-flag", "present": false}),
        ),
        header(
            "/h/not-present",
            json!({"name": "x-flag", "present_match": true, "invert_match": true}),
            json!({"name": "x-flag", "present": true, "invert": true}),
        ),
        header(
            "/h/method",
            json!({"name": ":method", "string_match": {"exact": "POST"}}),
            json!({"name": ":method", "exact": "POST"}),
        ),
    ]
}

/// A request: method, the request-target as sent, and extra headers.
type Request = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// Requests: the request-target as sent, and extra headers.
fn requests() -> Vec<Request> {
    let get = |target| ("GET", target, vec![]);
    let with = |target, name, value| ("GET", target, vec![(name, value)]);
    vec![
        get("/api/orders"),
        get("/api/orders?page=2"),
        get("/api/orders/"),
        get("/api/orders/17"),
        get("/api/orders/17?x=1"),
        get("/api/ordersx"),
        get("/API/orders"),
        get("/api/orders%2F17"),
        get("/api/items/42"),
        get("/api/items/42?sort=asc"),
        get("/api/items/42/"),
        get("/api/items/x42"),
        get("/api/items/"),
        get("/search?q=shoes"),
        get("/search"),
        get("/search?x=1&q=a"),
        get("/a%20b"),
        get("/a%20b?x=1"),
        get("/a%2520b"),
        get("/a%20B"),
        get("/trailing/"),
        get("/trailing"),
        get("/trailing/?x"),
        get("/trailing//"),
        get("/Case"),
        get("/case"),
        get("/v2/items"),
        get("/v22/x?y=1"),
        get("/v/x"),
        get("/vx2/x"),
        with("/h/exact", "x-env", "prod"),
        with("/h/exact", "x-env", "PROD"),
        with("/h/exact", "x-env", "prod-eu"),
        get("/h/exact"),
        with("/h/invert", "x-env", "prod"),
        with("/h/invert", "x-env", "dev"),
        get("/h/invert"),
        with("/h/prefix", "x-tier", "gold-plus"),
        with("/h/prefix", "x-tier", "silver"),
        get("/h/prefix"),
        with("/h/regex", "x-id", "beef"),
        with("/h/regex", "x-id", "beefy"),
        with("/h/regex", "x-id", "BEEF"),
        get("/h/regex"),
        with("/h/utf8", "x-word", "café"),
        with("/h/utf8", "x-word", "cafe"),
        with("/h/utf8", "x-word", "cafés"),
        with("/h/utf8-literal", "x-word", "café"),
        with("/h/utf8-literal", "x-word", "cafés"),
        with("/h/utf8-literal", "x-word", "cafe"),
        with("/h/present", "x-flag", "1"),
        with("/h/present", "x-flag", ""),
        get("/h/present"),
        with("/h/absent", "x-flag", "1"),
        get("/h/absent"),
        with("/h/not-present", "x-flag", "1"),
        get("/h/not-present"),
        ("POST", "/h/method", vec![("content-length", "0")]),
        get("/h/method"),
        get("/unmatched"),
    ]
}

/// One HTTP/1.1 request with exactly this request-target; returns status and body.
fn raw(address: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    writer.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn the_filters_matcher_decides_as_envoys_route_table() {
    let matches = matches();
    let mut envoy_routes = Listener::new("envoy");
    let mut services = Vec::new();
    let mut filter_routes = Listener::new("filter");
    for (index, (envoy, ours)) in matches.iter().enumerate() {
        envoy_routes =
            envoy_routes.route(Route::direct(envoy.clone(), 200, format!("route-{index}")));
        services.push(json!({"name": format!("m{index}"), "match": ours,
                             "versions": [{"name": format!("route-{index}"), "weight": 100}]}));
        filter_routes = filter_routes.route(
            Route::prefix("/", "none")
                .header("x-route", format!("route-{index}"))
                .answer(200, format!("route-{index}")),
        );
    }
    // Envoy only: a prefix with a query string, which never matches in Envoy 1.40.
    envoy_routes = envoy_routes.route(Route::direct(
        json!({"prefix": "/search?q="}),
        200,
        "query-prefix",
    ));
    let none = || Route::direct(json!({"prefix": "/"}), 200, "none");
    let canary = json!({"routeHeader": "x-route", "services": services}).to_string();
    let filter = Module::Single.filter(Stage::Canary, &canary).unwrap();
    let bootstrap = Bootstrap::new()
        .listener(envoy_routes.route(none()))
        .listener(filter_routes.filter(filter).route(none()));
    let envoy = Envoy::start(&bootstrap, 1).unwrap();
    let address = |listener: &str| {
        envoy
            .url(listener)
            .trim_start_matches("http://")
            .to_string()
    };
    let (by_envoy, by_filter) = (address("envoy"), address("filter"));
    let mut disagreements = Vec::new();
    let mut matched = std::collections::BTreeSet::new();
    for (method, target, headers) in requests() {
        let expected = raw(&by_envoy, method, target, &headers);
        let got = raw(&by_filter, method, target, &headers);
        assert_eq!(expected.0, 200, "{method} {target}: {expected:?}");
        if expected != got {
            disagreements.push(format!(
                "{method} {target} {headers:?}: Envoy {}, filter {}",
                expected.1, got.1
            ));
        }
        matched.insert(expected.1);
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert_eq!(
        raw(&by_envoy, "GET", "/search?q=shoes", &[]).1,
        "none",
        "Envoy matches a prefix against the path without its query"
    );
    // The table exercises every route and the fallback.
    assert_eq!(matched.len(), matches.len() + 1, "{matched:?}");
}
