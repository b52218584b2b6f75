//! The scenario's parts: the edge gateway's configuration, tokens, the config discovery file.

use super::*;

pub(super) const ISSUER: &str = "https://id.shop.example";

pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(super) fn token(sub: &str, exp: u64) -> String {
    TestKey::rsa_a().token(&json!({"iss": ISSUER, "sub": sub, "exp": exp}))
}

/// The edge gateway's policies in one `meshguard` module.
pub(super) fn pipeline_config(jwks_cluster: &str) -> String {
    json!({
        "jwtAuth": {
            "providers": [
                {"name": "shop", "issuer": ISSUER, "jwks": jwks(&[&TestKey::rsa_a()])},
                // The partner IdP's keys are fetched from a JWKS endpoint that fails.
                {"name": "partner", "issuer": "https://id.partner.example",
                 "remoteJwks": {"cluster": jwks_cluster, "uri": "http://jwks/certs",
                                "timeout": "1s"}}
            ],
            "rules": [
                {"match": {"prefix": "/public"}},
                {"match": {"prefix": "/partner"}, "requires": {"provider": "partner"}},
                {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}
            ]
        },
        "rateLimit": {"limits": [
            {"name": "orders", "match": {"prefix": "/api/orders"}, "key": [{"claim": "sub"}],
             "rate": {"requests": 5, "per": "minute"}}
        ]},
        "canary": {"services": [
            {"name": "product", "match": {"prefix": "/api/products"},
             "versions": [{"name": "v1", "weight": 50, "cluster": "product-v1"},
                          {"name": "v2", "weight": 50, "cluster": "product-v2"}],
             "stickyKey": [{"claim": "sub"}]}
        ]},
        "circuitBreaker": {"breakers": [
            {"name": "payment", "match": {"prefix": "/api/payments"},
             "window": {"type": "count", "size": 6}, "minimumCalls": 4,
             "failureRateThreshold": 50, "openFor": "120s"},
            {"name": "inventory", "match": {"prefix": "/api/inventory"}}
        ]}
    })
    .to_string()
}

/// Writes the config discovery file of the `broken` listener (atomically, as Envoy's file
/// watch wants): the rate-limit module with `config`.
pub(super) fn discover(path: &Path, version: &str, config: &str) {
    let filter = FilterSpec::Wasm {
        name: "broken".to_string(),
        module: filter_module("meshguard_rate_limit").unwrap(),
        config: config.to_string(),
        vm_id: "broken".to_string(),
    };
    let resources = json!({
        "version_info": version,
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "broken",
            "typed_config": filter.typed_config().unwrap(),
        }]
    });
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, resources.to_string()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

pub(super) const GOOD_LIMITS: &str = r#"{"limits": [{"name": "all", "key": [{"constant": "all"}], "rate": {"requests": 100, "per": "second"}}]}"#;

/// A limit without a key, which the module refuses.
pub(super) const BAD_LIMITS: &str = r#"{"limits": [{"name": "orders"}]}"#;

pub(super) const AUTHZ_POLICY: &str = "package envoy.authz

import rego.v1

default allow := false

allow if not startswith(input.attributes.request.http.path, \"/api/admin\")
";
