//! The JWT rows: meshguard's jwt-auth beside Envoy's native jwt_authn configured the same way
//! (same JWKS, issuer, audience, two claim headers, token not forwarded), for RS256 and ES256.
//!
//! - cold: a different token on every request. [`COLD_TOKENS`] pre-signed tokens are cycled by a
//!   generated wrk script, more than the filter's verified-token cache holds, so every request
//!   parses and verifies a signature; native jwt_authn runs without `jwt_cache_config` on the
//!   same tokens.
//! - warm: one token repeated; the filter answers from its cache, native from its
//!   `jwt_cache_config`.
//!
//! Targets (issue 9): cold added p50 at most 1.1x native's, warm at most 1.0x native-with-cache's.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::{filter_module, target_dir};
use meshguard_testkit::{FilterSpec, Listener, Route};
use serde_json::{Value, json};

use super::Row;

const ISSUER: &str = "https://id.shop.example/realms/shop";
const AUDIENCE: &str = "commerce-api";
/// Distinct tokens per algorithm in the cold rows (the filter caches 1024 per worker).
pub const COLD_TOKENS: usize = 1500;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Claims shaped like a Keycloak access token.
pub(super) fn claims(user: usize) -> Value {
    let now = now();
    json!({
        "exp": now + 3600, "iat": now, "jti": format!("bench-{user:06}"),
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{user:06}"), "typ": "Bearer",
        "azp": "commerce-web", "scope": "openid profile email",
        "realm_access": {"roles": ["customer", "offline_access"]},
        "email": format!("user{user}@shop.example"), "email_verified": true,
        "name": "Bench Shopper", "preferred_username": format!("user{user}"),
    })
}

/// meshguard's configuration for the JWT rows (and the edge rows' JWT stage).
pub(super) fn ours_config(jwks_text: &str) -> Value {
    json!({
        "providers": [{
            "name": "shop", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks_text,
            "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"},
                               {"claim": "realm_access.roles", "header": "x-jwt-roles"}]
        }],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    })
}

fn ours(name: &str, jwks_text: &str) -> anyhow::Result<FilterSpec> {
    Ok(FilterSpec::wasm(
        name,
        filter_module("meshguard_jwt_auth")?,
        ours_config(jwks_text).to_string(),
    ))
}

pub(super) fn native(jwks_text: &str, cache: bool) -> FilterSpec {
    let mut provider = json!({
        "issuer": ISSUER, "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": jwks_text},
        "forward": false,
        "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"},
                             {"header_name": "x-jwt-roles", "claim_name": "realm_access.roles"}],
    });
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 1024});
    }
    FilterSpec::native(
        "envoy.filters.http.jwt_authn",
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"shop": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "shop"}}]
        }),
    )
}

fn key(alg: &str) -> TestKey {
    match alg {
        "ES256" => TestKey::ec256_a(),
        _ => TestKey::rsa_a(),
    }
}

/// The eight rows.
pub(super) fn rows() -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for alg in ["RS256", "ES256"] {
        let key = key(alg);
        let jwks_text = jwks(&[&key]);
        let lower = alg.to_lowercase();
        let bearer = vec![(
            "authorization".to_string(),
            format!("Bearer {}", key.token(&claims(0))),
        )];
        let row = |name: String,
                   listener: String,
                   filter: FilterSpec,
                   headers: Vec<(String, String)>| Row {
            name,
            listener: Listener::new(listener)
                .filter(filter)
                .route(Route::prefix("/", "backend")),
            headers,
            path: "/api/orders".to_string(),
        };
        rows.push(row(
            format!("jwt {alg} cold: meshguard ({COLD_TOKENS} tokens cycled)"),
            format!("jwt-{lower}-cold"),
            ours(&format!("jwt-{lower}-cold"), &jwks_text)?,
            Vec::new(),
        ));
        rows.push(row(
            format!("jwt {alg} cold: native jwt_authn (same tokens, no cache)"),
            format!("native-{lower}-cold"),
            native(&jwks_text, false),
            Vec::new(),
        ));
        rows.push(row(
            format!("jwt {alg} warm: meshguard (1 token, verified-token cache)"),
            format!("jwt-{lower}-warm"),
            ours(&format!("jwt-{lower}-warm"), &jwks_text)?,
            bearer.clone(),
        ));
        rows.push(row(
            format!("jwt {alg} warm: native jwt_authn + jwt_cache_config"),
            format!("native-{lower}-warm"),
            native(&jwks_text, true),
            bearer,
        ));
    }
    Ok(rows)
}

/// The wrk script for `listener`: for the cold rows a script that sends the cycled tokens (one
/// file per algorithm, shared by meshguard's row and native's), otherwise `default`.
pub(super) fn script(listener: &str, default: &Path, report: &str) -> anyhow::Result<PathBuf> {
    let Some(alg) = listener
        .strip_suffix("-cold")
        .and_then(|rest| rest.rsplit('-').next())
    else {
        return Ok(default.to_path_buf());
    };
    let alg = alg.to_uppercase();
    let path = target_dir()
        .join("bench")
        .join(format!("jwt-{}-cold.lua", alg.to_lowercase()));
    // One file per algorithm and run, shared by meshguard's row and native's.
    static WRITTEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut written = WRITTEN.lock().unwrap_or_else(PoisonError::into_inner);
    if written.contains(&alg) {
        return Ok(path);
    }
    let key = key(&alg);
    eprintln!("signing {COLD_TOKENS} {alg} tokens for the cold rows");
    let mut lua = String::from("local tokens = {\n");
    for user in 0..COLD_TOKENS {
        let _ = writeln!(lua, "  \"{}\",", key.token(&claims(user)));
    }
    lua.push_str(
        r#"}
local requests = {}
local next_request = 0
init = function(args)
  for i, token in ipairs(tokens) do
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Authorization"] = "Bearer " .. token
    requests[i] = wrk.format(nil, nil, headers)
  end
end
request = function()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
"#,
    );
    lua.push_str(report);
    fs::write(&path, lua)?;
    written.push(alg);
    Ok(path)
}
