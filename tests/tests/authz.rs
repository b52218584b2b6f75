//! End-to-end in real Envoy 1.40 (V8): JWT authentication then authorization, deciding the
//! commerce RBAC policy (`policies/envoy-authz/rbac.rego`) from the verified payload
//! (`payloadInMetadata: verified_jwt`). Every scenario runs twice ([`scenarios!`]): the JWT
//! module chained before the authz module (the payload travels through filter state), and the
//! `meshguard` pipeline with `jwtAuth` and `authz` sections (the `jwtAuth` stage's claims
//! decide `authz` in the same pass).
//!
//! One Envoy with four listeners keeps the test cheap: `edge` (the RBAC policy), `objects` (an
//! object decision with custom status, headers and body) and `broken` (a policy whose decision
//! is invalid, so every request is an evaluation error), and `headers` (a policy reading a
//! header, sent header values that are not UTF-8).

use std::collections::BTreeMap;
use std::time::SystemTime;

use meshguard_jwt_auth::testing::{
    CORPUS_AUDIENCE, CORPUS_ISSUER, TestKey, corpus_jwks, valid_claims,
};
use meshguard_testkit::modules::{Module, Stage};
use meshguard_testkit::paths::workspace_root;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, Listener, Route, Upstream, http, scenarios};
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_config() -> String {
    json!({
        "providers": [{
            "name": "shop",
            "issuer": CORPUS_ISSUER,
            "audiences": [CORPUS_AUDIENCE],
            "jwks": corpus_jwks(),
            "payloadInMetadata": "verified_jwt",
        }],
        // Anonymous requests go on to authz, which denies them: the policy decides, not the
        // JWT filter.
        "rules": [{"match": {"prefix": "/"}, "requires": {"anyOf": [{"provider": "shop"}, {"allowMissing": true}]}}]
    })
    .to_string()
}

/// The listener `name`: JWT then authz with `modules`, as two modules or one pipeline (every
/// filter of the listener is the plugin `name`, so the stats read the same either way).
fn listener(module: Module, name: &str, modules: Value) -> Listener {
    let authz = json!({"modules": modules}).to_string();
    let filters = module
        .filters_named(
            name,
            &[(Stage::JwtAuth, &jwt_config()), (Stage::Authz, &authz)],
        )
        .expect("the modules are built");
    filters
        .into_iter()
        .fold(Listener::new(name), Listener::filter)
        .route(Route::prefix("/", "backend"))
}

/// The listener `body`: JWT, authz holding requests for their body (at most 1 KiB), then a
/// rate limit: allowed requests are committed (counted) once their body is in. The plugin that
/// holds (the authz module, or the pipeline) has `allow_on_headers_stop_iteration`, without
/// which Envoy never offers it the body.
fn body_listener(module: Module) -> Listener {
    let authz =
        json!({"modules": {"body.rego": BODY}, "withRequestBody": {"maxRequestBytes": 1024}})
            .to_string();
    let limit = json!({"limits": [{"name": "all", "key": [{"constant": "all"}],
                                   "rate": {"requests": 1000, "per": "minute"}}]})
    .to_string();
    let filters = module
        .filters_named(
            "body",
            &[
                (Stage::JwtAuth, &jwt_config()),
                (Stage::Authz, &authz),
                (Stage::RateLimit, &limit),
            ],
        )
        .expect("the modules are built");
    let holder = match module {
        Module::Single => 1,
        Module::Pipeline => 0,
    };
    filters
        .into_iter()
        .enumerate()
        .map(|(index, filter)| {
            if index == holder {
                filter.holding_headers()
            } else {
                filter
            }
        })
        .fold(Listener::new("body"), Listener::filter)
        .route(Route::prefix("/", "backend"))
}

const BODY: &str = "package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if input.attributes.request.http.method == \"GET\"\nallow if input.parsed_body.amount < 100\n";

const OBJECTS: &str = r#"package envoy.authz
import rego.v1

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

default allow := {"allowed": false, "http_status": 401, "body": "{\"error\": \"sign in\"}",
                  "headers": {"www-authenticate": "Bearer realm=\"shop\"", "content-type": "application/json"}}

allow := {"allowed": true, "headers": {"x-user": claims.sub}, "request_headers_to_remove": ["x-debug"],
          "response_headers_to_add": {"x-authz": "rego"}} if claims.sub
"#;

const HEADERS: &str = "package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if startswith(input.attributes.request.http.headers[\"x-name\"], \"ok\")\n";

/// One HTTP/1.1 request written byte for byte (a header value that is not UTF-8, which no
/// HTTP client library sends), and the status line's code.
fn raw_status(envoy: &Envoy, listener: &str, header_value: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let url = envoy.url(listener);
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request =
        b"GET /api/orders HTTP/1.1\r\nhost: shop\r\nconnection: close\r\nx-name: ".to_vec();
    request.extend_from_slice(header_value);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

const BROKEN: &str = "package envoy.authz\nimport rego.v1\nallow := {\"allowed\": \"yes\"}\n";

fn token(sub: &str, roles: &[&str]) -> String {
    let mut claims = valid_claims(now());
    claims["sub"] = json!(sub);
    claims["realm_access"] = json!({"roles": roles});
    TestKey::rsa_a().token(&claims)
}

fn send(
    envoy: &Envoy,
    listener: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> http::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(bearer) = bearer.as_deref() {
        headers.push(("authorization", bearer));
    }
    let body = (method == "POST").then_some(&b"{}"[..]);
    http::send(
        method,
        &format!("{}{path}", envoy.url(listener)),
        &headers,
        body,
    )
    .unwrap()
}

fn stat(stats: &BTreeMap<String, i64>, plugin: &str, suffix: &str) -> i64 {
    stats
        .iter()
        .filter(|(name, _)| name.ends_with(&format!("meshguard.authz.{plugin}.{suffix}")))
        .map(|(_, value)| *value)
        .sum()
}

scenarios!(jwt_then_authz_decides_per_role_and_path_and_fails_closed);

fn jwt_then_authz_decides_per_role_and_path_and_fails_closed(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let rbac =
        std::fs::read_to_string(workspace_root().join("policies/envoy-authz/rbac.rego")).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(listener(module, "edge", json!({"rbac.rego": rbac})))
        .listener(listener(
            module,
            "objects",
            json!({"objects.rego": OBJECTS}),
        ))
        .listener(listener(module, "broken", json!({"broken.rego": BROKEN})))
        .listener(listener(
            module,
            "headers",
            json!({"headers.rego": HEADERS}),
        ))
        .listener(body_listener(module));
    let envoy = Envoy::start(&bootstrap, 2).unwrap();

    let alice = token("alice", &["customer"]);
    let sam = token("sam", &["support"]);
    let ada = token("ada", &["admin"]);
    let cases: [(&str, &str, Option<&str>, u16); 12] = [
        ("GET", "/api/users/alice/orders", Some(&alice), 200),
        ("GET", "/api/users/alice/orders/7", Some(&alice), 200),
        ("GET", "/api/users/alice/cart", Some(&alice), 200),
        ("GET", "/api/users/bob/orders", Some(&alice), 403),
        ("POST", "/api/payments/p1/refund", Some(&alice), 403),
        ("GET", "/api/users/bob/orders/9", Some(&sam), 200),
        ("POST", "/api/users/bob/orders", Some(&sam), 403),
        ("GET", "/api/users/bob/cart", Some(&sam), 403),
        ("POST", "/api/payments/p1/refund", Some(&ada), 200),
        ("GET", "/api/users/alice/orders", None, 403),
        ("GET", "/api/products", Some(&alice), 403),
        ("DELETE", "/api/users/alice/orders/7", Some(&alice), 403),
    ];
    for (method, path, token, status) in cases {
        let response = send(&envoy, "edge", method, path, token, &[]);
        assert_eq!(
            response.status, status,
            "{method} {path}: {}",
            response.body
        );
    }

    // A client cannot claim to be someone: the claim headers and payload header a JWT filter
    // could write are only headers to authz; the verified payload is in filter state (two
    // modules) or the request model (the pipeline).
    let forged_payload = meshguard_jwt_auth::testing::b64(
        json!({"sub": "bob", "realm_access": {"roles": ["admin", "support"]}})
            .to_string()
            .as_bytes(),
    );
    let forged: &[(&str, &str)] = &[
        ("x-jwt-sub", "bob"),
        ("x-jwt-roles", "admin"),
        ("x-jwt-payload", &forged_payload),
    ];
    for token in [None, Some(alice.as_str())] {
        let response = send(
            &envoy,
            "edge",
            "GET",
            "/api/users/bob/orders",
            token,
            forged,
        );
        assert_eq!(response.status, 403, "forged headers with {token:?}");
        let response = send(
            &envoy,
            "edge",
            "POST",
            "/api/payments/p1/refund",
            token,
            forged,
        );
        assert_eq!(response.status, 403, "forged refund with {token:?}");
    }

    // Object decisions: a custom denial, and an allow's header changes.
    let denied = send(&envoy, "objects", "GET", "/api/orders", None, &[]);
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert_eq!(denied.body, r#"{"error": "sign in"}"#);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );
    let allowed = send(
        &envoy,
        "objects",
        "GET",
        "/api/orders",
        Some(&alice),
        &[("x-user", "mallory"), ("x-debug", "1")],
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.header("x-authz"), Some("rego"));
    let echo = allowed.json().unwrap();
    assert_eq!(echo["headers"]["x-user"], "alice", "{echo}");
    assert!(echo["headers"].get("x-debug").is_none(), "{echo}");

    // A policy error denies (fail closed) and is counted.
    for _ in 0..3 {
        let response = send(
            &envoy,
            "broken",
            "GET",
            "/api/users/alice/orders",
            Some(&alice),
            &[],
        );
        assert_eq!(response.status, 403, "{}", response.body);
    }

    // Header values that are not UTF-8 are decided (shown to the policy with U+FFFD), and the
    // VM lives on.
    assert_eq!(raw_status(&envoy, "headers", b"ok\xff\xfe"), 200);
    assert_eq!(raw_status(&envoy, "headers", b"\xc3\x28no"), 403);
    assert_eq!(raw_status(&envoy, "headers", b"ok"), 200);

    // Bodies: held until complete, decided on `parsed_body`, then the later stages run and
    // commit (the limiter counts only the allowed requests, once each).
    let post = |body: &[u8]| {
        http::send(
            "POST",
            &format!("{}/api/payments", envoy.url("body")),
            &[("content-type", "application/json")],
            Some(body),
        )
        .unwrap()
    };
    let small = post(br#"{"amount": 5, "currency": "EUR"}"#);
    assert_eq!(small.status, 200, "{}", small.body);
    assert_eq!(
        small.json().unwrap()["body"],
        r#"{"amount": 5, "currency": "EUR"}"#,
        "the upstream gets the whole body"
    );
    assert_eq!(post(br#"{"amount": 500}"#).status, 403);
    let large = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(2000));
    assert_eq!(post(large.as_bytes()).status, 413);
    let get = http::send("GET", &format!("{}/api/x", envoy.url("body")), &[], None).unwrap();
    assert_eq!(get.status, 200, "{}", get.body);

    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(stat(&stats, "body", "allowed"), 2, "{stats:?}");
    assert_eq!(stat(&stats, "body", "denied.policy"), 1, "{stats:?}");
    assert_eq!(
        stat(&stats, "body", "denied.body_too_large"),
        1,
        "{stats:?}"
    );
    assert_eq!(
        meshguard_testkit::modules::stat_of(&stats, Stage::RateLimit, "body", "all.allowed"),
        2,
        "{stats:?}"
    );
    assert_eq!(stat(&stats, "edge", "allowed"), 5, "{stats:?}");
    assert_eq!(stat(&stats, "edge", "denied.policy"), 11, "{stats:?}");
    assert_eq!(stat(&stats, "edge", "denied.error"), 0);
    assert_eq!(stat(&stats, "objects", "allowed"), 1);
    assert_eq!(stat(&stats, "objects", "denied.policy"), 1);
    assert_eq!(stat(&stats, "broken", "denied.error"), 3);
    assert_eq!(stat(&stats, "broken", "error.invalid_decision"), 3);
    assert_eq!(stat(&stats, "headers", "allowed"), 2);
    assert_eq!(stat(&stats, "headers", "denied.policy"), 1);
    assert!(
        !envoy.log().contains("panicked"),
        "a VM failed: {}",
        envoy.log()
    );
    assert_eq!(
        upstream.total_hits(),
        10,
        "only allowed requests reach the upstream"
    );
}
