use serde_json::json;

use super::*;

fn parse(value: serde_json::Value) -> Result<Config, ConfigError> {
    parse_config(value.to_string().as_bytes())
}

const MODULE: &str = "package envoy.authz\nimport rego.v1\ndefault allow := false\n";

#[test]
fn defaults_follow_opa_envoy_and_ext_authz() {
    let config = parse(json!({"modules": {"p.rego": MODULE}})).unwrap();
    assert_eq!(config.decision_path, "envoy/authz/allow");
    assert_eq!(config.rule, "data.envoy.authz.allow");
    assert_eq!(config.on_error, OnError::Deny);
    assert_eq!(config.status_on_error, 403);
    assert_eq!(config.max_request_bytes, None, "the body is not buffered");
    assert_eq!(config.cache_size, DEFAULT_CACHE_SIZE);
    assert_eq!(config.max_instructions, DEFAULT_MAX_INSTRUCTIONS);
    assert_eq!(config.data, json!({}));
    assert!(!config.explain);
}

#[test]
fn every_field_is_read() {
    let config = parse(json!({
        "modules": {"b.rego": MODULE, "a.rego": "package lib\nx := 1"},
        "data": {"admins": ["ops"]},
        "decisionPath": "shop/authz/decision",
        "onError": "allow",
        "statusOnError": 503,
        "withRequestBody": {"maxRequestBytes": 4096},
        "cacheSize": 0,
        "maxInstructions": 5000,
        "explain": true
    }))
    .unwrap();
    assert_eq!(
        config
            .modules
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["a.rego", "b.rego"]
    );
    assert_eq!(config.rule, "data.shop.authz.decision");
    assert_eq!(config.on_error, OnError::Allow);
    assert_eq!(config.status_on_error, 503);
    assert_eq!(config.max_request_bytes, Some(4096));
    assert_eq!(config.cache_size, 0);
    assert_eq!(config.max_instructions, 5000);
    assert!(config.explain);
}

#[test]
fn errors_name_the_field() {
    for (config, field) in [
        (json!({}), "."),
        (json!({"modules": {}}), "modules"),
        (json!({"modules": {"p.rego": "  "}}), r#"modules["p.rego"]"#),
        (json!({"modules": {"p.rego": MODULE}, "data": [1]}), "data"),
        (
            json!({"modules": {"p.rego": MODULE}, "decisionPath": "allow"}),
            "decisionPath",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "decisionPath": "envoy/authz/al-low"}),
            "decisionPath",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "onError": "maybe"}),
            "onError",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "statusOnError": 99}),
            "statusOnError",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "withRequestBody": {"maxRequestBytes": 0}}),
            "withRequestBody.maxRequestBytes",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "withRequestBody": {"maxRequestBytes": 2_000_000}}),
            "withRequestBody.maxRequestBytes",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "withRequestBody": {"allowPartialMessage": true, "maxRequestBytes": 10}}),
            "withRequestBody.allowPartialMessage",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "maxInstructions": 0}),
            "maxInstructions",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "cacheSize": 10_000_000}),
            "cacheSize",
        ),
        (
            json!({"modules": {"p.rego": MODULE}, "path": "envoy/authz/allow"}),
            "path",
        ),
    ] {
        let err = parse(config.clone()).unwrap_err();
        assert_eq!(err.field, field, "{config}: {err}");
    }
}
