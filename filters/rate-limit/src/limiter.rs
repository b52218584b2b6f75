//! The decision: every matching limit must admit, and only admitted requests consume.
//!
//! GCRA state is one timestamp per key, and governor's check both decides and (through the
//! store) writes. To charge a request only when *all* its limits admit it, the check runs in
//! two phases:
//! 1. **Check.** For each matching limit, a governor `RateLimiter` over a [`SharedStore`] in
//!    [`Mode::Deferred`] reads the key's bucket, runs governor's decision and keeps the
//!    resulting write (bucket value + CAS token of the read) instead of storing it.
//! 2. **Commit** ([`Engine::commit`], called by [`crate::RateLimitHttp`]'s `commit_request`
//!    once every filter of the module let the request go on: in the `meshguard` pipeline, a
//!    request the circuit breaker answers locally is never charged). If no enforced limit
//!    denied, the kept writes are stored in order, each with
//!    its CAS token. A token that went stale (another worker charged the same bucket in
//!    between) means the decision was made on old state: that limit is checked again in
//!    [`Mode::Immediate`], governor's read-decide-CAS loop. If it still admits, the commit goes
//!    on; if it now denies, the limits already committed for this request are refunded (their
//!    tat moves back one emission interval, see [`refund`]) and the request is denied.
//!
//! So a denied request never consumes, and a cell is never handed out twice: every write is a
//! CAS against the state the decision was made on. Shadow limits take part in both phases but
//! their denials only count and log.

use std::cell::Cell;
use std::time::SystemTime;

use governor::NotUntil;
use governor::RateLimiter;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::nanos::Nanos;
use meshguard_filter_core::{Ctx, Host, LocalResponse, LogLevel, SharedDataError};

use crate::config::{Config, HeaderStyle, Limit};
use crate::global::Globals;
use crate::headers::{LimitStatus, render, seconds_until};
use crate::metrics::LimitMetrics;
use crate::request::{self, Key};
use crate::store::{HostClock, Mode, Observation, Placement, SharedStore, refund};
use crate::table::{Slot, Table};

/// Configuration plus everything derived from it at configure time.
#[derive(Debug)]
pub struct Engine {
    /// The validated configuration.
    pub config: Config,
    /// Shared-data layout per limit.
    pub tables: Vec<Table>,
    /// Hash seed per limit (re-read from shared data on ticks).
    pub seeds: Vec<Cell<u64>>,
    /// Metric ids per limit.
    pub metrics: Vec<LimitMetrics>,
    /// The global limits (asked of a rate-limit service after the local ones admitted).
    pub globals: Globals,
}

/// A request every matching limit admitted at its check, not yet charged: the writes kept
/// for [`Engine::commit`].
#[derive(Debug)]
pub struct Pending {
    checks: Vec<Check>,
    now: u64,
}

/// The check phase's answer.
#[derive(Debug)]
pub enum Checked {
    /// No limit applies: nothing to charge.
    Unlimited,
    /// An enforced limit denies: send this response (nothing was charged).
    Denied(LocalResponse),
    /// Admitted so far; charge it with [`Engine::commit`] once the request really goes on.
    Pending(Pending),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted (or no limit applied); add these headers to the response.
    Admit(Vec<(String, String)>),
    /// Denied: send this response.
    Deny(LocalResponse),
}

type Outcome = Result<StateSnapshot, NotUntil<Nanos>>;

/// One limit's judgement of the request.
#[derive(Debug)]
struct Check {
    index: usize,
    key: Key,
    slot: Slot,
    outcome: Outcome,
    observation: Observation,
    committed: bool,
    retries: u32,
}

impl Check {
    fn denied(&self) -> bool {
        self.outcome.is_err()
    }
}

/// Nanoseconds since the Unix epoch on the host clock.
pub fn now_ns(host: &dyn Host) -> u64 {
    host.now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Engine {
    fn limit(&self, index: usize) -> Option<(&Limit, &Table, &LimitMetrics)> {
        Some((
            self.config.limits.get(index)?,
            self.tables.get(index)?,
            self.metrics.get(index)?,
        ))
    }

    /// Judges the request seen through `ctx` and, if admitted, charges it at once.
    pub fn decide(&self, ctx: &mut Ctx<'_>) -> Verdict {
        match self.check(ctx) {
            Checked::Unlimited => Verdict::Admit(Vec::new()),
            Checked::Denied(response) => Verdict::Deny(response),
            Checked::Pending(pending) => self.commit(ctx, pending),
        }
    }

    /// Phase 1: checks every matching limit against shared data, charging nothing.
    pub fn check(&self, ctx: &mut Ctx<'_>) -> Checked {
        // The clock is read once, and only when a limit applies (a hostcall in Envoy): a request
        // no limit matches or keys costs just the reads of the match.
        let mut clock = None;
        let mut checks = Vec::new();
        for (index, limit) in self.config.limits.iter().enumerate() {
            if !limit.matcher.matches(&*ctx) {
                continue;
            }
            let Some(key) = request::key(limit, ctx) else {
                continue;
            };
            let host: &mut dyn Host = ctx;
            let seed = self.seeds.get(index).map_or(0, Cell::get);
            let Some((_, table, _)) = self.limit(index) else {
                continue;
            };
            let slot = table.slot(seed, &key.bytes);
            let now = *clock.get_or_insert_with(|| now_ns(host));
            let Some((outcome, observation)) = self.judge(host, index, slot, now, Mode::Deferred)
            else {
                continue;
            };
            checks.push(Check {
                index,
                key,
                slot,
                outcome,
                observation,
                committed: false,
                retries: 0,
            });
        }
        let (Some(now), false) = (clock, checks.is_empty()) else {
            return Checked::Unlimited;
        };
        let enforced_denial = checks
            .iter()
            .any(|check| check.denied() && !self.is_shadow(check.index));
        if enforced_denial {
            self.account(ctx, &checks, false);
            let headers = self.headers(&checks, now, &[]);
            return Checked::Denied(self.deny_response(&checks, now, headers));
        }
        Checked::Pending(Pending { checks, now })
    }

    /// Phase 2: stores the kept writes (re-checking a limit whose state moved meanwhile) and
    /// counts the outcome. A request a later stage answered locally never gets here, so it
    /// costs no budget.
    pub fn commit(&self, ctx: &mut Ctx<'_>, pending: Pending) -> Verdict {
        self.commit_with(ctx, pending, &[])
    }

    /// [`Engine::commit`], advertising the global limits' `statuses` (from the service's
    /// answer) in the RateLimit headers with the local ones.
    pub fn commit_with(
        &self,
        ctx: &mut Ctx<'_>,
        pending: Pending,
        statuses: &[LimitStatus],
    ) -> Verdict {
        let Pending { mut checks, now } = pending;
        let admitted = self.store(ctx, &mut checks, now);
        match self.conclude(ctx, &checks, now, admitted, statuses) {
            Ok(headers) => Verdict::Admit(headers),
            Err(response) => Verdict::Deny(response),
        }
    }

    /// Counts and logs the outcome; the response headers if admitted, the answer if not.
    fn conclude(
        &self,
        host: &mut dyn Host,
        checks: &[Check],
        now: u64,
        admitted: bool,
        extra: &[LimitStatus],
    ) -> Result<Vec<(String, String)>, LocalResponse> {
        self.account(host, checks, admitted);
        let headers = self.headers(checks, now, extra);
        if admitted {
            Ok(headers)
        } else {
            Err(self.deny_response(checks, now, headers))
        }
    }

    /// The rate-limit response headers for the limits that took part.
    fn headers(&self, checks: &[Check], now: u64, extra: &[LimitStatus]) -> Vec<(String, String)> {
        match self.config.headers {
            HeaderStyle::None => Vec::new(),
            style => {
                let mut statuses = self.statuses(checks, now);
                statuses.extend_from_slice(extra);
                render(style, &statuses)
            }
        }
    }

    fn is_shadow(&self, index: usize) -> bool {
        self.config.limits.get(index).is_some_and(|l| l.shadow)
    }

    /// Runs governor's GCRA for one limit against shared data.
    fn judge(
        &self,
        host: &mut dyn Host,
        index: usize,
        slot: Slot,
        now: u64,
        mode: Mode,
    ) -> Option<(Outcome, Observation)> {
        let (limit, table, _) = self.limit(index)?;
        let store = SharedStore::new(host, table, now, mode);
        let limiter: RateLimiter<Slot, SharedStore<'_>, HostClock, StateInformationMiddleware> =
            RateLimiter::new(limit.quota, store, HostClock::at(now));
        let outcome = limiter.check_key(&slot);
        Some((outcome, limiter.into_state_store().into_observation()))
    }

    /// Stores the kept writes; `false` when a re-check denied (after refunds).
    fn store(&self, host: &mut dyn Host, checks: &mut [Check], now: u64) -> bool {
        for position in 0..checks.len() {
            let Some(check) = checks.get_mut(position) else {
                continue;
            };
            if check.denied() {
                continue; // A shadow denial: nothing to charge.
            }
            let Some(write) = check.observation.write.take() else {
                continue;
            };
            match host.shared_set(&write.key, &write.value, write.cas) {
                Ok(()) => check.committed = true,
                Err(SharedDataError::CasMismatch) => {
                    let (index, slot) = (check.index, check.slot);
                    let Some((outcome, observation)) =
                        self.judge(host, index, slot, now, Mode::Immediate)
                    else {
                        continue;
                    };
                    check.retries += 1;
                    check.committed = observation.committed;
                    check.outcome = outcome;
                    check.observation = observation;
                    if check.denied() && !self.is_shadow(index) {
                        self.rollback(host, checks, position);
                        return false;
                    }
                }
                Err(SharedDataError::Refused) => {
                    check.observation.failed = true;
                }
            }
        }
        true
    }

    /// Refunds the cells committed for checks before `upto`.
    fn rollback(&self, host: &mut dyn Host, checks: &mut [Check], upto: usize) {
        for check in checks.iter_mut().take(upto) {
            if !check.committed {
                continue;
            }
            let Some((limit, table, _)) = self.limit(check.index) else {
                continue;
            };
            let t = u64::try_from(limit.quota.replenish_interval().as_nanos()).unwrap_or(u64::MAX);
            let overflow = check.observation.placement == Placement::Overflow;
            check.retries += refund(host, table, &check.slot, overflow, t);
            check.committed = false;
            // Report the limit as not charged.
            check.observation.after = check.observation.before;
        }
    }

    /// Counts and logs the outcome per limit.
    fn account(&self, host: &mut dyn Host, checks: &[Check], admitted: bool) {
        for check in checks {
            let Some((limit, _, metrics)) = self.limit(check.index) else {
                continue;
            };
            metrics
                .cas_retries
                .add(u64::from(check.retries + check.observation.retries));
            if check.observation.placement == Placement::Overflow {
                metrics.overflow.bump();
            }
            if check.committed {
                metrics.allowed.bump();
                if check.observation.placement == Placement::Replaced {
                    metrics.evictions.bump();
                }
            }
            if check.observation.failed {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "rate-limit `{}`: shared data refused the update; request judged but not charged",
                        limit.name
                    ),
                );
            }
            if !check.denied() {
                continue;
            }
            if limit.shadow {
                metrics.shadow_limited.bump();
                host.log(
                    LogLevel::Info,
                    &format!(
                        "rate-limit `{}` (shadow) would deny key `{}`{}",
                        limit.name,
                        check.key.readable(),
                        if admitted {
                            ""
                        } else {
                            " (request denied by another limit)"
                        }
                    ),
                );
            } else {
                metrics.limited.bump();
                host.log(
                    LogLevel::Debug,
                    &format!(
                        "rate-limit `{}` denied key `{}`",
                        limit.name,
                        check.key.readable()
                    ),
                );
            }
        }
    }

    /// Header values for every enforced limit that took part.
    fn statuses(&self, checks: &[Check], now: u64) -> Vec<LimitStatus> {
        checks
            .iter()
            .filter_map(|check| {
                let (limit, _, _) = self.limit(check.index)?;
                if limit.shadow {
                    return None;
                }
                let quota = limit.capacity();
                let (remaining, tat) = match &check.outcome {
                    Ok(snapshot) if check.committed => {
                        (snapshot.remaining_burst_capacity(), check.observation.after)
                    }
                    // Admitted by this limit but not charged (denied elsewhere).
                    Ok(snapshot) => (
                        snapshot
                            .remaining_burst_capacity()
                            .saturating_add(1)
                            .min(quota),
                        check.observation.before,
                    ),
                    Err(_) => (0, check.observation.before),
                };
                Some(LimitStatus {
                    name: limit.name.clone(),
                    quota,
                    window: limit.window_seconds(),
                    remaining,
                    reset: tat.map_or(0, |tat| seconds_until(now, tat)),
                })
            })
            .collect()
    }

    fn deny_response(
        &self,
        checks: &[Check],
        now: u64,
        headers: Vec<(String, String)>,
    ) -> LocalResponse {
        let wait = checks
            .iter()
            .filter(|check| !self.is_shadow(check.index))
            .filter_map(|check| check.outcome.as_ref().err())
            .map(|not_until| {
                let wait = not_until.wait_time_from(Nanos::from(now));
                u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX)
            })
            .max()
            .unwrap_or(0);
        let retry_after = seconds_until(0, wait).max(1);
        let response = &self.config.response;
        let mut local = LocalResponse::new(response.status, response.body.as_bytes())
            .with_header("content-type", &response.content_type)
            .with_header("retry-after", retry_after.to_string())
            .with_header("x-envoy-ratelimited", "true");
        local.headers.extend(headers);
        local
    }
}
