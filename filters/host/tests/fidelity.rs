//! Fidelity: the same scenarios in real Envoy 1.40 and in the wasmtime host give the same
//! outcomes (status, the cluster reached, headers seen by the upstream, response headers, local
//! reply bodies). Differences found so far were fixed in the host; the headers Envoy's own
//! transport adds are excluded and listed in `fidelity::TRANSPORT_HEADERS` and the crate docs.

mod support;

use meshguard_testkit::paths::{filter_module, target_dir};
use support::fidelity::{Scenario, Step};

/// Writes a WAT probe as a .wasm file Envoy can load.
fn probe_file(name: &str) -> std::path::PathBuf {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/probes/{name}.wat"));
    let bytes = wat::parse_file(&source).unwrap();
    let dir = target_dir().join("tmp/host-fidelity");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn abi_probe_local_replies_and_map_lifetimes_match_envoy() {
    let observed = Scenario {
        name: "probe",
        module: probe_file("envoy_probe"),
        config: String::new(),
        routes: vec![],
        scripts: vec![],
        steps: vec![
            Step::get("/api/products"),
            Step::get("/teapot").header("x-probe-reply", "1"),
        ],
    }
    .assert_same();
    assert_eq!(observed[1].status, 418);
}

#[test]
fn stamp_matches_envoy() {
    Scenario {
        name: "stamp",
        module: filter_module("meshguard_stamp").unwrap(),
        config: r#"{"header":"x-meshguard-stamp","value":"from-wasm"}"#.into(),
        routes: vec![],
        scripts: vec![],
        steps: vec![
            Step::get("/api/products"),
            Step::get("/api/orders").header("x-meshguard-stamp", "spoofed"),
        ],
    }
    .assert_same();
}

#[test]
fn rate_limit_matches_envoy() {
    let config = r#"{"limits":[{"name":"orders","match":{"prefix":"/api/orders"},
        "key":[{"header":"x-user"}],"rate":{"requests":3,"per":"hour"}}],"headers":"ietf"}"#;
    let mut steps: Vec<Step> = (0..5)
        .map(|_| Step::get("/api/orders").header("x-user", "alice"))
        .collect();
    steps.push(Step::get("/api/orders").header("x-user", "bob"));
    steps.push(Step::get("/api/products").header("x-user", "alice"));
    let observed = Scenario {
        name: "rate-limit",
        module: filter_module("meshguard_rate_limit").unwrap(),
        config: config.into(),
        routes: vec![],
        scripts: vec![],
        steps,
    }
    .assert_same();
    let statuses: Vec<u16> = observed.iter().map(|o| o.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 429, 200, 200]);
}

#[test]
fn canary_matches_envoy() {
    let config = r#"{
      "services": [{
        "name": "product", "match": {"hosts": ["*"], "prefix": "/api/products"},
        "versions": [{"name": "v1", "weight": 50}, {"name": "v2", "weight": 50}],
        "stickyKey": [{"header": "x-user-id"}],
        "overrides": {"header": "x-canary-version",
                      "onlyWithHeader": {"name": "x-internal-caller", "value": "qa"}}
      }]
    }"#;
    let mut steps: Vec<Step> = (0..8)
        .map(|i| Step::get("/api/products/p-100").header("x-user-id", format!("user-{i}")))
        .collect();
    steps.push(
        Step::get("/api/products")
            .header("x-user-id", "eve")
            .header("x-mesh-version", "v9"),
    );
    steps.push(
        Step::get("/api/products")
            .header("x-user-id", "qa")
            .header("x-canary-version", "v2")
            .header("x-internal-caller", "qa"),
    );
    steps.push(Step::get("/api/orders").header("x-user-id", "zed"));
    let observed = Scenario {
        name: "canary",
        module: filter_module("meshguard_canary").unwrap(),
        config: config.into(),
        routes: vec![
            ("/", Some(("x-mesh-version", "v2")), "product-v2"),
            ("/", Some(("x-mesh-version", "v1")), "product-v1"),
            ("/", None, "product-v1"),
        ],
        scripts: vec![],
        steps,
    }
    .assert_same();
    let reached: Vec<_> = observed.iter().filter_map(|o| o.reached.clone()).collect();
    assert!(reached.iter().any(|c| c == "product-v2") && reached.iter().any(|c| c == "product-v1"));
}

#[test]
fn circuit_breaker_matches_envoy() {
    let config = r#"{"breakers":[{
        "name": "payment", "match": {"prefix": "/api/payments"},
        "window": {"type": "count", "size": 6}, "minimumCalls": 4, "failureRateThreshold": 50,
        "openFor": "30s", "halfOpen": {"permittedCalls": 1, "successToClose": 1},
        "fallback": {"status": 200, "headers": {"content-type": "application/json", "x-fallback": "static"},
                     "body": "{\"service\":\"payment\",\"status\":\"deferred\"}"}
    }, {"name": "search", "match": {"prefix": "/api/search"}, "window": {"size": 4},
        "minimumCalls": 2, "failureRateThreshold": 100, "openFor": "30s"}]}"#;
    let mut steps = Vec::new();
    for _ in 0..3 {
        steps.push(Step::get("/api/payments/ok"));
    }
    for _ in 0..3 {
        steps.push(Step::get("/api/payments/fail"));
    }
    steps.push(Step::get("/api/payments/ok"));
    steps.push(Step::get("/api/search/fail"));
    steps.push(Step::get("/api/search/fail"));
    steps.push(Step::get("/api/search/ok"));
    let observed = Scenario {
        name: "circuit-breaker",
        module: filter_module("meshguard_circuit_breaker").unwrap(),
        config: config.into(),
        routes: vec![],
        scripts: vec![("/api/payments/fail", 503), ("/api/search/fail", 500)],
        steps,
    }
    .assert_same();
    assert_eq!(
        observed[6]
            .response_headers
            .get("x-fallback")
            .map(String::as_str),
        Some("static")
    );
    assert_eq!(observed[9].status, 503);
}

#[test]
fn jwt_auth_matches_envoy() {
    use meshguard_jwt_auth::testing::{TestKey, jwks};
    use serde_json::json;
    let issuer = "https://id.shop.example/realms/shop";
    let (rsa, ec) = (TestKey::rsa_a(), TestKey::ec256_a());
    let config = json!({
        "providers": [{"name": "shop", "issuer": issuer, "audiences": ["commerce-api"],
                       "jwks": jwks(&[&rsa, &ec]),
                       "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}]}],
        "rules": [{"match": {"prefix": "/public"}},
                  {"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}]
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, exp: u64| json!({"iss": issuer, "aud": "commerce-api", "sub": sub, "iat": now - 10, "exp": exp});
    let bearer = |token: String| format!("Bearer {token}");
    let steps = vec![
        Step::get("/api/orders"),
        Step::get("/api/orders").header(
            "authorization",
            bearer(rsa.token(&claims("alice", now + 600))),
        ),
        Step::get("/api/orders")
            .header("authorization", bearer(ec.token(&claims("bob", now + 600)))),
        Step::get("/api/orders").header(
            "authorization",
            bearer(rsa.token(&claims("carol", now - 600))),
        ),
        Step::get("/api/orders").header(
            "authorization",
            bearer(TestKey::rsa_b().token(&claims("eve", now + 600))),
        ),
        Step::get("/api/orders").header("authorization", "Bearer not.a.jwt"),
        Step::get("/public/catalog").header("x-jwt-sub", "spoofed"),
    ];
    let observed = Scenario {
        name: "jwt",
        module: filter_module("meshguard_jwt_auth").unwrap(),
        config,
        routes: vec![],
        scripts: vec![],
        steps,
    }
    .assert_same();
    let statuses: Vec<u16> = observed.iter().map(|o| o.status).collect();
    assert_eq!(statuses, vec![401, 200, 200, 401, 401, 401, 200]);
}
