//! Configuration: the quota mapping, defaults, and errors that name the field.

use std::time::Duration;

use meshguard_filter_core::route::{HeaderCondition, PathMatch};

use crate::config::{
    DEFAULT_MAX_KEYS, HeaderStyle, KeyPart, MissingKey, Per, parse_config, parse_duration,
};

#[test]
fn full_config_parses_into_validated_types() {
    let config = parse_config(
        br#"{
        "limits": [{
            "name": "orders-per-user",
            "match": {"prefix": "/api/orders", "methods": ["post", "GET"],
                      "headers": [{"name": "x-jwt-sub", "present": true}, {"name": "x-tier", "exact": "free"},
                                  {"name": "x-internal", "present": false}]},
            "key": [{"header": "x-jwt-sub"}, "clientIp", {"cookie": "sid"}, {"claim": "sub"},
                    "path", "method", {"constant": "orders"}],
            "rate": {"requests": 10, "per": "minute"},
            "burst": 5,
            "shadow": true,
            "maxKeys": 5000,
            "idleExpiry": "5m",
            "onMissingKey": "shared"
        }],
        "response": {"status": 503, "body": "slow down", "contentType": "application/json"},
        "headers": "xRateLimit"
    }"#,
    )
    .unwrap();
    let limit = &config.limits[0];
    assert_eq!(limit.name, "orders-per-user");
    assert!(matches!(&limit.matcher.path, Some(PathMatch::Prefix(p)) if p == "/api/orders"));
    assert_eq!(limit.matcher.methods, ["POST", "GET"]);
    assert!(matches!(
        limit.matcher.headers[0].condition,
        HeaderCondition::Present(true)
    ));
    assert!(
        matches!(&limit.matcher.headers[1].condition, HeaderCondition::Exact(v) if v == "free")
    );
    assert!(matches!(
        limit.matcher.headers[2].condition,
        HeaderCondition::Present(false)
    ));
    assert_eq!(
        limit.key,
        vec![
            KeyPart::Header("x-jwt-sub".into()),
            KeyPart::ClientIp,
            KeyPart::Cookie("sid".into()),
            KeyPart::Claim(meshguard_filter_core::request::ClaimPath::parse("sub").unwrap()),
            KeyPart::Path,
            KeyPart::Method,
            KeyPart::Constant("orders".into()),
        ]
    );
    assert_eq!(
        (limit.requests, limit.per, limit.burst),
        (10, Per::Minute, 5)
    );
    // governor's quota: one cell every 6 s, 15 at once.
    assert_eq!(limit.quota.replenish_interval(), Duration::from_secs(6));
    assert_eq!(limit.capacity(), 15);
    assert_eq!(limit.window_seconds(), 90);
    assert!(limit.shadow);
    assert_eq!(limit.max_keys, 5000);
    assert_eq!(limit.idle_expiry, Duration::from_secs(300));
    assert_eq!(limit.on_missing_key, MissingKey::Shared);
    assert_eq!(config.response.status, 503);
    assert_eq!(config.response.body, "slow down");
    assert_eq!(config.headers, HeaderStyle::XRateLimit);
}

#[test]
fn defaults_follow_envoy() {
    let config = parse_config(
        br#"{"limits":[{"name":"g","key":[{"constant":"all"}],"rate":{"requests":100,"per":"second"}}]}"#,
    )
    .unwrap();
    let limit = &config.limits[0];
    assert_eq!(
        limit.capacity(),
        100,
        "burst defaults to 0: capacity = requests"
    );
    assert_eq!(limit.quota.replenish_interval(), Duration::from_millis(10));
    assert_eq!(limit.max_keys, DEFAULT_MAX_KEYS);
    assert_eq!(limit.idle_expiry, Duration::from_secs(60));
    assert!(!limit.shadow);
    assert!(limit.matcher.path.is_none() && limit.matcher.methods.is_empty());
    assert_eq!(config.response.status, 429);
    assert_eq!(config.response.content_type, "text/plain; charset=utf-8");
    assert_eq!(config.headers, HeaderStyle::None);
}

#[test]
fn regex_paths_match_the_whole_path() {
    let config = parse_config(
        br#"{"limits":[{"name":"flash","match":{"regex":"/api/flash-sale/\\d+"},
            "key":[{"constant":"all"}],"rate":{"requests":1,"per":"hour"}}]}"#,
    )
    .unwrap();
    let Some(PathMatch::Regex(regex)) = &config.limits[0].matcher.path else {
        panic!("regex expected");
    };
    assert!(regex.is_match("/api/flash-sale/42"));
    assert!(!regex.is_match("/api/flash-sale/42/extra"));
    assert!(!regex.is_match("/x/api/flash-sale/42"));
}

#[test]
fn invalid_configs_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"limits":[]}"#, "limits", "at least one"),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":0,"per":"second"}}]}"#,
            "limits[0].rate.requests",
            "at least 1",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":4294967295,"per":"hour"},"burst":1}]}"#,
            "limits[0].burst",
            "overflows",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"hour"},"burst":100000}]}"#,
            "limits[0].burst",
            "10 years",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":2000000000,"per":"second"}}]}"#,
            "limits[0].rate.requests",
            "nanosecond",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":-1,"per":"second"}}]}"#,
            "limits[0].rate.requests",
            "invalid value",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"day"}}]}"#,
            "limits[0].rate.per",
            "unknown variant",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"},"brust":1}]}"#,
            "limits[0].brust",
            "unknown field",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}],"extra":1}"#,
            "extra",
            "unknown field",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"regex":"(unclosed"},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.regex",
            "not a valid regex",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"prefix":"api"},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.prefix",
            "start with",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"path":{"prefix":"/x"}},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.path",
            "invalid type",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"methods":["G T"]},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.methods[0]",
            "not an HTTP method",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"headers":[{"name":"X-Up","present":true}]},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.headers[0].name",
            "lowercase",
        ),
        (
            r#"{"limits":[{"name":"l","match":{"headers":[{"name":"x","present":true,"exact":"v"}]},"key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].match.headers[0]",
            "exactly one of",
        ),
        (
            r#"{"limits":[{"name":"l","key":[],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key",
            "at least one key part",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"header":"Bad Name"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key[0].header",
            "lowercase",
        ),
        (
            r#"{"limits":[{"name":"l","key":["path",{"cookie":"a;b"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key[1].cookie",
            "not a cookie name",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"clientIp":{"trustedHops":2}}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key[0].clientIp",
            "invalid type",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"claim":"a..b"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key[0].claim",
            "not a claim path",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"ip":{}}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].key[0]",
            "unknown variant",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"},"maxKeys":0}]}"#,
            "limits[0].maxKeys",
            "between 1 and",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"},"idleExpiry":"soon"}]}"#,
            "limits[0].idleExpiry",
            "not a duration",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"},"idleExpiry":"30d"}]}"#,
            "limits[0].idleExpiry",
            "not a duration",
        ),
        (
            r#"{"limits":[{"name":"a b","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[0].name",
            "letters, digits",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}},
                       {"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[1].name",
            "duplicate",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}],"response":{"status":200}}"#,
            "response.status",
            "400-599",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}],"response":{"contentType":""}}"#,
            "response.contentType",
            "non-empty",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}],"headers":"draft"}"#,
            "headers",
            "unknown variant",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1}}]}"#,
            "limits[0].rate",
            "missing field `per`",
        ),
        (
            r#"{"limits":[{"name":"l","key":[{"constant":"a"}]}]}"#,
            "limits[0].rate",
            "a local limit needs a rate",
        ),
        // Global limits.
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"},"global":{"cluster":"rls","domain":"d"}}]}"#,
            "limits[0].rate",
            "counted by the rate-limit service",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"maxKeys":5,"global":{"cluster":"rls","domain":"d"}}]}"#,
            "limits[0].maxKeys",
            "counted by the rate-limit service",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"","domain":"d"}}]}"#,
            "limits[0].global.cluster",
            "Envoy cluster",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls"}}]}"#,
            "limits[0].global",
            "missing field `domain`",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","timeout":"0ms"}}]}"#,
            "limits[0].global.timeout",
            "above 0",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","timeout":"fast"}}]}"#,
            "limits[0].global.timeout",
            "not a duration",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","failureMode":"open"}}]}"#,
            "limits[0].global.failureMode",
            "unknown variant",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","statusOnError":200}}]}"#,
            "limits[0].global.statusOnError",
            "not an error status",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","retries":2}}]}"#,
            "limits[0].global.retries",
            "unknown field `retries`",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d"}},{"name":"l","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}},{"name":"h","key":[{"constant":"b"}],"global":{"cluster":"rls","domain":"other"}}]}"#,
            "limits[2].global.domain",
            "differs from limits[0]",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","descriptorKeys":["a","b"]}}]}"#,
            "limits[0].global.descriptorKeys",
            "2 descriptor keys for 1 key parts",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d","descriptorKeys":[""]}}]}"#,
            "limits[0].global.descriptorKeys[0]",
            "1-256 characters",
        ),
        (
            r#"{"limits":[{"name":"g","key":[{"constant":"a"}],"global":{"cluster":"rls","domain":"d"}},{"name":"g","key":[{"constant":"a"}],"rate":{"requests":1,"per":"second"}}]}"#,
            "limits[1].name",
            "duplicate limit name",
        ),
    ];
    for (config, field, message) in cases {
        let err = parse_config(config.as_bytes()).expect_err(config);
        assert_eq!(err.field, *field, "{config}: {err}");
        assert!(err.message.contains(message), "{config}: {err}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    for bad in ["", "5", "m", "-1s", "1.5s", "5 m", "1d"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}
