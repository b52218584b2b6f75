//! Parsing a compact JWS into a token the rest of the filter can trust to be well formed.
//!
//! Everything here is hostile input, so parsing is strict and cheap checks come first: the size
//! bound before anything is decoded, the character set before base64, then base64url without
//! padding or stray bits, JSON objects without duplicate members (RFC 7515 §4: a JOSE header
//! with duplicate names must be rejected; RFC 7519 §4 allows the same for claims), a known `alg`
//! (so `none` in any spelling never reaches key selection), no `crit` (this filter implements no
//! extension), and registered claims of the right JSON type (a string `exp` is malformed, not
//! "no expiry").

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::keys::Alg;

/// A parsed, not yet verified, token.
#[derive(Debug, Clone)]
pub struct Token<'a> {
    /// The whole token as received.
    pub raw: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The payload segment as received (base64url), for `forwardPayloadHeader`.
    pub payload_b64: &'a str,
    /// The signing algorithm from the header.
    pub alg: Alg,
    /// `kid` from the header.
    pub kid: Option<String>,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// Registered claims, typed.
    pub claims: Claims,
    /// The whole claims object (for `claimToHeaders`).
    pub payload: Map<String, Value>,
}

/// The registered claims this filter checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `aud`, as a list (a single string becomes one entry).
    pub aud: Option<Vec<String>>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<u64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<u64>,
}

/// Why a token is not even well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than the configured bound.
    #[error("Jwt is too large ({len} bytes; at most {max} are accepted)")]
    TooLarge {
        /// Received length.
        len: usize,
        /// Configured bound.
        max: usize,
    },
    /// Not a compact JWS or not decodable.
    #[error("Jwt is malformed: {0}")]
    Malformed(&'static str),
    /// A registered claim has the wrong type.
    #[error("Jwt claim `{0}` has the wrong type")]
    BadClaim(&'static str),
    /// `alg` is missing, `none` or unsupported.
    #[error("Jwt algorithm {0} is not supported")]
    UnsupportedAlg(String),
    /// A `crit` header names extensions this filter does not implement.
    #[error("Jwt header lists critical extensions this verifier does not implement")]
    UnsupportedCrit,
}

/// Parses `raw` as a compact JWS of at most `max_bytes` bytes.
pub fn parse(raw: &str, max_bytes: usize) -> Result<Token<'_>, TokenError> {
    if raw.len() > max_bytes {
        return Err(TokenError::TooLarge {
            len: raw.len(),
            max: max_bytes,
        });
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(TokenError::Malformed("characters outside base64url"));
    }
    let mut parts = raw.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("a JWS has exactly three segments"));
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(TokenError::Malformed("empty header or payload"));
    }
    let signing_input = raw
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(TokenError::Malformed("segments"))?;

    let header = decode_object(header_b64, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            Alg::parse(name).ok_or_else(|| TokenError::UnsupportedAlg(format!("{name:?}")))?
        }
        Some(_) => return Err(TokenError::Malformed("`alg` is not a string")),
        None => return Err(TokenError::UnsupportedAlg("(missing)".into())),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed("`kid` is not a string")),
    };
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedCrit);
    }
    // After `alg`, so `{"alg":"none"}` with its empty signature is reported as what it is.
    if signature_b64.is_empty() {
        return Err(TokenError::Malformed("the signature is missing"));
    }

    let payload = decode_object(payload_b64, "payload")?;
    let claims = Claims {
        iss: string_claim(&payload, "iss")?,
        aud: audience(&payload)?,
        exp: time_claim(&payload, "exp")?,
        nbf: time_claim(&payload, "nbf")?,
        iat: time_claim(&payload, "iat")?,
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    Ok(Token {
        raw,
        signing_input,
        payload_b64,
        alg,
        kid,
        signature,
        claims,
        payload,
    })
}

fn decode_object(segment: &str, what: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        TokenError::Malformed(match what {
            "header" => "header is not base64url",
            _ => "payload is not base64url",
        })
    })?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|object| object.0)
        .map_err(|_| {
            TokenError::Malformed(match what {
                "header" => "header is not a JSON object with unique member names",
                _ => "payload is not a JSON object with unique member names",
            })
        })
}

fn string_claim(
    payload: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

fn audience(payload: &Map<String, Value>) -> Result<Option<Vec<String>>, TokenError> {
    match payload.get("aud") {
        None => Ok(None),
        Some(Value::String(aud)) => Ok(Some(vec![aud.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(aud) => Ok(aud.clone()),
                _ => Err(TokenError::BadClaim("aud")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(TokenError::BadClaim("aud")),
    }
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number; fractions are truncated.
fn time_claim(payload: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, TokenError> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_u64() {
                return Ok(Some(seconds));
            }
            match number.as_f64() {
                Some(seconds) if (0.0..1.8e19).contains(&seconds) => Ok(Some(seconds as u64)),
                _ => Err(TokenError::BadClaim(name)),
            }
        }
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// A JSON object whose member names are unique at the top level.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom(format!("duplicate member `{name}`")));
                    }
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}
