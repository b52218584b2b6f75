//! Configuration: raw serde structs as an operator writes them, converted once into validated
//! types.
//!
//! Everything a person writes is `deny_unknown_fields`, and every validation error names the
//! field (`limits[1].rate.requests`), so a typo is refused at configure time instead of
//! silently disabling a limit. A rate becomes a governor [`Quota`] here: `requests` per `per`
//! plus `burst` extra cells means `Quota::per_<unit>(requests).allow_burst(requests + burst)`:
//! a fresh key may spend `requests + burst` cells at once, and cells come back one every
//! `per / requests`.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use meshguard_filter_core::config::parse_json;
use meshguard_filter_core::{ConfigError, Env, RawRouteMatch, RouteMatch};

mod global;
mod matching;

use global::RawGlobal;
pub use global::{FailureMode, Global, GlobalLimit};
pub use matching::KeyPart;
use matching::RawKeyPart;

/// The default table size per limit.
pub const DEFAULT_MAX_KEYS: u32 = 100_000;
/// The largest table a limit may ask for (its buckets are created in shared data up front).
pub const MAX_MAX_KEYS: u32 = 1_000_000;
/// The longest time a fresh key's whole budget may take to come back (keeps GCRA arithmetic,
/// which is in nanoseconds, far from overflow).
pub const MAX_REFILL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The longest idle expiry accepted.
pub const MAX_IDLE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

// === raw types ===

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    limits: Vec<RawLimit>,
    #[serde(default)]
    response: RawResponse,
    #[serde(default)]
    headers: HeaderStyle,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimit {
    name: String,
    #[serde(default, rename = "match")]
    matcher: RawRouteMatch,
    key: Vec<RawKeyPart>,
    /// Required for a local limit; a global limit's rate is the service's.
    rate: Option<RawRate>,
    burst: Option<u32>,
    #[serde(default)]
    shadow: bool,
    max_keys: Option<u32>,
    idle_expiry: Option<String>,
    #[serde(default)]
    on_missing_key: MissingKey,
    /// Counted by a rate-limit service instead of in shared data.
    global: Option<RawGlobal>,
}

fn default_idle_expiry() -> String {
    "60s".to_string()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRate {
    requests: u32,
    per: Per,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResponse {
    #[serde(default = "default_status")]
    status: u32,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default = "default_content_type")]
    content_type: String,
}

impl Default for RawResponse {
    fn default() -> Self {
        Self {
            status: default_status(),
            body: default_body(),
            content_type: default_content_type(),
        }
    }
}

fn default_status() -> u32 {
    429
}

fn default_body() -> String {
    "rate limited\n".to_string()
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".to_string()
}

// === validated types ===

/// The unit a rate is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Per {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

impl Per {
    /// The period in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        }
    }
}

/// Which rate-limit response headers to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (as Envoy's
    /// `DRAFT_VERSION_03`).
    XRateLimit,
    /// None (the default, as in Envoy); denied requests still get `Retry-After`.
    #[default]
    None,
}

/// What a limit does when a key part is missing from the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingKey {
    /// The limit does not apply (as Envoy does when a descriptor cannot be built).
    #[default]
    Skip,
    /// The missing part counts as one shared value: every such request shares a budget.
    Shared,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Local limits (counted in shared data) in order; a request is checked against every
    /// one that matches.
    pub limits: Vec<Limit>,
    /// Global limits (counted by a rate-limit service), in order; asked after every local
    /// limit admitted the request.
    pub globals: Vec<GlobalLimit>,
    /// The answer to a denied request.
    pub response: DenyResponse,
    /// Rate-limit headers to send.
    pub headers: HeaderStyle,
}

/// One local limit.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Unique name (metrics, headers, shared-data namespace).
    pub name: String,
    /// Its index in the configuration's `limits` (for error paths).
    pub position: usize,
    /// Which requests it applies to (the shared route matcher).
    pub matcher: RouteMatch,
    /// The parts its key is built from, in order.
    pub key: Vec<KeyPart>,
    /// `requests` per `per`.
    pub requests: u32,
    /// The rate's unit.
    pub per: Per,
    /// Extra cells a fresh key may spend at once on top of `requests`.
    pub burst: u32,
    /// The governor quota: `requests` per `per`, burst `requests + burst`.
    pub quota: Quota,
    /// Count and log, never deny.
    pub shadow: bool,
    /// At most this many keys are tracked at once.
    pub max_keys: u32,
    /// How long a key whose budget has fully come back is kept before the sweep forgets it.
    pub idle_expiry: Duration,
    /// What to do when a key part is missing.
    pub on_missing_key: MissingKey,
}

impl Limit {
    /// The most cells a key can hold (`requests + burst`).
    pub fn capacity(&self) -> u32 {
        self.quota.burst_size().get()
    }

    /// Seconds for an empty budget to come back fully (`capacity * per / requests`, rounded
    /// up): the window the headers advertise.
    pub fn window_seconds(&self) -> u64 {
        let numerator = u64::from(self.capacity()) * self.per.seconds();
        numerator.div_ceil(u64::from(self.requests.max(1)))
    }
}

/// The configured answer to a denied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    /// Status code (400-599).
    pub status: u32,
    /// Body.
    pub body: String,
    /// `content-type` of the body.
    pub content_type: String,
}

/// Parses and validates the JSON configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

impl Config {
    /// Checks what the configuration needs from the module around it: `claim` key parts need
    /// verified claims (a JWT stage earlier in the same module).
    pub fn check_env(&self, env: &Env) -> Result<(), ConfigError> {
        if env.claims {
            return Ok(());
        }
        let keys = self
            .limits
            .iter()
            .map(|limit| (limit.position, &limit.key))
            .chain(
                self.globals
                    .iter()
                    .map(|limit| (limit.position, &limit.key)),
            );
        for (index, key) in keys {
            for (part, key) in key.iter().enumerate() {
                if let KeyPart::Claim(path) = key {
                    return Err(ConfigError::new(
                        format!("limits[{index}].key[{part}].claim"),
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
}

// === impl TryFrom ===

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        if raw.limits.is_empty() {
            return Err(ConfigError::new("limits", "at least one limit is required"));
        }
        let mut names = BTreeSet::new();
        let mut limits = Vec::with_capacity(raw.limits.len());
        let mut globals: Vec<GlobalLimit> = Vec::new();
        for (index, raw_limit) in raw.limits.into_iter().enumerate() {
            let parent = format!("limits[{index}]");
            let name = raw_limit.name.clone();
            if raw_limit.global.is_some() {
                let limit =
                    GlobalLimit::parse(raw_limit, index).map_err(|err| err.within(&parent))?;
                if let Some(first) = globals.first() {
                    limit
                        .global
                        .same_service(&first.global, first.position)
                        .map_err(|err| err.within(&parent))?;
                }
                globals.push(limit);
            } else {
                let mut limit = Limit::try_from(raw_limit).map_err(|err| err.within(&parent))?;
                limit.position = index;
                limits.push(limit);
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::new(
                    format!("{parent}.name"),
                    format!("duplicate limit name `{name}`"),
                ));
            }
        }
        let response =
            DenyResponse::try_from(raw.response).map_err(|err| err.within("response"))?;
        Ok(Self {
            limits,
            globals,
            response,
            headers: raw.headers,
        })
    }
}

impl TryFrom<RawLimit> for Limit {
    type Error = ConfigError;

    fn try_from(raw: RawLimit) -> Result<Self, ConfigError> {
        check_name(&raw.name)?;
        let matcher = RouteMatch::try_from(raw.matcher).map_err(|err| err.within("match"))?;
        let key = parse_key(raw.key)?;
        let Some(rate) = raw.rate else {
            return Err(ConfigError::new(
                "rate",
                "a local limit needs a rate ({\"requests\": N, \"per\": \"second\"}); a limit \
                 counted by a rate-limit service has `global` instead",
            ));
        };
        let burst = raw.burst.unwrap_or(0);
        let quota = quota(rate.requests, rate.per, burst)?;
        let max_keys = raw.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
        let idle_expiry = raw.idle_expiry.unwrap_or_else(default_idle_expiry);
        if max_keys == 0 || max_keys > MAX_MAX_KEYS {
            return Err(ConfigError::new(
                "maxKeys",
                format!("must be between 1 and {MAX_MAX_KEYS}"),
            ));
        }
        let idle_expiry = parse_duration(&idle_expiry)
            .ok_or_else(|| {
                ConfigError::new(
                    "idleExpiry",
                    format!(
                        "`{idle_expiry}` is not a duration such as `500ms`, `30s`, `5m` or `1h`"
                    ),
                )
            })
            .and_then(|expiry| {
                if expiry > MAX_IDLE_EXPIRY {
                    Err(ConfigError::new("idleExpiry", "must be at most 7 days"))
                } else {
                    Ok(expiry)
                }
            })?;
        Ok(Self {
            name: raw.name,
            position: 0,
            matcher,
            key,
            requests: rate.requests,
            per: rate.per,
            burst,
            quota,
            shadow: raw.shadow,
            max_keys,
            idle_expiry,
            on_missing_key: raw.on_missing_key,
        })
    }
}

/// Checks a limit's name: it is used in stats, headers and shared-data keys.
fn check_name(name: &str) -> Result<(), ConfigError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name_ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "name",
            format!("`{name}` must be 1-64 characters of letters, digits, `-` and `_`"),
        ))
    }
}

/// Parses a limit's key parts.
fn parse_key(raw: Vec<RawKeyPart>) -> Result<Vec<KeyPart>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "key",
            "at least one key part is required (use {\"constant\": \"all\"} for one global budget)",
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, part)| {
            KeyPart::try_from(part).map_err(|err| err.within(&format!("key[{index}]")))
        })
        .collect()
}

/// Builds the governor quota, refusing zero, overflowing and absurd rates.
fn quota(requests: u32, per: Per, burst: u32) -> Result<Quota, ConfigError> {
    let Some(requests_nz) = NonZeroU32::new(requests) else {
        return Err(ConfigError::new(
            "rate.requests",
            "must be at least 1 (a limit that admits nothing is a deny rule)",
        ));
    };
    let period_ns = u128::from(per.seconds()) * 1_000_000_000;
    if u128::from(requests) > period_ns {
        return Err(ConfigError::new(
            "rate.requests",
            "more than one request per nanosecond cannot be measured",
        ));
    }
    let Some(capacity) = requests.checked_add(burst).and_then(NonZeroU32::new) else {
        return Err(ConfigError::new(
            "burst",
            format!(
                "requests + burst overflows ({requests} + {burst} > {})",
                u32::MAX
            ),
        ));
    };
    let base = match per {
        Per::Second => Quota::per_second(requests_nz),
        Per::Minute => Quota::per_minute(requests_nz),
        Per::Hour => Quota::per_hour(requests_nz),
    };
    let refill = base.replenish_interval().as_nanos() * u128::from(capacity.get());
    if refill > MAX_REFILL.as_nanos() {
        return Err(ConfigError::new(
            "burst",
            "requests + burst takes more than 10 years to refill at this rate",
        ));
    }
    Ok(base.allow_burst(capacity))
}

/// Parses `500ms`, `30s`, `5m`, `1h` (a non-negative integer and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

impl TryFrom<RawResponse> for DenyResponse {
    type Error = ConfigError;

    fn try_from(raw: RawResponse) -> Result<Self, ConfigError> {
        if !(400..=599).contains(&raw.status) {
            return Err(ConfigError::new(
                "status",
                format!("{} is not an error status (400-599)", raw.status),
            ));
        }
        if raw.content_type.is_empty() || raw.content_type.bytes().any(|b| b.is_ascii_control()) {
            return Err(ConfigError::new(
                "contentType",
                "must be a non-empty header value without control characters",
            ));
        }
        Ok(Self {
            status: raw.status,
            body: raw.body,
            content_type: raw.content_type,
        })
    }
}
