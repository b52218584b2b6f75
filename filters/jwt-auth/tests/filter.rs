//! The filter's request path with a fixed clock: rules and requirements, token locations,
//! forwarding, claim headers and their anti-spoofing, the verified-token cache, responses and
//! metrics.

mod support;

use meshguard_filter_core::Decision;
use meshguard_jwt_auth::testing::{TestKey, b64, jwks};
use serde_json::{Value, json};
use support::{Harness, NOW, reason, refused, response_header};

const ISSUER: &str = "https://id.shop.example";
const PARTNER: &str = "https://partners.example";

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": "api", "iat": NOW - 5, "exp": NOW + 300,
           "realm_access": {"roles": ["customer", "beta"]}})
}

fn config() -> Value {
    json!({
        "providers": [
            {
                "name": "shop", "issuer": ISSUER, "audiences": ["api"],
                "jwks": jwks(&[&TestKey::rsa_a(), &TestKey::ec256_a()]),
                "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"},
                                   {"claim": "realm_access.roles", "header": "x-jwt-roles"}],
                "forwardPayloadHeader": "x-jwt-payload"
            },
            {
                "name": "partners", "issuer": PARTNER,
                "jwks": jwks(&[&TestKey::ed25519()]),
                "fromHeaders": [{"name": "x-partner-token"}],
                "fromParams": ["partner_token"],
                "fromCookies": ["partner-session"],
                "forward": true,
                "claimToHeaders": [{"claim": "sub", "header": "x-partner"}]
            }
        ],
        "rules": [
            {"match": {"path": "/healthz"}},
            {"match": {"prefix": "/api/catalog", "methods": ["GET"]}, "requires": {"allowMissing": true}},
            {"match": {"prefix": "/api/search"}, "requires": {"allowMissingOrFailed": true}},
            {"match": {"prefix": "/api/partner"}, "requires": {"anyOf": [{"provider": "partners"}, {"provider": "shop"}]}},
            {"match": {"prefix": "/api/admin"}, "requires": {"allOf": [{"provider": "shop"}, {"provider": "partners"}]}},
            {"match": {"regex": "/api/orders/[0-9]+"}, "requires": {"provider": "shop"}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}
        ]
    })
}

fn shop_token() -> String {
    TestKey::rsa_a().token(&claims(ISSUER))
}

fn partner_token() -> String {
    TestKey::ed25519().token(&claims(PARTNER))
}

#[test]
fn valid_token_passes_with_claim_headers_and_without_the_token() {
    let mut h = Harness::new(&config());
    assert_eq!(
        h.bearer("/api/orders/17", &shop_token()),
        Decision::Continue
    );
    assert_eq!(h.header("x-jwt-sub").as_deref(), Some("alice"));
    assert_eq!(h.header("x-jwt-roles").as_deref(), Some("customer,beta"));
    let payload = shop_token().split('.').nth(1).unwrap().to_string();
    assert_eq!(h.header("x-jwt-payload"), Some(payload));
    assert!(
        h.header("authorization").is_none(),
        "forward: false strips the token"
    );
    assert_eq!(h.metric("allowed"), 1);
}

#[test]
fn spoofed_claim_headers_are_removed_on_every_path() {
    let mut h = Harness::new(&config());
    let spoofed = [
        ("x-jwt-sub", "admin"),
        ("x-jwt-roles", "admin"),
        ("x-jwt-payload", "e30"),
        ("x-partner", "evil"),
    ];
    assert_eq!(h.send("GET", "/healthz", &spoofed), Decision::Continue);
    for (name, _) in spoofed {
        assert!(h.header(name).is_none(), "{name} survived on a public path");
    }
    // On an allowMissingOrFailed path with a failing token, nothing is written or kept either.
    let mut headers = spoofed.to_vec();
    let bad = format!("Bearer {}", TestKey::rsa_b().token(&claims(ISSUER)));
    headers.push(("authorization", &bad));
    assert_eq!(h.send("GET", "/api/search", &headers), Decision::Continue);
    assert!(h.header("x-jwt-sub").is_none());
    // And a valid token writes its own value over any spoofed one.
    let good = format!("Bearer {}", shop_token());
    assert_eq!(
        h.send(
            "GET",
            "/api/x",
            &[("x-jwt-sub", "admin"), ("authorization", &good)]
        ),
        Decision::Continue
    );
    assert_eq!(h.header("x-jwt-sub").as_deref(), Some("alice"));
    // A valid token without the claim: the spoofed header goes, nothing replaces it.
    let no_sub = TestKey::rsa_a().token(&json!({"iss": ISSUER, "aud": "api", "exp": NOW + 60}));
    let bearer = format!("Bearer {no_sub}");
    let headers = [
        ("x-jwt-sub", "admin"),
        ("x-jwt-sub", "root"),
        ("authorization", bearer.as_str()),
    ];
    assert_eq!(h.send("GET", "/api/x", &headers), Decision::Continue);
    assert!(
        h.header("x-jwt-sub").is_none(),
        "every spoofed copy is removed"
    );
    assert!(h.header("x-jwt-payload").is_some());
}

#[test]
fn missing_and_invalid_tokens_get_rfc6750_challenges() {
    let mut h = Harness::new(&config());
    let missing = h.send("GET", "/api/orders/1?x=1", &[]);
    let response = refused(&missing);
    assert_eq!(response.status, 401);
    assert_eq!(
        response_header(response, "www-authenticate"),
        Some("Bearer realm=\"https://shop.example/api/orders/1\"")
    );
    assert_eq!(
        response_header(response, "content-type"),
        Some("application/json")
    );
    let expired = TestKey::rsa_a().token(&json!({"iss": ISSUER, "aud": "api", "exp": NOW - 3600}));
    let decision = h.bearer("/api/orders/1", &expired);
    assert_eq!(
        response_header(refused(&decision), "www-authenticate"),
        Some(
            "Bearer realm=\"https://shop.example/api/orders/1\", error=\"invalid_token\", error_description=\"Jwt is expired\""
        )
    );
    assert_eq!(h.metric("denied.missing"), 1);
    assert_eq!(h.metric("denied.expired"), 1);
}

#[test]
fn unmatched_requests_are_denied_by_default() {
    let mut h = Harness::new(&config());
    let decision = h.bearer("/internal/metrics", &shop_token());
    assert_eq!(refused(&decision).status, 403);
    assert_eq!(reason(&decision), "no_rule");
    assert_eq!(h.metric("denied.no_rule"), 1);
    // A method outside the rule's list falls through to the next rule (here /api/ requires shop).
    let decision = h.send("POST", "/api/catalog", &[]);
    assert_eq!(reason(&decision), "missing");

    let mut open = config();
    open["defaultRequirement"] = json!({"none": true});
    let mut h = Harness::new(&open);
    assert_eq!(h.send("GET", "/internal/metrics", &[]), Decision::Continue);
    assert_eq!(h.metric("public"), 1);
}

#[test]
fn cors_preflight_bypasses_unless_disabled() {
    let preflight = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
    ];
    let mut h = Harness::new(&config());
    assert_eq!(
        h.send("OPTIONS", "/api/orders/1", &preflight),
        Decision::Continue
    );
    // An OPTIONS without the preflight headers is an ordinary request.
    assert_eq!(
        reason(&h.send("OPTIONS", "/api/orders/1", &preflight[..1])),
        "missing"
    );
    let mut strict = config();
    strict["bypassCorsPreflight"] = json!(false);
    let mut h = Harness::new(&strict);
    assert_eq!(
        reason(&h.send("OPTIONS", "/api/orders/1", &preflight)),
        "missing"
    );
}

#[test]
fn allow_missing_and_allow_missing_or_failed() {
    let mut h = Harness::new(&config());
    assert_eq!(h.send("GET", "/api/catalog", &[]), Decision::Continue);
    assert_eq!(h.bearer("/api/catalog", &shop_token()), Decision::Continue);
    assert_eq!(h.header("x-jwt-sub").as_deref(), Some("alice"));
    let forged = TestKey::rsa_b().with_kid("rsa-a").token(&claims(ISSUER));
    assert_eq!(reason(&h.bearer("/api/catalog", &forged)), "bad_signature");

    assert_eq!(h.bearer("/api/search", &forged), Decision::Continue);
    assert!(h.header("x-jwt-sub").is_none());
    assert_eq!(h.bearer("/api/search", &shop_token()), Decision::Continue);
    assert_eq!(h.header("x-jwt-sub").as_deref(), Some("alice"));
}

#[test]
fn any_of_and_all_of_with_the_partner_locations() {
    let mut h = Harness::new(&config());
    let partner = partner_token();
    // anyOf: a partner token in its own header (no prefix), forwarded as configured.
    assert_eq!(
        h.send("GET", "/api/partner/x", &[("x-partner-token", &partner)]),
        Decision::Continue
    );
    assert_eq!(h.header("x-partner").as_deref(), Some("alice"));
    assert_eq!(
        h.header("x-partner-token").as_deref(),
        Some(partner.as_str())
    );
    // ...or a shop token.
    assert_eq!(
        h.bearer("/api/partner/x", &shop_token()),
        Decision::Continue
    );
    // ...in a query parameter.
    assert_eq!(
        h.send(
            "GET",
            &format!("/api/partner/x?partner_token={partner}&q=1"),
            &[]
        ),
        Decision::Continue
    );
    // ...in a cookie.
    let cookie = format!("theme=dark; partner-session={partner}");
    assert_eq!(
        h.send("GET", "/api/partner/x", &[("cookie", &cookie)]),
        Decision::Continue
    );
    // allOf needs both.
    assert_eq!(reason(&h.bearer("/api/admin", &shop_token())), "missing");
    let both = [
        ("authorization", format!("Bearer {}", shop_token())),
        ("x-partner-token", partner.clone()),
    ];
    let both: Vec<(&str, &str)> = both.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(h.send("GET", "/api/admin", &both), Decision::Continue);
    assert_eq!(h.header("x-jwt-sub").as_deref(), Some("alice"));
    assert_eq!(h.header("x-partner").as_deref(), Some("alice"));
}

#[test]
fn tokens_are_removed_from_query_and_cookie_when_not_forwarded() {
    let mut cfg = config();
    cfg["providers"][0]["fromParams"] = json!(["access_token"]);
    cfg["providers"][0]["fromCookies"] = json!(["session"]);
    let mut h = Harness::new(&cfg);
    let token = shop_token();
    assert_eq!(
        h.send("GET", &format!("/api/x?a=1&access_token={token}&b=2"), &[]),
        Decision::Continue
    );
    assert_eq!(h.header(":path").as_deref(), Some("/api/x?a=1&b=2"));
    assert_eq!(
        h.send("GET", &format!("/api/x?access_token={token}"), &[]),
        Decision::Continue
    );
    assert_eq!(h.header(":path").as_deref(), Some("/api/x"));
    let cookie = format!("a=1; session={token}; b=2");
    assert_eq!(
        h.send("GET", "/api/x", &[("cookie", &cookie)]),
        Decision::Continue
    );
    assert_eq!(h.header("cookie").as_deref(), Some("a=1; b=2"));
    assert_eq!(
        h.send("GET", "/api/x", &[("cookie", &format!("session={token}"))]),
        Decision::Continue
    );
    assert!(h.header("cookie").is_none());
}

#[test]
fn cached_tokens_skip_verification_but_not_time_checks() {
    let mut h = Harness::new(&config());
    let token = TestKey::rsa_a()
        .token(&json!({"iss": ISSUER, "aud": "api", "sub": "alice", "exp": NOW + 100}));
    for _ in 0..5 {
        assert_eq!(h.bearer("/api/x", &token), Decision::Continue);
        assert_eq!(
            h.header("x-jwt-sub").as_deref(),
            Some("alice"),
            "headers come from the cache too"
        );
    }
    assert_eq!(h.metric("cache.miss"), 1);
    assert_eq!(h.metric("cache.hit"), 4);
    assert_eq!(
        h.metric("verify.wasm"),
        1,
        "one signature verification for five requests"
    );
    h.advance(161); // past exp + 60 s skew
    assert_eq!(reason(&h.bearer("/api/x", &token)), "expired");
    assert_eq!(
        h.metric("cache.hit"),
        5,
        "the expiry was found on a cache hit"
    );
}

#[test]
fn the_cache_can_be_turned_off() {
    let mut cfg = config();
    cfg["cacheSize"] = json!(0);
    let mut h = Harness::new(&cfg);
    for _ in 0..3 {
        assert_eq!(h.bearer("/api/x", &shop_token()), Decision::Continue);
    }
    assert_eq!(h.metric("cache.hit"), 0);
    assert_eq!(h.metric("verify.wasm"), 3);
}

#[test]
fn prefix_is_case_insensitive_and_other_schemes_are_missing() {
    let mut h = Harness::new(&config());
    let lower = format!("bearer {}", shop_token());
    assert_eq!(
        h.send("GET", "/api/x", &[("authorization", &lower)]),
        Decision::Continue
    );
    let basic = "Basic YWxpY2U6c2VjcmV0";
    assert_eq!(
        reason(&h.send("GET", "/api/x", &[("authorization", basic)])),
        "missing"
    );
    assert_eq!(
        reason(&h.send("GET", "/api/x", &[("authorization", "Bearer ")])),
        "missing"
    );
    assert_eq!(
        reason(&h.send("GET", "/api/x", &[("authorization", "Bearer a b")])),
        "malformed"
    );
}

#[test]
fn a_configured_realm_and_payload_header_round_trip() {
    let mut cfg = config();
    cfg["realm"] = json!("commerce");
    let mut h = Harness::new(&cfg);
    let decision = h.send("GET", "/api/x", &[]);
    assert_eq!(
        response_header(refused(&decision), "www-authenticate"),
        Some("Bearer realm=\"commerce\"")
    );
    assert_eq!(h.bearer("/api/x", &shop_token()), Decision::Continue);
    let payload = h.header("x-jwt-payload").unwrap();
    assert_eq!(payload, b64(claims(ISSUER).to_string().as_bytes()));
}

/// The payloads later filters read from the stream's filter state, if any.
fn handed_on(h: &Harness) -> Option<Value> {
    let bytes = h
        .host
        .properties
        .get(meshguard_filter_core::claims::FILTER_STATE)?;
    Some(Value::Object(meshguard_filter_core::claims::decode(bytes)?))
}

#[test]
fn payload_in_metadata_hands_the_verified_payload_to_later_filters() {
    let mut cfg = config();
    cfg["providers"][0]["payloadInMetadata"] = json!("verified_jwt");
    cfg["providers"][1]["payloadInMetadata"] = json!("partner_jwt");
    let mut h = Harness::new(&cfg);
    assert_eq!(
        h.bearer("/api/orders/17", &shop_token()),
        Decision::Continue
    );
    assert_eq!(handed_on(&h), Some(json!({"verified_jwt": claims(ISSUER)})));
    // A cached token hands on the same payload.
    assert_eq!(
        h.bearer("/api/orders/17", &shop_token()),
        Decision::Continue
    );
    assert_eq!(handed_on(&h), Some(json!({"verified_jwt": claims(ISSUER)})));
    // Both providers verified: both payloads, each under its own name.
    let partner = partner_token();
    let shop = format!("Bearer {}", shop_token());
    h.send(
        "GET",
        "/api/admin",
        &[("authorization", &shop), ("x-partner-token", &partner)],
    );
    assert_eq!(
        handed_on(&h),
        Some(json!({"verified_jwt": claims(ISSUER), "partner_jwt": claims(PARTNER)}))
    );
}

#[test]
fn nothing_is_handed_on_without_a_verified_token() {
    let mut cfg = config();
    cfg["providers"][0]["payloadInMetadata"] = json!("verified_jwt");
    let mut h = Harness::new(&cfg);
    for (path, headers) in [
        ("/healthz", vec![]),
        ("/api/catalog", vec![]),
        (
            "/api/orders/1",
            vec![("authorization", "Bearer not.a.token")],
        ),
        ("/api/search", vec![("authorization", "Bearer not.a.token")]),
    ] {
        h.send("GET", path, &headers);
        assert_eq!(handed_on(&h), None, "{path}");
    }
    // Without payloadInMetadata nothing is written, and no extra host call is made.
    let mut h = Harness::new(&config());
    assert_eq!(
        h.bearer("/api/orders/17", &shop_token()),
        Decision::Continue
    );
    assert_eq!(handed_on(&h), None);
}

#[test]
fn payload_in_metadata_is_validated() {
    let mut cfg = config();
    cfg["providers"][0]["payloadInMetadata"] = json!("");
    let err = meshguard_jwt_auth::parse_config(cfg.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "providers[0].payloadInMetadata");
}
