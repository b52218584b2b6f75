//! The attack corpus against the filter (pure-wasm verification path, fixed clock): every
//! hostile token is refused with a 401, and the valid request after it is still served.

mod support;

use meshguard_filter_core::Decision;
use meshguard_jwt_auth::testing::{
    CORPUS_AUDIENCE, CORPUS_ISSUER, attack_corpus, corpus_jwks, valid_tokens,
};
use serde_json::json;
use support::{Harness, NOW, reason, refused, response_header};

fn harness() -> Harness {
    Harness::new(&json!({
        "providers": [{
            "name": "shop",
            "issuer": CORPUS_ISSUER,
            "audiences": [CORPUS_AUDIENCE],
            "jwks": corpus_jwks(),
            "claimToHeaders": [{"claim": "realm_access.roles", "header": "x-jwt-roles"}]
        }],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    }))
}

#[test]
fn every_attack_is_refused_and_the_next_valid_request_served() {
    let mut harness = harness();
    let corpus = attack_corpus(NOW);
    assert!(corpus.len() >= 30, "the corpus has {} cases", corpus.len());
    let valid = valid_tokens(NOW);
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for (index, attack) in corpus.iter().enumerate() {
        let decision = harness.bearer("/api/orders", &attack.token);
        let response = refused(&decision);
        assert_eq!(response.status, 401, "{}: {decision:?}", attack.name);
        let challenge = response_header(response, "www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm="), "{}", attack.name);
        *reasons.entry(reason(&decision)).or_default() += 1;
        assert!(
            harness.header("x-jwt-roles").is_none(),
            "{}: no claim header",
            attack.name
        );

        let (name, token) = &valid[index % valid.len()];
        let served = harness.bearer("/api/orders", token);
        assert_eq!(served, Decision::Continue, "{name} after `{}`", attack.name);
        assert_eq!(harness.header("x-jwt-roles").as_deref(), Some("customer"));
    }
    // The refusals are spread over the reasons an operator would want told apart.
    for expected in [
        "malformed",
        "algorithm",
        "bad_signature",
        "unknown_kid",
        "expired",
        "not_yet_valid",
        "issuer",
        "audience",
    ] {
        assert!(
            reasons.contains_key(expected),
            "no `{expected}` in {reasons:?}"
        );
    }
    assert_eq!(
        harness.metric("allowed"),
        corpus.len() as i64,
        "every valid request after an attack was served"
    );
    let denied: i64 = reasons
        .keys()
        .map(|reason| harness.metric(&format!("denied.{reason}")))
        .sum();
    assert_eq!(denied, corpus.len() as i64);
}

#[test]
fn attacks_are_refused_on_cache_hits_too() {
    // A valid token is cached first; the attacks then arrive against a warm cache.
    let mut harness = harness();
    for (_, token) in valid_tokens(NOW) {
        assert_eq!(harness.bearer("/", &token), Decision::Continue);
        assert_eq!(harness.bearer("/", &token), Decision::Continue);
    }
    assert_eq!(harness.metric("cache.hit"), 2);
    for attack in attack_corpus(NOW) {
        assert!(
            matches!(harness.bearer("/", &attack.token), Decision::Respond(_)),
            "{}",
            attack.name
        );
    }
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let mut harness = harness();
    let big = "a".repeat(8 * 1024 + 1);
    let decision = harness.bearer("/", &big);
    assert_eq!(reason(&decision), "malformed");
    let body = String::from_utf8_lossy(&refused(&decision).body).to_string();
    assert!(body.contains("too large"), "{body}");
}
