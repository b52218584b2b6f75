//! Global limits: counted by a rate-limit service (RLS v3) instead of in shared data, so one
//! budget holds across every gateway replica.
//!
//! A limit with `"global": {"cluster", "domain", "timeout", "failureMode"}` has no `rate`: the
//! service's configuration (envoyproxy/ratelimit's format) owns the rate, as with Envoy's own
//! `envoy.filters.http.ratelimit`. The filter sends one descriptor per matching global limit,
//! built from the limit's key parts: each part's value under its own key
//! ([`KeyPart::descriptor_key`]), or under the key `global.descriptorKeys` gives it, so an
//! existing service configuration (Istio's task, envoyproxy/ratelimit's) matches unchanged.
//!
//! Every global limit of one plugin names the same service (cluster and domain): a request
//! makes one `ShouldRateLimit` call carrying the descriptors of every global limit it matches,
//! as Envoy's filter does. The timeout of that call is the longest of the matched limits'.

use std::time::Duration;

use meshguard_filter_core::{ConfigError, RouteMatch};

use super::{KeyPart, MissingKey, RawLimit, check_name, parse_duration, parse_key};

/// The default wait for the service's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
/// The longest wait accepted (a request is held that long when the service is silent).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);

// === raw types ===

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawGlobal {
    cluster: String,
    domain: String,
    timeout: Option<String>,
    #[serde(default)]
    failure_mode: FailureMode,
    #[serde(default = "default_status_on_error")]
    status_on_error: u32,
    descriptor_keys: Option<Vec<String>>,
}

fn default_status_on_error() -> u32 {
    503
}

// === validated types ===

/// What a global limit does when the service cannot answer (an error, a timeout, `UNKNOWN`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// The request goes on (Envoy's default, `failure_mode_deny: false`).
    #[default]
    Allow,
    /// The request is refused with `statusOnError`.
    Deny,
}

impl FailureMode {
    /// The word in the configuration and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The rate-limit service a global limit asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// The Envoy cluster of the service (HTTP/2).
    pub cluster: String,
    /// The RLS domain: which part of the service's configuration applies.
    pub domain: String,
    /// How long the request waits for the answer.
    pub timeout: Duration,
    /// What happens when there is no usable answer.
    pub failure_mode: FailureMode,
    /// The status of a request refused by [`FailureMode::Deny`].
    pub status_on_error: u32,
    /// Descriptor keys that replace the key parts' own ([`KeyPart::descriptor_key`]), one
    /// per key part, to match a service configuration written for other clients.
    pub descriptor_keys: Option<Vec<String>>,
}

impl Global {
    /// Refuses a second service in one plugin (one call per request carries every descriptor).
    pub(super) fn same_service(&self, first: &Global, position: usize) -> Result<(), ConfigError> {
        for (field, mine, theirs) in [
            ("global.cluster", &self.cluster, &first.cluster),
            ("global.domain", &self.domain, &first.domain),
        ] {
            if mine != theirs {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "`{mine}` differs from limits[{position}]'s `{theirs}`: every global \
                         limit of one plugin asks the same service (one call per request \
                         carries all their descriptors); use a second plugin for another one"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A limit counted by a rate-limit service.
#[derive(Debug, Clone)]
pub struct GlobalLimit {
    /// Unique name (stats, headers).
    pub name: String,
    /// Its index in the configuration's `limits` (for error paths).
    pub position: usize,
    /// Which requests it applies to.
    pub matcher: RouteMatch,
    /// The parts its descriptor is built from, in order.
    pub key: Vec<KeyPart>,
    /// The descriptor entry key of each part, in order (`global.descriptorKeys`, or each
    /// part's own key).
    pub descriptor_keys: Vec<String>,
    /// Count and log the service's `OVER_LIMIT`, never deny.
    pub shadow: bool,
    /// What to do when a key part is missing.
    pub on_missing_key: MissingKey,
    /// The service.
    pub global: Global,
}

impl GlobalLimit {
    /// Validates a raw limit that has `global`, at `position` in `limits`.
    pub(super) fn parse(raw: RawLimit, position: usize) -> Result<Self, ConfigError> {
        check_name(&raw.name)?;
        let local_only = [
            ("rate", raw.rate.is_some()),
            ("burst", raw.burst.is_some()),
            ("maxKeys", raw.max_keys.is_some()),
            ("idleExpiry", raw.idle_expiry.is_some()),
        ];
        if let Some((field, _)) = local_only.iter().find(|(_, set)| *set) {
            return Err(ConfigError::new(
                *field,
                "a global limit is counted by the rate-limit service, whose configuration \
                 (requests_per_unit per descriptor) sets its rate: remove this field, or \
                 remove `global` for a limit counted in this gateway",
            ));
        }
        let matcher = RouteMatch::try_from(raw.matcher).map_err(|err| err.within("match"))?;
        let key = parse_key(raw.key)?;
        let Some(raw_global) = raw.global else {
            return Err(ConfigError::new("global", "missing"));
        };
        let global = Global::try_from(raw_global).map_err(|err| err.within("global"))?;
        let descriptor_keys = match &global.descriptor_keys {
            None => key.iter().map(KeyPart::descriptor_key).collect(),
            Some(keys) if keys.len() == key.len() => keys.clone(),
            Some(keys) => {
                return Err(ConfigError::new(
                    "global.descriptorKeys",
                    format!(
                        "{} descriptor keys for {} key parts: give one per key part, in order",
                        keys.len(),
                        key.len()
                    ),
                ));
            }
        };
        Ok(Self {
            name: raw.name,
            position,
            matcher,
            key,
            descriptor_keys,
            shadow: raw.shadow,
            on_missing_key: raw.on_missing_key,
            global,
        })
    }
}

impl TryFrom<RawGlobal> for Global {
    type Error = ConfigError;

    fn try_from(raw: RawGlobal) -> Result<Self, ConfigError> {
        let text_ok = |text: &str| {
            !text.is_empty() && text.len() <= 256 && !text.bytes().any(|b| b.is_ascii_control())
        };
        if !text_ok(&raw.cluster) {
            return Err(ConfigError::new(
                "cluster",
                "must name the Envoy cluster of the rate-limit service (1-256 characters), for \
                 example `outbound|8081||ratelimit.default.svc.cluster.local` in Istio",
            ));
        }
        if !text_ok(&raw.domain) {
            return Err(ConfigError::new(
                "domain",
                "must be the service's domain (1-256 characters, the `domain` of its config)",
            ));
        }
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => match parse_duration(&text) {
                Some(timeout) if !timeout.is_zero() && timeout <= MAX_TIMEOUT => timeout,
                Some(_) => {
                    return Err(ConfigError::new(
                        "timeout",
                        format!("`{text}` must be above 0 and at most 10s"),
                    ));
                }
                None => {
                    return Err(ConfigError::new(
                        "timeout",
                        format!("`{text}` is not a duration such as `20ms` or `1s`"),
                    ));
                }
            },
        };
        if !(400..=599).contains(&raw.status_on_error) {
            return Err(ConfigError::new(
                "statusOnError",
                format!("{} is not an error status (400-599)", raw.status_on_error),
            ));
        }
        if let Some(keys) = &raw.descriptor_keys
            && let Some(index) = keys.iter().position(|key| !text_ok(key))
        {
            return Err(ConfigError::new(
                format!("descriptorKeys[{index}]"),
                "must be 1-256 characters without control characters",
            ));
        }
        Ok(Self {
            cluster: raw.cluster,
            domain: raw.domain,
            timeout,
            failure_mode: raw.failure_mode,
            status_on_error: raw.status_on_error,
            descriptor_keys: raw.descriptor_keys,
        })
    }
}
