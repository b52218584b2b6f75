//! Configuration: the JSON an operator writes (raw serde types, unknown fields rejected) and the
//! validated types the filter runs on.
//!
//! Everything that can be checked is checked once, at configure time, with errors naming the
//! field (`services[1].versions[0].weight`): weights are percentages with at most two decimals
//! that add up to 100, names are unique and fit in a header value and a stat name, header and
//! cookie names are tokens, hosts carry no port. Header names are lowercased here so the
//! per-request path never allocates for case folding.
//!
//! ```json
//! {
//!   "routeHeader": "x-mesh-version",
//!   "pinCookie": { "name": "mesh-canary", "maxAgeSeconds": 2592000 },
//!   "services": [{
//!     "name": "product",
//!     "match": { "match": {"hosts": ["product", "product.commerce.svc.cluster.local"]},
//!                "prefix": "/api/products" },
//!     "versions": [
//!       { "name": "v1", "weight": 90, "cluster": "outbound|8080|v1|product.commerce.svc.cluster.local" },
//!       { "name": "v2", "weight": 10, "cluster": "outbound|8080|v2|product.commerce.svc.cluster.local" }
//!     ],
//!     "stickyKey": [{ "claim": "sub" }, { "header": "x-user-id" }, { "cookie": "session" }, "clientIp"],
//!     "overrides": {
//!       "header": "x-canary-version",
//!       "cookie": "canary-version",
//!       "onlyWithHeader": { "name": "x-internal-caller" }
//!     }
//!   }]
//! }
//! ```

use meshguard_filter_core::config::parse_json;
use meshguard_filter_core::request::ClaimPath;
use meshguard_filter_core::{ConfigError, Env, RawRouteMatch, RouteMatch};
use serde::Deserialize;

use crate::ring::{Ring, Version};
use fields::{
    at, cookie_attribute_byte, cookie_name, header_name, header_value, identifier, weight,
};

/// The default route header, matched by the route tables in `istio/canary/`.
pub const DEFAULT_ROUTE_HEADER: &str = "x-mesh-version";

/// Default lifetime of the pin cookie: 30 days.
pub const DEFAULT_PIN_MAX_AGE: u64 = 30 * 24 * 3600;

// === raw configuration ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default = "default_route_header")]
    route_header: String,
    #[serde(default)]
    pin_cookie: Option<RawPinCookie>,
    services: Vec<RawService>,
}

fn default_route_header() -> String {
    DEFAULT_ROUTE_HEADER.to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawService {
    name: String,
    #[serde(default, rename = "match")]
    matcher: RawRouteMatch,
    versions: Vec<RawVersion>,
    #[serde(default)]
    sticky_key: Vec<RawKeySource>,
    #[serde(default)]
    unkeyed_version: Option<String>,
    #[serde(default)]
    overrides: Option<RawOverrides>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVersion {
    name: String,
    weight: f64,
    #[serde(default)]
    cluster: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum RawKeySource {
    Header(String),
    Cookie(String),
    Claim(String),
    ClientIp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverrides {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    only_with_header: Option<RawGate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGate {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPinCookie {
    name: String,
    #[serde(default = "default_pin_max_age")]
    max_age_seconds: u64,
    #[serde(default = "default_pin_path")]
    path: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    secure: bool,
    #[serde(default = "default_true")]
    http_only: bool,
    #[serde(default)]
    same_site: SameSite,
}

fn default_pin_max_age() -> u64 {
    DEFAULT_PIN_MAX_AGE
}

fn default_pin_path() -> String {
    "/".to_string()
}

fn default_true() -> bool {
    true
}

// === validated configuration ===

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Lowercase name of the header the filter sets and route tables match on.
    pub route_header: String,
    /// The cookie that pins anonymous users, if configured.
    pub pin_cookie: Option<PinCookie>,
    /// Services in match order (the first match wins).
    pub services: Vec<Service>,
}

/// One service under canary control.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name: hashed with the key and used in stat names.
    pub name: String,
    /// Which requests belong to the service (the shared route matcher).
    pub matcher: RouteMatch,
    /// The versions and their bucket ranges.
    pub ring: Ring,
    /// The Envoy cluster each version's route sends to, by version index, where configured.
    /// The pipeline's later stages learn from it where a request really goes (Envoy 1.40 only
    /// re-selects the route when the router runs).
    pub clusters: Vec<Option<String>>,
    /// Where the sticky key comes from, tried in order.
    pub sticky: Vec<KeySource>,
    /// Where requests without any sticky key go; `None`: a weighted random pick per request.
    pub unkeyed_version: Option<usize>,
    /// Tester overrides, if allowed.
    pub overrides: Option<Overrides>,
}

/// A source of the sticky key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A request header (lowercase name), such as the JWT filter's user-id claim header.
    Header(String),
    /// A cookie by name.
    Cookie(String),
    /// A claim of the token a JWT stage verified earlier in the same module (`sub`).
    Claim(ClaimPath),
    /// The downstream client's IP address: Envoy's `source.address` without the port.
    ClientIp,
}

/// Where testers may name a version explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// Header whose value names a version.
    pub header: Option<String>,
    /// Cookie whose value names a version.
    pub cookie: Option<String>,
    /// If set, overrides count only when this header is present (with this value, if given).
    pub only_with_header: Option<Gate>,
}

/// A header that must be present for overrides to be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Lowercase header name.
    pub name: String,
    /// Required exact value; `None` accepts any value.
    pub value: Option<String>,
}

/// The cookie that keeps anonymous users on one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinCookie {
    /// Cookie name.
    pub name: String,
    /// `Max-Age` in seconds.
    pub max_age_seconds: u64,
    /// `Path`.
    pub path: String,
    /// `Domain`, if any.
    pub domain: Option<String>,
    /// `Secure` attribute.
    pub secure: bool,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
}

/// The cookie `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default).
    #[default]
    Lax,
    /// `SameSite=None` (requires `secure`).
    None,
}

/// Parses and validates the JSON configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let route_header = header_name(&raw.route_header).map_err(at("routeHeader"))?;
        let pin_cookie = raw
            .pin_cookie
            .map(PinCookie::try_from)
            .transpose()
            .map_err(|err| err.within("pinCookie"))?;
        if raw.services.is_empty() {
            return Err(ConfigError::new(
                "services",
                "at least one service is required",
            ));
        }
        let mut services: Vec<Service> = Vec::with_capacity(raw.services.len());
        for (index, raw) in raw.services.into_iter().enumerate() {
            let field = format!("services[{index}]");
            let service = Service::try_from(raw).map_err(|err| err.within(&field))?;
            if services
                .iter()
                .any(|seen| seen.name.eq_ignore_ascii_case(&service.name))
            {
                return Err(ConfigError::new(
                    format!("{field}.name"),
                    format!("service `{}` is listed twice", service.name),
                ));
            }
            services.push(service);
        }
        Ok(Self {
            route_header,
            pin_cookie,
            services,
        })
    }
}

impl Config {
    /// Checks what the configuration needs from the module around it: `claim` sticky keys need
    /// verified claims (a JWT stage earlier in the same module).
    pub fn check_env(&self, env: &Env) -> Result<(), ConfigError> {
        if env.claims {
            return Ok(());
        }
        for (index, service) in self.services.iter().enumerate() {
            for (source, key) in service.sticky.iter().enumerate() {
                if let KeySource::Claim(path) = key {
                    return Err(ConfigError::new(
                        format!("services[{index}].stickyKey[{source}].claim"),
                        format!(
                            "`{path}` needs verified claims, which only a jwtAuth stage in the \
                             same module provides: use the `meshguard` module with a `jwtAuth` \
                             section, or key on the claim header the JWT filter writes"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether every version of every service names its cluster.
    pub fn declares_clusters(&self) -> bool {
        self.services
            .iter()
            .all(|service| service.clusters.iter().all(Option::is_some))
    }
}

impl TryFrom<RawService> for Service {
    type Error = ConfigError;

    fn try_from(raw: RawService) -> Result<Self, ConfigError> {
        let name = identifier(&raw.name).map_err(at("name"))?;
        let matcher = RouteMatch::try_from(raw.matcher).map_err(|err| err.within("match"))?;
        let mut versions: Vec<Version> = Vec::with_capacity(raw.versions.len());
        let mut clusters = Vec::with_capacity(raw.versions.len());
        for (i, version) in raw.versions.iter().enumerate() {
            let name = identifier(&version.name).map_err(at(&format!("versions[{i}].name")))?;
            if versions.iter().any(|v| v.name.eq_ignore_ascii_case(&name)) {
                return Err(ConfigError::new(
                    format!("versions[{i}].name"),
                    format!("version `{name}` is listed twice"),
                ));
            }
            let buckets = weight(version.weight).map_err(at(&format!("versions[{i}].weight")))?;
            if let Some(cluster) = &version.cluster
                && (cluster.is_empty() || cluster.bytes().any(|b| b.is_ascii_control()))
            {
                return Err(ConfigError::new(
                    format!("versions[{i}].cluster"),
                    "must be a cluster name (not empty, no control characters)",
                ));
            }
            clusters.push(version.cluster.clone());
            versions.push(Version { name, buckets });
        }
        let ring = Ring::new(versions).map_err(|err| err.within("versions"))?;
        let sticky = raw
            .sticky_key
            .into_iter()
            .enumerate()
            .map(|(i, source)| {
                KeySource::try_from(source).map_err(|err| err.within(&format!("stickyKey[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let unkeyed_version = raw
            .unkeyed_version
            .map(|name| {
                ring.find(&name).ok_or_else(|| {
                    ConfigError::new("unkeyedVersion", format!("no version is called `{name}`"))
                })
            })
            .transpose()?;
        let overrides = raw
            .overrides
            .map(Overrides::try_from)
            .transpose()
            .map_err(|err| err.within("overrides"))?;
        Ok(Self {
            name,
            matcher,
            ring,
            clusters,
            sticky,
            unkeyed_version,
            overrides,
        })
    }
}

impl TryFrom<RawKeySource> for KeySource {
    type Error = ConfigError;

    fn try_from(raw: RawKeySource) -> Result<Self, ConfigError> {
        Ok(match raw {
            RawKeySource::Header(name) => Self::Header(header_name(&name).map_err(at("header"))?),
            RawKeySource::Cookie(name) => Self::Cookie(cookie_name(&name).map_err(at("cookie"))?),
            RawKeySource::Claim(path) => Self::Claim(ClaimPath::parse(&path).map_err(at("claim"))?),
            RawKeySource::ClientIp => Self::ClientIp,
        })
    }
}

impl TryFrom<RawOverrides> for Overrides {
    type Error = ConfigError;

    fn try_from(raw: RawOverrides) -> Result<Self, ConfigError> {
        if raw.header.is_none() && raw.cookie.is_none() {
            return Err(ConfigError::new(
                ".",
                "name a `header` and/or a `cookie` that carries the version",
            ));
        }
        let only_with_header = raw
            .only_with_header
            .map(|gate| -> Result<Gate, ConfigError> {
                Ok(Gate {
                    name: header_name(&gate.name).map_err(at("onlyWithHeader.name"))?,
                    value: gate
                        .value
                        .map(|value| header_value(&value).map_err(at("onlyWithHeader.value")))
                        .transpose()?,
                })
            })
            .transpose()?;
        Ok(Self {
            header: raw
                .header
                .map(|name| header_name(&name).map_err(at("header")))
                .transpose()?,
            cookie: raw
                .cookie
                .map(|name| cookie_name(&name).map_err(at("cookie")))
                .transpose()?,
            only_with_header,
        })
    }
}

impl TryFrom<RawPinCookie> for PinCookie {
    type Error = ConfigError;

    fn try_from(raw: RawPinCookie) -> Result<Self, ConfigError> {
        let name = cookie_name(&raw.name).map_err(at("name"))?;
        if !raw.path.starts_with('/') || !raw.path.bytes().all(cookie_attribute_byte) {
            return Err(ConfigError::new(
                "path",
                format!("`{}` is not a cookie path (it starts with `/`)", raw.path),
            ));
        }
        if let Some(domain) = &raw.domain
            && (domain.is_empty() || !domain.bytes().all(cookie_attribute_byte))
        {
            return Err(ConfigError::new(
                "domain",
                format!("`{domain}` is not a cookie domain"),
            ));
        }
        if raw.same_site == SameSite::None && !raw.secure {
            return Err(ConfigError::new(
                "sameSite",
                "browsers drop `SameSite=None` cookies without `secure: true`",
            ));
        }
        Ok(Self {
            name,
            max_age_seconds: raw.max_age_seconds,
            path: raw.path,
            domain: raw.domain,
            secure: raw.secure,
            http_only: raw.http_only,
            same_site: raw.same_site,
        })
    }
}

mod fields;
#[cfg(test)]
mod tests;
