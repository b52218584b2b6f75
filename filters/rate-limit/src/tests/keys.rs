//! Key extraction from every source, and which requests a limit matches.

use std::rc::Rc;

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::request::Identity;
use meshguard_filter_core::{Ctx, Env, Exchange, Filter};

use super::Worker;
use crate::RateLimit;
use crate::config::{Limit, parse_config};
use crate::request::{Key, key};

fn host(headers: &[(&str, &str)]) -> MockHost {
    let mut host = MockHost::new().with_property("source.address", b"10.0.0.7:41000");
    host.request_headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/api/orders/42?page=2#top".into()),
    ];
    for (name, value) in headers {
        host.request_headers
            .push((name.to_string(), value.to_string()));
    }
    host
}

fn key_of(parts: &str, missing: &str, headers: &[(&str, &str)]) -> Option<String> {
    let config = parse_config(
        format!(
            r#"{{"limits":[{{"name":"k","key":{parts},"onMissingKey":"{missing}",
                "rate":{{"requests":1,"per":"second"}}}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    let mut host = host(headers);
    key_on(&config.limits[0], &mut host, None).map(|key| key.readable())
}

/// The key of `limit` for the request in `host`, with `claims` published by a JWT stage.
fn key_on(limit: &Limit, host: &mut MockHost, claims: Option<serde_json::Value>) -> Option<Key> {
    let exchange = Exchange::new();
    let ctx = Ctx::new(host, &exchange);
    if let Some(claims) = claims {
        ctx.set_identity(Identity {
            provider: Rc::from("shop"),
            claims: Rc::new(claims.as_object().cloned().unwrap()),
            metadata: None,
        });
    }
    key(limit, &ctx)
}

#[test]
fn every_key_source() {
    let headers: &[(&str, &str)] = &[
        ("x-jwt-sub", "alice"),
        ("x-forwarded-for", "203.0.113.9, 198.51.100.2"),
        ("cookie", "theme=dark; sid=\"s-123\""),
    ];
    let cases = [
        (r#"[{"header":"x-jwt-sub"}]"#, "alice"),
        // Envoy's `source.address`: a client-written X-Forwarded-For never counts here (Envoy
        // resolves trusted hops into the address itself).
        (r#"["clientIp"]"#, "10.0.0.7"),
        (r#"[{"cookie":"sid"}]"#, "s-123"),
        (r#"[{"cookie":"theme"}]"#, "dark"),
        (r#"["path"]"#, "/api/orders/42"),
        (r#"["method"]"#, "POST"),
        (r#"[{"constant":"global"}]"#, "global"),
        (
            r#"[{"header":"x-jwt-sub"},"method",{"constant":"v1"}]"#,
            "alice|POST|v1",
        ),
    ];
    for (parts, expected) in cases {
        assert_eq!(
            key_of(parts, "skip", headers).as_deref(),
            Some(expected),
            "{parts}"
        );
    }
}

#[test]
fn missing_parts_skip_the_limit_or_share_one_budget() {
    assert_eq!(key_of(r#"[{"header":"x-jwt-sub"}]"#, "skip", &[]), None);
    assert_eq!(
        key_of(r#"[{"cookie":"sid"}]"#, "skip", &[("cookie", "a=b")]),
        None
    );
    assert_eq!(
        key_of(r#"[{"header":"x-jwt-sub"},"method"]"#, "shared", &[]).as_deref(),
        Some("<missing>|POST")
    );
}

#[test]
fn parts_are_length_prefixed_so_separators_cannot_collide() {
    let config = parse_config(
        br#"{"limits":[{"name":"k","key":[{"header":"a"},{"header":"b"}],"rate":{"requests":1,"per":"second"}}]}"#,
    )
    .unwrap();
    let mut one = host(&[("a", "x|y"), ("b", "z")]);
    let mut two = host(&[("a", "x"), ("b", "y|z")]);
    let k1 = key_on(&config.limits[0], &mut one, None).unwrap();
    let k2 = key_on(&config.limits[0], &mut two, None).unwrap();
    assert_eq!(k1.readable(), k2.readable(), "the log form is ambiguous...");
    assert_ne!(k1.bytes, k2.bytes, "...the hashed form is not");
}

#[test]
fn the_client_address_is_the_peer_with_or_without_a_port() {
    let config = parse_config(
        br#"{"limits":[{"name":"k","key":["clientIp"],"rate":{"requests":1,"per":"second"}}]}"#,
    )
    .unwrap();
    let mut v6 = MockHost::new().with_property("source.address", b"[2001:db8::1]:443");
    assert_eq!(
        key_on(&config.limits[0], &mut v6, None).unwrap().readable(),
        "2001:db8::1"
    );
    // No peer: no key, and the limit is skipped.
    assert_eq!(key_on(&config.limits[0], &mut MockHost::new(), None), None);
}

#[test]
fn cookies_across_headers() {
    let config = parse_config(
        br#"{"limits":[{"name":"k","key":[{"cookie":"sid"},{"cookie":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
    )
    .unwrap();
    let mut host = host(&[("cookie", "a=1"), ("cookie", "b=2;  sid=xyz ")]);
    assert_eq!(
        key_on(&config.limits[0], &mut host, None)
            .unwrap()
            .readable(),
        "xyz|1"
    );
}

#[test]
fn claim_keys_use_the_verified_claim_never_a_header() {
    let config = parse_config(
        br#"{"limits":[{"name":"k","key":[{"claim":"sub"},{"claim":"realm_access.roles"}],
            "rate":{"requests":1,"per":"second"}}]}"#,
    )
    .unwrap();
    let limit = &config.limits[0];
    let mut spoofed = host(&[("x-jwt-sub", "bob"), ("sub", "bob")]);
    assert_eq!(
        key_on(limit, &mut spoofed, None),
        None,
        "no verified token, no key"
    );
    let claims = serde_json::json!({"sub": "alice", "realm_access": {"roles": ["a", "b"]}});
    assert_eq!(
        key_on(limit, &mut spoofed, Some(claims))
            .unwrap()
            .readable(),
        "alice|a,b"
    );
}

#[test]
fn claim_keys_need_a_jwt_stage_in_the_module() {
    let config = br#"{"limits":[{"name":"k","key":["method",{"claim":"sub"}],
        "rate":{"requests":1,"per":"second"}}]}"#;
    let err = RateLimit::configure(&mut MockHost::new(), &Env::single("rl"), config).unwrap_err();
    assert_eq!(err.field, "limits[0].key[1].claim");
    assert!(err.message.contains("jwtAuth"), "{err}");
    let with_claims = Env {
        claims: true,
        ..Env::single("rl")
    };
    assert!(RateLimit::configure(&mut MockHost::new(), &with_claims, config).is_ok());
}

#[test]
fn matching_by_path_method_and_headers() {
    let config = r#"{"limits":[
        {"name":"exact","match":{"path":"/login"},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"prefix","match":{"prefix":"/api/orders","methods":["POST"]},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"regex","match":{"regex":"/api/flash-sale/[0-9]+"},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"hdr","match":{"headers":[{"name":"x-tier","exact":"free"},{"name":"x-internal","present":false}]},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}}
    ]}"#;
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        ("GET", "/login", &[], &["exact"]),
        ("GET", "/login?next=/", &[], &["exact"]),
        ("GET", "/login/x", &[], &[]),
        ("POST", "/api/orders/7", &[], &["prefix"]),
        ("GET", "/api/orders/7", &[], &[]),
        ("GET", "/api/flash-sale/99", &[], &["regex"]),
        ("GET", "/api/flash-sale/99/x", &[], &[]),
        ("GET", "/", &[("x-tier", "free")], &["hdr"]),
        ("GET", "/", &[("x-tier", "free"), ("x-internal", "1")], &[]),
        ("GET", "/", &[("x-tier", "gold")], &[]),
    ];
    for (method, path, headers, expected) in cases {
        // Each limit admits one request an hour: a matching limit shows up as a denial on the
        // second identical request.
        let mut worker = Worker::new(config);
        assert!(worker.send(method, path, headers).admitted());
        let second = worker.send(method, path, headers);
        let mut charged: Vec<&str> = ["exact", "prefix", "regex", "hdr"]
            .into_iter()
            .filter(|name| worker.metric(name, "allowed") == 1)
            .collect();
        charged.sort_unstable();
        assert_eq!(charged, *expected, "{method} {path} {headers:?}");
        assert_eq!(second.admitted(), expected.is_empty(), "{method} {path}");
    }
}

#[test]
fn keys_isolate_clients() {
    let mut worker = Worker::new(&super::per_user(2, "minute", 0));
    assert_eq!(worker.admitted(5, "/", &[("x-user", "alice")]), 2);
    assert_eq!(worker.admitted(5, "/", &[("x-user", "bob")]), 2);
    assert_eq!(worker.admitted(5, "/", &[("x-user", "alice")]), 0);
    // No x-user: the limit is skipped entirely.
    assert_eq!(worker.admitted(5, "/", &[]), 5);
}
