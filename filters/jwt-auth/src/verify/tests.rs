use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::*;
use crate::config::{KeySource, parse_config};
use crate::crypto::WasmCrypto;
use crate::testing::{TestKey, hmac_sign_raw, jwks};

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://id.shop.example";

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": ["api"], "sub": "alice", "iat": NOW - 5, "exp": NOW + 300,
           "realm_access": {"roles": ["customer"]}})
}

fn provider_for(keys: &[&TestKey]) -> Provider {
    let raw = json!({"providers": [{
        "name": "p", "issuer": ISSUER, "audiences": ["api"], "jwks": jwks(keys),
        "claimToHeaders": [{"claim": "realm_access.roles", "header": "x-roles"}]
    }]});
    parse_config(raw.to_string().as_bytes())
        .unwrap()
        .providers
        .remove(0)
}

fn run(provider: &Provider, token: &str) -> Result<Success, Failure> {
    let KeySource::Inline(set) = &provider.keys else {
        unreachable!()
    };
    verify_token(provider, Some(set), token, 8192, NOW, &mut WasmCrypto)
}

fn all_algorithms() -> Vec<TestKey> {
    vec![
        TestKey::rsa_a(),
        TestKey::rsa_a().with_alg(Algorithm::RS384),
        TestKey::rsa_a().with_alg(Algorithm::RS512),
        TestKey::rsa_a().with_alg(Algorithm::PS256),
        TestKey::rsa_a().with_alg(Algorithm::PS384),
        TestKey::rsa_a().with_alg(Algorithm::PS512),
        TestKey::ec256_a(),
        TestKey::ec384(),
        TestKey::ed25519(),
        TestKey::hmac(),
        TestKey::hmac().with_alg(Algorithm::HS384),
        TestKey::hmac().with_alg(Algorithm::HS512),
    ]
}

#[test]
fn every_algorithm_verifies_and_writes_claim_headers() {
    for key in all_algorithms() {
        let provider = provider_for(&[&key]);
        let success =
            run(&provider, &key.token(&claims())).unwrap_or_else(|f| panic!("{key:?}: {f:?}"));
        assert_eq!(
            &*success.verified.headers,
            &[("x-roles".to_string(), "customer".to_string())]
        );
        assert_eq!(success.verified.times.exp, Some(NOW + 300));
    }
}

#[test]
fn every_algorithm_rejects_a_tampered_payload_and_a_foreign_key() {
    for key in all_algorithms() {
        let provider = provider_for(&[&key]);
        let token = key.token(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims();
        forged["sub"] = json!("mallory");
        parts[1] = crate::testing::b64(forged.to_string().as_bytes());
        assert_eq!(
            run(&provider, &parts.join(".")),
            Err(Failure::BadSignature),
            "{key:?} tampered"
        );

        let other = match key.alg {
            Algorithm::ES256 => TestKey::ec256_b(),
            Algorithm::ES384 | Algorithm::EdDSA => continue, // one key of each in the fixtures
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => continue,
            alg => TestKey::rsa_b().with_alg(alg),
        }
        .with_kid(&key.kid);
        assert_eq!(
            run(&provider, &other.token(&claims())),
            Err(Failure::BadSignature),
            "{key:?} foreign key"
        );
    }
}

#[test]
fn keys_are_chosen_by_kid_else_by_type() {
    let (rsa_a, rsa_b, ec) = (TestKey::rsa_a(), TestKey::rsa_b(), TestKey::ec256_a());
    let provider = provider_for(&[&rsa_a, &rsa_b, &ec]);
    // kid picks the key.
    assert!(run(&provider, &rsa_b.token(&claims())).is_ok());
    // No kid: every key whose type fits is tried.
    let no_kid = |key: &TestKey| {
        key.sign_raw(
            &json!({"alg": key.alg_name()}).to_string(),
            &claims().to_string(),
        )
    };
    assert!(run(&provider, &no_kid(&rsa_b)).is_ok());
    assert!(run(&provider, &no_kid(&ec)).is_ok());
    assert_eq!(
        run(&provider, &no_kid(&TestKey::ec384())),
        Err(Failure::UnknownKid),
        "no P-384 key"
    );
    // A kid that names another key is a bad signature, never a fallback to other keys.
    assert_eq!(
        run(&provider, &rsa_b.clone().with_kid("rsa-a").token(&claims())),
        Err(Failure::BadSignature)
    );
    assert_eq!(
        run(&provider, &rsa_a.clone().with_kid("nope").token(&claims())),
        Err(Failure::UnknownKid)
    );
    // A kid naming a key of another type is an algorithm mismatch.
    let confused = rsa_a.sign_raw(
        &json!({"alg": "RS256", "kid": "ec-a"}).to_string(),
        &claims().to_string(),
    );
    assert!(matches!(
        run(&provider, &confused),
        Err(Failure::Algorithm(_))
    ));
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let rsa = TestKey::rsa_a();
    let provider = provider_for(&[&rsa]);
    let KeySource::Inline(set) = &provider.keys else {
        unreachable!()
    };
    let crate::keys::Material::Rsa { spki, .. } = &set.keys[0].material else {
        unreachable!()
    };
    for (header, secret) in [
        (json!({"alg": "HS256", "kid": "rsa-a"}), spki.clone()),
        (json!({"alg": "HS256"}), spki.clone()),
        (
            json!({"alg": "HS256", "kid": "rsa-a"}),
            rsa.jwk.to_string().into_bytes(),
        ),
    ] {
        let token = hmac_sign_raw(
            &secret,
            Algorithm::HS256,
            &header.to_string(),
            &claims().to_string(),
        );
        let result = run(&provider, &token);
        assert!(
            matches!(
                result,
                Err(Failure::Algorithm(_)) | Err(Failure::UnknownKid)
            ),
            "{result:?}"
        );
    }
}

#[test]
fn a_jwk_alg_pins_the_algorithm() {
    let mut pinned = TestKey::rsa_a();
    pinned.jwk["alg"] = json!("RS256");
    let provider = provider_for(&[&pinned]);
    assert!(run(&provider, &pinned.token(&claims())).is_ok());
    let ps = pinned.clone().with_alg(Algorithm::PS256);
    let token = ps.sign_raw(
        &json!({"alg": "PS256", "kid": "rsa-a"}).to_string(),
        &claims().to_string(),
    );
    assert!(matches!(run(&provider, &token), Err(Failure::Algorithm(_))));
}

#[test]
fn claims_are_checked_in_envoys_order_before_the_signature() {
    let key = TestKey::rsa_a();
    let provider = provider_for(&[&key]);
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        key.token(&c)
    };
    let cases = [
        (json!({"iss": "https://evil"}), Failure::Issuer),
        (json!({"iss": null}), Failure::Issuer),
        (json!({"exp": NOW - 61}), Failure::Expired),
        (json!({"nbf": NOW + 61}), Failure::NotYetValid("nbf")),
        (json!({"iat": NOW + 61}), Failure::NotYetValid("iat")),
        (json!({"aud": "web"}), Failure::Audience),
        (json!({"aud": null}), Failure::Audience),
        (
            json!({"iss": "https://evil", "exp": NOW - 61}),
            Failure::Issuer,
        ),
        (json!({"exp": NOW - 61, "aud": "web"}), Failure::Expired),
    ];
    for (patch, expected) in cases {
        assert_eq!(
            run(&provider, &with(patch.clone())),
            Err(expected),
            "{patch}"
        );
    }
    assert!(run(&provider, &with(json!({"aud": "api"}))).is_ok());
}

#[test]
fn remote_provider_without_keys_says_so() {
    let key = TestKey::rsa_a();
    let provider = provider_for(&[&key]);
    let result = verify_token(
        &provider,
        None,
        &key.token(&claims()),
        8192,
        NOW,
        &mut WasmCrypto,
    );
    assert_eq!(result, Err(Failure::NoKeys("p".into())));
}
