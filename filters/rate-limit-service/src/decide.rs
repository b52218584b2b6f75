//! One `ShouldRateLimit` decision: which limit applies to each descriptor, one atomic round trip
//! to the store for the limited ones, and the answer with a status per descriptor.
//!
//! The semantics follow envoyproxy/ratelimit where the protocol leaves them open:
//! - an empty domain or an empty descriptor list is a malformed request (`INVALID_ARGUMENT`);
//! - a domain the configuration lacks, or a descriptor no limit matches, is `OK` without a
//!   `current_limit` (counted under `domain="unknown"` and logged once per interval);
//! - an unlimited descriptor is `OK` with `limit_remaining` = `u32::MAX` and costs no Redis call;
//! - a limit in shadow mode is decided and counted but always answers `OK`;
//! - `hits_addend` 0 means 1; a descriptor's own `hits_addend` overrides the request's (0 then
//!   really is 0: a peek at the remaining budget); `is_negative_hits` gives budget back;
//! - a limit sent with the descriptor (`limit`) replaces the configured one.
//!
//! And where Redis fails, the decision fails: the caller answers gRPC `UNKNOWN`, which Envoy's
//! rate-limit filter (and meshguard's) resolve by their failure mode. Never `OK` with an
//! `UNKNOWN` overall code: Envoy's own filter reads that as `OK`, a silent grant.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use meshguard_rls::Unit;

use crate::config::{Config, Limit, Rate};
use crate::gcra;
use crate::keys::counter_key;
use crate::matching::{self, Applied};
use crate::metrics::{Metrics, RuleResult};
use crate::store::{Item, Mode, Store, StoreError};

/// The configuration in use, swapped whole on reload.
#[derive(Debug, Default)]
pub struct ConfigHandle(RwLock<Arc<Config>>);

impl ConfigHandle {
    /// A handle on `config`.
    pub fn new(config: Config) -> Self {
        Self(RwLock::new(Arc::new(config)))
    }

    /// The current configuration.
    pub fn current(&self) -> Arc<Config> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the configuration.
    pub fn replace(&self, config: Config) {
        match self.0.write() {
            Ok(mut guard) => *guard = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }
}

/// Why a decision was not made.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The request is malformed (answered `INVALID_ARGUMENT`).
    #[error("{0}")]
    Invalid(String),
    /// The store failed (answered `UNKNOWN`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Allows a log line at most once per interval and counts what it held back.
#[derive(Debug)]
pub struct LogEvery {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogEvery {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when a line may be written now (with the number held back since the
    /// last one), `None` otherwise.
    pub fn check(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// Decides `ShouldRateLimit` requests.
#[derive(Debug)]
pub struct Decider<S> {
    config: Arc<ConfigHandle>,
    store: S,
    metrics: Arc<Metrics>,
    key_prefix: String,
    store_errors: LogEvery,
    unknown_domains: LogEvery,
}

/// What one descriptor needs.
enum Plan {
    /// No limit applies.
    None,
    /// An unlimited limit applies.
    Unlimited(Applied),
    /// A counted limit; `item` indexes the store items.
    Counted {
        applied: Applied,
        rate: Rate,
        hits: u64,
        item: usize,
    },
}

impl<S: Store> Decider<S> {
    /// A decider over `store`, writing keys under `key_prefix`.
    pub fn new(
        config: Arc<ConfigHandle>,
        store: S,
        metrics: Arc<Metrics>,
        key_prefix: impl Into<String>,
    ) -> Self {
        Self {
            config,
            store,
            metrics,
            key_prefix: key_prefix.into(),
            store_errors: LogEvery::new(Duration::from_secs(10)),
            unknown_domains: LogEvery::new(Duration::from_secs(60)),
        }
    }

    /// Answers one request.
    pub async fn decide(
        &self,
        request: &RateLimitRequest,
    ) -> Result<RateLimitResponse, DecideError> {
        let config = self.config.current();
        let domain = config.domain(&request.domain);
        let label = if domain.is_some() {
            request.domain.as_str()
        } else {
            "unknown"
        };
        let result = self.decide_in(&config, request).await;
        match &result {
            Ok(response) => {
                let code = if response.overall_code == Code::OverLimit as i32 {
                    "over_limit"
                } else {
                    "ok"
                };
                self.metrics.request(label, code);
            }
            Err(DecideError::Invalid(_)) => self.metrics.request(label, "invalid"),
            Err(DecideError::Store(err)) => {
                self.metrics.request(label, "error");
                self.metrics.redis_error(err.kind());
                if let Some(suppressed) = self.store_errors.check() {
                    tracing::error!(
                        error = %err,
                        suppressed,
                        "rate-limit decision failed; answering UNKNOWN so callers apply their \
                         failure mode"
                    );
                }
            }
        }
        result
    }

    async fn decide_in(
        &self,
        config: &Config,
        request: &RateLimitRequest,
    ) -> Result<RateLimitResponse, DecideError> {
        if request.domain.is_empty() {
            return Err(DecideError::Invalid(
                "the rate-limit domain must not be empty".into(),
            ));
        }
        if request.descriptors.is_empty() {
            return Err(DecideError::Invalid(
                "the rate-limit request has no descriptors".into(),
            ));
        }
        let Some(domain) = config.domain(&request.domain) else {
            if let Some(suppressed) = self.unknown_domains.check() {
                tracing::warn!(
                    domain = %request.domain,
                    suppressed,
                    "a request named a domain no configuration file has; answering OK, as \
                     envoyproxy/ratelimit does"
                );
            }
            return Ok(ok_without_limits(request.descriptors.len()));
        };
        let request_hits = u64::from(request.hits_addend.max(1));
        let mut applied: Vec<Option<Applied>> = Vec::with_capacity(request.descriptors.len());
        for (index, descriptor) in request.descriptors.iter().enumerate() {
            applied.push(resolve(domain, descriptor, index)?);
        }
        matching::apply_replaces(&mut applied);
        let mut items = Vec::new();
        let mut plans = Vec::with_capacity(applied.len());
        for (descriptor, applied) in request.descriptors.iter().zip(applied) {
            let Some(applied) = applied else {
                plans.push(Plan::None);
                continue;
            };
            let Some(rate) = applied.limit.rate else {
                plans.push(Plan::Unlimited(applied));
                continue;
            };
            let hits = descriptor.hits_addend.map_or(request_hits, |h| h.value);
            let mode = if rate.requests_per_unit == 0 {
                Mode::Refuse
            } else if descriptor.is_negative_hits {
                Mode::Refund
            } else {
                Mode::Charge
            };
            let entries: Vec<(&str, &str)> = descriptor
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            items.push(Item {
                key: counter_key(&self.key_prefix, &domain.name, &entries, rate.unit),
                cost: gcra::cost(hits, rate),
                per_unit: rate.requests_per_unit,
                tau_micros: rate.unit_micros(),
                enforced: !applied.limit.shadow,
                mode,
            });
            plans.push(Plan::Counted {
                applied,
                rate,
                hits,
                item: items.len() - 1,
            });
        }
        let outcome = if items.is_empty() {
            None
        } else {
            let started = Instant::now();
            let outcome = self.store.decide(&items).await;
            self.metrics.set_redis_up(outcome.is_ok());
            let outcome = outcome?;
            self.metrics.decision_time(started.elapsed().as_secs_f64());
            Some(outcome)
        };
        let mut response = RateLimitResponse {
            overall_code: Code::Ok as i32,
            ..Default::default()
        };
        for plan in plans {
            let status = match plan {
                Plan::None => ok_status(),
                Plan::Unlimited(applied) => {
                    self.metrics.rule_hit(
                        &domain.name,
                        &applied.rule,
                        &applied.limit.rule,
                        RuleResult::Unlimited,
                    );
                    DescriptorStatus {
                        code: Code::Ok as i32,
                        limit_remaining: u32::MAX,
                        ..Default::default()
                    }
                }
                Plan::Counted {
                    applied,
                    rate,
                    hits,
                    item,
                } => {
                    let Some((outcome, (admitted, tat))) = outcome
                        .as_ref()
                        .and_then(|o| Some((o, *o.items.get(item)?)))
                    else {
                        return Err(StoreError::Malformed("missing item".into()).into());
                    };
                    let now = outcome.now;
                    let limit = &applied.limit;
                    let current_limit = Some(current_limit(limit, rate));
                    let (code, remaining, reset, result) = if admitted {
                        let remaining = gcra::remaining(now, tat, rate);
                        let near = u64::from(remaining) * 5 < u64::from(rate.requests_per_unit);
                        let result = if near {
                            RuleResult::NearLimit
                        } else {
                            RuleResult::WithinLimit
                        };
                        (
                            Code::Ok,
                            remaining,
                            Some(gcra::until_full(now, tat, rate)),
                            result,
                        )
                    } else {
                        let fits =
                            rate.requests_per_unit > 0 && hits <= u64::from(rate.requests_per_unit);
                        let cost = gcra::cost(hits, rate);
                        let wait = fits.then(|| gcra::wait(now, tat, cost, rate));
                        if limit.shadow {
                            (Code::Ok, 0, wait, RuleResult::ShadowMode)
                        } else {
                            (Code::OverLimit, 0, wait, RuleResult::OverLimit)
                        }
                    };
                    self.metrics
                        .rule_hit(&domain.name, &applied.rule, &limit.rule, result);
                    if code == Code::OverLimit {
                        response.overall_code = Code::OverLimit as i32;
                    }
                    DescriptorStatus {
                        code: code as i32,
                        current_limit,
                        limit_remaining: remaining,
                        duration_until_reset: reset.map(proto_duration),
                        quota: None,
                    }
                }
            };
            response.statuses.push(status);
        }
        Ok(response)
    }
}

/// The limit for one descriptor: its own `limit` override, or the configured one.
fn resolve(
    domain: &crate::config::Domain,
    descriptor: &RateLimitDescriptor,
    index: usize,
) -> Result<Option<Applied>, DecideError> {
    if let Some(limit) = &descriptor.limit {
        let unit = Unit::try_from(limit.unit)
            .ok()
            .filter(|unit| *unit != Unit::Unknown)
            .ok_or_else(|| {
                DecideError::Invalid(format!(
                    "descriptors[{index}].limit.unit {} is not a known unit",
                    limit.unit
                ))
            })?;
        let rule: Vec<String> = descriptor
            .entries
            .iter()
            .map(|e| {
                if e.value.is_empty() {
                    e.key.clone()
                } else {
                    format!("{}_{}", e.key, e.value)
                }
            })
            .collect();
        let rule = rule.join(".");
        return Ok(Some(Applied {
            rule: rule.clone(),
            limit: Arc::new(Limit {
                rule,
                rate: Some(Rate {
                    requests_per_unit: limit.requests_per_unit,
                    unit,
                }),
                shadow: false,
                name: None,
                replaces: Vec::new(),
                detailed_metric: false,
            }),
        }));
    }
    let entries: Vec<(&str, &str)> = descriptor
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    Ok(matching::find(domain, &entries))
}

fn current_limit(limit: &Limit, rate: Rate) -> RateLimit {
    RateLimit {
        name: limit.name.clone().unwrap_or_default(),
        requests_per_unit: rate.requests_per_unit,
        unit: rate.unit as i32,
    }
}

fn ok_status() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        ..Default::default()
    }
}

fn ok_without_limits(count: usize) -> RateLimitResponse {
    RateLimitResponse {
        overall_code: Code::Ok as i32,
        statuses: (0..count).map(|_| ok_status()).collect(),
        ..Default::default()
    }
}

fn proto_duration(duration: Duration) -> ProtoDuration {
    ProtoDuration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;
