//! Claim checks and claim headers: the parts of verification that depend on the provider's
//! rules and the clock but not on keys.
//!
//! Time checks follow Envoy's jwt_authn (jwt_verify_lib) to the second: a token is expired
//! when `now > exp + skew` and not yet valid when `nbf > now + skew`; this filter also refuses
//! an `iat` beyond `now + skew` and, when configured, lifetimes above a maximum. They run on
//! every request, including those answered from the verified-token cache.

use serde_json::{Map, Value};

use crate::config::Provider;
use crate::failure::Failure;
use crate::token::Claims;

/// The time claims a cached token keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Times {
    /// `exp`.
    pub exp: Option<u64>,
    /// `nbf`.
    pub nbf: Option<u64>,
    /// `iat`.
    pub iat: Option<u64>,
}

impl From<&Claims> for Times {
    fn from(claims: &Claims) -> Self {
        Self {
            exp: claims.exp,
            nbf: claims.nbf,
            iat: claims.iat,
        }
    }
}

/// Checks `exp`, `nbf`, `iat` and the lifetime at `now` (seconds since the epoch).
pub fn check_times(provider: &Provider, times: &Times, now: u64) -> Result<(), Failure> {
    let skew = provider.clock_skew_seconds;
    if let Some(nbf) = times.nbf
        && nbf > now.saturating_add(skew)
    {
        return Err(Failure::NotYetValid("nbf"));
    }
    if let Some(iat) = times.iat
        && iat > now.saturating_add(skew)
    {
        return Err(Failure::NotYetValid("iat"));
    }
    match times.exp {
        Some(exp) if now > exp.saturating_add(skew) => return Err(Failure::Expired),
        Some(_) => {}
        None if provider.require_expiration => {
            return Err(Failure::Lifetime(
                "Jwt has no `exp` claim and this provider requires one".into(),
            ));
        }
        None => {}
    }
    if let (Some(max), Some(exp)) = (provider.max_lifetime_seconds, times.exp) {
        let start = times.iat.or(times.nbf).unwrap_or(now);
        let lifetime = exp.saturating_sub(start);
        if lifetime > max {
            return Err(Failure::Lifetime(format!(
                "Jwt lifetime of {lifetime}s exceeds the maximum of {max}s"
            )));
        }
    }
    Ok(())
}

/// Checks `iss` against the provider's issuer.
pub fn check_issuer(provider: &Provider, claims: &Claims) -> Result<(), Failure> {
    match &provider.issuer {
        Some(issuer) if claims.iss.as_deref() != Some(issuer.as_str()) => Err(Failure::Issuer),
        _ => Ok(()),
    }
}

/// Checks `aud` (a string or an array) against the provider's audiences.
pub fn check_audience(provider: &Provider, claims: &Claims) -> Result<(), Failure> {
    if provider.audiences.is_empty() {
        return Ok(());
    }
    let accepted = claims
        .aud
        .iter()
        .flatten()
        .any(|aud| provider.audiences.iter().any(|allowed| allowed == aud));
    if accepted {
        Ok(())
    } else {
        Err(Failure::Audience)
    }
}

/// The headers a verified token writes: each configured claim that resolves to a value, and
/// the payload segment. Values that are objects, null, or contain control characters are not
/// written.
pub fn headers_for(
    provider: &Provider,
    payload: &Map<String, Value>,
    payload_b64: &str,
) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(provider.claim_to_headers.len() + 1);
    for mapping in &provider.claim_to_headers {
        if let Some(value) = lookup(payload, &mapping.path).and_then(header_value) {
            headers.push((mapping.header.clone(), value));
        }
    }
    if let Some(header) = &provider.forward_payload_header {
        headers.push((header.clone(), payload_b64.to_string()));
    }
    headers
}

fn lookup<'a>(payload: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = payload.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// A claim as header text: the request model's one rule for claim text
/// ([`meshguard_filter_core::request::claim_text`]), so a claim header and a claim key agree.
fn header_value(value: &Value) -> Option<String> {
    meshguard_filter_core::request::claim_text(value)
}

#[cfg(test)]
mod tests;
