//! Provider configuration: issuer, audiences, keys (inline or remote), token locations and what
//! is written upstream after verification.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::ConfigError;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{ClaimToHeader, KeySource, Location, Provider, RemoteJwks, valid_header_name};
use crate::keys::{Strictness, parse_jwks};

/// Default remote JWKS cache duration (Envoy's default is 5 minutes too).
const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(300);
/// Default remote JWKS fetch timeout.
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default clock skew (Envoy's default).
const DEFAULT_CLOCK_SKEW: u64 = 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawProvider {
    name: String,
    issuer: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    jwks: Option<String>,
    remote_jwks: Option<RawRemoteJwks>,
    from_headers: Option<Vec<RawHeaderLocation>>,
    from_params: Option<Vec<String>>,
    from_cookies: Option<Vec<String>>,
    #[serde(default)]
    forward: bool,
    forward_payload_header: Option<String>,
    payload_in_metadata: Option<String>,
    #[serde(default)]
    claim_to_headers: Vec<RawClaimToHeader>,
    clock_skew_seconds: Option<u64>,
    #[serde(default)]
    require_expiration: bool,
    max_lifetime_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRemoteJwks {
    cluster: String,
    uri: String,
    cache_duration: Option<ConfigDuration>,
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHeaderLocation {
    name: String,
    value_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawClaimToHeader {
    claim: String,
    header: String,
}

/// A duration written as protobuf JSON does (`"300s"`, `"1.5s"`), with `ms`, `m` and `h`
/// accepted too, or as a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"300s\", \"500ms\", \"5m\" or a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<ConfigDuration, E> {
                Ok(ConfigDuration(Duration::from_secs(seconds)))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<ConfigDuration, E> {
                u64::try_from(seconds)
                    .map(|s| ConfigDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }

            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<ConfigDuration, E> {
                Duration::try_from_secs_f64(seconds)
                    .map(ConfigDuration)
                    .map_err(|_| E::custom("a duration must be a non-negative number of seconds"))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
                parse_duration(text).map(ConfigDuration).ok_or_else(|| {
                    E::custom(format!(
                        "`{text}` is not a duration such as \"300s\", \"500ms\", \"5m\" or \"1h\""
                    ))
                })
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return None;
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(value * scale).ok()
}

fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    Ok(())
}

fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if !valid_header_name(name) {
        return Err(ConfigError::new(
            field,
            format!("`{name}` is not a lowercase HTTP header name"),
        ));
    }
    if matches!(
        name,
        "host" | "content-length" | "transfer-encoding" | "connection" | "te" | "upgrade"
    ) {
        return Err(ConfigError::new(
            field,
            format!("`{name}` cannot be written by a filter"),
        ));
    }
    Ok(name.to_string())
}

/// Query parameter and cookie names: RFC 6265 token characters.
fn token_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(ConfigError::new(
            field,
            format!("`{name}` is not a valid name"),
        ));
    }
    Ok(name.to_string())
}

fn remote(raw: RawRemoteJwks) -> Result<RemoteJwks, ConfigError> {
    non_empty("cluster", &raw.cluster)?;
    let rest = raw
        .uri
        .strip_prefix("http://")
        .or_else(|| raw.uri.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::new("uri", "must be an http:// or https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !clean(authority) || !clean(path) || authority.contains('@') {
        return Err(ConfigError::new(
            "uri",
            format!("`{}` is not a usable URL", raw.uri),
        ));
    }
    let cache_duration = raw.cache_duration.map_or(DEFAULT_CACHE_DURATION, |d| d.0);
    if cache_duration < Duration::from_secs(1) {
        return Err(ConfigError::new("cacheDuration", "must be at least 1s"));
    }
    let timeout = raw.timeout.map_or(DEFAULT_FETCH_TIMEOUT, |d| d.0);
    if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(60) {
        return Err(ConfigError::new("timeout", "must be between 10ms and 60s"));
    }
    Ok(RemoteJwks {
        cluster: raw.cluster,
        authority: authority.to_string(),
        path: path.to_string(),
        uri: raw.uri,
        cache_duration,
        timeout,
    })
}

impl TryFrom<RawProvider> for Provider {
    type Error = ConfigError;

    fn try_from(raw: RawProvider) -> Result<Self, ConfigError> {
        let name_ok = !raw.name.is_empty()
            && raw.name.len() <= 64
            && raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(ConfigError::new(
                "name",
                "must be 1-64 characters of letters, digits, `-`, `_` or `.`",
            ));
        }
        if let Some(issuer) = &raw.issuer {
            non_empty("issuer", issuer)?;
        }
        for (index, audience) in raw.audiences.iter().enumerate() {
            non_empty(&format!("audiences[{index}]"), audience)?;
        }
        let keys = match (raw.jwks, raw.remote_jwks) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "remoteJwks",
                    "set either `jwks` or `remoteJwks`, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    ".",
                    "one of `jwks` (inline) or `remoteJwks` is required",
                ));
            }
            (Some(text), None) => KeySource::Inline(Rc::new(
                parse_jwks(&text, true, Strictness::Strict)
                    .map_err(|err| ConfigError::new("jwks", err.to_string()))?,
            )),
            (None, Some(remote_jwks)) => {
                KeySource::Remote(remote(remote_jwks).map_err(|err| err.within("remoteJwks"))?)
            }
        };

        let mut locations = Vec::new();
        for (index, header) in raw.from_headers.iter().flatten().enumerate() {
            let field = format!("fromHeaders[{index}]");
            let name = header_name(&format!("{field}.name"), &header.name)?;
            let prefix = header.value_prefix.clone().unwrap_or_default();
            if prefix.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    format!("{field}.valuePrefix"),
                    "control characters",
                ));
            }
            locations.push(Location::Header { name, prefix });
        }
        for (index, param) in raw.from_params.iter().flatten().enumerate() {
            locations.push(Location::Param(token_name(
                &format!("fromParams[{index}]"),
                param,
            )?));
        }
        for (index, cookie) in raw.from_cookies.iter().flatten().enumerate() {
            locations.push(Location::Cookie(token_name(
                &format!("fromCookies[{index}]"),
                cookie,
            )?));
        }
        let explicit =
            raw.from_headers.is_some() || raw.from_params.is_some() || raw.from_cookies.is_some();
        if explicit && locations.is_empty() {
            return Err(ConfigError::new("fromHeaders", "no token location is left"));
        }
        if !explicit {
            // Envoy's defaults: `Authorization: Bearer <token>`, then `?access_token=`.
            locations.push(Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            });
            locations.push(Location::Param("access_token".into()));
        }

        let forward_payload_header = raw
            .forward_payload_header
            .as_deref()
            .map(|name| header_name("forwardPayloadHeader", name))
            .transpose()?;
        if let Some(name) = &raw.payload_in_metadata
            && (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control))
        {
            return Err(ConfigError::new(
                "payloadInMetadata",
                "must be 1-128 characters without control characters",
            ));
        }
        let mut claim_to_headers = Vec::with_capacity(raw.claim_to_headers.len());
        for (index, mapping) in raw.claim_to_headers.into_iter().enumerate() {
            let field = format!("claimToHeaders[{index}]");
            let path: Vec<String> = mapping.claim.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    format!("{field}.claim"),
                    format!(
                        "`{}` is not a claim path like `realm_access.roles`",
                        mapping.claim
                    ),
                ));
            }
            let header = header_name(&format!("{field}.header"), &mapping.header)?;
            claim_to_headers.push(ClaimToHeader {
                claim: mapping.claim,
                path,
                header,
            });
        }
        let clock_skew_seconds = raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW);
        if clock_skew_seconds > 86_400 {
            return Err(ConfigError::new(
                "clockSkewSeconds",
                "must be at most 86400",
            ));
        }
        if raw.max_lifetime_seconds == Some(0) {
            return Err(ConfigError::new("maxLifetimeSeconds", "must be positive"));
        }
        Ok(Self {
            name: raw.name,
            issuer: raw.issuer,
            audiences: raw.audiences,
            keys,
            locations,
            forward: raw.forward,
            forward_payload_header,
            payload_in_metadata: raw.payload_in_metadata,
            claim_to_headers,
            clock_skew_seconds,
            require_expiration: raw.require_expiration || raw.max_lifetime_seconds.is_some(),
            max_lifetime_seconds: raw.max_lifetime_seconds,
        })
    }
}
