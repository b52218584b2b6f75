//! Signature verification on two paths that must agree: Envoy's `verify_signature` foreign
//! function (BoringSSL, native speed) and jsonwebtoken's RustCrypto provider inside the module.
//!
//! jsonwebtoken's own seam, `CryptoProvider`, is a process-wide set of plain `fn` factories with
//! no context, so it cannot reach the [`Host`] a foreign call needs; routing therefore happens
//! here, one level above it, and the wasm path calls the RustCrypto provider's verifier factory
//! directly. The host path covers what `EVP_DigestVerify` with default parameters can check:
//! RSASSA-PKCS1-v1_5 (RS256/384/512) and ECDSA (ES256/384). RSASSA-PSS needs padding parameters
//! the foreign function cannot take, Ed25519 cannot take a digest, and HMAC is cheap in wasm, so
//! those always run in the module.
//!
//! The foreign function's argument is Envoy's `VerifySignatureArguments` protobuf
//! (`source/extensions/common/wasm/ext/verify_signature.proto`): `hash_function = 1` (string),
//! `public_key = 2` (DER `SubjectPublicKeyInfo`), `signature = 3`, `text = 4`; the answer is a
//! `VerifySignatureResult` (`result = 1` bool, `error = 2` string). Whether the host offers the
//! function, and whether it agrees with this module's encoding, is probed once at configure
//! time with known-good and known-bad vectors; a host that fails the probe gets the wasm path.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use meshguard_filter_core::Host;

use crate::der;
use crate::keys::{Alg, Curve, Key, Material};

/// The foreign function's name in Envoy.
pub const VERIFY_SIGNATURE: &str = "verify_signature";

/// Which path verified a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Envoy's `verify_signature`.
    Host,
    /// RustCrypto inside the module.
    Wasm,
}

/// Verifies one signature with one key.
pub trait Crypto {
    /// Whether `signature` over `message` is valid for `key` and `alg` (the key fits `alg`),
    /// and which path decided.
    fn verify(&mut self, alg: Alg, key: &Key, message: &[u8], signature: &[u8]) -> (bool, Path);
}

/// The pure-wasm verifier (RustCrypto through jsonwebtoken).
#[derive(Debug, Default, Clone, Copy)]
pub struct WasmCrypto;

impl Crypto for WasmCrypto {
    fn verify(&mut self, alg: Alg, key: &Key, message: &[u8], signature: &[u8]) -> (bool, Path) {
        (wasm_verify(alg, key, message, signature), Path::Wasm)
    }
}

/// Verifies in the module.
pub fn wasm_verify(alg: Alg, key: &Key, message: &[u8], signature: &[u8]) -> bool {
    let signature = signature.to_vec();
    match &key.material {
        Material::Ec { verifier, .. } | Material::Ed25519 { verifier } => {
            verifier.verify(message, &signature).is_ok()
        }
        Material::Rsa { decoding, size, .. } => {
            // Both paths insist on a signature exactly as long as the modulus.
            signature.len() == *size
                && (DEFAULT_PROVIDER.verifier_factory)(&alg.jwt(), decoding)
                    .is_ok_and(|verifier| verifier.verify(message, &signature).is_ok())
        }
        Material::Hmac { decoding, .. } => {
            (DEFAULT_PROVIDER.verifier_factory)(&alg.jwt(), decoding)
                .is_ok_and(|verifier| verifier.verify(message, &signature).is_ok())
        }
    }
}

/// What the host's `verify_signature` can be trusted with (decided by [`probe`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HostSupport {
    /// RSASSA-PKCS1-v1_5.
    pub rsa: bool,
    /// ECDSA.
    pub ecdsa: bool,
}

/// Verifies on the host where it can, in the module otherwise.
pub struct HostCrypto<'h> {
    host: &'h mut dyn Host,
    support: HostSupport,
}

impl<'h> HostCrypto<'h> {
    /// A verifier using `host` for what `support` allows.
    pub fn new(host: &'h mut dyn Host, support: HostSupport) -> Self {
        Self { host, support }
    }
}

impl Crypto for HostCrypto<'_> {
    fn verify(&mut self, alg: Alg, key: &Key, message: &[u8], signature: &[u8]) -> (bool, Path) {
        let request = match (&key.material, alg.host_hash()) {
            (Material::Rsa { spki, size, .. }, Some(hash)) if self.support.rsa => {
                if signature.len() != *size {
                    return (false, Path::Host);
                }
                Some(encode_arguments(hash, spki, signature, message))
            }
            (Material::Ec { spki, curve, .. }, Some(hash)) if self.support.ecdsa => {
                match der::ecdsa_signature(*curve, signature) {
                    Some(der_signature) => {
                        Some(encode_arguments(hash, spki, &der_signature, message))
                    }
                    None => return (false, Path::Host),
                }
            }
            _ => None,
        };
        if let Some(request) = request
            && let Some(answer) = self.host.foreign_call(VERIFY_SIGNATURE, &request)
            && let Some(valid) = decode_result(&answer)
        {
            return (valid, Path::Host);
        }
        // Not offered, refused (BadArgument) or unreadable: the module decides.
        (wasm_verify(alg, key, message, signature), Path::Wasm)
    }
}

// === protobuf ===

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn push_bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2); // wire type 2: length-delimited
    push_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Serializes `VerifySignatureArguments`.
pub fn encode_arguments(hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + spki.len() + signature.len() + text.len() + 16);
    push_bytes_field(&mut out, 1, hash.as_bytes());
    push_bytes_field(&mut out, 2, spki);
    push_bytes_field(&mut out, 3, signature);
    push_bytes_field(&mut out, 4, text);
    out
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Reads `VerifySignatureResult.result`; `None` if the bytes are not such a message.
pub fn decode_result(bytes: &[u8]) -> Option<bool> {
    let mut at = 0;
    let mut result = false; // proto3 omits a false bool
    while at < bytes.len() {
        let key = read_varint(bytes, &mut at)?;
        match (key >> 3, key & 7) {
            (1, 0) => result = read_varint(bytes, &mut at)? != 0,
            (_, 0) => {
                read_varint(bytes, &mut at)?;
            }
            (_, 2) => {
                let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
                at = at.checked_add(len).filter(|end| *end <= bytes.len())?;
            }
            _ => return None,
        }
    }
    Some(result)
}

// === probe ===

const PROBE_MESSAGE: &[u8] = b"meshguard verify_signature probe";
const PROBE_RSA_N: &str = "5ffgnzXfz7S-N7-VZNmH7XxpWpysFiqsUR2Eys9tkUj1RpH10aUiZ6XXzpWLsbWeYcnYfo9SSVVG5VmIKs3ypvBykarIzUlmZlDgrStw6DHNIh212BZtmeLWmU8VdgEg5OZTknx-MkNN6Km_unQpx6TiRgnZeXO0kvt1eZfaEzfn80wV2kg2LDwB_4uwa6Uh1w-H1G4KNbZc_1PpWLd8o7G1NAdIy31dPZl27AK5p4e8o9jxJ_-7UzaKSqlWOIs8LC6nozBAIyaEyqiwYG2RjI6KwzWIO8-mV0TQ2NSlY80m0y3OmkpYUVb47SrqXbhvZ-zQrLp8Rm4lw004Z3n_rw";
const PROBE_RSA_SIG: &str = "LCJAvgzuql8tvXjHubQAaDAUQl3TkMPoJQacU3AQDoeCHzStVMWtMW5GMu6wuHfwkaGy40Mfei4IBX4cwgrBt9BNWg3ZFRzCs5yaVfcDZaaKt_uae6H6x1Xo0InxQO7goxN6DsaF0wNsQ3Aj7mBF5bd5XgrVvzYBtU7Do6tgi8NGpYAVGCkAFLQiTKyOuweAfAWmMTiEkWtmT5WoITURJAKcH15JDO-XQS7T6NMt1ZbJDPQNxA-etghADVRMibsanJkn7EXNioSFv4H_SUldhVajsV6fd_MJoqVTGMEdnwgeTXZRrlitqmWS_dkkPcatzMqYkuLsDqO1syltIaTh2w";
const PROBE_EC_X: &str = "JUaudIrGCZYJ3eNhzmFbkXup_eKwR8_TLkCdAjRMKFE";
const PROBE_EC_Y: &str = "cq2DlCzRMzTCjsljQpxnRGuM-ikpRQjsvwKf7BV_jh0";
const PROBE_EC_SIG: &str =
    "s-8ii2BMUvBDoeaS_tfLPGi6Y8DbJL1J5m4FD_zfni0Uab2RI1F3hJ_12b_A9HZlmYnr27smaojiEXcNGQ9_9g";

fn decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_default()
}

fn host_says(
    host: &mut dyn Host,
    hash: &str,
    spki: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Option<bool> {
    let answer = host.foreign_call(
        VERIFY_SIGNATURE,
        &encode_arguments(hash, spki, signature, text),
    )?;
    decode_result(&answer)
}

/// Asks the host to verify fixed vectors (built with this module's own encoders) and to reject
/// their tampered copies; each family is used on the host only if both answers are right.
pub fn probe(host: &mut dyn Host) -> HostSupport {
    let rsa_spki = der::rsa_spki(&decode(PROBE_RSA_N), &[0x01, 0x00, 0x01]);
    let rsa_signature = decode(PROBE_RSA_SIG);
    let rsa = host_says(host, "sha256", &rsa_spki, &rsa_signature, PROBE_MESSAGE) == Some(true)
        && host_says(host, "sha256", &rsa_spki, &rsa_signature, b"tampered") == Some(false);

    let mut point = vec![0x04];
    point.extend(decode(PROBE_EC_X));
    point.extend(decode(PROBE_EC_Y));
    let ec_spki = der::ec_spki(Curve::P256, &point);
    let ecdsa = match der::ecdsa_signature(Curve::P256, &decode(PROBE_EC_SIG)) {
        Some(signature) => {
            host_says(host, "sha256", &ec_spki, &signature, PROBE_MESSAGE) == Some(true)
                && host_says(host, "sha256", &ec_spki, &signature, b"tampered") == Some(false)
        }
        None => false,
    };
    HostSupport { rsa, ecdsa }
}

#[cfg(test)]
mod tests;
