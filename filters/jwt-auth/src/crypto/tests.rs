//! The two verification paths agree. The host path is exercised against a stand-in for Envoy's
//! `verify_signature` written with RustCrypto (it parses the protobuf, the SPKI DER and the DER
//! signature this module produces, so the encodings are checked natively); the real BoringSSL
//! path runs in the Envoy end-to-end tests.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use meshguard_filter_core::mock::MockHost;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::*;
use crate::keys::{Strictness, parse_jwks};
use crate::testing::{TestKey, jwks};
use crate::token;

/// openssl's DER for the probe keys (`openssl pkey -pubout -outform DER`).
const OPENSSL_RSA_SPKI: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5ffgnzXfz7S+N7+VZNmH7XxpWpysFiqsUR2Eys9tkUj1RpH10aUiZ6XXzpWLsbWeYcnYfo9SSVVG5VmIKs3ypvBykarIzUlmZlDgrStw6DHNIh212BZtmeLWmU8VdgEg5OZTknx+MkNN6Km/unQpx6TiRgnZeXO0kvt1eZfaEzfn80wV2kg2LDwB/4uwa6Uh1w+H1G4KNbZc/1PpWLd8o7G1NAdIy31dPZl27AK5p4e8o9jxJ/+7UzaKSqlWOIs8LC6nozBAIyaEyqiwYG2RjI6KwzWIO8+mV0TQ2NSlY80m0y3OmkpYUVb47SrqXbhvZ+zQrLp8Rm4lw004Z3n/rwIDAQAB";
const OPENSSL_EC_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJUaudIrGCZYJ3eNhzmFbkXup/eKwR8/TLkCdAjRMKFFyrYOULNEzNMKOyWNCnGdEa4z6KSlFCOy/Ap/sFX+OHQ==";
const OPENSSL_EC_SIG: &str = "MEUCIQCz7yKLYExS8EOh5pL+18s8aLpjwNskvUnmbgUP/N+eLQIgFGm9kSNRd4Sf9dm/wPR2ZZmJ69u7JmqI4hF3DRkPf/Y=";

#[test]
fn our_der_is_byte_identical_to_openssl() {
    assert_eq!(
        der::rsa_spki(&decode(PROBE_RSA_N), &[1, 0, 1]),
        STANDARD.decode(OPENSSL_RSA_SPKI).unwrap()
    );
    let mut point = vec![4];
    point.extend(decode(PROBE_EC_X));
    point.extend(decode(PROBE_EC_Y));
    assert_eq!(
        der::ec_spki(Curve::P256, &point),
        STANDARD.decode(OPENSSL_EC_SPKI).unwrap()
    );
    assert_eq!(
        der::ecdsa_signature(Curve::P256, &decode(PROBE_EC_SIG)).unwrap(),
        STANDARD.decode(OPENSSL_EC_SIG).unwrap()
    );
}

// === a RustCrypto stand-in for Envoy's verify_signature ===

fn fields(bytes: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = read_varint(bytes, &mut at)?;
        let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
        out.push((key >> 3, bytes.get(at..at + len)?.to_vec()));
        at += len;
    }
    Some(out)
}

fn stand_in_verify(arguments: &[u8]) -> Option<Vec<u8>> {
    let fields = fields(arguments)?;
    let get = |n: u64| fields.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    let (hash, key, signature, text) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let hash = String::from_utf8(hash).ok()?;
    let valid = if let Ok(rsa) = RsaPublicKey::from_public_key_der(&key) {
        let (scheme, digest) = match hash.as_str() {
            "sha256" => (
                Pkcs1v15Sign::new::<Sha256>(),
                Sha256::digest(&text).to_vec(),
            ),
            "sha384" => (
                Pkcs1v15Sign::new::<Sha384>(),
                Sha384::digest(&text).to_vec(),
            ),
            "sha512" => (
                Pkcs1v15Sign::new::<Sha512>(),
                Sha512::digest(&text).to_vec(),
            ),
            _ => return None,
        };
        rsa.verify(scheme, &digest, &signature).is_ok()
    } else if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&key) {
        use p256::ecdsa::signature::Verifier as _;
        hash == "sha256"
            && p256::ecdsa::Signature::from_der(&signature)
                .is_ok_and(|signature| key.verify(&text, &signature).is_ok())
    } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&key) {
        use p384::ecdsa::signature::Verifier as _;
        hash == "sha384"
            && p384::ecdsa::Signature::from_der(&signature)
                .is_ok_and(|signature| key.verify(&text, &signature).is_ok())
    } else {
        return None; // BadArgument: the key did not import
    };
    // VerifySignatureResult { result = 1; error = 2 }
    Some(if valid {
        vec![0x08, 0x01]
    } else {
        let mut out = vec![0x12, 6];
        out.extend_from_slice(b"failed");
        out
    })
}

fn host_with_stand_in() -> MockHost {
    let mut host = MockHost::new();
    host.foreign
        .insert(VERIFY_SIGNATURE.to_string(), stand_in_verify);
    host
}

#[test]
fn probe_trusts_a_correct_host_and_nothing_else() {
    let mut host = host_with_stand_in();
    assert_eq!(
        probe(&mut host),
        HostSupport {
            rsa: true,
            ecdsa: true
        }
    );

    let mut absent = MockHost::new();
    assert_eq!(probe(&mut absent), HostSupport::default());

    fn always_true(_: &[u8]) -> Option<Vec<u8>> {
        Some(vec![0x08, 0x01])
    }
    let mut lying = MockHost::new();
    lying
        .foreign
        .insert(VERIFY_SIGNATURE.to_string(), always_true);
    assert_eq!(
        probe(&mut lying),
        HostSupport::default(),
        "a host that accepts tampered text is not used"
    );

    fn garbage(_: &[u8]) -> Option<Vec<u8>> {
        Some(vec![0xff, 0xff, 0xff])
    }
    let mut broken = MockHost::new();
    broken.foreign.insert(VERIFY_SIGNATURE.to_string(), garbage);
    assert_eq!(probe(&mut broken), HostSupport::default());
}

#[test]
fn results_decode_as_protobuf() {
    assert_eq!(decode_result(&[0x08, 0x01]), Some(true));
    assert_eq!(decode_result(&[]), Some(false));
    assert_eq!(decode_result(&[0x12, 0x02, b'n', b'o']), Some(false));
    assert_eq!(
        decode_result(&[0x12, 0x02, b'n', b'o', 0x08, 0x01]),
        Some(true)
    );
    assert_eq!(
        decode_result(&[0x12, 0x09, b'n']),
        None,
        "length past the end"
    );
    assert_eq!(
        decode_result(&[0x0d, 0, 0, 0, 0]),
        None,
        "unexpected wire type"
    );
}

#[test]
fn arguments_are_the_four_fields_in_order() {
    let encoded = encode_arguments("sha256", &[1, 2], &[3], b"t");
    assert_eq!(
        encoded,
        vec![
            0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6', 0x12, 2, 1, 2, 0x1a, 1, 3, 0x22, 1, b't'
        ]
    );
    let long = encode_arguments("sha256", &[0u8; 300], &[], &[]);
    assert_eq!(&long[8..11], &[0x12, 0xac, 0x02], "varint length");
}

fn keys_and_tokens() -> Vec<(TestKey, String)> {
    let message = r#"{"sub":"alice"}"#;
    [
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
    .into_iter()
    .map(|key| {
        let token = key.sign_raw(&key.header().to_string(), message);
        (key, token)
    })
    .collect()
}

/// Every algorithm, valid and tampered, gives the same answer on both paths, and RS*/ES* go to
/// the host while PS*, EdDSA and HS* stay in wasm.
#[test]
fn host_and_wasm_paths_agree_for_every_algorithm() {
    let mut host = host_with_stand_in();
    let support = probe(&mut host);
    for (key, token) in keys_and_tokens() {
        let set = parse_jwks(&jwks(&[&key]), true, Strictness::Strict).unwrap();
        let parsed = token::parse(&token, 8192).unwrap();
        let jwk = &set.keys[0];
        let input = parsed.signing_input.as_bytes();
        let mut tampered_signature = parsed.signature.clone();
        tampered_signature[3] ^= 1;
        let cases: [(&[u8], &[u8], bool); 4] = [
            (input, &parsed.signature, true),
            (b"other.input", &parsed.signature, false),
            (input, &tampered_signature, false),
            (
                input,
                &parsed.signature[..parsed.signature.len() - 1],
                false,
            ),
        ];
        for (message, signature, expected) in cases {
            let (wasm, _) = WasmCrypto.verify(parsed.alg, jwk, message, signature);
            let (hosted, path) =
                HostCrypto::new(&mut host, support).verify(parsed.alg, jwk, message, signature);
            assert_eq!(wasm, expected, "{key:?} wasm");
            assert_eq!(hosted, expected, "{key:?} host-or-fallback");
            let expected_path = match parsed.alg {
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Es256 | Alg::Es384 => Path::Host,
                _ => Path::Wasm,
            };
            assert_eq!(path, expected_path, "{key:?}");
        }
    }
}

#[test]
fn zero_and_high_s_ecdsa_signatures_agree() {
    let mut host = host_with_stand_in();
    let support = probe(&mut host);
    let key = TestKey::ec256_a();
    let set = parse_jwks(&jwks(&[&key]), false, Strictness::Strict).unwrap();
    let token = key.token(&serde_json::json!({"sub": "alice"}));
    let parsed = token::parse(&token, 8192).unwrap();
    let input = parsed.signing_input.as_bytes();
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    let zero = [0u8; 64];
    assert!(!WasmCrypto.verify(Alg::Es256, &set.keys[0], input, &zero).0);
    assert!(
        !HostCrypto::new(&mut host, support)
            .verify(Alg::Es256, &set.keys[0], input, &zero)
            .0
    );
    // The malleated twin (r, n - s) is as valid to BoringSSL as the original; both paths must
    // say the same thing about it.
    let order = URL_SAFE_NO_PAD
        .decode("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE")
        .unwrap();
    let s = &parsed.signature[32..];
    let mut high_s = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let v = i16::from(order[i]) - i16::from(s[i]) - borrow;
        high_s[i] = v.rem_euclid(256) as u8;
        borrow = i16::from(v < 0);
    }
    let mut twin = parsed.signature[..32].to_vec();
    twin.extend_from_slice(&high_s);
    let wasm = WasmCrypto.verify(Alg::Es256, &set.keys[0], input, &twin).0;
    let hosted = HostCrypto::new(&mut host, support)
        .verify(Alg::Es256, &set.keys[0], input, &twin)
        .0;
    assert_eq!(wasm, hosted, "both paths treat a high-S signature alike");
}

#[test]
fn without_the_foreign_function_everything_runs_in_wasm() {
    let mut host = MockHost::new();
    for (key, token) in keys_and_tokens() {
        let set = parse_jwks(&jwks(&[&key]), true, Strictness::Strict).unwrap();
        let parsed = token::parse(&token, 8192).unwrap();
        let support = HostSupport {
            rsa: true,
            ecdsa: true,
        }; // claimed, but the call fails
        let (valid, path) = HostCrypto::new(&mut host, support).verify(
            parsed.alg,
            &set.keys[0],
            parsed.signing_input.as_bytes(),
            &parsed.signature,
        );
        assert!(valid, "{key:?}");
        assert_eq!(path, Path::Wasm);
    }
}
