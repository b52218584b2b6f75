//! Foreign functions (`proxy_call_foreign_function`): the registration hook, and Envoy's
//! `verify_signature` implemented natively.
//!
//! Envoy's `verify_signature` (source/extensions/common/wasm/foreign.cc) takes a serialised
//! `VerifySignatureArguments` protobuf — `hash_function` (1, string), `public_key` (2, DER
//! SubjectPublicKeyInfo), `signature` (3), `text` (4), `public_key_pem` (5) — and returns a
//! serialised `VerifySignatureResult` — `result` (1, bool), `error` (2, string). Keys that
//! cannot be imported (or both forms given) are `BadArgument`; an unknown hash gives
//! `result = false` with `"<hash> is not supported."`; a bad signature gives
//! `"Failed to verify digest. Error code: 0"`, as BoringSSL's `EVP_DigestVerify` path does. RSA
//! keys verify PKCS#1 v1.5 signatures; EC keys (P-256, P-384) verify DER-encoded ECDSA
//! signatures, exactly what `EVP_DigestVerify` accepts — a JWT's raw `r||s` must be converted
//! by the caller, in Envoy as here.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::abi::Status;

/// A foreign function: argument bytes in, result bytes (or a status) out.
pub type ForeignFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, Status> + Send + Sync>;

/// The foreign functions a plugin may call, by name.
#[derive(Clone, Default)]
pub struct ForeignFunctions {
    functions: BTreeMap<String, ForeignFn>,
}

impl std::fmt::Debug for ForeignFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.functions.keys()).finish()
    }
}

impl ForeignFunctions {
    /// No foreign functions at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The functions this host implements from Envoy's set: `verify_signature`.
    pub fn envoy() -> Self {
        Self::none().with("verify_signature", verify_signature)
    }

    /// Registers (or replaces) a function.
    pub fn with(
        mut self,
        name: impl Into<String>,
        function: impl Fn(&[u8]) -> Result<Vec<u8>, Status> + Send + Sync + 'static,
    ) -> Self {
        self.functions.insert(name.into(), Arc::new(function));
        self
    }

    /// Looks a function up.
    pub fn get(&self, name: &str) -> Option<&ForeignFn> {
        self.functions.get(name)
    }

    /// Registered names.
    pub fn names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }
}

// === impl verify_signature ===

/// Envoy's `verify_signature` foreign function.
pub fn verify_signature(arguments: &[u8]) -> Result<Vec<u8>, Status> {
    let fields = proto::decode(arguments).ok_or(Status::BadArgument)?;
    let field = |n: u32| fields.get(&n).cloned().unwrap_or_default();
    let hash = String::from_utf8_lossy(&field(1)).to_ascii_lowercase();
    let (der, pem) = (field(2), field(5));
    let key = match (der.is_empty(), pem.is_empty()) {
        (false, true) => PublicKey::from_der(&der),
        (true, false) => PublicKey::from_pem(&String::from_utf8_lossy(&pem)),
        _ => None,
    }
    .ok_or(Status::BadArgument)?;
    let outcome = if !matches!(
        hash.as_str(),
        "sha1" | "sha224" | "sha256" | "sha384" | "sha512"
    ) {
        Err(format!(
            "{} is not supported.",
            String::from_utf8_lossy(&field(1))
        ))
    } else if key.verify(&hash, &field(3), &field(4)) {
        Ok(())
    } else {
        Err("Failed to verify digest. Error code: 0".to_string())
    };
    Ok(verify_result(&outcome))
}

/// Serialises a `VerifySignatureResult` (for tests and other hosts of the same format).
pub fn verify_result(outcome: &Result<(), String>) -> Vec<u8> {
    let mut out = Vec::new();
    match outcome {
        Ok(()) => proto::put_varint_field(&mut out, 1, 1),
        Err(error) => proto::put_bytes_field(&mut out, 2, error.as_bytes()),
    }
    out
}

/// Serialises `VerifySignatureArguments` (DER key form), as a module would.
pub fn verify_arguments(
    hash: &str,
    public_key_der: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    proto::put_bytes_field(&mut out, 1, hash.as_bytes());
    proto::put_bytes_field(&mut out, 2, public_key_der);
    proto::put_bytes_field(&mut out, 3, signature);
    proto::put_bytes_field(&mut out, 4, text);
    out
}

enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn from_der(der: &[u8]) -> Option<Self> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Some(Self::Rsa(key));
        }
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Some(Self::P256(key));
        }
        p384::ecdsa::VerifyingKey::from_public_key_der(der)
            .ok()
            .map(Self::P384)
    }

    fn from_pem(pem: &str) -> Option<Self> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            return Some(Self::Rsa(key));
        }
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Some(Self::P256(key));
        }
        p384::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .ok()
            .map(Self::P384)
    }

    fn verify(&self, hash: &str, signature: &[u8], text: &[u8]) -> bool {
        use sha2::Digest;
        match self {
            Self::Rsa(key) => {
                let (scheme, digest) = match hash {
                    "sha1" => (
                        rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                        sha1::Sha1::digest(text).to_vec(),
                    ),
                    "sha224" => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
                        sha2::Sha224::digest(text).to_vec(),
                    ),
                    "sha256" => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                        sha2::Sha256::digest(text).to_vec(),
                    ),
                    "sha384" => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                        sha2::Sha384::digest(text).to_vec(),
                    ),
                    _ => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                        sha2::Sha512::digest(text).to_vec(),
                    ),
                };
                key.verify(scheme, &digest, signature).is_ok()
            }
            Self::P256(key) => {
                let Ok(signature) = p256::ecdsa::Signature::from_der(signature) else {
                    return false;
                };
                ecdsa_prehash(hash, text, |digest| {
                    use p256::ecdsa::signature::hazmat::PrehashVerifier;
                    key.verify_prehash(digest, &signature).is_ok()
                })
            }
            Self::P384(key) => {
                let Ok(signature) = p384::ecdsa::Signature::from_der(signature) else {
                    return false;
                };
                ecdsa_prehash(hash, text, |digest| {
                    use p384::ecdsa::signature::hazmat::PrehashVerifier;
                    key.verify_prehash(digest, &signature).is_ok()
                })
            }
        }
    }
}

/// ECDSA over `hash(text)`, whatever the curve (as `EVP_DigestVerify` allows).
fn ecdsa_prehash(hash: &str, text: &[u8], verify: impl Fn(&[u8]) -> bool) -> bool {
    use sha2::Digest;
    let digest = match hash {
        "sha1" => sha1::Sha1::digest(text).to_vec(),
        "sha224" => sha2::Sha224::digest(text).to_vec(),
        "sha256" => sha2::Sha256::digest(text).to_vec(),
        "sha384" => sha2::Sha384::digest(text).to_vec(),
        _ => sha2::Sha512::digest(text).to_vec(),
    };
    verify(&digest)
}

/// Just enough protobuf for Envoy's foreign-function messages: length-delimited and varint
/// fields, last value wins, unknown wire types rejected.
pub mod proto {
    use std::collections::BTreeMap;

    /// Decodes a message into field number -> bytes (varints as their minimal LE bytes).
    pub fn decode(mut bytes: &[u8]) -> Option<BTreeMap<u32, Vec<u8>>> {
        let mut fields = BTreeMap::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = u32::try_from(key >> 3).ok()?;
            match key & 7 {
                0 => {
                    let value = varint(&mut bytes)?;
                    fields.insert(number, value.to_le_bytes().to_vec());
                }
                2 => {
                    let len = usize::try_from(varint(&mut bytes)?).ok()?;
                    let value = bytes.get(..len)?;
                    fields.insert(number, value.to_vec());
                    bytes = bytes.get(len..)?;
                }
                _ => return None,
            }
        }
        Some(fields)
    }

    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Appends a length-delimited field.
    pub fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
        put_varint(out, u64::from(number) << 3 | 2);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// Appends a varint field.
    pub fn put_varint_field(out: &mut Vec<u8>, number: u32, value: u64) {
        put_varint(out, u64::from(number) << 3);
        put_varint(out, value);
    }
}

#[cfg(test)]
mod tests;
