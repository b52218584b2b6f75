//! The parts a limit's key is built from (raw serde types and their validated forms). Which
//! requests a limit applies to is the shared route matcher's business
//! ([`meshguard_filter_core::route`]).

use meshguard_filter_core::ConfigError;
use meshguard_filter_core::request::ClaimPath;
use meshguard_filter_core::route::header_name;

// === raw types ===

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) enum RawKeyPart {
    ClientIp,
    Header(String),
    Cookie(String),
    Claim(String),
    Path,
    Method,
    Constant(String),
}

// === validated types ===

/// A part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client's IP address: Envoy's `source.address` without the port. Envoy resolves
    /// `X-Forwarded-For` into it when the connection manager trusts proxies
    /// (`xff_num_trusted_hops`; Istio's `numTrustedProxies`), so the filter never parses a
    /// header a client can write.
    ClientIp,
    /// A request header (for example a claim header set by the JWT filter).
    Header(String),
    /// A cookie by name.
    Cookie(String),
    /// A claim of the token a JWT stage verified earlier in the same module (`sub`,
    /// `realm_access.roles`): never a client-sent header.
    Claim(ClaimPath),
    /// The request path without its query string.
    Path,
    /// The request method.
    Method,
    /// A constant: one budget for every matching request.
    Constant(String),
}

impl KeyPart {
    /// The key of this part's entry in an RLS descriptor (a global limit's request to the
    /// rate-limit service). Where Envoy's `envoy.filters.http.ratelimit` has an action for the
    /// same fact, the key is that action's, so a service configuration written for Envoy's
    /// filter matches: `remote_address` (client address), `generic_key` (a constant, its
    /// value the constant). A header's key is its name (set `descriptor_key` to it in Envoy's
    /// `request_headers` action); the others are `path`, `method`, `cookie.<name>` and
    /// `claim.<path>`.
    pub fn descriptor_key(&self) -> String {
        match self {
            Self::ClientIp => "remote_address".to_string(),
            Self::Header(name) => name.clone(),
            Self::Cookie(name) => format!("cookie.{name}"),
            Self::Claim(path) => format!("claim.{path}"),
            Self::Path => "path".to_string(),
            Self::Method => "method".to_string(),
            Self::Constant(_) => "generic_key".to_string(),
        }
    }
}

impl TryFrom<RawKeyPart> for KeyPart {
    type Error = ConfigError;

    fn try_from(raw: RawKeyPart) -> Result<Self, ConfigError> {
        Ok(match raw {
            RawKeyPart::ClientIp => Self::ClientIp,
            RawKeyPart::Header(name) => Self::Header(
                header_name(&name).map_err(|message| ConfigError::new("header", message))?,
            ),
            RawKeyPart::Cookie(name) => {
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !ok {
                    return Err(ConfigError::new(
                        "cookie",
                        format!("`{name}` is not a cookie name"),
                    ));
                }
                Self::Cookie(name)
            }
            RawKeyPart::Claim(path) => Self::Claim(
                ClaimPath::parse(&path).map_err(|message| ConfigError::new("claim", message))?,
            ),
            RawKeyPart::Path => Self::Path,
            RawKeyPart::Method => Self::Method,
            RawKeyPart::Constant(value) => Self::Constant(value),
        })
    }
}
