//! The one route matcher every filter uses, with Envoy's route-match semantics, so an
//! operator's intuition (and a route copied from an Envoy or Istio config) carries over.
//!
//! ```json
//! "match": {
//!   "prefix": "/api/orders",
//!   "methods": ["GET", "POST"],
//!   "hosts": ["shop.example.com", "*.shop.example.com"],
//!   "headers": [{"name": "x-internal", "present": true},
//!               {"name": "x-env", "exact": "canary", "invert": true}],
//!   "cluster": "outbound|8080|v2|product.commerce.svc.cluster.local"
//! }
//! ```
//!
//! Every condition given must hold; an empty `match` matches every request.
//! - **Path**, at most one of (Envoy's `RouteMatch` path specifiers), each on the path without
//!   its query string or fragment:
//!   - `path`: the path equals this (Envoy's `path`);
//!   - `prefix`: the path starts with this (Envoy's `prefix`);
//!   - `regex`: the path matches this RE2-syntax regex as a whole (Envoy's `safe_regex`:
//!     `/b[io]t` matches `/bit`, not `/bite`); character classes are ASCII, as RE2's `\d`,
//!     `\w` and `\s` are.
//!
//!   Envoy's documentation says a `prefix` matches the beginning of `:path`; Envoy 1.40 matches
//!   it against the path without the query string, like `path` and `safe_regex`
//!   (`tests/tests/route_match.rs` checks both against a real Envoy route table). A `path` or
//!   `prefix` containing `?` or `#` could therefore never match and is refused. Matching is
//!   case-sensitive and on the path as Envoy hands it to filters (after the connection
//!   manager's own normalisation, if configured): `%2F` is not `/`, `/a/` is not `/a`.
//! - **`methods`**: one of these (uppercase; HTTP methods are case-sensitive).
//! - **`hosts`**: the request's host (`:authority` without port, lowercase) is one of these, in
//!   Istio's forms: `shop.example.com`, `*.example.com` (any subdomain, not the domain itself),
//!   or `*` (any host).
//! - **`headers`**: each holds (Envoy's `HeaderMatcher`): `present` (`true`: the header is
//!   there, `false`: it is absent), or the value is `exact`ly, starts with (`prefix`), or
//!   wholly matches (`regex`) the given text; `invert` negates the result. A header that is
//!   absent never matches a value condition, inverted or not, as in Envoy. A header sent more
//!   than once is matched on its first value (proxy-wasm ABI 0.2.1 returns the first value;
//!   Envoy's own router joins the values with `,`).
//! - **`cluster`**: the upstream cluster the request goes to ([`crate::Ctx::cluster`]).
//!
//! Facts are read lazily in that order (path, method, host, headers, cluster), so a condition
//! that fails early spares the reads behind it.

use std::borrow::Cow;
use std::rc::Rc;

use serde::Deserialize;

use crate::{ConfigError, Ctx};

/// The longest compiled regex program accepted (Envoy bounds `safe_regex` programs too).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

// === raw configuration ===

/// A route match as an operator writes it (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRouteMatch {
    path: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    #[serde(default)]
    headers: Vec<RawHeaderMatch>,
    cluster: Option<String>,
}

/// A header condition as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeaderMatch {
    name: String,
    present: Option<bool>,
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    invert: bool,
}

// === validated types ===

/// A validated route match.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    /// The path condition.
    pub path: Option<PathMatch>,
    /// Allowed methods (uppercase); empty: any.
    pub methods: Vec<String>,
    /// Allowed hosts; empty: any.
    pub hosts: Vec<HostPattern>,
    /// Header conditions, all of which must hold.
    pub headers: Vec<HeaderMatch>,
    /// The upstream cluster.
    pub cluster: Option<String>,
}

/// A path condition (Envoy's path specifiers).
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// `path`: the path without query equals this.
    Exact(String),
    /// `prefix`: the path without query starts with this.
    Prefix(String),
    /// `regex`: the path without query matches this as a whole (stored anchored).
    Regex(Regex),
}

/// A host pattern (Istio's forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    /// `*.example.com`: any host ending in `.example.com` (stored with the leading dot).
    Suffix(String),
    /// An exact host name or IP literal (lowercase).
    Exact(String),
}

/// A header condition.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Lowercase header name (pseudo-headers such as `:method` allowed).
    pub name: String,
    /// What the header must satisfy.
    pub condition: HeaderCondition,
    /// Negate the result.
    pub invert: bool,
}

/// What a header must satisfy.
#[derive(Debug, Clone)]
pub enum HeaderCondition {
    /// Present (`true`) or absent (`false`).
    Present(bool),
    /// The value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The value matches this as a whole (stored anchored).
    Regex(Regex),
}

/// What matching may ask about a request. [`Ctx`] answers from the request model; tests answer
/// from a table.
pub trait RequestFacts {
    /// `:path` with its query string.
    fn path(&self) -> Rc<str>;
    /// `:method`.
    fn method(&self) -> Rc<str>;
    /// The host, lowercase, without port.
    fn host(&self) -> Option<String>;
    /// A request header's first value.
    fn header(&self, name: &str) -> Option<Rc<str>>;
    /// The upstream cluster.
    fn cluster(&self) -> Option<Rc<str>>;
}

impl RequestFacts for Ctx<'_> {
    fn path(&self) -> Rc<str> {
        Ctx::path(self)
    }
    fn method(&self) -> Rc<str> {
        Ctx::method(self)
    }
    fn host(&self) -> Option<String> {
        self.host_name()
    }
    fn header(&self, name: &str) -> Option<Rc<str>> {
        self.request_header(name)
    }
    fn cluster(&self) -> Option<Rc<str>> {
        Ctx::cluster(self)
    }
}

/// A request given as plain values, for matching outside a stream (tests, tools).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedRequest {
    /// `:method`.
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// `:authority`, as sent.
    pub authority: Option<String>,
    /// Other headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// The upstream cluster.
    pub cluster: Option<String>,
}

impl FixedRequest {
    /// A request with this method and path.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            ..Self::default()
        }
    }
}

impl RequestFacts for FixedRequest {
    fn path(&self) -> Rc<str> {
        Rc::from(self.path.as_str())
    }
    fn method(&self) -> Rc<str> {
        Rc::from(self.method.as_str())
    }
    fn host(&self) -> Option<String> {
        self.authority.as_deref().map(crate::request::host_of)
    }
    fn header(&self, name: &str) -> Option<Rc<str>> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| Rc::from(value.as_str()))
    }
    fn cluster(&self) -> Option<Rc<str>> {
        self.cluster.as_deref().map(Rc::from)
    }
}

// === matching ===

impl RouteMatch {
    /// Whether every condition holds for `request`.
    pub fn matches(&self, request: &dyn RequestFacts) -> bool {
        if let Some(path) = &self.path
            && !path.matches(&request.path())
        {
            return false;
        }
        if !self.methods.is_empty() {
            let method = request.method();
            if !self.methods.iter().any(|m| **m == *method) {
                return false;
            }
        }
        if !self.hosts.is_empty() && !self.hosts.contains(&HostPattern::Any) {
            let Some(host) = request.host() else {
                return false;
            };
            if !self.hosts.iter().any(|pattern| pattern.matches(&host)) {
                return false;
            }
        }
        if !self
            .headers
            .iter()
            .all(|header| header.matches(request.header(&header.name).as_deref()))
        {
            return false;
        }
        match &self.cluster {
            Some(cluster) => request.cluster().as_deref() == Some(cluster.as_str()),
            None => true,
        }
    }

    /// Whether any condition needs the path (so a filter can skip reading it).
    pub fn reads_path(&self) -> bool {
        self.path.is_some()
    }
}

impl PathMatch {
    /// Whether `path` (a whole `:path`; its query string and fragment are not compared)
    /// matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(exact) => crate::request::path_only(path) == exact,
            Self::Prefix(prefix) => crate::request::path_only(path).starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(crate::request::path_only(path)),
        }
    }
}

impl HostPattern {
    /// Whether `host` (lowercase, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => host == name,
            Self::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

impl HeaderMatch {
    /// Whether the condition holds for the header's first value (`None`: absent).
    pub fn matches(&self, value: Option<&str>) -> bool {
        let holds = match (&self.condition, value) {
            (HeaderCondition::Present(want), value) => value.is_some() == *want,
            // Envoy: an absent header fails every value condition, inverted or not.
            (_, None) => return false,
            (HeaderCondition::Exact(exact), Some(value)) => value == exact,
            (HeaderCondition::Prefix(prefix), Some(value)) => value.starts_with(prefix.as_str()),
            (HeaderCondition::Regex(regex), Some(value)) => regex.is_match(value),
        };
        holds != self.invert
    }
}

// === validation ===

impl TryFrom<RawRouteMatch> for RouteMatch {
    type Error = ConfigError;

    fn try_from(raw: RawRouteMatch) -> Result<Self, ConfigError> {
        let given = [&raw.path, &raw.prefix, &raw.regex]
            .iter()
            .filter(|field| field.is_some())
            .count();
        if given > 1 {
            return Err(ConfigError::new(
                ".",
                "give at most one of `path`, `prefix` and `regex`",
            ));
        }
        let path = if let Some(path) = raw.path {
            Some(PathMatch::Exact(absolute_path("path", path)?))
        } else if let Some(prefix) = raw.prefix {
            Some(PathMatch::Prefix(absolute_path("prefix", prefix)?))
        } else if let Some(pattern) = raw.regex {
            Some(PathMatch::Regex(anchored("regex", &pattern)?))
        } else {
            None
        };
        let methods = match raw.methods {
            None => Vec::new(),
            Some(methods) if methods.is_empty() => {
                return Err(ConfigError::new(
                    "methods",
                    "list at least one method (leave `methods` out to match every method)",
                ));
            }
            Some(methods) => methods
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
                .collect::<Result<_, _>>()?,
        };
        let hosts = match raw.hosts {
            None => Vec::new(),
            Some(hosts) if hosts.is_empty() => {
                return Err(ConfigError::new(
                    "hosts",
                    "list at least one host (`*` matches every host; or leave `hosts` out)",
                ));
            }
            Some(hosts) => hosts
                .iter()
                .enumerate()
                .map(|(index, host)| {
                    host_pattern(host)
                        .map_err(|message| ConfigError::new(format!("hosts[{index}]"), message))
                })
                .collect::<Result<_, _>>()?,
        };
        let headers = raw
            .headers
            .into_iter()
            .enumerate()
            .map(|(index, header)| {
                HeaderMatch::try_from(header)
                    .map_err(|err| err.within(&format!("headers[{index}]")))
            })
            .collect::<Result<_, _>>()?;
        if let Some(cluster) = &raw.cluster
            && (cluster.is_empty() || cluster.bytes().any(|b| b.is_ascii_control()))
        {
            return Err(ConfigError::new(
                "cluster",
                "must be a cluster name (not empty, no control characters)",
            ));
        }
        Ok(Self {
            path,
            methods,
            hosts,
            headers,
            cluster: raw.cluster,
        })
    }
}

impl TryFrom<RawHeaderMatch> for HeaderMatch {
    type Error = ConfigError;

    fn try_from(raw: RawHeaderMatch) -> Result<Self, ConfigError> {
        let name = header_name(&raw.name).map_err(|message| ConfigError::new("name", message))?;
        let given = [
            raw.present.is_some(),
            raw.exact.is_some(),
            raw.prefix.is_some(),
            raw.regex.is_some(),
        ]
        .iter()
        .filter(|given| **given)
        .count();
        if given != 1 {
            return Err(ConfigError::new(
                ".",
                "give exactly one of `present`, `exact`, `prefix` and `regex`",
            ));
        }
        let condition = if let Some(present) = raw.present {
            HeaderCondition::Present(present)
        } else if let Some(exact) = raw.exact {
            HeaderCondition::Exact(exact)
        } else if let Some(prefix) = raw.prefix {
            HeaderCondition::Prefix(prefix)
        } else {
            HeaderCondition::Regex(anchored("regex", raw.regex.as_deref().unwrap_or_default())?)
        };
        Ok(Self {
            name,
            condition,
            invert: raw.invert,
        })
    }
}

fn absolute_path(field: &str, path: String) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control()) {
        return Err(ConfigError::new(
            field,
            format!("`{path}` must start with `/`"),
        ));
    }
    if path.contains(['?', '#']) {
        return Err(ConfigError::new(
            field,
            format!(
                "`{path}` contains `?` or `#`, but paths are matched without their query string \
                 (as Envoy does), so it could never match"
            ),
        ));
    }
    Ok(path)
}

/// A `safe_regex` compiled to match whole values, with Envoy's semantics: RE2 syntax, linear
/// time, ASCII character classes (RE2's `\d`, `\w`, `\s` are ASCII too; `\p{..}` classes are
/// refused), and matching on the value's *bytes*: measured against Envoy 1.40's route table
/// (`tests/tests/route_match.rs`), `caf.` does not match `café`, whose `é` is two bytes.
///
/// Why `regex-lite` and this wrapper rather than `regex::bytes`: `regex` (even without its
/// Unicode tables and literal optimisations) costs ~210 KB of wasm in every module that matches
/// routes, which V8 compiles once per VM; measured with `cargo xtask bench --only edge`, the
/// pipeline's resident memory at `--concurrency 2` fell by 5.6 MiB and the four chained modules'
/// by 14.5 MiB. `regex-lite` (same authors, same syntax and linear-time guarantee) matches on
/// `&str` only, so both the pattern and a non-ASCII value are mapped byte for byte onto the
/// characters U+0000..U+00FF: one byte is one character, `.` matches one byte, a literal `é` in
/// the pattern matches its two UTF-8 bytes, and `\xE9` matches the byte 0xE9, exactly as a
/// bytes regex does. ASCII values, nearly all of them, are matched as they are.
#[derive(Debug, Clone)]
pub struct Regex(regex_lite::Regex);

impl Regex {
    /// Whether `value` matches as a whole (the pattern is stored anchored).
    pub fn is_match(&self, value: &str) -> bool {
        self.0.is_match(&bytewise(value))
    }
}

/// `text` with each byte as one character (Latin-1 decoding of its UTF-8 bytes); borrowed when
/// it is ASCII.
fn bytewise(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.bytes().map(char::from).collect())
    }
}

/// Compiles `pattern` to match whole values, as Envoy's `safe_regex` does ([`Regex`]).
fn anchored(field: &str, pattern: &str) -> Result<Regex, ConfigError> {
    regex_lite::RegexBuilder::new(&format!("^(?:{})$", bytewise(pattern)))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(Regex)
        .map_err(|err| ConfigError::new(field, format!("`{pattern}` is not a valid regex: {err}")))
}

/// A lowercase header name (RFC 9110 token characters; a leading `:` for pseudo-headers).
pub fn header_name(name: &str) -> Result<String, String> {
    let body = name.strip_prefix(':').unwrap_or(name);
    let ok = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        });
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a lowercase HTTP header name"))
    }
}

/// Parses a host pattern: `*`, `*.suffix`, a DNS name or an IP literal, without port.
pub fn host_pattern(host: &str) -> Result<HostPattern, String> {
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let (suffix, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    let ipv6 = name.starts_with('[')
        && name.ends_with(']')
        && name.len() > 2
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b"[]:.".contains(&b));
    let dns = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !(dns || (ipv6 && !suffix)) {
        return Err(if name.contains(':') && !ipv6 {
            format!("`{host}`: write the host without a port (the port of `:authority` is ignored)")
        } else {
            format!("`{host}` is not a host name (wildcards only as `*` or `*.suffix`)")
        });
    }
    let name = name.trim_end_matches('.').to_string();
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    })
}

#[cfg(test)]
mod tests;
