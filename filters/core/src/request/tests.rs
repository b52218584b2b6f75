use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::mock::MockHost;

fn host() -> MockHost {
    MockHost::new()
        .with_request_header(":path", "/api/orders?id=1")
        .with_request_header(":method", "GET")
        .with_request_header(":authority", "Shop.Example:8443")
        .with_request_header("x-user", "alice")
        .with_request_header("cookie", "a=1; session=s1")
        .with_request_header("cookie", "pin=p2")
        .with_property("source.address", b"10.1.2.3:5555")
        .with_property("xds.cluster_name", b"outbound|80|v1|product")
}

#[test]
fn each_header_is_read_from_the_host_at_most_once() {
    let mut host = host();
    let exchange = Exchange::new();
    {
        let ctx = Ctx::new(&mut host, &exchange);
        assert_eq!(ctx.request_header("x-user").as_deref(), Some("alice"));
        assert_eq!(ctx.request_header("X-User").as_deref(), Some("alice"));
        assert_eq!(ctx.request_header("x-absent"), None);
        assert_eq!(ctx.request_header("x-absent"), None);
        assert_eq!(&*ctx.path(), "/api/orders?id=1");
        assert_eq!(ctx.host_name().as_deref(), Some("shop.example"));
    }
    // A later callback of the same stream still has them.
    let ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(
        ctx.header(HeaderMap::Request, "x-user").as_deref(),
        Some("alice")
    );
    drop(ctx);
    assert_eq!(host.hostcall_counts(), BTreeMap::from([("header", 4)]));
}

#[test]
fn once_the_whole_map_is_read_every_lookup_is_free() {
    let mut host = host();
    let exchange = Exchange::new();
    let ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(
        ctx.cookie("pin").as_deref(),
        Some("p2"),
        "a second cookie header"
    );
    assert_eq!(ctx.cookie("session").as_deref(), Some("s1"));
    assert_eq!(ctx.request_header("x-user").as_deref(), Some("alice"));
    assert_eq!(ctx.request_header("x-nothing"), None);
    assert_eq!(ctx.headers(HeaderMap::Request).len(), 6);
    drop(ctx);
    assert_eq!(host.hostcall_counts(), BTreeMap::from([("headers", 1)]));
}

#[test]
fn writes_reach_the_host_and_later_readers_without_a_read() {
    let mut host = host();
    let exchange = Exchange::new();
    {
        let mut ctx = Ctx::new(&mut host, &exchange);
        assert_eq!(ctx.request_header("x-user").as_deref(), Some("alice"));
        ctx.set_header(HeaderMap::Request, "x-user", Some("bob"));
        ctx.set_header(HeaderMap::Request, "x-jwt-sub", Some("carol"));
        ctx.set_header(HeaderMap::Request, "x-spoofed", None);
        ctx.add_header(HeaderMap::Response, "set-cookie", "a=1");
    }
    host.reset_hostcalls();
    let ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(ctx.request_header("x-user").as_deref(), Some("bob"));
    assert_eq!(ctx.request_header("x-jwt-sub").as_deref(), Some("carol"));
    assert_eq!(ctx.request_header("x-spoofed"), None);
    drop(ctx);
    assert_eq!(host.hostcalls(), 0);
    assert!(
        host.request_headers
            .contains(&("x-user".into(), "bob".into()))
    );
    assert!(
        host.response_headers
            .contains(&("set-cookie".into(), "a=1".into()))
    );

    // The same through a map read first: the map follows the writes.
    let mut host = super::tests::host();
    let exchange = Exchange::new();
    let mut ctx = Ctx::new(&mut host, &exchange);
    let _ = ctx.headers(HeaderMap::Request);
    ctx.set_header(HeaderMap::Request, "cookie", None);
    ctx.add_header(HeaderMap::Request, "x-new", "1");
    assert_eq!(ctx.cookie("pin"), None);
    assert_eq!(ctx.request_header("x-new").as_deref(), Some("1"));
    assert_eq!(ctx.headers(HeaderMap::Request).len(), 5);
}

#[test]
fn adding_to_a_header_keeps_its_first_value() {
    let mut host = host();
    let exchange = Exchange::new();
    let mut ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(ctx.request_header("x-user").as_deref(), Some("alice"));
    ctx.add_header(HeaderMap::Request, "x-user", "bob");
    assert_eq!(ctx.request_header("x-user").as_deref(), Some("alice"));
    assert_eq!(ctx.request_header("x-late"), None);
    ctx.add_header(HeaderMap::Request, "x-late", "1");
    assert_eq!(ctx.request_header("x-late").as_deref(), Some("1"));
}

#[test]
fn the_clock_and_properties_are_read_once_per_callback() {
    let mut host = host();
    let exchange = Exchange::new();
    {
        let ctx = Ctx::new(&mut host, &exchange);
        let first = ctx.now();
        assert_eq!(ctx.now(), first);
        assert_eq!(ctx.property(&["plugin_name"]), None);
        assert_eq!(ctx.property(&["plugin_name"]), None);
    }
    host.advance(Duration::from_secs(1));
    let ctx = Ctx::new(&mut host, &exchange);
    let _ = ctx.now();
    let _ = ctx.property(&["plugin_name"]);
    drop(ctx);
    assert_eq!(
        host.hostcall_counts(),
        BTreeMap::from([("now", 2), ("property", 2)])
    );
}

#[test]
fn the_client_address_is_envoys_source_address() {
    let mut host = host().with_request_header("x-forwarded-for", "203.0.113.9, 10.9.9.9");
    let exchange = Exchange::new();
    for _ in 0..2 {
        let ctx = Ctx::new(&mut host, &exchange);
        assert_eq!(ctx.client_address(), "10.1.2.3".parse().ok());
    }
    assert_eq!(host.hostcall_counts(), BTreeMap::from([("property", 1)]));
}

#[test]
fn the_cluster_is_envoys_choice_until_a_stage_reroutes() {
    let mut host = host();
    let exchange = Exchange::new();
    let ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(ctx.cluster().as_deref(), Some("outbound|80|v1|product"));
    assert_eq!(ctx.cluster().as_deref(), Some("outbound|80|v1|product"));
    ctx.reroute(Some("outbound|80|v2|product"));
    assert_eq!(ctx.cluster().as_deref(), Some("outbound|80|v2|product"));
    ctx.reroute(None);
    assert_eq!(ctx.cluster(), None, "re-routed somewhere unknown");
    drop(ctx);
    assert_eq!(host.hostcall_counts(), BTreeMap::from([("property", 1)]));

    // Without `xds.cluster_name` (older Envoys), `cluster_name`.
    let mut host = MockHost::new().with_property("cluster_name", b"legacy");
    let exchange = Exchange::new();
    let ctx = Ctx::new(&mut host, &exchange);
    assert_eq!(ctx.cluster().as_deref(), Some("legacy"));
}

#[test]
fn claims_come_only_from_published_identities() {
    let mut host = host().with_request_header("x-jwt-sub", "mallory");
    let exchange = Exchange::new();
    let ctx = Ctx::new(&mut host, &exchange);
    let sub = ClaimPath::parse("sub").unwrap();
    assert_eq!(ctx.claim(&sub), None, "a header is never a claim");
    let identity = |provider: &str, claims: serde_json::Value| Identity {
        provider: Rc::from(provider),
        claims: Rc::new(claims.as_object().cloned().unwrap()),
        metadata: None,
    };
    ctx.set_identity(identity("a", json!({"iss": "a"})));
    ctx.set_identity(identity("b", json!({"sub": "alice"})));
    assert_eq!(
        ctx.claim(&sub).as_deref(),
        Some("alice"),
        "the first that has it"
    );
    assert_eq!(ctx.identities().len(), 2);
}
