//! The jwt-auth module in the wasmtime host: RS256/ES256 verified through the host's native
//! `verify_signature` foreign function, expiry judged on the virtual clock, and a remote JWKS
//! fetched by a callout from a tick, answered by a scripted response.

use std::time::{Duration, UNIX_EPOCH};

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::filter_module;
use meshguard_wasm_host::{
    CalloutRule, ForeignFunctions, Plugin, PluginOptions, Request, Verdict, WasmModule,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.shop.example/realms/shop";

fn module() -> WasmModule {
    WasmModule::from_file(filter_module("meshguard_jwt_auth").expect("jwt-auth is built")).unwrap()
}

fn config(keys: Value) -> String {
    let mut provider = json!({
        "name": "shop",
        "issuer": ISSUER,
        "audiences": ["commerce-api"],
        "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}],
    });
    for (key, value) in keys.as_object().unwrap() {
        provider[key] = value.clone();
    }
    json!({
        "providers": [provider],
        "rules": [
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}
        ]
    })
    .to_string()
}

fn claims(plugin: &Plugin, sub: &str, lifetime: u64) -> Value {
    let now = plugin.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    json!({"iss": ISSUER, "aud": "commerce-api", "sub": sub, "iat": now - 10, "exp": now + lifetime})
}

fn bearer(path: &str, token: &str) -> Request {
    Request::get(path).header("authorization", format!("Bearer {token}"))
}

fn metric(plugin: &Plugin, suffix: &str) -> i64 {
    plugin
        .metrics()
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, m)| m.value)
        .sum()
}

#[test]
fn rs256_and_es256_verify_through_the_native_foreign_function() {
    let (rsa, ec) = (TestKey::rsa_a(), TestKey::ec256_a());
    let options = PluginOptions::new(config(json!({"jwks": jwks(&[&rsa, &ec])}))).named("jwt");
    let mut plugin = Plugin::start(&module(), options).unwrap();

    let missing = plugin.send(Request::get("/api/orders")).unwrap();
    assert_eq!(missing.status(), Some(401), "{missing:#?}");
    assert!(
        missing
            .response_header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=")
    );

    for key in [&rsa, &ec] {
        let token = key.token(&claims(&plugin, "alice", 600));
        let outcome = plugin.send(bearer("/api/orders", &token)).unwrap();
        assert_eq!(outcome.verdict, Verdict::Forwarded, "{key:?}: {outcome:#?}");
        assert_eq!(outcome.upstream_header("x-jwt-sub"), Some("alice"));
        assert_eq!(
            outcome.upstream_header("authorization"),
            None,
            "the token is not forwarded"
        );
    }
    // The filter batches its counters and flushes them from its tick.
    plugin.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "verify.host"), 2, "{:#?}", plugin.metrics());
    assert_eq!(
        plugin
            .send(Request::get("/public/catalog"))
            .unwrap()
            .status(),
        Some(200)
    );

    let forged = TestKey::rsa_b()
        .with_kid(&rsa_kid(&rsa))
        .token(&claims(&plugin, "mallory", 600));
    assert_eq!(
        plugin
            .send(bearer("/api/orders", &forged))
            .unwrap()
            .status(),
        Some(401)
    );
}

fn rsa_kid(key: &TestKey) -> String {
    key.header()["kid"].as_str().unwrap_or_default().to_string()
}

#[test]
fn without_the_foreign_function_rs256_still_verifies_in_wasm() {
    let rsa = TestKey::rsa_a();
    let options = PluginOptions::new(config(json!({"jwks": jwks(&[&rsa])})))
        .named("jwt")
        .foreign_functions(ForeignFunctions::none());
    let mut plugin = Plugin::start(&module(), options).unwrap();
    let token = rsa.token(&claims(&plugin, "bob", 600));
    let outcome = plugin.send(bearer("/api/orders", &token)).unwrap();
    assert_eq!(outcome.status(), Some(200), "{outcome:#?}");
    plugin.advance(Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "verify.wasm"), 1, "{:#?}", plugin.metrics());
    assert_eq!(metric(&plugin, "verify.host"), 0);
}

#[test]
fn tokens_expire_on_the_virtual_clock() {
    let ec = TestKey::ec256_a();
    let options = PluginOptions::new(config(json!({"jwks": jwks(&[&ec])}))).named("jwt");
    let mut plugin = Plugin::start(&module(), options).unwrap();
    let token = ec.token(&claims(&plugin, "carol", 120));
    assert_eq!(
        plugin.send(bearer("/api/orders", &token)).unwrap().status(),
        Some(200)
    );
    plugin.advance(Duration::from_secs(240)).unwrap();
    let expired = plugin.send(bearer("/api/orders", &token)).unwrap();
    assert_eq!(expired.status(), Some(401), "{expired:#?}");
}

#[test]
fn a_remote_jwks_is_fetched_by_a_callout_from_a_tick() {
    let rsa = TestKey::rsa_a();
    let remote = json!({"remoteJwks": {"cluster": "idp", "uri": "http://idp/realms/shop/certs"}});
    let options = PluginOptions::new(config(remote))
        .named("jwt")
        .workers(2)
        .callout(CalloutRule::respond("idp", 200, jwks(&[&rsa])).path("/realms/shop/certs"));
    let mut plugin = Plugin::start(&module(), options).unwrap();
    plugin.advance(Duration::from_secs(2)).unwrap();
    let callouts = plugin.callouts();
    assert_eq!(
        callouts.len(),
        1,
        "one JWKS fetch for {} VMs sharing data, not one per VM: {callouts:#?}",
        plugin.vm_count()
    );
    assert!(
        callouts
            .iter()
            .all(|c| c.cluster == "idp" && c.path() == "/realms/shop/certs")
    );
    let token = rsa.token(&claims(&plugin, "dave", 600));
    for _ in 0..4 {
        let outcome = plugin.send(bearer("/api/orders", &token)).unwrap();
        assert_eq!(outcome.status(), Some(200), "{outcome:#?}");
    }
    assert!(plugin.vm_failures().is_empty());
}
