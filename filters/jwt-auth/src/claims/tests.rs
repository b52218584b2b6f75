use serde_json::json;

use super::*;
use crate::config::parse_config;

const NOW: u64 = 1_700_000_000;

fn provider(extra: serde_json::Value) -> Provider {
    let mut raw = json!({
        "name": "p",
        "jwks": crate::testing::jwks(&[&crate::testing::TestKey::ec256_a()]),
        "issuer": "https://issuer",
        "audiences": ["api", "web"],
    });
    for (key, value) in extra.as_object().unwrap() {
        raw[key] = value.clone();
    }
    parse_config(json!({"providers": [raw]}).to_string().as_bytes())
        .unwrap()
        .providers
        .remove(0)
}

fn times(exp: Option<u64>, nbf: Option<u64>, iat: Option<u64>) -> Times {
    Times { exp, nbf, iat }
}

#[test]
fn time_checks_match_envoy_to_the_second() {
    let p = provider(json!({}));
    let skew = 60;
    let cases = [
        ("no claims", times(None, None, None), Ok(())),
        (
            "valid",
            times(Some(NOW + 10), Some(NOW - 10), Some(NOW - 10)),
            Ok(()),
        ),
        (
            "exp within skew",
            times(Some(NOW - skew), None, None),
            Ok(()),
        ),
        (
            "exp just beyond skew",
            times(Some(NOW - skew - 1), None, None),
            Err(Failure::Expired),
        ),
        (
            "long expired",
            times(Some(1), None, None),
            Err(Failure::Expired),
        ),
        (
            "exp zero is expired, not absent",
            times(Some(0), None, None),
            Err(Failure::Expired),
        ),
        (
            "nbf within skew",
            times(None, Some(NOW + skew), None),
            Ok(()),
        ),
        (
            "nbf beyond skew",
            times(None, Some(NOW + skew + 1), None),
            Err(Failure::NotYetValid("nbf")),
        ),
        (
            "iat within skew",
            times(None, None, Some(NOW + skew)),
            Ok(()),
        ),
        (
            "iat beyond skew",
            times(None, None, Some(NOW + skew + 1)),
            Err(Failure::NotYetValid("iat")),
        ),
        (
            "huge values do not overflow",
            times(Some(u64::MAX), Some(u64::MAX), None),
            Err(Failure::NotYetValid("nbf")),
        ),
    ];
    for (name, t, expected) in cases {
        assert_eq!(check_times(&p, &t, NOW), expected, "{name}");
    }
}

#[test]
fn expiration_and_lifetime_limits() {
    let required = provider(json!({"requireExpiration": true}));
    assert!(matches!(
        check_times(&required, &times(None, None, Some(NOW)), NOW),
        Err(Failure::Lifetime(_))
    ));
    assert_eq!(
        check_times(&required, &times(Some(NOW + 1), None, None), NOW),
        Ok(())
    );

    let bounded = provider(json!({"maxLifetimeSeconds": 3600}));
    assert!(
        bounded.require_expiration,
        "a lifetime bound implies exp is required"
    );
    let cases = [
        (
            "iat based, ok",
            times(Some(NOW + 3000), None, Some(NOW - 600)),
            true,
        ),
        (
            "iat based, too long",
            times(Some(NOW + 3000), None, Some(NOW - 601)),
            false,
        ),
        (
            "nbf based",
            times(Some(NOW + 100), Some(NOW - 3501), None),
            false,
        ),
        ("from now", times(Some(NOW + 3600), None, None), true),
        (
            "from now, too long",
            times(Some(NOW + 3601), None, None),
            false,
        ),
        ("no exp", times(None, None, Some(NOW)), false),
    ];
    for (name, t, ok) in cases {
        assert_eq!(check_times(&bounded, &t, NOW).is_ok(), ok, "{name}");
    }
    let strict_skew = provider(json!({"clockSkewSeconds": 0}));
    assert_eq!(
        check_times(&strict_skew, &times(Some(NOW - 1), None, None), NOW),
        Err(Failure::Expired)
    );
    assert_eq!(
        check_times(&strict_skew, &times(Some(NOW), None, None), NOW),
        Ok(())
    );
}

fn claims(iss: Option<&str>, aud: Option<Vec<&str>>) -> Claims {
    Claims {
        iss: iss.map(str::to_string),
        aud: aud.map(|a| a.into_iter().map(str::to_string).collect()),
        ..Claims::default()
    }
}

#[test]
fn issuer_and_audience() {
    let p = provider(json!({}));
    assert_eq!(
        check_issuer(&p, &claims(Some("https://issuer"), None)),
        Ok(())
    );
    assert_eq!(
        check_issuer(&p, &claims(Some("https://issuer/"), None)),
        Err(Failure::Issuer)
    );
    assert_eq!(check_issuer(&p, &claims(None, None)), Err(Failure::Issuer));
    assert_eq!(check_audience(&p, &claims(None, Some(vec!["web"]))), Ok(()));
    assert_eq!(
        check_audience(&p, &claims(None, Some(vec!["x", "api"]))),
        Ok(())
    );
    assert_eq!(
        check_audience(&p, &claims(None, Some(vec!["x"]))),
        Err(Failure::Audience)
    );
    assert_eq!(
        check_audience(&p, &claims(None, Some(vec![]))),
        Err(Failure::Audience)
    );
    assert_eq!(
        check_audience(&p, &claims(None, None)),
        Err(Failure::Audience)
    );

    let open = provider(json!({"audiences": []}));
    let mut anyone = open;
    anyone.issuer = None;
    assert_eq!(
        check_issuer(&anyone, &claims(Some("whoever"), None)),
        Ok(())
    );
    assert_eq!(check_audience(&anyone, &claims(None, None)), Ok(()));
}

#[test]
fn claim_headers_follow_paths_and_join_arrays() {
    let p = provider(json!({
        "claimToHeaders": [
            {"claim": "sub", "header": "x-sub"},
            {"claim": "realm_access.roles", "header": "x-roles"},
            {"claim": "tenant.id", "header": "x-tenant"},
            {"claim": "email_verified", "header": "x-verified"},
            {"claim": "level", "header": "x-level"},
            {"claim": "profile", "header": "x-profile"},
            {"claim": "missing.deep", "header": "x-missing"},
            {"claim": "evil", "header": "x-evil"},
            {"claim": "mixed", "header": "x-mixed"},
            {"claim": "empty", "header": "x-empty"}
        ],
        "forwardPayloadHeader": "x-payload"
    }));
    let payload = json!({
        "sub": "alice",
        "realm_access": {"roles": ["customer", "beta"]},
        "tenant": {"id": 7},
        "email_verified": true,
        "level": 2.5,
        "profile": {"name": "A"},
        "evil": "x\r\nx-admin: true",
        "mixed": ["a", 1, {"no": 1}, ["nested"], false],
        "empty": []
    });
    let headers = headers_for(&p, payload.as_object().unwrap(), "cGF5bG9hZA");
    assert_eq!(
        headers,
        vec![
            ("x-sub".to_string(), "alice".to_string()),
            ("x-roles".into(), "customer,beta".into()),
            ("x-tenant".into(), "7".into()),
            ("x-verified".into(), "true".into()),
            ("x-level".into(), "2.5".into()),
            ("x-mixed".into(), "a,1,false".into()),
            ("x-payload".into(), "cGF5bG9hZA".into()),
        ]
    );
}
