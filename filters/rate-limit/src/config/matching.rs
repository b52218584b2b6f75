//! Matching and key configuration: which requests a limit applies to, and the parts its key is
//! built from (raw serde types and their validated forms).

use meshguard_filter_core::ConfigError;
use regex::Regex;

use super::MAX_TRUSTED_HOPS;

// === raw types ===

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMatch {
    path: Option<RawPath>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    headers: Vec<RawHeaderMatch>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) enum RawPath {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawHeaderMatch {
    name: String,
    present: Option<bool>,
    equals: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) enum RawKeyPart {
    ClientIp(RawClientIp),
    Header(String),
    Cookie(String),
    Path,
    Method,
    Constant(String),
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawClientIp {
    #[serde(default)]
    trusted_hops: u32,
}

// === validated types ===

/// Which requests a limit applies to; all given conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Path condition (the query string is not part of the path).
    pub path: Option<PathMatch>,
    /// Allowed methods (uppercase); empty means any.
    pub methods: Vec<String>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
}

/// A path condition.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The whole path matches this regular expression (anchored, as Envoy's `safe_regex`).
    Regex(Regex),
}

/// A header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lowercase header name.
    pub name: String,
    /// What must hold.
    pub condition: HeaderCondition,
}

/// What a header condition requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCondition {
    /// The header is present.
    Present,
    /// The header is absent.
    Absent,
    /// The header equals this value exactly.
    Equals(String),
}

/// A part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client IP: the `trusted_hops`-th address from the right of `x-forwarded-for` as the
    /// filter sees it, or the `source.address` property when `trusted_hops` is 0 or the header
    /// is shorter.
    ClientIp {
        /// How many entries at the right end of `x-forwarded-for` were appended by proxies you
        /// trust, counting Envoy itself when it appends the peer address before filters run
        /// (`use_remote_address: true`, as on Istio gateways). Behind one load balancer that
        /// appends the client address, that is 2: Envoy appended the load balancer's address,
        /// the load balancer appended the client's. Entries further left are written by the
        /// client and never used.
        trusted_hops: u32,
    },
    /// A request header (for example a claim header set by the JWT filter).
    Header(String),
    /// A cookie by name.
    Cookie(String),
    /// The request path without its query string.
    Path,
    /// The request method.
    Method,
    /// A constant: one budget for every matching request.
    Constant(String),
}

// === impl TryFrom ===

impl TryFrom<RawMatch> for Matcher {
    type Error = ConfigError;

    fn try_from(raw: RawMatch) -> Result<Self, ConfigError> {
        let path = raw
            .path
            .map(|path| PathMatch::try_from(path).map_err(|err| err.within("path")))
            .transpose()?;
        let methods = raw
            .methods
            .into_iter()
            .enumerate()
            .map(|(index, method)| {
                if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(method.to_ascii_uppercase())
                } else {
                    Err(ConfigError::new(
                        format!("methods[{index}]"),
                        format!("`{method}` is not an HTTP method"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = raw
            .headers
            .into_iter()
            .enumerate()
            .map(|(index, header)| {
                HeaderMatch::try_from(header)
                    .map_err(|err| err.within(&format!("headers[{index}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            methods,
            headers,
        })
    }
}

impl TryFrom<RawPath> for PathMatch {
    type Error = ConfigError;

    fn try_from(raw: RawPath) -> Result<Self, ConfigError> {
        match raw {
            RawPath::Exact(path) => Ok(Self::Exact(absolute_path("exact", path)?)),
            RawPath::Prefix(path) => Ok(Self::Prefix(absolute_path("prefix", path)?)),
            RawPath::Regex(pattern) => regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .size_limit(1 << 20)
                .build()
                .map(Self::Regex)
                .map_err(|err| {
                    ConfigError::new("regex", format!("`{pattern}` is not a valid regex: {err}"))
                }),
        }
    }
}

fn absolute_path(field: &str, path: String) -> Result<String, ConfigError> {
    if path.starts_with('/') && !path.bytes().any(|b| b.is_ascii_control()) {
        Ok(path)
    } else {
        Err(ConfigError::new(
            field,
            format!("`{path}` must start with `/`"),
        ))
    }
}

impl TryFrom<RawHeaderMatch> for HeaderMatch {
    type Error = ConfigError;

    fn try_from(raw: RawHeaderMatch) -> Result<Self, ConfigError> {
        let name = header_name("name", raw.name)?;
        let condition = match (raw.present, raw.equals) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "equals",
                    "give either `present` or `equals`, not both",
                ));
            }
            (Some(true) | None, None) => HeaderCondition::Present,
            (Some(false), None) => HeaderCondition::Absent,
            (None, Some(value)) => HeaderCondition::Equals(value),
        };
        Ok(Self { name, condition })
    }
}

impl TryFrom<RawKeyPart> for KeyPart {
    type Error = ConfigError;

    fn try_from(raw: RawKeyPart) -> Result<Self, ConfigError> {
        Ok(match raw {
            RawKeyPart::ClientIp(ip) => {
                if ip.trusted_hops > MAX_TRUSTED_HOPS {
                    return Err(ConfigError::new(
                        "clientIp.trustedHops",
                        format!("must be at most {MAX_TRUSTED_HOPS}"),
                    ));
                }
                Self::ClientIp {
                    trusted_hops: ip.trusted_hops,
                }
            }
            RawKeyPart::Header(name) => Self::Header(header_name("header", name)?),
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
            RawKeyPart::Path => Self::Path,
            RawKeyPart::Method => Self::Method,
            RawKeyPart::Constant(value) => Self::Constant(value),
        })
    }
}

/// A lowercase header name (pseudo-headers such as `:authority` allowed).
fn header_name(field: &str, name: String) -> Result<String, ConfigError> {
    let body = name.strip_prefix(':').unwrap_or(&name);
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(ConfigError::new(
            field,
            format!("`{name}` is not a lowercase HTTP header name"),
        ))
    }
}
