//! End-to-end: the JWT filter in real Envoy 1.40 (V8).
//!
//! Keys and tokens come from the filter's fixed test keys (`meshguard_jwt_auth::testing`); the
//! JWKS is served by the programmable upstream through an Envoy cluster, the way an identity
//! provider's `jwks_uri` is reached in the mesh. Signatures are verified by Envoy's BoringSSL
//! through the `verify_signature` foreign function (RS256/ES256) unless a listener turns
//! `hostCrypto` off, which the tests use to check that both paths agree inside Envoy.
//!
//! Every scenario runs twice: against the JWT module and against the `meshguard` pipeline
//! module with the same configuration in its `jwtAuth` section.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use meshguard_jwt_auth::testing::{
    CORPUS_AUDIENCE, CORPUS_ISSUER, TestKey, attack_corpus, corpus_jwks, jwks, valid_claims,
    valid_tokens,
};
use meshguard_testkit::modules::stat_of;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Module, Route, Script, Stage, Upstream, http,
    scenarios,
};

scenarios!(
    valid_tokens_reach_the_upstream_with_claim_headers_verified_on_the_host,
    each_failure_class_gets_its_401,
    attack_corpus_is_refused_and_the_vm_keeps_serving,
    remote_jwks_first_fetch_retry_and_rotation,
    one_jwks_fetch_per_refresh_interval_with_two_workers,
    an_unknown_kid_refreshes_early_once_per_interval,
    differential_against_native_jwt_authn,
);
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn provider(keys: Value) -> Value {
    let mut provider = json!({
        "name": "shop",
        "issuer": CORPUS_ISSUER,
        "audiences": [CORPUS_AUDIENCE],
        "claimToHeaders": [
            {"claim": "sub", "header": "x-jwt-sub"},
            {"claim": "realm_access.roles", "header": "x-jwt-roles"}
        ],
        "forwardPayloadHeader": "x-jwt-payload",
    });
    for (key, value) in keys.as_object().unwrap() {
        provider[key] = value.clone();
    }
    provider
}

fn filter_config(provider: Value) -> String {
    json!({
        "providers": [provider],
        "rules": [
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}
        ]
    })
    .to_string()
}

fn wasm(module: Module, name: &str, config: &str) -> FilterSpec {
    module
        .filters_named(name, &[(Stage::JwtAuth, config)])
        .expect("the module is built")
        .remove(0)
}

fn edge(module: Module, upstream: &Upstream, config: &str) -> Bootstrap {
    Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::new("idp", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(wasm(module, "jwt", config))
                .route(Route::prefix("/", "backend")),
        )
}

fn send(envoy: &Envoy, listener: &str, path: &str, token: Option<&str>) -> http::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    match http::get(&format!("{}{path}", envoy.url(listener)), &headers) {
        Ok(response) => response,
        // Envoy may close the connection on an oversized header instead of answering.
        Err(err) => http::Response {
            status: 0,
            headers: Vec::new(),
            body: format!("{err:#}"),
        },
    }
}

fn get(envoy: &Envoy, path: &str, token: Option<&str>) -> http::Response {
    send(envoy, "edge", path, token)
}

fn stat(stats: &BTreeMap<String, i64>, plugin: &str, suffix: &str) -> i64 {
    stat_of(stats, Stage::JwtAuth, plugin, suffix)
}

fn reason(response: &http::Response) -> String {
    response.json().map_or_else(
        |_| format!("(status {}) {}", response.status, response.body),
        |body| body["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn valid_tokens_reach_the_upstream_with_claim_headers_verified_on_the_host(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let config = filter_config(provider(json!({"jwks": corpus_jwks()})));
    let envoy = Envoy::start(&edge(module, &upstream, &config), 1).unwrap();

    let tokens = valid_tokens(now());
    for (name, token) in &tokens {
        let response = get(&envoy, "/api/orders", Some(token));
        assert_eq!(response.status, 200, "{name}: {}", response.body);
        let echo = response.json().unwrap();
        assert_eq!(echo["headers"]["x-jwt-sub"], "alice", "{echo}");
        assert_eq!(echo["headers"]["x-jwt-roles"], "customer");
        assert_eq!(
            echo["headers"]["x-jwt-payload"],
            token.split('.').nth(1).unwrap()
        );
        assert!(echo["headers"]["authorization"].is_null(), "not forwarded");
    }
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(
        stat(&stats, "jwt", "verify.host"),
        2,
        "RS256 and ES256 went to verify_signature"
    );
    assert_eq!(stat(&stats, "jwt", "verify.wasm"), 0);
    assert_eq!(stat(&stats, "jwt", "cache.miss"), 2);
    assert_eq!(stat(&stats, "jwt", "cache.hit"), 0);
    // Repeated tokens come from the cache.
    for (_, token) in &tokens {
        assert_eq!(get(&envoy, "/api/orders", Some(token)).status, 200);
    }
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(stat(&stats, "jwt", "cache.hit"), 2);
    assert_eq!(
        stat(&stats, "jwt", "cache.miss"),
        2,
        "no second verification"
    );
    assert_eq!(stat(&stats, "jwt", "verify.host"), 2);
    assert_eq!(stat(&stats, "jwt", "allowed"), 4);
    // Spoofed claim headers never reach the upstream, even on public paths.
    let response = http::get(
        &format!("{}/public/catalog", envoy.url("edge")),
        &[("x-jwt-sub", "admin"), ("x-jwt-roles", "admin")],
    )
    .unwrap();
    assert_eq!(response.status, 200);
    let echo = response.json().unwrap();
    assert!(
        echo["headers"]["x-jwt-sub"].is_null() && echo["headers"]["x-jwt-roles"].is_null(),
        "{echo}"
    );
    assert!(
        envoy
            .log()
            .contains("Envoy verify_signature used for RSA: true, ECDSA: true")
    );
}

fn each_failure_class_gets_its_401(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let config = filter_config(provider(json!({"jwks": corpus_jwks()})));
    let envoy = Envoy::start(&edge(module, &upstream, &config), 1).unwrap();
    let rsa = TestKey::rsa_a();
    let with = |patch: Value| {
        let mut claims = valid_claims(now());
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        rsa.token(&claims)
    };
    let cases = [
        ("malformed", "not.a.jwt".to_string()),
        (
            "bad_signature",
            TestKey::rsa_b()
                .with_kid("rsa-a")
                .token(&valid_claims(now())),
        ),
        ("unknown_kid", TestKey::rsa_b().token(&valid_claims(now()))),
        ("expired", with(json!({"exp": now() - 3600}))),
        ("not_yet_valid", with(json!({"nbf": now() + 3600}))),
        ("issuer", with(json!({"iss": "https://evil.example"}))),
        ("audience", with(json!({"aud": "other"}))),
    ];
    let missing = get(&envoy, "/api/orders", None);
    assert_eq!(missing.status, 401);
    assert_eq!(reason(&missing), "missing");
    let challenge = missing.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm=\"http://") && !challenge.contains("error="));
    for (expected, token) in &cases {
        let response = get(&envoy, "/api/orders", Some(token));
        assert_eq!(response.status, 401, "{expected}: {}", response.body);
        assert_eq!(&reason(&response), expected);
        let challenge = response.header("www-authenticate").unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\", error_description=\""),
            "{challenge}"
        );
    }
    assert_eq!(
        upstream.hits("/api"),
        0,
        "nothing refused reached the upstream"
    );
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(stat(&stats, "jwt", "denied.missing"), 1);
    for (expected, _) in &cases {
        assert_eq!(
            stat(&stats, "jwt", &format!("denied.{expected}")),
            1,
            "{expected}"
        );
    }
}

fn attack_corpus_is_refused_and_the_vm_keeps_serving(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let config = filter_config(provider(json!({"jwks": corpus_jwks()})));
    let envoy = Envoy::start(&edge(module, &upstream, &config), 2).unwrap();
    let valid = valid_tokens(now());
    for (index, attack) in attack_corpus(now()).iter().enumerate() {
        let response = get(&envoy, "/api/orders", Some(&attack.token));
        assert_ne!(response.status, 200, "{} was accepted", attack.name);
        let (name, token) = &valid[index % valid.len()];
        let served = get(&envoy, "/api/orders", Some(token));
        assert_eq!(
            served.status, 200,
            "{name} after {}: {}",
            attack.name, served.body
        );
    }
    assert!(!envoy.log().contains("panicked"), "the VM never panicked");
}

fn remote_config(cache: &str) -> String {
    filter_config(provider(json!({"remoteJwks": {
        "cluster": "idp", "uri": "http://idp.shop.example/realms/shop/certs",
        "cacheDuration": cache, "timeout": "2s"
    }})))
}

fn remote_jwks_first_fetch_retry_and_rotation(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    upstream.script("/realms/shop/certs", Script::status(503));
    let envoy = Envoy::start(&edge(module, &upstream, &remote_config("2s")), 1).unwrap();
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let token_a = a.token(&valid_claims(now()));

    // The identity provider is down: a clear 401 saying the keys are not there yet.
    assert!(eventually(Duration::from_secs(5), || upstream
        .hits("/realms/shop/certs")
        >= 1));
    let early = get(&envoy, "/api/orders", Some(&token_a));
    assert_eq!(early.status, 401);
    assert_eq!(reason(&early), "no_keys", "{}", early.body);
    assert!(early.body.contains("not available yet"), "{}", early.body);

    // It comes back: the retry picks the keys up.
    upstream.script(
        "/realms/shop/certs",
        Script::document("application/json", jwks(&[&a])),
    );
    assert!(
        eventually(Duration::from_secs(10), || get(
            &envoy,
            "/api/orders",
            Some(&token_a)
        )
        .status
            == 200),
        "keys after the retry"
    );
    let stats = envoy.flushed_stats().unwrap();
    assert!(stat(&stats, "jwt", "jwks_fetch.failed") >= 1);
    assert!(stat(&stats, "jwt", "jwks_fetch.ok") >= 1);

    // Rotation: the provider now publishes b only.
    upstream.script(
        "/realms/shop/certs",
        Script::document("application/json", jwks(&[&b])),
    );
    let token_b = b.token(&valid_claims(now()));
    assert!(
        eventually(Duration::from_secs(10), || get(
            &envoy,
            "/api/orders",
            Some(&token_b)
        )
        .status
            == 200),
        "the new kid is picked up"
    );
    // The retired key is no longer trusted, not even from the verified-token cache.
    assert!(
        eventually(Duration::from_secs(10), || get(
            &envoy,
            "/api/orders",
            Some(&token_a)
        )
        .status
            == 401),
        "the retired key stops working"
    );
    assert_eq!(
        reason(&get(&envoy, "/api/orders", Some(&token_a))),
        "unknown_kid"
    );
}

fn one_jwks_fetch_per_refresh_interval_with_two_workers(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let a = TestKey::rsa_a();
    upstream.script(
        "/realms/shop/certs",
        Script::document("application/json", jwks(&[&a])),
    );
    let envoy = Envoy::start(&edge(module, &upstream, &remote_config("1s")), 2).unwrap();
    let token = a.token(&valid_claims(now()));
    assert!(eventually(Duration::from_secs(5), || get(
        &envoy,
        "/api/orders",
        Some(&token)
    )
    .status
        == 200));
    let start_hits = upstream.hits("/realms/shop/certs");
    let started = Instant::now();
    // Traffic on both workers while the keys refresh every second.
    while started.elapsed() < Duration::from_secs(6) {
        for _ in 0..5 {
            assert_eq!(get(&envoy, "/api/orders", Some(&token)).status, 200);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fetches = upstream.hits("/realms/shop/certs") - start_hits;
    let seconds = started.elapsed().as_secs_f64();
    // One fetch per interval (plus the tick granularity), never one per worker (that would be
    // about 2-3 per second with the main thread's root context).
    assert!(
        (seconds * 0.6) as u64 <= fetches && fetches <= seconds as u64 + 1,
        "{fetches} fetches in {seconds:.1} s"
    );
    assert!(!envoy.log().contains("panicked"));
}

fn an_unknown_kid_refreshes_early_once_per_interval(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let certs = "/realms/shop/certs";
    upstream.script(certs, Script::document("application/json", jwks(&[&a])));
    // A long cache duration: only the early refresh can pick the rotation up within the test.
    let envoy = Envoy::start(&edge(module, &upstream, &remote_config("300s")), 2).unwrap();
    let token_a = a.token(&valid_claims(now()));
    assert!(eventually(Duration::from_secs(5), || get(
        &envoy,
        "/api/orders",
        Some(&token_a)
    )
    .status
        == 200));
    assert_eq!(upstream.hits(certs), 1, "one fetch for the whole Envoy");

    // The provider rotates; tokens with the new kid trigger one early refresh (once the keys
    // in use are a few seconds old: `remote::MIN_KEY_AGE`).
    upstream.script(certs, Script::document("application/json", jwks(&[&a, &b])));
    let token_b = b.token(&valid_claims(now()));
    assert!(
        eventually(Duration::from_secs(10), || get(
            &envoy,
            "/api/orders",
            Some(&token_b)
        )
        .status
            == 200),
        "the new kid is picked up long before the 300 s refresh"
    );
    assert_eq!(upstream.hits(certs), 2, "exactly one early refresh");
    for _ in 0..6 {
        // Both workers (and their caches) serve the new key.
        assert_eq!(get(&envoy, "/api/orders", Some(&token_b)).status, 200);
    }

    // Unknown kids keep coming (on both workers): no further fetch within the interval.
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let probe = a
            .clone()
            .with_kid(&format!("random-{round}"))
            .token(&valid_claims(now()));
        let response = get(&envoy, "/api/orders", Some(&probe));
        assert_eq!(reason(&response), "unknown_kid", "{}", response.body);
        round += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        upstream.hits(certs),
        2,
        "{round} unknown kids, no more fetches"
    );
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(stat(&stats, "jwt", "jwks_fetch.ok"), 2);
    assert_eq!(stat(&stats, "jwt", "jwks_fetch.failed"), 0);
    assert!(stat(&stats, "jwt", "denied.unknown_kid") >= round);
    assert!(envoy.log().contains("refreshing its JWKS early"));
}

fn native(jwks_text: &str, cache: bool) -> Value {
    let mut provider = json!({
        "issuer": CORPUS_ISSUER,
        "audiences": [CORPUS_AUDIENCE],
        "local_jwks": {"inline_string": jwks_text},
        "forward": false,
        "clock_skew_seconds": 60,
        "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
        "forward_payload_header": "x-jwt-payload",
    });
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
    }
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"shop": provider},
        "rules": [
            {"match": {"prefix": "/opt"}, "requires": {"allow_missing": {}}},
            {"match": {"prefix": "/any"}, "requires": {"allow_missing_or_failed": {}}},
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/"}, "requires": {"provider_name": "shop"}}
        ]
    })
}

fn differential_against_native_jwt_authn(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let ours = json!({
        "providers": [provider(json!({"jwks": corpus_jwks()}))],
        "rules": [
            {"match": {"prefix": "/opt"}, "requires": {"allowMissing": true}},
            {"match": {"prefix": "/any"}, "requires": {"allowMissingOrFailed": true}},
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}
        ]
    });
    let mut wasm_only = ours.clone();
    wasm_only["hostCrypto"] = json!(false);
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(
            Listener::new("meshguard")
                .filter(wasm(module, "jwt", &ours.to_string()))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("meshguard-wasm-crypto")
                .filter(wasm(module, "jwtwasm", &wasm_only.to_string()))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("native")
                .filter(FilterSpec::native(
                    "envoy.filters.http.jwt_authn",
                    native(&corpus_jwks(), false),
                ))
                .route(Route::prefix("/", "backend")),
        );
    let envoy = Envoy::start(&bootstrap, 1).unwrap();
    let accepted = |listener: &str, token: &str| {
        let status = send(&envoy, listener, "/api/orders", Some(token)).status;
        assert!(
            matches!(status, 0 | 200 | 401 | 403 | 431),
            "{listener}: {status}"
        );
        status == 200
    };
    let mut divergences = Vec::new();
    let mut undocumented = Vec::new();
    for (name, token) in valid_tokens(now()) {
        assert!(accepted("meshguard", &token), "{name}");
        assert!(accepted("meshguard-wasm-crypto", &token), "{name}");
        assert!(accepted("native", &token), "{name}");
    }
    let corpus = attack_corpus(now());
    for attack in &corpus {
        let host = accepted("meshguard", &attack.token);
        let wasm_path = accepted("meshguard-wasm-crypto", &attack.token);
        let native = accepted("native", &attack.token);
        assert!(!host && !wasm_path, "{} accepted by meshguard", attack.name);
        if native != attack.native_accepts.is_some() {
            undocumented.push((attack.name, native));
        }
        if native {
            divergences.push(attack.name);
        }
    }
    assert!(
        undocumented.is_empty(),
        "native jwt_authn differs from the documented expectation (name, native accepted): {undocumented:?}"
    );
    // Requirements: the same tokens on paths with allowMissing, allowMissingOrFailed and none.
    let rsa = TestKey::rsa_a();
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("valid", Some(rsa.token(&valid_claims(now())))),
        (
            "forged",
            Some(
                TestKey::rsa_b()
                    .with_kid("rsa-a")
                    .token(&valid_claims(now())),
            ),
        ),
        (
            "expired",
            Some(rsa.token(
                &json!({"iss": CORPUS_ISSUER, "aud": CORPUS_AUDIENCE, "exp": now() - 3600}),
            )),
        ),
        ("malformed", Some("a.b.c".to_string())),
        (
            "unknown kid",
            Some(TestKey::rsa_b().token(&valid_claims(now()))),
        ),
        (
            "foreign issuer",
            Some(rsa.token(
                &json!({"iss": "https://other.example", "aud": CORPUS_AUDIENCE, "exp": now() + 60}),
            )),
        ),
    ];
    let mut requirement_mismatches = Vec::new();
    for path in ["/opt/x", "/any/x", "/public/x", "/api/x"] {
        for (name, token) in &tokens {
            let status = |listener: &str| send(&envoy, listener, path, token.as_deref()).status;
            let (ours, native) = (status("meshguard"), status("native"));
            assert_eq!(ours, status("meshguard-wasm-crypto"), "{path} {name}");
            if (ours == 200) != (native == 200) {
                requirement_mismatches
                    .push(format!("{path} {name}: meshguard {ours}, native {native}"));
            }
        }
    }
    assert!(
        requirement_mismatches.is_empty(),
        "{requirement_mismatches:#?}"
    );
    // Both write the same claim header for the same valid token.
    let valid = rsa.token(&valid_claims(now()));
    let seen = |listener: &str| {
        send(&envoy, listener, "/api/x", Some(&valid))
            .json()
            .unwrap()["headers"]["x-jwt-sub"]
            .clone()
    };
    assert_eq!(seen("meshguard"), seen("native"));

    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(
        stat(&stats, "jwtwasm", "verify.host"),
        0,
        "hostCrypto off verifies in wasm"
    );
    assert!(stat(&stats, "jwtwasm", "verify.wasm") >= 2);
    eprintln!(
        "differential: {} cases agree; native jwt_authn accepts (documented) {divergences:?}",
        corpus.len() - divergences.len()
    );
}
