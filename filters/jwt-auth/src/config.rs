//! The filter's configuration: raw JSON as an operator writes it (field names after Envoy's
//! `jwt_authn`, in camelCase), converted once at configure time into validated types.
//!
//! Every rejection names the field path (`providers[1].remoteJwks.uri`,
//! `rules[0].requires.anyOf[1].provider`), so a bad `pluginConfig` is caught when Envoy loads it,
//! never at the first request.
//!
//! ```json
//! {
//!   "providers": [{
//!     "name": "keycloak",
//!     "issuer": "https://id.shop.example/realms/shop",
//!     "audiences": ["commerce-api"],
//!     "remoteJwks": {"cluster": "keycloak", "uri": "http://keycloak/realms/shop/certs",
//!                    "cacheDuration": "300s", "timeout": "2s"},
//!     "claimToHeaders": [{"claim": "realm_access.roles", "header": "x-jwt-roles"}]
//!   }],
//!   "rules": [
//!     {"match": {"prefix": "/healthz"}},
//!     {"match": {"prefix": "/api/", "methods": ["GET", "POST"]}, "requires": {"provider": "keycloak"}}
//!   ]
//! }
//! ```

mod provider;
mod rules;

use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::ConfigError;
use meshguard_filter_core::config::parse_json;
use serde::Deserialize;

use crate::keys::KeySet;

pub use rules::{Requirement, Rule};

/// Default bound on a token's length.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default number of verified tokens each worker remembers.
pub const DEFAULT_CACHE_SIZE: usize = 1024;

// === raw ===

/// The document as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawConfig {
    #[serde(default)]
    providers: Vec<provider::RawProvider>,
    #[serde(default)]
    rules: Vec<rules::RawRule>,
    default_requirement: Option<rules::RawRequirement>,
    bypass_cors_preflight: Option<bool>,
    realm: Option<String>,
    max_token_bytes: Option<u64>,
    cache_size: Option<u64>,
    host_crypto: Option<bool>,
}

// === validated ===

/// Validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Providers; rules refer to them by index.
    pub providers: Vec<Provider>,
    /// Rules in order; the first whose match fits decides.
    pub rules: Vec<Rule>,
    /// What applies when no rule matches (deny unless configured).
    pub default_requirement: Requirement,
    /// Let CORS preflights (OPTIONS with `Origin` and `Access-Control-Request-Method`) through.
    pub bypass_cors_preflight: bool,
    /// `realm` in `WWW-Authenticate`; `None`: the request URL, as Envoy's jwt_authn does.
    pub realm: Option<String>,
    /// Tokens longer than this are rejected before decoding.
    pub max_token_bytes: usize,
    /// Verified tokens remembered per worker (0 disables the cache).
    pub cache_size: usize,
    /// Use Envoy's `verify_signature` for RSA/ECDSA where the host offers it.
    pub host_crypto: bool,
    /// Headers this filter writes (claim and payload headers of every provider): removed from
    /// every incoming request first so no client can spoof them.
    pub protected_headers: Vec<String>,
}

/// One identity provider (issuer).
#[derive(Debug)]
pub struct Provider {
    /// Name used by rules, metrics and shared-data keys.
    pub name: String,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Accepted `aud` values; empty accepts any audience.
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Where tokens are looked for, in order.
    pub locations: Vec<Location>,
    /// Keep the token in the request sent upstream.
    pub forward: bool,
    /// Header that receives the token's payload segment (base64url) after verification.
    pub forward_payload_header: Option<String>,
    /// Name under which the verified payload is handed to later filters of the stream, as
    /// jwt_authn's `payload_in_metadata` names it in dynamic metadata (see
    /// [`meshguard_filter_core::claims`]: the authorization filter reads it there).
    pub payload_in_metadata: Option<String>,
    /// Claims copied to request headers after verification.
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_seconds: u64,
    /// Reject tokens without `exp`.
    pub require_expiration: bool,
    /// Longest accepted lifetime (`exp` minus `iat`, or minus `nbf`, or minus now).
    pub max_lifetime_seconds: Option<u64>,
}

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// A JWKS in the configuration.
    Inline(Rc<KeySet>),
    /// A JWKS fetched from an Envoy cluster.
    Remote(RemoteJwks),
}

/// A remote JWKS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// Envoy cluster the callout goes to.
    pub cluster: String,
    /// The URI as configured.
    pub uri: String,
    /// `:authority` of the callout.
    pub authority: String,
    /// `:path` of the callout.
    pub path: String,
    /// How long fetched keys are used before the next fetch.
    pub cache_duration: Duration,
    /// How long a fetch may take.
    pub timeout: Duration,
}

/// A place a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A request header, with a value prefix such as `Bearer ` (matched case-insensitively).
    Header {
        /// Lowercase header name.
        name: String,
        /// Prefix before the token (may be empty).
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// A claim copied to a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// The claim path as written (`realm_access.roles`).
    pub claim: String,
    /// The path split on dots.
    pub path: Vec<String>,
    /// Lowercase header name.
    pub header: String,
}

/// Parses and validates the plugin configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
        for (index, raw_provider) in raw.providers.into_iter().enumerate() {
            let field = format!("providers[{index}]");
            let provider = Provider::try_from(raw_provider).map_err(|err| err.within(&field))?;
            if providers.iter().any(|known| known.name == provider.name) {
                return Err(ConfigError::new(
                    format!("{field}.name"),
                    format!("provider `{}` is defined twice", provider.name),
                ));
            }
            providers.push(provider);
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                rules::rule(rule, &names).map_err(|err| err.within(&format!("rules[{index}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let default_requirement = match raw.default_requirement {
            None => Requirement::Deny,
            Some(raw) => {
                rules::requirement(raw, &names).map_err(|err| err.within("defaultRequirement"))?
            }
        };
        if let Some(realm) = &raw.realm
            && (realm.is_empty()
                || realm
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c.is_control()))
        {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty without quotes, backslashes or control characters",
            ));
        }
        let max_token_bytes = match raw.max_token_bytes {
            None => DEFAULT_MAX_TOKEN_BYTES,
            Some(bytes @ 256..=65_536) => bytes as usize,
            Some(_) => {
                return Err(ConfigError::new(
                    "maxTokenBytes",
                    "must be between 256 and 65536",
                ));
            }
        };
        let cache_size = match raw.cache_size {
            None => DEFAULT_CACHE_SIZE,
            Some(size @ 0..=100_000) => size as usize,
            Some(_) => return Err(ConfigError::new("cacheSize", "must be at most 100000")),
        };
        let mut protected_headers: Vec<String> = Vec::new();
        for provider in &providers {
            let written = provider
                .claim_to_headers
                .iter()
                .map(|c| &c.header)
                .chain(provider.forward_payload_header.as_ref());
            for header in written {
                if !protected_headers.contains(header) {
                    protected_headers.push(header.clone());
                }
            }
        }
        // A written header that is also a token location would strip the token before it is
        // read (and let a verified claim masquerade as a token).
        for (index, provider) in providers.iter().enumerate() {
            for location in &provider.locations {
                if let Location::Header { name, .. } = location
                    && protected_headers.contains(name)
                {
                    return Err(ConfigError::new(
                        format!("providers[{index}].fromHeaders"),
                        format!(
                            "`{name}` is also written by claimToHeaders or forwardPayloadHeader"
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            providers,
            rules,
            default_requirement,
            bypass_cors_preflight: raw.bypass_cors_preflight.unwrap_or(true),
            realm: raw.realm,
            max_token_bytes,
            cache_size,
            host_crypto: raw.host_crypto.unwrap_or(true),
            protected_headers,
        })
    }
}

impl Config {
    /// The index of the provider named `name`.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }
}

/// Whether `name` is a lowercase HTTP header name (RFC 9110 token characters).
pub(crate) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

#[cfg(test)]
mod tests;
