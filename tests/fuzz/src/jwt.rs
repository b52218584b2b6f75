//! JWT authentication: tokens, JWKS documents and remote JWKS answers, against fixed keys.
//!
//! The keys are the filter's own test keys (`meshguard_jwt_auth::testing`): RS256 `rsa-a`,
//! ES256 `ec-a` and the HMAC secret `hs`, all in one inline JWKS, so a fuzzed token can verify
//! and go on to the claim checks and the headers written upstream. `jwt_claims` signs fuzzed
//! JOSE headers and claims with them, which reaches everything after the signature; `jwt_token`
//! mutates whole tokens, which reaches the strict parser and every refusal before it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Decision, Filter, Root, Stream};
use meshguard_jwt_auth::keys::{Strictness, parse_jwks};
use meshguard_jwt_auth::testing::{self, CORPUS_AUDIENCE, CORPUS_ISSUER, TestKey};
use meshguard_jwt_auth::token;
use meshguard_jwt_auth::{JwtAuth, JwtRoot};
use serde_json::{Value, json};

use crate::filters::call_response;

/// The clock of every JWT target (the mock host's default, 2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

/// Tokens longer than this are refused by size before anything is decoded.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The fixed-keys configuration: one provider with every test key inline, tokens from the
/// `Authorization` header, a cookie or a query parameter, claims written to headers.
pub fn fixed_keys_config() -> Value {
    let keys = testing::jwks(&[&TestKey::rsa_a(), &TestKey::ec256_a(), &TestKey::hmac()]);
    json!({
        "realm": "shop",
        "hostCrypto": false,
        "providers": [{
            "name": "shop",
            "issuer": CORPUS_ISSUER,
            "audiences": [CORPUS_AUDIENCE, "commerce-web"],
            "jwks": keys,
            "fromHeaders": [{"name": "authorization", "valuePrefix": "Bearer "}],
            "fromCookies": ["shop_session_jwt"],
            "fromParams": ["access_token"],
            "forwardPayloadHeader": "x-jwt-payload",
            "claimToHeaders": [
                {"claim": "sub", "header": "x-jwt-sub"},
                {"claim": "realm_access.roles", "header": "x-jwt-roles"},
                {"claim": "email", "header": "x-jwt-email"}
            ],
            "clockSkewSeconds": 30,
            "requireExpiration": true,
            "maxLifetimeSeconds": 86400
        }],
        "rules": [
            {"match": {"prefix": "/api/products"}, "requires": {"allowMissing": true}},
            {"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}
        ],
        "defaultRequirement": {"deny": true}
    })
}

/// A root configured with [`fixed_keys_config`] on a host at [`NOW`]. The configuration's
/// bytes are made once: the test keys' JWKS (RSA among them) is costly to build per input.
fn fixed_root() -> (JwtRoot, MockHost) {
    static CONFIG: OnceLock<String> = OnceLock::new();
    let config = CONFIG.get_or_init(|| fixed_keys_config().to_string());
    let mut host = MockHost::new()
        .with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW))
        .with_property("plugin_name", b"fuzz");
    match JwtAuth::configure(&mut host, &crate::filters::env(), config.as_bytes()) {
        Ok(root) => (root, host),
        Err(err) => panic!("the fixed-keys configuration is refused: {err}"),
    }
}

/// One request carrying `token` the way `how` selects (header, cookie, query parameter).
fn send(root: &JwtRoot, host: &mut MockHost, token: &str, how: u8) -> Decision {
    let mut path = "/api/cart".to_string();
    let mut headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":authority".to_string(), "shop.example".to_string()),
        (":scheme".to_string(), "https".to_string()),
    ];
    match how % 4 {
        0 | 1 => headers.push(("authorization".into(), format!("Bearer {token}"))),
        2 => headers.push((
            "cookie".into(),
            format!("theme=dark; shop_session_jwt={token}"),
        )),
        _ => path = format!("/api/cart?page=2&access_token={token}"),
    }
    headers.push((":path".into(), path));
    host.request_headers = headers;
    Stream::new(root.new_http(2)).on_request_headers(host, true)
}

/// Target `jwt_token`: the first byte says where the token goes, the rest is the token.
pub fn token(data: &[u8]) {
    let (how, raw) = data.split_first().map_or((0, data), |(&b, rest)| (b, rest));
    let raw = String::from_utf8_lossy(raw);
    // The filter trims what follows `Bearer `, as Envoy's jwt_authn does.
    let parsed = token::parse(raw.trim(), MAX_TOKEN_BYTES);
    let (root, mut host) = fixed_root();
    let decision = send(&root, &mut host, &raw, how);
    if parsed.is_err() && how % 4 < 2 {
        // A token the parser refuses can never authenticate a request.
        assert!(
            matches!(decision, Decision::Respond(ref reply) if reply.status == 401),
            "a malformed token got {decision:?}"
        );
    }
}

/// Target `jwt_claims`: `<key byte><JOSE header JSON>\n<claims JSON>`, signed with the test key
/// the first byte selects (HMAC mostly: it signs in microseconds).
pub fn claims(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (
            rest.get(..at).unwrap_or_default(),
            rest.get(at + 1..).unwrap_or_default(),
        ),
        None => (rest, &[][..]),
    };
    let signed = signer(selector).sign(
        &String::from_utf8_lossy(header),
        &String::from_utf8_lossy(payload),
    );
    let (root, mut host) = fixed_root();
    if let Decision::Continue = send(&root, &mut host, &signed, selector) {
        // Admitted: the token's subject reached the header written upstream, and nothing the
        // client sent under that name survives.
        let subs = host
            .request_headers
            .iter()
            .filter(|(name, _)| name == "x-jwt-sub")
            .count();
        assert!(subs <= 1, "x-jwt-sub written {subs} times");
    }
}

/// One of the fixed test keys, ready to sign. `TestKey::sign_raw` (jsonwebtoken on pure-Rust
/// big integers) parses the key on every call, and an RS256 signature cost about 1.5 ms: with
/// the fuzzer keeping many RSA-selected inputs, signing was most of `jwt_claims`' time. ring
/// signs from a key parsed once, in assembly that also adds no coverage of its own (so the
/// corpus does not fill with inputs that only differ inside the signer). The tokens are the
/// ones jsonwebtoken makes for RSA (PKCS#1 v1.5 is deterministic) and equally valid ES256
/// ones (`signers_sign_as_the_test_keys_do`).
pub enum Signer {
    /// The HMAC secret `hs` (HS256): jsonwebtoken's own signing is already cheap.
    Hmac(TestKey),
    /// `ec-a` (ES256).
    Ec(ring::signature::EcdsaKeyPair),
    /// `rsa-a` (RS256).
    Rsa(ring::signature::RsaKeyPair),
}

impl Signer {
    /// `header.payload.signature`, the header and payload base64url-encoded as given.
    pub fn sign(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            testing::b64(header.as_bytes()),
            testing::b64(payload.as_bytes())
        );
        let rng = ring::rand::SystemRandom::new();
        let signature = match self {
            Self::Hmac(key) => return key.sign_raw(header, payload),
            Self::Ec(key) => key
                .sign(&rng, input.as_bytes())
                .map(|signature| signature.as_ref().to_vec()),
            Self::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut signature,
                )
                .map(|()| signature)
            }
        };
        match signature {
            Ok(signature) => format!("{input}.{}", testing::b64(&signature)),
            Err(err) => panic!("a test key does not sign: {err}"),
        }
    }
}

/// The DER inside a PEM file.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    match base64::engine::general_purpose::STANDARD.decode(body) {
        Ok(der) => der,
        Err(err) => panic!("a test key's PEM does not decode: {err}"),
    }
}

/// The signer the first byte of a `jwt_claims` input selects (HMAC mostly: it signs in
/// microseconds).
pub fn signer(selector: u8) -> &'static Signer {
    static SIGNERS: OnceLock<[Signer; 3]> = OnceLock::new();
    let [hmac, ec, rsa] = SIGNERS.get_or_init(|| {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
        let ec = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pem_der(include_str!(
                "../../../filters/jwt-auth/tests/keys/ec256-a.pem"
            )),
            &ring::rand::SystemRandom::new(),
        );
        let rsa = RsaKeyPair::from_pkcs8(&pem_der(include_str!(
            "../../../filters/jwt-auth/tests/keys/rsa-a.pem"
        )));
        match (ec, rsa) {
            (Ok(ec), Ok(rsa)) => [
                Signer::Hmac(TestKey::hmac()),
                Signer::Ec(ec),
                Signer::Rsa(rsa),
            ],
            (ec, rsa) => panic!("the test keys do not parse: {:?} {:?}", ec.err(), rsa.err()),
        }
    });
    match selector {
        0..=223 => hmac,
        224..=247 => ec,
        _ => rsa,
    }
}

/// Target `jwks`: a JWKS document, as inline configuration (strict, HMAC allowed) and as a
/// remote answer (lenient, no HMAC).
pub fn jwks(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_jwks(&text, true, Strictness::Strict);
    let _ = parse_jwks(&text, false, Strictness::Lenient);
}

/// The remote-JWKS configuration: the corpus provider, keys fetched from a cluster.
pub fn remote_config() -> Value {
    json!({
        "providers": [{
            "name": "keycloak",
            "issuer": CORPUS_ISSUER,
            "audiences": [CORPUS_AUDIENCE],
            "remoteJwks": {
                "cluster": "keycloak",
                "uri": "http://keycloak.identity:8080/realms/shop/protocol/openid-connect/certs",
                "cacheDuration": "300s",
                "timeout": "2s"
            },
            "fromHeaders": [{"name": "authorization", "valuePrefix": "Bearer "}]
        }],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "keycloak"}}]
    })
}

/// Target `jwks_remote`: `<status byte><content-type byte><body>` answers the filter's JWKS
/// fetch; then valid RS256 and ES256 tokens are presented. A good answer must make them pass,
/// a bad one must leave the filter refusing them, never panicking.
pub fn jwks_remote(data: &[u8]) {
    let (status, content_type, body) = match data {
        [status, content_type, body @ ..] => (*status, *content_type, body),
        _ => return,
    };
    let status = match status {
        0..=191 => 200,
        other => u16::from(other) * 2,
    };
    let content_type = if content_type < 128 {
        "application/json"
    } else {
        "text/html"
    };
    let mut host = MockHost::new()
        .with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW))
        .with_property("plugin_name", b"fuzz");
    static CONFIG: OnceLock<String> = OnceLock::new();
    // Signed once: RSA signing per input would dominate the target's time.
    static TOKENS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| remote_config().to_string());
    let tokens = TOKENS.get_or_init(|| testing::valid_tokens(NOW));
    let mut root = match JwtAuth::configure(&mut host, &crate::filters::env(), config.as_bytes()) {
        Ok(root) => root,
        Err(err) => panic!("the remote-JWKS configuration is refused: {err}"),
    };
    // The first tick creates the shared fetch state, the second takes the lease and fetches.
    for _ in 0..2 {
        root.on_tick(&mut host);
        host.advance(Duration::from_millis(200));
    }
    let calls: Vec<u32> = host.calls.drain(..).map(|(token, _)| token).collect();
    assert_eq!(calls.len(), 1, "the second tick fetches the JWKS once");
    for token in calls {
        root.on_call_response(
            &mut host,
            token,
            Some(call_response(status, content_type, body)),
        );
    }
    root.on_tick(&mut host);
    for (_, token) in tokens {
        let _ = send(&root, &mut host, token, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signers make tokens the filter admits, with each key; RSA's are the very bytes
    /// jsonwebtoken makes (PKCS#1 v1.5 is deterministic; ECDSA's are randomised in both).
    #[test]
    fn signers_sign_as_the_test_keys_do() {
        let claims = json!({
            "iss": CORPUS_ISSUER, "aud": CORPUS_AUDIENCE, "sub": "alice",
            "iat": NOW, "exp": NOW + 600
        })
        .to_string();
        for (selector, alg, kid) in [
            (0, "HS256", "hs"),
            (230, "ES256", "ec-a"),
            (255, "RS256", "rsa-a"),
        ] {
            let header = json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
            let token = signer(selector).sign(&header, &claims);
            let (root, mut host) = fixed_root();
            let decision = send(&root, &mut host, &token, 0);
            assert!(
                matches!(decision, Decision::Continue),
                "{alg}: {decision:?}"
            );
            if alg == "RS256" {
                assert_eq!(token, TestKey::rsa_a().sign_raw(&header, &claims));
            }
        }
    }
}
