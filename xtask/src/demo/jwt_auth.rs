//! Act: JWT authentication in front of the commerce APIs. The identity provider's JWKS is served
//! by the backend's "Keycloak" path through an Envoy cluster; shoppers call without a token, with
//! a valid one and with an expired one.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use meshguard_jwt_auth::testing::TestKey;
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Script, Upstream, http,
};
use serde_json::json;

use super::Step;

const ISSUER: &str = "https://id.shop.example/realms/shop";
const CERTS: &str = "/realms/shop/protocol/openid-connect/certs";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn call(envoy: &Envoy, path: &str, token: Option<&str>) -> anyhow::Result<http::Response> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    http::get(&format!("{}{path}", envoy.url("gateway")), &headers)
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let backend = Upstream::start("commerce-v1").context("starting the commerce backend")?;
    let key = TestKey::rsa_a();
    backend.script(
        CERTS,
        Script::document(
            "application/json",
            meshguard_jwt_auth::testing::jwks(&[&key]),
        ),
    );
    let config = json!({
        "providers": [{
            "name": "keycloak",
            "issuer": ISSUER,
            "audiences": ["commerce-api"],
            "remoteJwks": {"cluster": "keycloak", "uri": format!("http://keycloak.identity{CERTS}"),
                           "cacheDuration": "300s", "timeout": "2s"},
            "claimToHeaders": [
                {"claim": "sub", "header": "x-jwt-sub"},
                {"claim": "realm_access.roles", "header": "x-jwt-roles"}
            ]
        }],
        "rules": [
            {"match": {"prefix": "/api/products", "methods": ["GET"]}, "requires": {"allowMissing": true}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "keycloak"}}
        ]
    });
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("commerce", backend.addr()))
        .cluster(Cluster::new("keycloak", backend.addr()))
        .listener(
            Listener::new("gateway")
                .filter(FilterSpec::wasm(
                    "jwt",
                    filter_module("meshguard_jwt_auth")?,
                    config.to_string(),
                ))
                .route(Route::prefix("/", "commerce")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    println!(
        "  Envoy 1.40 (V8, 2 workers) on {}; Keycloak JWKS at {}{CERTS}",
        envoy.url("gateway"),
        backend.url()
    );
    let claims = |exp: u64| {
        json!({"iss": ISSUER, "aud": "commerce-api", "sub": "alice", "iat": exp - 600, "exp": exp,
               "realm_access": {"roles": ["customer", "beta-tester"]}})
    };
    let valid = key.token(&claims(now() + 600));
    let expired = key.token(&claims(now() - 3600));

    // The JWKS arrives with the first root-context tick after start-up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&envoy, "/api/orders", Some(&valid))?.status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut steps = Vec::new();
    let response = call(&envoy, "/api/orders", None)?;
    steps.push(Step::new(
        "GET /api/orders without a token",
        format!(
            "{} {}",
            response.status,
            response.header("www-authenticate").unwrap_or("-")
        ),
        response.status == 401,
    ));

    let response = call(&envoy, "/api/orders", Some(&valid))?;
    let echo = response.json().unwrap_or_default();
    let (sub, roles) = (
        echo["headers"]["x-jwt-sub"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
        echo["headers"]["x-jwt-roles"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
    );
    steps.push(Step::new(
        "GET /api/orders as alice (valid RS256)",
        if response.status == 200 {
            format!("200, upstream saw x-jwt-sub={sub} x-jwt-roles={roles}")
        } else {
            format!("{} {}", response.status, response.body)
        },
        response.status == 200 && sub == "alice" && roles == "customer,beta-tester",
    ));

    let response = call(&envoy, "/api/orders", Some(&expired))?;
    let why = response
        .header("www-authenticate")
        .unwrap_or("-")
        .to_string();
    steps.push(Step::new(
        "GET /api/orders with an expired token",
        format!("{} {why}", response.status),
        response.status == 401 && why.contains("Jwt is expired"),
    ));

    let response = call(&envoy, "/api/products", None)?;
    steps.push(Step::new(
        "GET /api/products without a token",
        format!("{} (catalogue: token optional)", response.status),
        response.status == 200,
    ));
    let fetches = backend.hits(CERTS);
    steps.push(Step::new(
        "Keycloak JWKS fetches",
        format!("{fetches} for 2 workers and the main thread"),
        fetches == 1,
    ));
    Ok(steps)
}
