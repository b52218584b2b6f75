use std::collections::BTreeMap;

use meshguard_filter_core::LocalResponse;
use meshguard_filter_core::Stream;
use meshguard_filter_core::mock::MockHost;
use serde_json::json;

use super::*;

const RBAC: &str = r#"package envoy.authz
import rego.v1

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

allow if {
    input.attributes.request.http.method == "GET"
    ["api", "users", claims.sub, "orders"] = input.parsed_path
}

allow := {"allowed": true, "headers": {"x-user": claims.sub}, "response_headers_to_add": {"x-authz": "checked"}, "request_headers_to_remove": ["x-debug"]} if {
    input.parsed_path == ["api", "profile"]
}

allow if {
    input.attributes.request.http.method == "POST"
    input.parsed_path == ["api", "payments"]
    input.parsed_body.amount <= 100
}
"#;

fn root(extra: serde_json::Value) -> (AuthzRoot, MockHost) {
    let mut config = json!({"modules": {"rbac.rego": RBAC}});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let mut host = MockHost::new();
    let root = Authz::configure(
        &mut host,
        &Env::single("edge"),
        config.to_string().as_bytes(),
    )
    .unwrap();
    (root, host)
}

fn request(method: &str, path: &str, sub: Option<&str>) -> MockHost {
    let mut host = MockHost::new()
        .with_request_header(":method", method)
        .with_request_header(":path", path)
        .with_request_header(":authority", "shop.example");
    if let Some(sub) = sub {
        let payload = json!({"sub": sub, "realm_access": {"roles": ["customer"]}});
        let serde_json::Value::Object(payload) = payload else {
            unreachable!()
        };
        host = host.with_property(
            claims::FILTER_STATE,
            &claims::encode([("verified_jwt", &payload)]),
        );
    }
    host
}

/// The counters after a flush into the host they were defined on, without the zeros.
fn metrics(root: &AuthzRoot, host: &mut MockHost) -> BTreeMap<String, i64> {
    root.flush_metrics(host);
    host.metrics
        .iter()
        .filter(|(_, (_, value))| *value != 0)
        .map(|(name, (_, value))| {
            (
                name.trim_start_matches("meshguard.authz.edge.").to_string(),
                *value,
            )
        })
        .collect()
}

#[test]
fn a_customer_reads_their_orders_with_three_host_calls() {
    let (root, _) = root(json!({"cacheSize": 0}));
    let mut host = request("GET", "/api/users/alice/orders", Some("alice"));
    let decision = Stream::new(root.new_http(1)).on_request_headers(&mut host, true);
    assert_eq!(decision, Decision::Continue);
    assert_eq!(
        host.hostcall_counts(),
        BTreeMap::from([("header", 2), ("property", 1)]),
        "`:method`, `:path` and the verified claims; nothing else"
    );
}

#[test]
fn another_users_orders_are_refused_with_opa_envoys_403() {
    let (root, mut config_host) = root(json!({}));
    let mut host = request("GET", "/api/users/bob/orders", Some("alice"));
    let decision = Stream::new(root.new_http(1)).on_request_headers(&mut host, true);
    assert_eq!(decision, Decision::Respond(LocalResponse::new(403, "")));
    assert_eq!(
        metrics(&root, &mut config_host),
        BTreeMap::from([("cache.miss".into(), 1), ("denied.policy".into(), 1)])
    );
}

#[test]
fn a_claim_header_sent_by_the_client_is_not_a_claim() {
    let (root, _) = root(json!({}));
    let mut host = request("GET", "/api/users/alice/orders", None)
        .with_request_header("x-jwt-sub", "alice")
        .with_request_header("x-jwt-payload", "eyJzdWIiOiJhbGljZSJ9");
    let decision = Stream::new(root.new_http(1)).on_request_headers(&mut host, true);
    assert_eq!(decision, Decision::Respond(LocalResponse::new(403, "")));
}

#[test]
fn an_object_decision_changes_headers_both_ways() {
    let (root, _) = root(json!({}));
    let mut host = request("GET", "/api/profile", Some("alice"))
        .with_request_header("x-debug", "1")
        .with_request_header("x-user", "mallory");
    let mut http = Stream::new(root.new_http(1));
    assert_eq!(http.on_request_headers(&mut host, true), Decision::Continue);
    let headers: BTreeMap<String, String> = host.request_headers.iter().cloned().collect();
    assert_eq!(headers.get("x-user").map(String::as_str), Some("alice"));
    assert!(!headers.contains_key("x-debug"));
    assert_eq!(
        http.on_response_headers(&mut host, false),
        Decision::Continue
    );
    assert_eq!(
        host.response_headers,
        [("x-authz".to_string(), "checked".to_string())]
    );
}

#[test]
fn bodies_are_buffered_then_decided() {
    let (root, _) = root(json!({"withRequestBody": {"maxRequestBytes": 64}}));
    let mut http = Stream::new(root.new_http(1));
    let mut host = request("POST", "/api/payments", Some("alice"))
        .with_request_header("content-type", "application/json");
    assert_eq!(http.on_request_headers(&mut host, false), Decision::Pause);
    host.request_body = br#"{"amount":"#.to_vec();
    assert_eq!(http.on_request_body(&mut host, 10, false), Decision::Pause);
    host.request_body = br#"{"amount": 20}"#.to_vec();
    assert_eq!(
        http.on_request_body(&mut host, 14, true),
        Decision::Continue
    );

    let mut http = Stream::new(root.new_http(2));
    let mut host = request("POST", "/api/payments", Some("alice"))
        .with_request_header("content-type", "application/json")
        .with_request_body(br#"{"amount": 500}"#);
    assert_eq!(http.on_request_headers(&mut host, false), Decision::Pause);
    assert_eq!(
        http.on_request_body(&mut host, 15, true),
        Decision::Respond(LocalResponse::new(403, ""))
    );
}

#[test]
fn bodies_over_the_bound_get_413_without_being_read() {
    let (root, mut config_host) = root(json!({"withRequestBody": {"maxRequestBytes": 64}}));
    let mut host =
        request("POST", "/api/payments", Some("alice")).with_request_header("content-length", "65");
    let too_large = Decision::Respond(LocalResponse::new(413, ""));
    assert_eq!(
        Stream::new(root.new_http(1)).on_request_headers(&mut host, false),
        too_large
    );

    let mut http = Stream::new(root.new_http(2));
    let mut host = request("POST", "/api/payments", Some("alice"));
    assert_eq!(http.on_request_headers(&mut host, false), Decision::Pause);
    host.reset_hostcalls();
    assert_eq!(http.on_request_body(&mut host, 100, false), too_large);
    assert_eq!(
        host.hostcalls(),
        0,
        "the body is never copied into the module"
    );
    assert_eq!(
        metrics(&root, &mut config_host).get("denied.body_too_large"),
        Some(&2)
    );
}

#[test]
fn a_policy_that_does_not_read_the_body_never_waits_for_it() {
    let config = json!({"modules": {"p.rego": "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.method == \"POST\""},
                        "withRequestBody": {"maxRequestBytes": 64}});
    let mut host = MockHost::new();
    let root = Authz::configure(
        &mut host,
        &Env::single("edge"),
        config.to_string().as_bytes(),
    )
    .unwrap();
    let mut http = Stream::new(root.new_http(1));
    let mut request = request("POST", "/api/payments", None);
    assert_eq!(
        http.on_request_headers(&mut request, false),
        Decision::Continue
    );
    assert_eq!(
        http.on_request_body(&mut request, 1000, false),
        Decision::Continue
    );
}

#[test]
fn invalid_configuration_is_refused_naming_the_field() {
    let mut host = MockHost::new();
    let err = Authz::configure(
        &mut host,
        &Env::single("edge"),
        br#"{"modules": {"p.rego": "package envoy.authz\nallow if {"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, r#"modules["p.rego"]"#);
    let err = Authz::configure(
        &mut host,
        &Env::single("edge"),
        br#"{"modules": {"p.rego": "package x"}, "onError": "ignore"}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "onError");
}

#[test]
fn configure_says_what_the_policy_reads_and_whether_it_caches() {
    let (_, host) = root(json!({}));
    let logs = host.logs.borrow();
    let (_, line) = logs.last().unwrap();
    assert!(
        line.starts_with("authz `edge`: decision data.envoy.authz.allow; reads "),
        "{line}"
    );
    assert!(line.contains("input.parsed_body"), "{line}");
    assert!(
        line.contains("decision cache 1024 decisions per worker"),
        "{line}"
    );
}

#[test]
fn explain_logs_the_rule_that_decided() {
    let (root, _) = root(json!({"explain": true}));
    let mut host = request("GET", "/api/users/alice/orders", Some("alice"));
    Stream::new(root.new_http(1)).on_request_headers(&mut host, true);
    let logs = host.logs.borrow();
    assert!(
        logs.iter()
            .any(|(_, line)| line == "authz `edge`: allowed by rbac.rego:8"),
        "{logs:?}"
    );
}
