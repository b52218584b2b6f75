//! Signing algorithms and verification keys: a JWKS document parsed once into keys that are
//! ready to verify with, on either path.
//!
//! Each usable key carries both forms the filter needs: jsonwebtoken's `DecodingKey` (or a
//! verifier built from it once) for the pure-wasm path, and the DER `SubjectPublicKeyInfo` that
//! Envoy's `verify_signature` foreign function imports (BoringSSL `EVP_parse_public_key`).
//! Keys that cannot sign JWS with a supported algorithm (encryption keys, unknown `kty`, unknown
//! `alg`) are skipped rather than failing the whole set, because real identity providers publish
//! them side by side (Keycloak lists an `RSA-OAEP` key next to its `RS256` key).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::der;

/// A JWS algorithm this filter verifies. `none` is deliberately absent: it cannot be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
}

impl Alg {
    /// Parses a JOSE `alg` value; names are case-sensitive (RFC 7515 §4.1.1), so `None`,
    /// `NONE` and `rs256` are all unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            "HS256" => Self::Hs256,
            "HS384" => Self::Hs384,
            "HS512" => Self::Hs512,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
            Self::Ps384 => Algorithm::PS384,
            Self::Ps512 => Algorithm::PS512,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Hs256 => Algorithm::HS256,
            Self::Hs384 => Algorithm::HS384,
            Self::Hs512 => Algorithm::HS512,
        }
    }

    /// The digest name Envoy's `verify_signature` takes, for the algorithms it can verify
    /// (RSASSA-PKCS1-v1_5 and ECDSA: BoringSSL's `EVP_DigestVerify` with default padding).
    pub fn host_hash(self) -> Option<&'static str> {
        match self {
            Self::Rs256 | Self::Es256 => Some("sha256"),
            Self::Rs384 | Self::Es384 => Some("sha384"),
            Self::Rs512 => Some("sha512"),
            _ => None,
        }
    }

    /// Minimum HMAC key length in bytes (RFC 7518 §3.2: at least the hash output size).
    fn hmac_min_len(self) -> usize {
        match self {
            Self::Hs384 => 48,
            Self::Hs512 => 64,
            _ => 32,
        }
    }
}

/// An elliptic curve for ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
}

impl Curve {
    /// Coordinate (and signature half) length in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

/// Key material in the forms the two verification paths need.
pub enum Material {
    /// An RSA public key.
    Rsa {
        /// Modulus and exponent for the wasm path.
        decoding: DecodingKey,
        /// `SubjectPublicKeyInfo` DER for the host path.
        spki: Vec<u8>,
        /// Modulus length in bytes (the exact signature length).
        size: usize,
    },
    /// An ECDSA public key.
    Ec {
        /// The curve (decides the only algorithm that fits).
        curve: Curve,
        /// A verifier built once (the point is validated when it is built).
        verifier: Box<dyn JwtVerifier>,
        /// `SubjectPublicKeyInfo` DER for the host path.
        spki: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519 {
        /// A verifier built once.
        verifier: Box<dyn JwtVerifier>,
    },
    /// An HMAC secret (inline configuration only).
    Hmac {
        /// The secret.
        decoding: DecodingKey,
        /// Secret length in bytes.
        len: usize,
    },
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { size, .. } => write!(f, "Rsa({} bits)", size * 8),
            Self::Ec { curve, .. } => write!(f, "Ec({curve:?})"),
            Self::Ed25519 { .. } => f.write_str("Ed25519"),
            Self::Hmac { len, .. } => write!(f, "Hmac({len} bytes)"),
        }
    }
}

/// One verification key from a JWKS.
#[derive(Debug)]
pub struct Key {
    /// `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// The JWK's `alg`, if it pins one.
    pub alg: Option<Alg>,
    /// The key itself.
    pub material: Material,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: the key type (and curve) must
    /// fit, and a JWK that names its `alg` is only used for that algorithm.
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.is_some_and(|pinned| pinned != alg) {
            return false;
        }
        match (&self.material, alg) {
            (
                Material::Rsa { .. },
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512,
            ) => true,
            (Material::Ec { curve, .. }, Alg::Es256) => *curve == Curve::P256,
            (Material::Ec { curve, .. }, Alg::Es384) => *curve == Curve::P384,
            (Material::Ed25519 { .. }, Alg::EdDsa) => true,
            (Material::Hmac { len, .. }, Alg::Hs256 | Alg::Hs384 | Alg::Hs512) => {
                *len >= alg.hmac_min_len()
            }
            _ => false,
        }
    }
}

/// A parsed JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Usable keys in document order.
    pub keys: Vec<Key>,
    /// Why each skipped key was skipped (`keys[3]: use is "enc"`).
    pub skipped: Vec<String>,
}

/// Why a JWKS could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or not `{"keys": [...]}`.
    #[error("not a JWKS document: {0}")]
    NotJwks(String),
    /// A key of a supported type is broken (bad base64, wrong length, not on the curve).
    #[error("keys[{index}]: {message}")]
    BadKey {
        /// Index in `keys`.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing usable in it.
    #[error("no usable signing key (skipped: {0})")]
    NoUsableKey(String),
}

#[derive(Debug, serde::Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// What to do with a key of a supported type that is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Fail the whole document (operator-written inline JWKS: a typo must not go unnoticed).
    Strict,
    /// Skip the key and keep the others (a remote JWKS must not lose every key for one bad one).
    Lenient,
}

/// Parses a JWKS. `allow_hmac` admits `oct` keys (inline configuration only: a shared secret
/// must never come from a URL).
pub fn parse_jwks(
    text: &str,
    allow_hmac: bool,
    strictness: Strictness,
) -> Result<KeySet, JwksError> {
    let raw: RawJwks =
        serde_json::from_str(text).map_err(|err| JwksError::NotJwks(err.to_string()))?;
    let mut set = KeySet::default();
    for (index, value) in raw.keys.into_iter().enumerate() {
        let jwk: RawJwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(err) => {
                let message = format!("not a JWK: {err}");
                if strictness == Strictness::Strict {
                    return Err(JwksError::BadKey { index, message });
                }
                set.skipped.push(format!("keys[{index}]: {message}"));
                continue;
            }
        };
        match key_from_jwk(jwk, allow_hmac) {
            Ok(key) => set.keys.push(key),
            Err(Skip::Unsupported(reason)) => set.skipped.push(format!("keys[{index}]: {reason}")),
            Err(Skip::Broken(message)) => {
                if strictness == Strictness::Strict {
                    return Err(JwksError::BadKey { index, message });
                }
                set.skipped.push(format!("keys[{index}]: {message}"));
            }
        }
    }
    if set.keys.is_empty() {
        let skipped = if set.skipped.is_empty() {
            "the key list is empty".to_string()
        } else {
            set.skipped.join("; ")
        };
        return Err(JwksError::NoUsableKey(skipped));
    }
    Ok(set)
}

enum Skip {
    /// Not a signing key this filter uses.
    Unsupported(String),
    /// A supported key type with broken parameters.
    Broken(String),
}

fn b64(field: &str, value: Option<&String>) -> Result<Vec<u8>, Skip> {
    let value = value.ok_or_else(|| Skip::Broken(format!("missing `{field}`")))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|err| Skip::Broken(format!("`{field}` is not base64url: {err}")))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

fn verifier(alg: Alg, decoding: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Skip> {
    (DEFAULT_PROVIDER.verifier_factory)(&alg.jwt(), decoding)
        .map_err(|err| Skip::Broken(format!("invalid key: {err}")))
}

fn key_from_jwk(jwk: RawJwk, allow_hmac: bool) -> Result<Key, Skip> {
    if let Some(use_) = &jwk.use_
        && use_ != "sig"
    {
        return Err(Skip::Unsupported(format!("use is {use_:?}, not \"sig\"")));
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err(Skip::Unsupported(
            "key_ops does not allow \"verify\"".into(),
        ));
    }
    let alg = match &jwk.alg {
        None => None,
        Some(name) => Some(
            Alg::parse(name)
                .ok_or_else(|| Skip::Unsupported(format!("alg {name:?} is not supported")))?,
        ),
    };
    let kty = jwk.kty.as_deref().unwrap_or_default();
    let material = match kty {
        "RSA" => {
            let n = b64("n", jwk.n.as_ref())?;
            let e = b64("e", jwk.e.as_ref())?;
            let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
            if !(256..=512).contains(&n.len()) {
                return Err(Skip::Broken(format!(
                    "RSA modulus of {} bits: 2048 to 4096 bits are accepted",
                    n.len() * 8
                )));
            }
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            if e.is_empty() || e.len() > 4 || !odd || e == [1] {
                return Err(Skip::Broken(
                    "RSA exponent must be odd, >= 3 and < 2^32".into(),
                ));
            }
            if alg.is_some_and(|alg| {
                !matches!(alg.jwt().family(), jsonwebtoken::AlgorithmFamily::Rsa)
            }) {
                return Err(Skip::Broken(format!(
                    "alg {:?} does not fit an RSA key",
                    jwk.alg
                )));
            }
            Material::Rsa {
                decoding: DecodingKey::from_rsa_raw_components(n, e),
                spki: der::rsa_spki(n, e),
                size: n.len(),
            }
        }
        "EC" => {
            let curve = match jwk.crv.as_deref() {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                other => {
                    return Err(Skip::Unsupported(format!(
                        "EC curve {other:?} is not supported"
                    )));
                }
            };
            let x = b64("x", jwk.x.as_ref())?;
            let y = b64("y", jwk.y.as_ref())?;
            if x.len() != curve.size() || y.len() != curve.size() {
                return Err(Skip::Broken(format!(
                    "{curve:?} coordinates must be {} bytes each",
                    curve.size()
                )));
            }
            let fitting = match curve {
                Curve::P256 => Alg::Es256,
                Curve::P384 => Alg::Es384,
            };
            if alg.is_some_and(|alg| alg != fitting) {
                return Err(Skip::Broken(format!(
                    "alg {:?} does not fit {curve:?}",
                    jwk.alg
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * curve.size());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let verifier = verifier(fitting, &DecodingKey::from_ec_der(&point))?;
            Material::Ec {
                curve,
                verifier,
                spki: der::ec_spki(curve, &point),
            }
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err(Skip::Unsupported(format!(
                    "OKP curve {:?} is not supported",
                    jwk.crv
                )));
            }
            let x = b64("x", jwk.x.as_ref())?;
            if x.len() != 32 {
                return Err(Skip::Broken("Ed25519 `x` must be 32 bytes".into()));
            }
            if alg.is_some_and(|alg| alg != Alg::EdDsa) {
                return Err(Skip::Broken(format!(
                    "alg {:?} does not fit Ed25519",
                    jwk.alg
                )));
            }
            Material::Ed25519 {
                verifier: verifier(Alg::EdDsa, &DecodingKey::from_ed_der(&x))?,
            }
        }
        "oct" => {
            if !allow_hmac {
                return Err(Skip::Unsupported(
                    "symmetric (oct) keys are only accepted inline, never from a remote JWKS"
                        .into(),
                ));
            }
            let k = b64("k", jwk.k.as_ref())?;
            if k.len() < 32 {
                return Err(Skip::Broken(format!(
                    "HMAC secret of {} bytes: at least 32 are required (RFC 7518 §3.2)",
                    k.len()
                )));
            }
            if alg.is_some_and(|alg| !matches!(alg, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)) {
                return Err(Skip::Broken(format!(
                    "alg {:?} does not fit an oct key",
                    jwk.alg
                )));
            }
            Material::Hmac {
                decoding: DecodingKey::from_secret(&k),
                len: k.len(),
            }
        }
        other => {
            return Err(Skip::Unsupported(format!("kty {other:?} is not supported")));
        }
    };
    Ok(Key {
        kid: jwk.kid,
        alg,
        material,
    })
}
