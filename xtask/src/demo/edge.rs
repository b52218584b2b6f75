//! Act: the edge gateway's four policies in one `meshguard` module (one VM per worker, one pass
//! per request): JWT authentication, a rate limit and a canary keyed on the verified `sub`, and
//! a circuit breaker that judges the version the canary chose.

use std::time::SystemTime;

use anyhow::Context;
use meshguard_canary::hash::bucket;
use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Script, Upstream, http,
};
use serde_json::json;

use super::Step;

const ISSUER: &str = "https://id.shop.example/realms/shop";

fn config() -> String {
    json!({
        "jwtAuth": {
            "providers": [{"name": "shop", "issuer": ISSUER, "jwks": jwks(&[&TestKey::rsa_a()]),
                           "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}]}],
            "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}]
        },
        "rateLimit": {"headers": "ietf", "limits": [{"name": "per-user", "key": [{"claim": "sub"}],
                       "rate": {"requests": 5, "per": "minute"}}]},
        "canary": {"services": [{"name": "product", "match": {"prefix": "/api/products"},
                   "versions": [{"name": "v1", "weight": 50, "cluster": "product-v1"},
                                {"name": "v2", "weight": 50, "cluster": "product-v2"}],
                   "stickyKey": [{"claim": "sub"}]}]},
        "circuitBreaker": {"breakers": [
            {"name": "product-v2", "match": {"cluster": "product-v2"}, "window": {"size": 4},
             "minimumCalls": 4, "openFor": "60s"}]}
    })
    .to_string()
}

fn version_of(user: &str) -> &'static str {
    if bucket("product", user.as_bytes()) >= 5000 {
        "v2"
    } else {
        "v1"
    }
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let v1 = Upstream::start("product-v1").context("starting product v1")?;
    let v2 = Upstream::start("product-v2").context("starting product v2")?;
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("product-v1", v1.addr()))
        .cluster(Cluster::new("product-v2", v2.addr()))
        .listener(
            Listener::new("edge")
                .filter(FilterSpec::wasm(
                    "meshguard-edge",
                    filter_module("meshguard")?,
                    config(),
                ))
                .route(Route::prefix("/", "product-v2").header("x-mesh-version", "v2"))
                .route(Route::prefix("/", "product-v1")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let token = |sub: &str| TestKey::rsa_a().token(&json!({"iss": ISSUER, "sub": sub, "exp": exp}));
    let get = |sub: Option<&str>, extra: &[(&str, &str)]| -> anyhow::Result<http::Response> {
        let bearer = sub.map(|sub| format!("Bearer {}", token(sub)));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        http::get(&format!("{}/api/products/p-1", envoy.url("edge")), &headers)
    };
    let mut steps = Vec::new();

    let anonymous = get(None, &[])?;
    steps.push(Step::new(
        "GET /api/products/p-1 without a token",
        format!(
            "{} (refused by the JWT stage; nothing counted)",
            anonymous.status
        ),
        anonymous.status == 401,
    ));

    let alice: Vec<u16> = (0..7)
        .map(|_| get(Some("alice"), &[("x-jwt-sub", "bob")]).map(|r| r.status))
        .collect::<anyhow::Result<_>>()?;
    let admitted = alice.iter().filter(|s| **s == 200).count();
    steps.push(Step::new(
        "alice x7 (claiming to be bob in x-jwt-sub)",
        format!("{admitted} admitted, then 429: 5/min on her verified sub"),
        admitted == 5 && alice.iter().skip(5).all(|s| *s == 429),
    ));
    let bob = get(Some("bob"), &[])?;
    steps.push(Step::new(
        "bob",
        format!("{} (his own budget)", bob.status),
        bob.status == 200,
    ));

    let users: Vec<String> = (0..6).map(|n| format!("shopper-{n}")).collect();
    let mut landed = Vec::new();
    for user in &users {
        let response = get(Some(user), &[])?;
        landed.push(response.header("x-upstream").unwrap_or("?").to_string());
    }
    let right = users
        .iter()
        .zip(&landed)
        .all(|(user, version)| version == &format!("product-{}", version_of(user)));
    steps.push(Step::new(
        "6 shoppers, canary 50/50 on their sub",
        format!("served by {}", landed.join(", ")),
        right,
    ));

    v2.script("/api/products", Script::status(503));
    let on_v2: Vec<&String> = users.iter().filter(|u| version_of(u) == "v2").collect();
    let on_v1: Vec<&String> = users.iter().filter(|u| version_of(u) == "v1").collect();
    for n in 0..4 {
        let user = on_v2
            .get(n % on_v2.len().max(1))
            .map_or("shopper-0", |u| u.as_str());
        let _ = get(Some(user), &[])?;
    }
    let refused = match on_v2.first() {
        Some(user) => get(Some(user), &[])?,
        None => anyhow::bail!("no shopper landed on v2"),
    };
    let served = match on_v1.first() {
        Some(user) => get(Some(user), &[])?,
        None => anyhow::bail!("no shopper landed on v1"),
    };
    steps.push(Step::new(
        "v2 fails 4 calls in a row",
        format!(
            "v2 shoppers get {} ({}), v1 shoppers {}: the breaker judged the version the canary chose",
            refused.status,
            refused.header("x-meshguard-circuit").unwrap_or("-"),
            served.status
        ),
        refused.header("x-meshguard-circuit") == Some("open") && served.status == 200,
    ));
    // One module: its base VM and one per thread (main and two workers); four modules would
    // run four times as many.
    let vms = envoy
        .stat("wasm.envoy.wasm.runtime.v8.active")?
        .unwrap_or(0);
    steps.push(Step::new(
        "Envoy stats",
        format!(
            "{vms} V8 VMs for the four policies; four modules would run {}",
            4 * vms
        ),
        (1..=4).contains(&vms),
    ));
    Ok(steps)
}
