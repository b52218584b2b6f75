//! The authz rows: the commerce RBAC policy (`policies/envoy-authz/rbac.rego`) in the authz
//! module after the JWT module, with the decision cache off and on, over the same JWT
//! configuration without authz (the issue's target: at most 30 µs added p50 with the cache
//! off, read as the difference between the `authz` rows and the `jwt only` row). One warm
//! token, a customer reading their own orders: every request is allowed.
//!
//! [`memory`] reports the module's size and Envoy's RSS at `--concurrency 2` with and without
//! the authz filter.

use std::time::SystemTime;

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::{filter_module, workspace_root};
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};
use serde_json::json;

use super::Row;

const ISSUER: &str = "https://id.shop.example/realms/shop";
const AUDIENCE: &str = "commerce-api";
const USER: &str = "user-000001";

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    TestKey::rsa_a().token(&json!({
        "exp": now + 24 * 3600, "iat": now, "iss": ISSUER, "aud": AUDIENCE, "sub": USER,
        "typ": "Bearer", "azp": "commerce-web", "scope": "openid profile email",
        "realm_access": {"roles": ["customer", "offline_access"]},
    }))
}

fn jwt(name: &str) -> anyhow::Result<FilterSpec> {
    let config = json!({
        "providers": [{
            "name": "shop", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": jwks(&[&TestKey::rsa_a()]), "payloadInMetadata": "verified_jwt",
        }],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    });
    Ok(FilterSpec::wasm(
        format!("jwt-{name}"),
        filter_module("meshguard_jwt_auth")?,
        config.to_string(),
    ))
}

fn authz(name: &str, cache_size: u64) -> anyhow::Result<FilterSpec> {
    let rbac = std::fs::read_to_string(workspace_root().join("policies/envoy-authz/rbac.rego"))?;
    let config = json!({"modules": {"rbac.rego": rbac}, "cacheSize": cache_size});
    Ok(FilterSpec::wasm(
        name,
        filter_module("meshguard_authz")?,
        config.to_string(),
    ))
}

fn listener(name: &str, cache: Option<u64>) -> anyhow::Result<Listener> {
    let mut listener = Listener::new(name).filter(jwt(name)?);
    if let Some(size) = cache {
        listener = listener.filter(authz(name, size)?);
    }
    Ok(listener.route(Route::prefix("/", "backend")))
}

/// The three rows.
pub(super) fn rows() -> anyhow::Result<Vec<Row>> {
    let headers = vec![("authorization".to_string(), format!("Bearer {}", token()))];
    let path = format!("/api/users/{USER}/orders");
    let row = |name: &str, listener: Listener| Row {
        name: name.to_string(),
        listener,
        headers: headers.clone(),
        path: path.clone(),
    };
    Ok(vec![
        row(
            "authz baseline: jwt only (warm token, payloadInMetadata)",
            listener("authz-jwtonly", None)?,
        ),
        row(
            "authz RBAC cache off: jwt + authz",
            listener("authz-nocache", Some(0))?,
        ),
        row(
            "authz RBAC cache on: jwt + authz",
            listener("authz-cache", Some(1024))?,
        ),
    ])
}

/// The authz module's size and Envoy's RSS at `--concurrency 2`, with jwt + authz and with jwt
/// alone, after a few requests on each worker.
pub(super) fn memory() -> anyhow::Result<String> {
    let module = std::fs::metadata(filter_module("meshguard_authz")?)?.len();
    let upstream = Upstream::start("backend")?;
    let bearer = format!("Bearer {}", token());
    let mut rss = Vec::new();
    for cache in [None, Some(1024)] {
        let bootstrap = Bootstrap::new()
            .cluster(Cluster::new("backend", upstream.addr()))
            .listener(listener("edge", cache)?);
        let envoy = Envoy::start(&bootstrap, 2)?;
        for _ in 0..50 {
            let url = format!("{}/api/users/{USER}/orders", envoy.url("edge"));
            let response = http::get(&url, &[("authorization", &bearer)])?;
            anyhow::ensure!(
                response.status == 200,
                "authz memory run: {}",
                response.body
            );
        }
        rss.push(envoy.rss_bytes()? as f64 / (1024.0 * 1024.0));
    }
    Ok(format!(
        "authz module: {module} bytes; Envoy RSS at --concurrency 2: jwt only {:.1} MiB, \
         jwt + authz {:.1} MiB (+{:.1} MiB)",
        rss[0],
        rss[1],
        rss[1] - rss[0]
    ))
}
