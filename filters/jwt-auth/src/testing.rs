//! Test support (feature `test-util`): fixed test keys, their JWKS, and a token minter that
//! signs any header and payload text, so tests can build well-formed tokens and every kind of
//! broken one.
//!
//! The private keys under `tests/keys/` were generated with `openssl genpkey` for these tests
//! only; they protect nothing. Public JWKs are derived from them with jsonwebtoken's key utils.
//! Test support may panic: a broken fixture must stop the test, it never runs in a filter.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// A private test key with its `kid` and algorithm.
#[derive(Clone)]
pub struct TestKey {
    /// Key id published in the JWKS and put in token headers.
    pub kid: String,
    /// The algorithm tokens are signed with.
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public JWK (with `kid`, `use` and `alg`).
    pub jwk: Value,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestKey({} {:?})", self.kid, self.alg)
    }
}

fn load(pem: &str, alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .unwrap_or_else(|err| panic!("test key does not load: {err}"))
}

impl TestKey {
    fn asymmetric(kid: &str, pem: &str, alg: Algorithm) -> Self {
        let encoding = load(pem, alg);
        let jwk = Jwk::from_encoding_key(&encoding, alg)
            .unwrap_or_else(|err| panic!("no JWK for test key: {err}"));
        let mut jwk = serde_json::to_value(jwk).unwrap_or(Value::Null);
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_string(),
            alg,
            encoding,
            jwk,
        }
    }

    /// RSA-2048 key `rsa-a`, signing RS256.
    pub fn rsa_a() -> Self {
        Self::asymmetric(
            "rsa-a",
            include_str!("../tests/keys/rsa-a.pem"),
            Algorithm::RS256,
        )
    }

    /// RSA-2048 key `rsa-b` (for rotation), signing RS256.
    pub fn rsa_b() -> Self {
        Self::asymmetric(
            "rsa-b",
            include_str!("../tests/keys/rsa-b.pem"),
            Algorithm::RS256,
        )
    }

    /// P-256 key `ec-a`, signing ES256.
    pub fn ec256_a() -> Self {
        Self::asymmetric(
            "ec-a",
            include_str!("../tests/keys/ec256-a.pem"),
            Algorithm::ES256,
        )
    }

    /// P-256 key `ec-b`, signing ES256.
    pub fn ec256_b() -> Self {
        Self::asymmetric(
            "ec-b",
            include_str!("../tests/keys/ec256-b.pem"),
            Algorithm::ES256,
        )
    }

    /// P-384 key `ec-384`, signing ES384.
    pub fn ec384() -> Self {
        Self::asymmetric(
            "ec-384",
            include_str!("../tests/keys/ec384.pem"),
            Algorithm::ES384,
        )
    }

    /// Ed25519 key `ed`, signing EdDSA.
    pub fn ed25519() -> Self {
        Self::asymmetric(
            "ed",
            include_str!("../tests/keys/ed25519.pem"),
            Algorithm::EdDSA,
        )
    }

    /// A 64-byte HMAC secret `hs` (long enough for HS512), signing HS256.
    pub fn hmac() -> Self {
        let secret = b"meshguard-test-secret-0123456789-abcdef-0123456789-abcdef-012345";
        Self {
            kid: "hs".into(),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            jwk: json!({"kty": "oct", "kid": "hs", "use": "sig", "k": URL_SAFE_NO_PAD.encode(secret)}),
        }
    }

    /// The same key signing with another algorithm of its family (RS384, PS256, HS512...);
    /// the JWK's `alg` is dropped so the key fits every algorithm of its type.
    pub fn with_alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        if let Some(jwk) = self.jwk.as_object_mut() {
            jwk.remove("alg");
        }
        self
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_string();
        self.jwk["kid"] = json!(kid);
        self
    }

    /// The algorithm's JOSE name.
    pub fn alg_name(&self) -> String {
        serde_json::to_value(self.alg)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The standard header: `alg`, `typ` and `kid`.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg_name(), "typ": "JWT", "kid": self.kid})
    }

    /// A token with the standard header and these claims.
    pub fn token(&self, claims: &Value) -> String {
        self.sign_raw(&self.header().to_string(), &claims.to_string())
    }

    /// Signs arbitrary header and payload text with this key and algorithm.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg)
            .unwrap_or_else(|err| panic!("signing failed: {err}"));
        format!("{input}.{signature}")
    }
}

/// Signs `header.payload` text with an HMAC secret (for forgeries such as HS256 keyed with a
/// public key).
pub fn hmac_sign_raw(secret: &[u8], alg: Algorithm, header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .unwrap_or_else(|err| panic!("signing failed: {err}"));
    format!("{input}.{signature}")
}

/// A JWKS document with these keys' public JWKs.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// === the attack corpus ===

/// Issuer of the corpus tokens.
pub const CORPUS_ISSUER: &str = "https://id.shop.example/realms/shop";
/// Audience of the corpus tokens.
pub const CORPUS_AUDIENCE: &str = "commerce-api";

/// The JWKS the corpus is judged against: `rsa-a` (RS256) and `ec-a` (ES256).
pub fn corpus_jwks() -> String {
    jwks(&[&TestKey::rsa_a(), &TestKey::ec256_a()])
}

/// Claims of a valid token at `now`.
pub fn valid_claims(now: u64) -> Value {
    json!({
        "iss": CORPUS_ISSUER,
        "aud": CORPUS_AUDIENCE,
        "sub": "alice",
        "iat": now - 10,
        "exp": now + 600,
        "realm_access": {"roles": ["customer"]},
    })
}

/// Valid tokens at `now` for the corpus JWKS, one per key in it.
pub fn valid_tokens(now: u64) -> Vec<(&'static str, String)> {
    vec![
        ("RS256", TestKey::rsa_a().token(&valid_claims(now))),
        ("ES256", TestKey::ec256_a().token(&valid_claims(now))),
    ]
}

/// One hostile token and what Envoy's native jwt_authn does with it when that differs.
#[derive(Debug, Clone)]
pub struct Attack {
    /// What it tries.
    pub name: &'static str,
    /// The `Authorization: Bearer` value.
    pub token: String,
    /// `Some(why)` when native jwt_authn accepts it (this filter never does).
    pub native_accepts: Option<&'static str>,
}

fn attack(name: &'static str, token: String) -> Attack {
    Attack {
        name,
        token,
        native_accepts: None,
    }
}

impl Attack {
    fn native_accepts(mut self, why: &'static str) -> Self {
        self.native_accepts = Some(why);
        self
    }
}

fn with_claims(now: u64, patch: Value) -> Value {
    let mut claims = valid_claims(now);
    for (key, value) in patch.as_object().into_iter().flatten() {
        match (value.is_null(), claims.as_object_mut()) {
            (true, Some(object)) => {
                object.remove(key);
            }
            _ => claims[key] = value.clone(),
        }
    }
    claims
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_string).collect()
}

/// Hostile tokens at `now`; every one must be refused, and the next valid request served.
pub fn attack_corpus(now: u64) -> Vec<Attack> {
    let rsa = TestKey::rsa_a();
    let ec = TestKey::ec256_a();
    let valid = rsa.token(&valid_claims(now));
    let parts = segments(&valid);
    let claims_text = valid_claims(now).to_string();
    let rs_header = rsa.header().to_string();
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            parts[1]
        )
    };
    let rsa_public_jwk = {
        let jwk: Jwk = serde_json::from_value(rsa.jwk.clone()).unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_string(&jwk).unwrap_or_default()
    };
    let corpus = vec![
        attack("alg none, empty signature", unsigned("none")),
        attack("alg none, with a signature", format!("{}{}", unsigned("none"), parts[2])),
        attack("alg None", unsigned("None")),
        attack("alg NONE", unsigned("NONE")),
        attack("alg nOnE", unsigned("nOnE")),
        attack("alg missing", rsa.sign_raw(&json!({"typ": "JWT", "kid": "rsa-a"}).to_string(), &claims_text)),
        attack("alg empty", rsa.sign_raw(&json!({"alg": "", "kid": "rsa-a"}).to_string(), &claims_text)),
        attack(
            "HS256 keyed with the RSA public JWK, kid rsa-a",
            hmac_sign_raw(rsa_public_jwk.as_bytes(), Algorithm::HS256, &json!({"alg": "HS256", "kid": "rsa-a"}).to_string(), &claims_text),
        ),
        attack(
            "HS256 keyed with the RSA modulus, no kid",
            hmac_sign_raw(rsa.jwk["n"].as_str().unwrap_or_default().as_bytes(), Algorithm::HS256, &json!({"alg": "HS256"}).to_string(), &claims_text),
        ),
        attack("kid naming another key (signed by rsa-b)", TestKey::rsa_b().with_kid("rsa-a").token(&valid_claims(now))),
        attack("kid naming the EC key, alg RS256", rsa.sign_raw(&json!({"alg": "RS256", "kid": "ec-a"}).to_string(), &claims_text)),
        attack("unknown kid", TestKey::rsa_b().token(&valid_claims(now))),
        attack("key not in the JWKS, no kid", TestKey::rsa_b().sign_raw(&json!({"alg": "RS256"}).to_string(), &claims_text)),
        attack("expired an hour ago", rsa.token(&with_claims(now, json!({"exp": now - 3600})))),
        attack("expired just beyond the skew", rsa.token(&with_claims(now, json!({"exp": now - 90})))),
        attack("nbf in the future", rsa.token(&with_claims(now, json!({"nbf": now + 3600})))),
        attack("iat in the future", rsa.token(&with_claims(now, json!({"iat": now + 3600}))))
        .native_accepts("jwt_verify_lib checks only exp and nbf; iat is never compared with the clock"),
        attack("wrong iss", rsa.token(&with_claims(now, json!({"iss": "https://evil.example/realms/shop"})))),
        attack("missing iss", rsa.token(&with_claims(now, json!({"iss": null})))),
        attack("wrong aud", rsa.token(&with_claims(now, json!({"aud": "admin-api"})))),
        attack("aud array without ours", rsa.token(&with_claims(now, json!({"aud": ["a", "b"]})))),
        attack("missing aud", rsa.token(&with_claims(now, json!({"aud": null})))),
        attack("stripped signature", format!("{}.{}.", parts[0], parts[1])),
        attack("truncated signature", format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 8])),
        attack("signature of another token", format!("{}.{}.{}", parts[0], b64(with_claims(now, json!({"sub": "bob"})).to_string().as_bytes()), parts[2])),
        attack("tampered payload (roles)", format!("{}.{}.{}", parts[0], b64(with_claims(now, json!({"realm_access": {"roles": ["admin"]}})).to_string().as_bytes()), parts[2])),
        attack("tampered header (kid)", format!("{}.{}.{}", b64(json!({"alg": "RS256", "kid": "rsa-a", "typ": "at+jwt"}).to_string().as_bytes()), parts[1], parts[2])),
        attack("standard base64 characters", valid.replacen('-', "+", 1).replacen('_', "/", 1).replacen('A', "+", 1)),
        attack("padded segments", format!("{}==.{}.{}", parts[0], parts[1], parts[2])),
        attack("extra segment", format!("{valid}.{}", parts[2])),
        attack("missing segment", format!("{}.{}", parts[0], parts[1])),
        attack("one segment", parts[1].clone()),
        attack("1 MB token", format!("{}.{}.{}", parts[0], "A".repeat(1024 * 1024), parts[2])),
        attack("non-JSON header", rsa.sign_raw("alg=RS256", &claims_text)),
        attack("header is a JSON array", rsa.sign_raw(r#"["RS256"]"#, &claims_text)),
        attack("non-JSON payload", rsa.sign_raw(&rs_header, "sub=alice")),
        attack("exp as a string", rsa.token(&with_claims(now, json!({"exp": (now + 600).to_string()})))),
        attack("nbf as a string", rsa.token(&with_claims(now, json!({"nbf": (now - 10).to_string()})))),
        attack("iss as a number", rsa.token(&with_claims(now, json!({"iss": 42})))),
        attack("aud as a number", rsa.token(&with_claims(now, json!({"aud": 7})))),
        attack("negative exp", rsa.token(&with_claims(now, json!({"exp": -1})))),
        attack("exp zero", rsa.token(&with_claims(now, json!({"exp": 0}))))
        .native_accepts("jwt_verify_lib reads exp 0 as \"no exp\" (its field default), so the token never expires"),
        attack(
            "duplicate alg header parameter",
            rsa.sign_raw(r#"{"alg":"none","kid":"rsa-a","alg":"RS256"}"#, &claims_text),
        ),
        attack(
            "duplicate kid header parameter",
            rsa.sign_raw(r#"{"alg":"RS256","kid":"ec-a","kid":"rsa-a"}"#, &claims_text),
        ),
        attack(
            "duplicate exp claim",
            rsa.sign_raw(&rs_header, &format!(r#"{{"iss":"{CORPUS_ISSUER}","aud":"{CORPUS_AUDIENCE}","exp":{},"exp":{}}}"#, now - 3600, now + 600)),
        ),
        attack(
            "unknown crit extension",
            rsa.sign_raw(&json!({"alg": "RS256", "kid": "rsa-a", "crit": ["meshguard-ext"], "meshguard-ext": 1}).to_string(), &claims_text),
        )
        .native_accepts("jwt_authn ignores `crit`; RFC 7515 §4.1.11 requires refusing unknown critical extensions"),
        attack(
            "unencoded payload (b64 false, RFC 7797)",
            rsa.sign_raw(&json!({"alg": "RS256", "kid": "rsa-a", "b64": false, "crit": ["b64"]}).to_string(), &claims_text),
        )
        .native_accepts("jwt_authn ignores `crit` and `b64`, verifying as if the payload were encoded"),
        attack(
            "embedded jwk header with the attacker's key",
            TestKey::ec256_b().sign_raw(&json!({"alg": "ES256", "jwk": TestKey::ec256_b().jwk}).to_string(), &claims_text),
        ),
        attack(
            "jku header pointing at the attacker's JWKS",
            TestKey::ec256_b().sign_raw(&json!({"alg": "ES256", "kid": "ec-b", "jku": "https://evil.example/jwks"}).to_string(), &claims_text),
        ),
        attack("ES256 zero signature (CVE-2022-21449)", format!("{}.{}.{}", segments(&ec.token(&valid_claims(now)))[0], parts[1], b64(&[0u8; 64]))),
        // Signed with RS256 (the key's algorithm) under a header that claims RS384.
        attack(
            "RS256 signature under an RS384 header",
            rsa.sign_raw(&json!({"alg": "RS384", "kid": "rsa-a"}).to_string(), &claims_text),
        ),
    ];
    corpus
}
