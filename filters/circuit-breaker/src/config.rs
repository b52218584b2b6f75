//! Configuration: raw serde structs as an operator writes them, converted once into validated
//! types. Every error names its field (`breakers[1].halfOpen.successToClose`).
//!
//! Defaults follow Resilience4j's CircuitBreaker where the concepts match (count window of 100,
//! 50 % failure rate, 60 s in open, 10 permitted calls in half-open), so a breaker written with
//! only a `name` and a `match` behaves the way a JVM developer expects.

mod duration;
mod failure;
mod fallback;

use std::time::Duration;

use meshguard_filter_core::config::parse_json;
use meshguard_filter_core::{ConfigError, Env, RawRouteMatch, RouteKnowledge, RouteMatch};

pub use duration::parse_duration;
pub use failure::{
    DEFAULT_FAILURE_FLAGS, DEFAULT_GRPC_FAILURES, FailureWhen, GRPC_CODES, RESPONSE_FLAGS,
    StatusRange, UPSTREAM_FLAGS,
};

/// Largest count-based window (calls).
pub const MAX_COUNT_WINDOW: u32 = 10_000;
/// Largest time-based window (seconds).
pub const MAX_TIME_WINDOW: u32 = 600;
/// Most breakers in one configuration.
pub const MAX_BREAKERS: usize = 64;

// === raw config ===

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    breakers: Vec<RawBreaker>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBreaker {
    name: String,
    #[serde(default, rename = "match")]
    matcher: RawRouteMatch,
    #[serde(default)]
    failure_when: failure::RawFailureWhen,
    window: Option<RawWindow>,
    minimum_calls: Option<u32>,
    failure_rate_threshold: Option<f64>,
    slow_call: Option<RawSlowCall>,
    open_for: Option<String>,
    #[serde(default)]
    half_open: RawHalfOpen,
    max_concurrent: Option<u32>,
    fallback: Option<fallback::RawFallback>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWindow {
    #[serde(rename = "type", default)]
    kind: RawWindowKind,
    size: u32,
}

#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawWindowKind {
    #[default]
    Count,
    Time,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSlowCall {
    duration: String,
    rate_threshold: Option<f64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHalfOpen {
    permitted_calls: Option<u32>,
    success_to_close: Option<u32>,
    max_wait: Option<String>,
}

// === validated config ===

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Breakers in order; a request is guarded by the first one that matches it.
    pub breakers: Vec<Breaker>,
}

/// One circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    /// Name: in logs, metric names and the shared-data key.
    pub name: String,
    /// Which requests it guards (the shared route matcher).
    pub matcher: RouteMatch,
    /// Which answers are failures.
    pub failure: FailureWhen,
    /// The sliding window outcomes are aggregated in.
    pub window: WindowConfig,
    /// Calls the window must hold before rates are evaluated.
    pub minimum_calls: u32,
    /// Failure rate (percent) at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Slow-call detection, if configured.
    pub slow_call: Option<SlowCall>,
    /// How long the breaker stays open before it lets probes through.
    pub open_for: Duration,
    /// Half-open probing.
    pub half_open: HalfOpen,
    /// Bulkhead: most calls in flight at once across all workers.
    pub max_concurrent: Option<u32>,
    /// What short-circuited requests are answered with.
    pub fallback: Fallback,
}

/// The sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowConfig {
    /// The last `size` calls.
    Count {
        /// Calls kept.
        size: u32,
    },
    /// The calls of the last `seconds` seconds (one bucket per second).
    Time {
        /// Window length in seconds.
        seconds: u32,
    },
}

/// Slow-call detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCall {
    /// A call is slow when its response headers take at least this long.
    pub duration: Duration,
    /// Slow-call rate (percent) at or above which the breaker opens.
    pub rate_threshold: f64,
}

/// Half-open probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfOpen {
    /// Probes admitted across all workers.
    pub permitted_calls: u32,
    /// Successful probes that close the breaker.
    pub success_to_close: u32,
    /// Longest wait in half-open for the probes to decide; then the breaker opens again.
    pub max_wait: Option<Duration>,
}

/// The local answer while the breaker is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// HTTP status.
    pub status: u32,
    /// Extra headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Parses and validates the JSON configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

impl Config {
    /// Checks what the configuration needs from the module around it: a breaker matched on
    /// `cluster` needs to know the cluster a request really goes to, which an earlier stage
    /// that re-routes requests without declaring clusters hides.
    pub fn check_env(&self, env: &Env) -> Result<(), ConfigError> {
        if env.route != RouteKnowledge::Unknown {
            return Ok(());
        }
        match self
            .breakers
            .iter()
            .position(|breaker| breaker.matcher.cluster.is_some())
        {
            Some(index) => Err(ConfigError::new(
                format!("breakers[{index}].match.cluster"),
                "an earlier stage re-routes requests without saying to which cluster, so the \
                 cluster a request goes to is unknown here: give every canary version its \
                 `cluster`, or match this breaker on the route header or the path instead",
            )),
            None => Ok(()),
        }
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        if raw.breakers.is_empty() {
            return Err(ConfigError::new(
                "breakers",
                "at least one breaker is required",
            ));
        }
        if raw.breakers.len() > MAX_BREAKERS {
            return Err(ConfigError::new(
                "breakers",
                format!("at most {MAX_BREAKERS} breakers are supported"),
            ));
        }
        let mut breakers: Vec<Breaker> = Vec::with_capacity(raw.breakers.len());
        for (index, raw) in raw.breakers.into_iter().enumerate() {
            let path = format!("breakers[{index}]");
            let breaker = Breaker::try_from(raw).map_err(|err| err.within(&path))?;
            if breakers.iter().any(|other| other.name == breaker.name) {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    format!("breaker name `{}` is used twice", breaker.name),
                ));
            }
            breakers.push(breaker);
        }
        Ok(Self { breakers })
    }
}

impl TryFrom<RawBreaker> for Breaker {
    type Error = ConfigError;

    fn try_from(raw: RawBreaker) -> Result<Self, ConfigError> {
        let name_ok = !raw.name.is_empty()
            && raw.name.len() <= 64
            && raw
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ConfigError::new(
                "name",
                format!(
                    "`{}` is not a breaker name (1-64 of a-z, 0-9, `-`, `_`: it becomes part of \
                     metric names)",
                    raw.name
                ),
            ));
        }
        let matcher = RouteMatch::try_from(raw.matcher).map_err(|err| err.within("match"))?;
        let failure =
            FailureWhen::try_from(raw.failure_when).map_err(|err| err.within("failureWhen"))?;
        let window = match raw.window {
            None => WindowConfig::Count { size: 100 },
            Some(window) => window_config(&window).map_err(|err| err.within("window"))?,
        };
        let minimum_calls = match (raw.minimum_calls, window) {
            (Some(0), _) => {
                return Err(ConfigError::new("minimumCalls", "must be at least 1"));
            }
            (Some(calls), WindowConfig::Count { size }) if calls > size => {
                return Err(ConfigError::new(
                    "minimumCalls",
                    format!(
                        "{calls} can never be reached by a count window of {size} calls; \
                         lower it or enlarge window.size"
                    ),
                ));
            }
            (Some(calls), _) => calls,
            (None, WindowConfig::Count { size }) => size.min(100),
            (None, WindowConfig::Time { .. }) => 100,
        };
        let failure_rate_threshold = percent(raw.failure_rate_threshold.unwrap_or(50.0))
            .map_err(|err| err.within("failureRateThreshold"))?;
        let slow_call = raw
            .slow_call
            .map(|slow| -> Result<SlowCall, ConfigError> {
                Ok(SlowCall {
                    duration: parse_duration(&slow.duration)
                        .map_err(|err| err.within("duration"))?,
                    rate_threshold: percent(slow.rate_threshold.unwrap_or(100.0))
                        .map_err(|err| err.within("rateThreshold"))?,
                })
            })
            .transpose()
            .map_err(|err| err.within("slowCall"))?;
        let open_for = match &raw.open_for {
            None => Duration::from_secs(60),
            Some(text) => parse_duration(text).map_err(|err| err.within("openFor"))?,
        };
        let half_open = half_open(raw.half_open).map_err(|err| err.within("halfOpen"))?;
        if raw.max_concurrent == Some(0) {
            return Err(ConfigError::new(
                "maxConcurrent",
                "must be at least 1 (leave it out for no bulkhead)",
            ));
        }
        let fallback = match raw.fallback {
            None => Fallback::plain(&raw.name),
            Some(fallback) => Fallback::try_from(fallback).map_err(|err| err.within("fallback"))?,
        };
        Ok(Self {
            name: raw.name,
            matcher,
            failure,
            window,
            minimum_calls,
            failure_rate_threshold,
            slow_call,
            open_for,
            half_open,
            max_concurrent: raw.max_concurrent,
            fallback,
        })
    }
}

fn window_config(raw: &RawWindow) -> Result<WindowConfig, ConfigError> {
    match raw.kind {
        RawWindowKind::Count if (1..=MAX_COUNT_WINDOW).contains(&raw.size) => {
            Ok(WindowConfig::Count { size: raw.size })
        }
        RawWindowKind::Time if (1..=MAX_TIME_WINDOW).contains(&raw.size) => {
            Ok(WindowConfig::Time { seconds: raw.size })
        }
        RawWindowKind::Count => Err(ConfigError::new(
            "size",
            format!(
                "a count window holds 1 to {MAX_COUNT_WINDOW} calls, not {}",
                raw.size
            ),
        )),
        RawWindowKind::Time => Err(ConfigError::new(
            "size",
            format!(
                "a time window spans 1 to {MAX_TIME_WINDOW} seconds, not {}",
                raw.size
            ),
        )),
    }
}

fn half_open(raw: RawHalfOpen) -> Result<HalfOpen, ConfigError> {
    let permitted_calls = raw.permitted_calls.unwrap_or(10);
    if !(1..=1000).contains(&permitted_calls) {
        return Err(ConfigError::new(
            "permittedCalls",
            format!("must be between 1 and 1000, not {permitted_calls}"),
        ));
    }
    let success_to_close = raw.success_to_close.unwrap_or(permitted_calls);
    if success_to_close == 0 || success_to_close > permitted_calls {
        return Err(ConfigError::new(
            "successToClose",
            format!(
                "must be between 1 and permittedCalls ({permitted_calls}), not {success_to_close}"
            ),
        ));
    }
    let max_wait = raw
        .max_wait
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|err| err.within("maxWait"))?;
    Ok(HalfOpen {
        permitted_calls,
        success_to_close,
        max_wait,
    })
}

fn percent(value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err(ConfigError::new(
            ".",
            format!("a percentage above 0 and at most 100 is required, not {value}"),
        ))
    }
}

#[cfg(test)]
mod tests;
