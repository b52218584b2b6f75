//! Hostcalls per request, pinned: in Envoy each one crosses into V8 (a microsecond or more), so
//! a new read on the hot path must show up here as a failing count, not as benchmark noise.

use std::collections::BTreeMap;

use super::*;

/// The benchmark's configuration (`cargo xtask bench`): one service on every host under a path
/// prefix, a sticky user header with a cookie fallback, a gated override header.
const BENCH: &str = r#"{"services":[{"name":"product","match":{"hosts":["*"], "prefix":"/api/products"},
    "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10}],
    "stickyKey":[{"header":"x-user-id"},{"cookie":"session"}],
    "overrides":{"header":"x-canary-version",
                 "onlyWithHeader":{"name":"x-meshguard-internal"}}}]}"#;

fn counts(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    pairs.iter().copied().collect()
}

/// The benchmark's minimal canary: a sticky header, every host and path, no overrides.
const MINIMAL: &str = r#"{"services":[{"name":"product","match":{"hosts":["*"]},
    "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10}],
    "stickyKey":[{"header":"x-user-id"}]}]}"#;

/// The host calls of one request (request and response) through [`BENCH`] with `headers`
/// besides the pseudo-headers.
fn calls(path: &str, headers: &[(&str, &str)]) -> BTreeMap<&'static str, u32> {
    calls_with(BENCH, path, headers)
}

fn calls_with(config: &str, path: &str, headers: &[(&str, &str)]) -> BTreeMap<&'static str, u32> {
    let mut host = MockHost::new()
        .with_request_header(":authority", "shop.local")
        .with_request_header(":path", path)
        .with_request_header(":method", "GET")
        .with_response_header(":status", "200");
    for (name, value) in headers {
        host = host.with_request_header(name, value);
    }
    let root = root(config, &mut host);
    host.reset_hostcalls();
    let mut http = Stream::new(root.new_http(7));
    assert_eq!(http.on_request_headers(&mut host, true), Decision::Continue);
    assert_eq!(
        http.on_response_headers(&mut host, true),
        Decision::Continue
    );
    host.hostcall_counts()
}

#[test]
fn without_a_path_prefix_or_overrides_a_request_makes_three() {
    // The route header (spoof check), the sticky header, the route header's replace.
    assert_eq!(
        calls_with(MINIMAL, "/api/products", &[("x-user-id", "user-0042")]),
        counts(&[("header", 2), ("set_header", 1)])
    );
}

#[test]
fn a_request_with_its_sticky_header_makes_five() {
    // Reads: the route header (a client copy is counted as stripped), :path (the prefix), the
    // override header (absent, so the gate is never read), the sticky header; then one
    // replace of the route header. Counters wait for the tick. No cookie is parsed and the
    // response is not touched.
    assert_eq!(
        calls("/api/products", &[("x-user-id", "user-0042")]),
        counts(&[("header", 4), ("set_header", 1)])
    );
}

#[test]
fn a_spoofed_route_header_costs_no_extra_call() {
    // The replace removes every client copy: no separate removal.
    assert_eq!(
        calls(
            "/api/products",
            &[("x-user-id", "user-0042"), ("x-mesh-version", "v2")]
        ),
        counts(&[("header", 4), ("set_header", 1)])
    );
}

#[test]
fn cookies_are_read_only_when_the_sticky_header_is_missing() {
    assert_eq!(
        calls("/api/products", &[("cookie", "session=abc")]),
        counts(&[("header", 4), ("headers", 1), ("set_header", 1),])
    );
}

#[test]
fn an_unmatched_request_reads_the_route_header_and_the_path() {
    assert_eq!(
        calls("/api/orders", &[("x-user-id", "user-0042")]),
        counts(&[("header", 2)])
    );
}
