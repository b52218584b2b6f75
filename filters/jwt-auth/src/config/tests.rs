use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::testing::{TestKey, jwks};
use meshguard_filter_core::route::FixedRequest;

fn inline() -> String {
    jwks(&[&TestKey::rsa_a(), &TestKey::ec256_a()])
}

fn full() -> Value {
    json!({
        "providers": [
            {
                "name": "keycloak",
                "issuer": "https://id.shop.example/realms/shop",
                "audiences": ["commerce-api", "mobile"],
                "remoteJwks": {"cluster": "keycloak", "uri": "https://keycloak.id:8443/realms/shop/certs",
                               "cacheDuration": "600s", "timeout": "1500ms"},
                "fromHeaders": [{"name": "authorization", "valuePrefix": "Bearer "}, {"name": "x-token"}],
                "fromParams": ["jwt"],
                "fromCookies": ["session-jwt"],
                "forward": true,
                "forwardPayloadHeader": "x-jwt-payload",
                "claimToHeaders": [{"claim": "realm_access.roles", "header": "x-jwt-roles"}],
                "clockSkewSeconds": 30,
                "requireExpiration": true,
                "maxLifetimeSeconds": 3600
            },
            {"name": "partners", "jwks": inline()}
        ],
        "rules": [
            {"match": {"path": "/healthz"}},
            {"match": {"prefix": "/api/", "methods": ["GET"]}, "requires": {"anyOf": [{"provider": "keycloak"}, {"provider": "partners"}]}},
            {"match": {"regex": "/api/orders/[0-9]+"}, "requires": {"allOf": [{"provider": "keycloak"}, {"allowMissing": true}]}},
            {"match": {"prefix": "/search"}, "requires": {"allowMissingOrFailed": true}},
            {"match": {"prefix": "/static"}, "requires": {"none": true}}
        ],
        "defaultRequirement": {"provider": "keycloak"},
        "bypassCorsPreflight": false,
        "realm": "shop",
        "maxTokenBytes": 4096,
        "cacheSize": 10,
        "hostCrypto": false
    })
}

#[test]
fn every_field_is_read() {
    let config = parse_config(full().to_string().as_bytes()).unwrap();
    let keycloak = &config.providers[0];
    assert_eq!(
        keycloak.issuer.as_deref(),
        Some("https://id.shop.example/realms/shop")
    );
    assert_eq!(keycloak.audiences, vec!["commerce-api", "mobile"]);
    let KeySource::Remote(remote) = &keycloak.keys else {
        panic!("remote")
    };
    assert_eq!(remote.cluster, "keycloak");
    assert_eq!(remote.authority, "keycloak.id:8443");
    assert_eq!(remote.path, "/realms/shop/certs");
    assert_eq!(remote.cache_duration, Duration::from_secs(600));
    assert_eq!(remote.timeout, Duration::from_millis(1500));
    assert_eq!(
        keycloak.locations,
        vec![
            Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            },
            Location::Header {
                name: "x-token".into(),
                prefix: String::new()
            },
            Location::Param("jwt".into()),
            Location::Cookie("session-jwt".into()),
        ]
    );
    assert!(keycloak.forward);
    assert_eq!(
        keycloak.forward_payload_header.as_deref(),
        Some("x-jwt-payload")
    );
    assert_eq!(
        keycloak.claim_to_headers[0].path,
        vec!["realm_access", "roles"]
    );
    assert_eq!(keycloak.clock_skew_seconds, 30);
    assert!(keycloak.require_expiration);
    assert_eq!(keycloak.max_lifetime_seconds, Some(3600));
    let KeySource::Inline(set) = &config.providers[1].keys else {
        panic!("inline")
    };
    assert_eq!(set.keys.len(), 2);
    assert_eq!(config.rules.len(), 5);
    assert_eq!(
        config.rules[1].requirement,
        Requirement::AnyOf(vec![Requirement::Provider(0), Requirement::Provider(1)])
    );
    assert_eq!(config.rules[0].requirement, Requirement::None);
    assert_eq!(config.default_requirement, Requirement::Provider(0));
    assert!(!config.bypass_cors_preflight);
    assert_eq!(config.realm.as_deref(), Some("shop"));
    assert_eq!(config.max_token_bytes, 4096);
    assert_eq!(config.cache_size, 10);
    assert!(!config.host_crypto);
    assert_eq!(
        config.protected_headers,
        vec!["x-jwt-roles", "x-jwt-payload"]
    );
}

#[test]
fn defaults_follow_envoy_and_deny_unmatched_requests() {
    let config = parse_config(
        json!({"providers": [{"name": "p", "jwks": inline()}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let provider = &config.providers[0];
    assert_eq!(
        provider.locations,
        vec![
            Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            },
            Location::Param("access_token".into()),
        ]
    );
    assert_eq!(provider.clock_skew_seconds, 60);
    assert!(!provider.forward);
    assert!(!provider.require_expiration);
    assert_eq!(config.default_requirement, Requirement::Deny);
    assert!(config.bypass_cors_preflight);
    assert_eq!(config.max_token_bytes, 8192);
    assert_eq!(config.cache_size, DEFAULT_CACHE_SIZE);
    assert!(config.host_crypto);
    let remote = parse_config(
        json!({"providers": [{"name": "p", "remoteJwks": {"cluster": "c", "uri": "http://idp"}}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let KeySource::Remote(remote) = &remote.providers[0].keys else {
        panic!()
    };
    assert_eq!(
        (remote.authority.as_str(), remote.path.as_str()),
        ("idp", "/")
    );
    assert_eq!(remote.cache_duration, Duration::from_secs(300));
}

fn with(path: &[&str], value: Value) -> Value {
    let mut doc = full();
    let mut target = &mut doc;
    for (i, segment) in path.iter().enumerate() {
        if i + 1 == path.len() {
            if value.is_null() {
                match segment.parse::<usize>() {
                    Ok(_) => unreachable!(),
                    Err(_) => {
                        target.as_object_mut().unwrap().remove(*segment);
                    }
                }
            } else if let Ok(index) = segment.parse::<usize>() {
                target[index] = value.clone();
            } else {
                target[*segment] = value.clone();
            }
            break;
        }
        target = match segment.parse::<usize>() {
            Ok(index) => &mut target[index],
            Err(_) => &mut target[*segment],
        };
    }
    doc
}

#[test]
fn bad_config_names_the_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(&["extra"], json!(1)), "extra", "unknown field"),
        (
            with(&["providers", "0", "issuerr"], json!("x")),
            "providers[0].issuerr",
            "unknown field",
        ),
        (
            with(&["providers", "0", "name"], json!("")),
            "providers[0].name",
            "1-64",
        ),
        (
            with(&["providers", "1", "name"], json!("keycloak")),
            "providers[1].name",
            "defined twice",
        ),
        (
            with(&["providers", "0", "issuer"], json!(" ")),
            "providers[0].issuer",
            "empty",
        ),
        (
            with(&["providers", "0", "audiences"], json!(["a", ""])),
            "providers[0].audiences[1]",
            "empty",
        ),
        (
            with(&["providers", "1", "jwks"], json!("{not json")),
            "providers[1].jwks",
            "not a JWKS",
        ),
        (
            with(&["providers", "1", "jwks"], json!("{\"keys\":[]}")),
            "providers[1].jwks",
            "no usable",
        ),
        (
            with(
                &["providers", "1", "jwks"],
                json!(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#),
            ),
            "providers[1].jwks",
            "2048 to 4096",
        ),
        (
            with(
                &["providers", "1", "jwks"],
                json!(r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#),
            ),
            "providers[1].jwks",
            "at least 32",
        ),
        (
            with(
                &["providers", "1", "jwks"],
                json!(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#),
            ),
            "providers[1].jwks",
            "32 bytes",
        ),
        (
            with(
                &["providers", "1", "remoteJwks"],
                json!({"cluster": "c", "uri": "http://x"}),
            ),
            "providers[1].remoteJwks",
            "not both",
        ),
        (
            with(&["providers", "0", "remoteJwks"], Value::Null),
            "providers[0]",
            "one of `jwks`",
        ),
        (
            with(&["providers", "0", "remoteJwks", "uri"], json!("ftp://x/y")),
            "providers[0].remoteJwks.uri",
            "http",
        ),
        (
            with(
                &["providers", "0", "remoteJwks", "uri"],
                json!("http:///path"),
            ),
            "providers[0].remoteJwks.uri",
            "usable",
        ),
        (
            with(&["providers", "0", "remoteJwks", "cluster"], json!("")),
            "providers[0].remoteJwks.cluster",
            "empty",
        ),
        (
            with(
                &["providers", "0", "remoteJwks", "cacheDuration"],
                json!("5 minutes"),
            ),
            "providers[0].remoteJwks.cacheDuration",
            "duration",
        ),
        (
            with(
                &["providers", "0", "remoteJwks", "cacheDuration"],
                json!("0s"),
            ),
            "providers[0].remoteJwks.cacheDuration",
            "at least 1s",
        ),
        (
            with(&["providers", "0", "remoteJwks", "timeout"], json!(-1)),
            "providers[0].remoteJwks.timeout",
            "negative",
        ),
        (
            with(&["providers", "0", "remoteJwks", "timeout"], json!("2m")),
            "providers[0].remoteJwks.timeout",
            "60s",
        ),
        (
            with(
                &["providers", "0", "fromHeaders", "0", "name"],
                json!("Authorization"),
            ),
            "providers[0].fromHeaders[0].name",
            "lowercase",
        ),
        (
            with(
                &["providers", "0", "fromHeaders", "1"],
                json!({"name": "x", "prefix": "B"}),
            ),
            "providers[0].fromHeaders[1].prefix",
            "unknown field",
        ),
        (
            with(&["providers", "0", "fromParams", "0"], json!("a b")),
            "providers[0].fromParams[0]",
            "valid name",
        ),
        (
            with(&["providers", "0", "fromCookies", "0"], json!("")),
            "providers[0].fromCookies[0]",
            "valid name",
        ),
        (
            with(
                &["providers", "0", "forwardPayloadHeader"],
                json!("Content-Length"),
            ),
            "providers[0].forwardPayloadHeader",
            "lowercase",
        ),
        (
            with(&["providers", "0", "forwardPayloadHeader"], json!("host")),
            "providers[0].forwardPayloadHeader",
            "cannot be written",
        ),
        (
            with(
                &["providers", "0", "claimToHeaders", "0", "claim"],
                json!("realm_access..roles"),
            ),
            "providers[0].claimToHeaders[0].claim",
            "claim path",
        ),
        (
            with(
                &["providers", "0", "claimToHeaders", "0", "header"],
                json!("x roles"),
            ),
            "providers[0].claimToHeaders[0].header",
            "lowercase",
        ),
        (
            with(
                &["providers", "0", "claimToHeaders", "0", "header"],
                json!("x-token"),
            ),
            "providers[0].fromHeaders",
            "also written",
        ),
        (
            with(&["providers", "0", "clockSkewSeconds"], json!(-5)),
            "providers[0].clockSkewSeconds",
            "invalid value",
        ),
        (
            with(&["providers", "0", "clockSkewSeconds"], json!(100000)),
            "providers[0].clockSkewSeconds",
            "86400",
        ),
        (
            with(&["providers", "0", "maxLifetimeSeconds"], json!(0)),
            "providers[0].maxLifetimeSeconds",
            "positive",
        ),
        (
            with(&["providers", "0", "requireExpiration"], json!("yes")),
            "providers[0].requireExpiration",
            "invalid type",
        ),
        (
            with(&["rules", "0", "match"], json!({"pathPrefix": "/a"})),
            "rules[0].match.pathPrefix",
            "unknown field",
        ),
        (
            with(
                &["rules", "0", "match"],
                json!({"path": "/a", "prefix": "/a"}),
            ),
            "rules[0].match",
            "at most one",
        ),
        (
            with(&["rules", "0", "match"], json!({"path": "a"})),
            "rules[0].match.path",
            "start with",
        ),
        (
            with(&["rules", "2", "match", "regex"], json!("/api/(unclosed")),
            "rules[2].match.regex",
            "regex",
        ),
        (
            with(&["rules", "1", "match", "methods"], json!(["G T"])),
            "rules[1].match.methods[0]",
            "not an HTTP method",
        ),
        (
            with(
                &["rules", "1", "requires", "anyOf", "1", "provider"],
                json!("nobody"),
            ),
            "rules[1].requires.anyOf[1].provider",
            "no provider is named",
        ),
        (
            with(&["rules", "1", "requires"], json!({"anyOf": []})),
            "rules[1].requires.anyOf",
            "at least one",
        ),
        (
            with(&["rules", "1", "requires"], json!({})),
            "rules[1].requires",
            "exactly one",
        ),
        (
            with(
                &["rules", "1", "requires"],
                json!({"provider": "keycloak", "none": true}),
            ),
            "rules[1].requires",
            "exactly one",
        ),
        (
            with(
                &["rules", "2", "requires", "allOf", "1", "allowMissing"],
                json!(false),
            ),
            "rules[2].requires.allOf[1].allowMissing",
            "true",
        ),
        (
            with(
                &["rules", "0", "requires"],
                json!({"providers": "keycloak"}),
            ),
            "rules[0].requires.providers",
            "unknown field",
        ),
        (
            with(&["defaultRequirement"], json!({"provider": "ghost"})),
            "defaultRequirement.provider",
            "no provider",
        ),
        (with(&["realm"], json!("a\"b")), "realm", "quotes"),
        (
            with(&["maxTokenBytes"], json!(10)),
            "maxTokenBytes",
            "between",
        ),
        (
            with(&["cacheSize"], json!(1_000_000)),
            "cacheSize",
            "at most",
        ),
        (
            with(&["hostCrypto"], json!("on")),
            "hostCrypto",
            "invalid type",
        ),
    ];
    for (doc, field, message) in cases {
        let err = parse_config(doc.to_string().as_bytes()).expect_err(field);
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(message), "{field}: {err}");
    }
}

#[test]
fn durations_take_units_and_numbers() {
    for (text, expected) in [
        ("\"300s\"", Duration::from_secs(300)),
        ("\"1.5s\"", Duration::from_millis(1500)),
        ("\"250ms\"", Duration::from_millis(250)),
        ("\"5m\"", Duration::from_secs(300)),
        ("\"1h\"", Duration::from_secs(3600)),
        ("42", Duration::from_secs(42)),
        ("0.5", Duration::from_millis(500)),
    ] {
        let parsed: provider::ConfigDuration = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.0, expected, "{text}");
    }
    for text in ["\"s\"", "\"-1s\"", "\"1d\"", "\"1e3s\"", "true", "\"\""] {
        assert!(
            serde_json::from_str::<provider::ConfigDuration>(text).is_err(),
            "{text}"
        );
    }
}

#[test]
fn regex_rules_match_the_whole_path_without_the_query() {
    let config = parse_config(full().to_string().as_bytes()).unwrap();
    let rule = &config.rules[2];
    assert!(rule.matches(&FixedRequest::new("GET", "/api/orders/42")));
    assert!(rule.matches(&FixedRequest::new("POST", "/api/orders/42?x=1")));
    assert!(!rule.matches(&FixedRequest::new("GET", "/api/orders/42/items")));
    assert!(!rule.matches(&FixedRequest::new("GET", "/x/api/orders/42")));
    let exact = &config.rules[0];
    assert!(exact.matches(&FixedRequest::new("GET", "/healthz?probe=1")));
    assert!(!exact.matches(&FixedRequest::new("GET", "/healthz/x")));
    let methods = &config.rules[1];
    assert!(methods.matches(&FixedRequest::new("GET", "/api/x")));
    assert!(!methods.matches(&FixedRequest::new("DELETE", "/api/x")));
}

#[test]
fn remote_jwks_oct_keys_and_encryption_keys_are_skipped_not_fatal() {
    let document = json!({"keys": [
        {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        TestKey::ec256_a().jwk,
        {"kty": "RSA", "n": "!!", "e": "AQAB"}
    ]})
    .to_string();
    let set = crate::keys::parse_jwks(&document, false, crate::keys::Strictness::Lenient).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.skipped.len(), 4, "{:?}", set.skipped);
    assert!(crate::keys::parse_jwks(&document, true, crate::keys::Strictness::Strict).is_err());
}
