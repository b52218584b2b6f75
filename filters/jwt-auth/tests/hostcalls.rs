//! Hostcalls per request, pinned: in Envoy each one crosses into V8 (0.4-5 µs of Envoy CPU), so
//! a new read on the hot path must show up here as a failing count, not as benchmark noise.
//! The configuration is the benchmark's (`cargo xtask bench`): one provider, two claim
//! headers, the token not forwarded.

mod support;

use std::collections::BTreeMap;

use meshguard_filter_core::Decision;
use meshguard_jwt_auth::testing::{TestKey, jwks};
use serde_json::json;
use support::{Harness, NOW};

const ISSUER: &str = "https://id.shop.example/realms/shop";

fn harness() -> Harness {
    Harness::new(&json!({
        "providers": [{
            "name": "shop", "issuer": ISSUER, "audiences": ["commerce-api"],
            "jwks": jwks(&[&TestKey::rsa_a()]),
            "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"},
                               {"claim": "realm_access.roles", "header": "x-jwt-roles"}]
        }],
        "rules": [{"match": {"path": "/healthz"}},
                  {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    }))
}

fn token() -> String {
    TestKey::rsa_a().token(&json!({
        "iss": ISSUER, "aud": "commerce-api", "sub": "user-0042", "iat": NOW - 5, "exp": NOW + 600,
        "realm_access": {"roles": ["customer"]}
    }))
}

fn counts(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    pairs.iter().copied().collect()
}

#[test]
fn a_cached_token_makes_five() {
    let mut h = harness();
    let token = token();
    assert_eq!(h.bearer("/api/products", &token), Decision::Continue);
    h.host.reset_hostcalls();
    assert_eq!(h.bearer("/api/products", &token), Decision::Continue);
    // One read of the header map (every header the decision needs), the clock for `exp`, two
    // claim headers written and the token removed. Counters wait for the tick.
    assert_eq!(
        h.host.hostcall_counts(),
        counts(&[("headers", 1), ("now", 1), ("set_header", 3)])
    );
}

#[test]
fn a_first_token_adds_only_its_verification() {
    let mut h = harness();
    h.host.reset_hostcalls();
    assert_eq!(h.bearer("/api/products", &token()), Decision::Continue);
    // The signature is checked in the module here (MockHost offers no `verify_signature`;
    // Envoy's would be one foreign call).
    assert_eq!(
        h.host.hostcall_counts(),
        counts(&[("headers", 1), ("now", 1), ("set_header", 3)])
    );
}

#[test]
fn a_public_path_reads_the_map_and_nothing_else() {
    let mut h = harness();
    h.host.reset_hostcalls();
    assert_eq!(h.send("GET", "/healthz", &[]), Decision::Continue);
    assert_eq!(h.host.hostcall_counts(), counts(&[("headers", 1)]));
}

#[test]
fn a_refused_request_writes_nothing() {
    let mut h = harness();
    h.host.reset_hostcalls();
    assert!(matches!(
        h.send("GET", "/api/orders", &[]),
        Decision::Respond(_)
    ));
    assert_eq!(
        h.host.hostcall_counts(),
        counts(&[("headers", 1), ("now", 1)])
    );
}
