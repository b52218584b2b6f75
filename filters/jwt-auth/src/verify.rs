//! Verifying one token for one provider, start to finish, as a pure function of the provider,
//! its current keys, the token text, the time and a signature verifier.
//!
//! The order follows Envoy's jwt_authn so failures carry the same reasons: parse, issuer,
//! time, audience, then key selection and signature. Cheap checks first also means a flood of
//! expired or foreign tokens never costs a signature verification.

use std::rc::Rc;

use crate::cache::Verified;
use crate::claims::{Times, check_audience, check_issuer, check_times, headers_for};
use crate::config::Provider;
use crate::crypto::{Crypto, Path};
use crate::failure::Failure;
use crate::keys::KeySet;
use crate::token::{self, Token};

/// A successful verification and which path checked the signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// What the token produced.
    pub verified: Verified,
    /// Where the signature was checked.
    pub path: Path,
}

/// Verifies `raw` for `provider` at `now` (seconds since the epoch). `keys` is `None` while a
/// remote JWKS has not been fetched.
pub fn verify_token(
    provider: &Provider,
    keys: Option<&KeySet>,
    raw: &str,
    max_token_bytes: usize,
    now: u64,
    crypto: &mut dyn Crypto,
) -> Result<Success, Failure> {
    let token = token::parse(raw, max_token_bytes)?;
    // Envoy's order: issuer, then time, then audience.
    check_issuer(provider, &token.claims)?;
    let times = Times::from(&token.claims);
    check_times(provider, &times, now)?;
    check_audience(provider, &token.claims)?;
    let keys = keys.ok_or_else(|| Failure::NoKeys(provider.name.clone()))?;
    let path = verify_signature(&token, keys, crypto)?;
    let metadata = provider.payload_in_metadata.as_deref().map(|name| {
        Rc::from(meshguard_filter_core::claims::encode([(
            name,
            &token.payload,
        )]))
    });
    Ok(Success {
        verified: Verified {
            times,
            headers: Rc::from(headers_for(provider, &token.payload, token.payload_b64)),
            claims: Rc::new(token.payload),
            metadata,
        },
        path,
    })
}

/// Selects keys (by `kid` when the token has one, otherwise every key whose type fits `alg`)
/// and verifies the signature with each until one accepts it.
pub fn verify_signature(
    token: &Token<'_>,
    keys: &KeySet,
    crypto: &mut dyn Crypto,
) -> Result<Path, Failure> {
    let mut named = 0usize;
    let mut tried = 0usize;
    for key in &keys.keys {
        if let Some(kid) = &token.kid {
            if key.kid.as_deref() != Some(kid.as_str()) {
                continue;
            }
            named += 1;
        }
        if !key.fits(token.alg) {
            continue;
        }
        tried += 1;
        let (valid, path) = crypto.verify(
            token.alg,
            key,
            token.signing_input.as_bytes(),
            &token.signature,
        );
        if valid {
            return Ok(path);
        }
    }
    match (token.kid.is_some(), named, tried) {
        (true, 0, _) => Err(Failure::UnknownKid),
        (true, _, 0) => Err(Failure::Algorithm(format!(
            "Jwt algorithm {} does not fit the key named by its kid",
            token.alg.name()
        ))),
        (false, _, 0) => Err(Failure::UnknownKid),
        _ => Err(Failure::BadSignature),
    }
}

#[cfg(test)]
mod tests;
