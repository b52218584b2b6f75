//! Key extraction from every source, and which requests a limit matches.

use meshguard_filter_core::mock::MockHost;

use super::Worker;
use crate::config::parse_config;
use crate::request::{Request, client_ip, cookie, key};

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
    let host = host(headers);
    let request = Request::default();
    key(&config.limits[0], &host, &request).map(|key| key.readable())
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
        (r#"[{"clientIp":{}}]"#, "10.0.0.7"),
        (r#"[{"clientIp":{"trustedHops":1}}]"#, "198.51.100.2"),
        (r#"[{"clientIp":{"trustedHops":2}}]"#, "203.0.113.9"),
        (r#"[{"clientIp":{"trustedHops":3}}]"#, "10.0.0.7"),
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
    let one = host(&[("a", "x|y"), ("b", "z")]);
    let two = host(&[("a", "x"), ("b", "y|z")]);
    let k1 = key(&config.limits[0], &one, &Request::default()).unwrap();
    let k2 = key(&config.limits[0], &two, &Request::default()).unwrap();
    assert_eq!(k1.readable(), k2.readable(), "the log form is ambiguous...");
    assert_ne!(k1.bytes, k2.bytes, "...the hashed form is not");
}

#[test]
fn client_ip_trusts_only_the_configured_hops() {
    // Several X-Forwarded-For headers are one list, in order.
    let split = host(&[
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
    ]);
    assert_eq!(client_ip(&split, 1).unwrap().to_string(), "3.3.3.3");
    assert_eq!(client_ip(&split, 3).unwrap().to_string(), "1.1.1.1");
    // Garbage at the trusted position falls back to the peer, never to a spoofed entry.
    let garbage = host(&[("x-forwarded-for", "1.1.1.1, not-an-ip")]);
    assert_eq!(client_ip(&garbage, 1).unwrap().to_string(), "10.0.0.7");
    // IPv6 peers and XFF entries with ports.
    let v6 = MockHost::new().with_property("source.address", b"[2001:db8::1]:443");
    assert_eq!(client_ip(&v6, 0).unwrap().to_string(), "2001:db8::1");
    let ported = host(&[("x-forwarded-for", "192.0.2.1:5555")]);
    assert_eq!(client_ip(&ported, 1).unwrap().to_string(), "192.0.2.1");
    // No peer and no header: no key.
    assert_eq!(client_ip(&MockHost::new(), 0), None);
}

#[test]
fn cookies_across_headers() {
    let host = host(&[("cookie", "a=1"), ("cookie", "b=2;  sid=xyz ")]);
    assert_eq!(cookie(&host, "sid").as_deref(), Some("xyz"));
    assert_eq!(cookie(&host, "a").as_deref(), Some("1"));
    assert_eq!(cookie(&host, "c"), None);
}

#[test]
fn matching_by_path_method_and_headers() {
    let config = r#"{"limits":[
        {"name":"exact","match":{"path":{"exact":"/login"}},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"prefix","match":{"path":{"prefix":"/api/orders"},"methods":["POST"]},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"regex","match":{"path":{"regex":"/api/flash-sale/[0-9]+"}},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}},
        {"name":"hdr","match":{"headers":[{"name":"x-tier","equals":"free"},{"name":"x-internal","present":false}]},"key":[{"constant":"x"}],"rate":{"requests":1,"per":"hour"}}
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
