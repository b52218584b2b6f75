//! The local answer while a breaker is open: a configured degraded response (a static product
//! page, a "payment queued" document) or a plain 503. The filter adds `x-meshguard-circuit` and
//! `Retry-After` itself, so those names cannot be configured.

use std::collections::BTreeMap;

use meshguard_filter_core::ConfigError;

use super::Fallback;

/// Raw `fallback`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawFallback {
    status: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

// === impl Fallback ===

impl Fallback {
    /// The plain answer when no fallback is configured: 503 with a one-line explanation.
    pub fn plain(name: &str) -> Self {
        Self {
            status: 503,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("circuit breaker `{name}` is open: the service is failing\n")
                .into_bytes(),
        }
    }
}

/// Headers the filter sets itself on a short-circuited answer.
const MANAGED_HEADERS: &[&str] = &["x-meshguard-circuit", "retry-after"];

impl TryFrom<RawFallback> for Fallback {
    type Error = ConfigError;

    fn try_from(raw: RawFallback) -> Result<Self, ConfigError> {
        let status = raw.status.unwrap_or(503);
        if !(200..=599).contains(&status) {
            return Err(ConfigError::new(
                "status",
                format!("{status} is not a final HTTP status (200-599)"),
            ));
        }
        let mut headers = Vec::with_capacity(raw.headers.len());
        for (name, value) in raw.headers {
            let field = format!("headers.{name}");
            let lower = name.to_ascii_lowercase();
            let token = !lower.is_empty()
                && lower.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_!#$%&'*+.^`|~".contains(&b)
                });
            if !token {
                return Err(ConfigError::new(
                    field,
                    format!("`{name}` is not an HTTP header name"),
                ));
            }
            if MANAGED_HEADERS.contains(&lower.as_str()) {
                return Err(ConfigError::new(
                    field,
                    format!("`{lower}` is set by the filter itself"),
                ));
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(ConfigError::new(
                    field,
                    "control characters are not allowed in header values",
                ));
            }
            headers.push((lower, value));
        }
        Ok(Self {
            status,
            headers,
            body: raw.body.into_bytes(),
        })
    }
}
