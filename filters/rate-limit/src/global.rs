//! Global limits: one `ShouldRateLimit` call to an RLS v3 service per request, and what its
//! answer means.
//!
//! - **The call.** Every global limit the request matches (and whose key parts are all there,
//!   or `onMissingKey: shared`) adds one descriptor, its key parts as entries in order
//!   ([`crate::config::KeyPart::descriptor_key`], or `global.descriptorKeys`); the request
//!   counts one hit
//!   (`hits_addend: 1`) against each. No matching global limit: no call.
//! - **Local first.** The filter asks only after every local limit admitted the request, so a
//!   request refused locally never costs a call; the local charge commits when the request
//!   goes on, after the answer ([`crate::RateLimitHttp`]).
//! - **The answer.** `OVER_LIMIT` on an enforced limit's descriptor gets the filter's deny
//!   response, with `Retry-After` from the service's `duration_until_reset`, the RateLimit
//!   headers from its `current_limit` and `limit_remaining`, and the service's
//!   `response_headers_to_add`. On a shadow limit it is counted and logged, and the request
//!   goes on. `OK` continues, adding the service's `request_headers_to_add` to the request and
//!   its `response_headers_to_add` to the response (as Envoy's filter does).
//! - **No usable answer** (a gRPC error, the timeout, an undecodable message, `UNKNOWN`):
//!   each matched limit applies its `failureMode` (shadow limits only count). Failures are
//!   counted per limit (`<limit>.error`, `<limit>.failure_mode_allowed`,
//!   `<limit>.failure_mode_denied`) and logged at most once per [`LOG_INTERVAL`] across the
//!   plugin's workers: the log is coordinated through a shared-data lease
//!   ([`meshguard_filter_core::lease`]), as the sweep is, so a dead service cannot flood
//!   Envoy's log at the request rate.

use std::cell::Cell;
use std::time::Duration;

use meshguard_filter_core::counters::Counter;
use meshguard_filter_core::lease::{Lease, LeaseState};
use meshguard_filter_core::stats::Stats;
use meshguard_filter_core::{CallResponse, Ctx, GrpcCall, Host, LocalResponse, LogLevel};
use meshguard_rls::{Code, Message, RateLimitDescriptor, RateLimitRequest, RateLimitResponse};

use crate::config::{DenyResponse, FailureMode, GlobalLimit, HeaderStyle, MissingKey};
use crate::headers::{LimitStatus, render};
use crate::request;

/// At most one failure log line per interval, across the plugin's workers.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// A worker asks the log lease at most this often (one shared-data read).
const LOG_RETRY: Duration = Duration::from_secs(1);

/// The global limits of a plugin, their stats and the failure-log gate.
#[derive(Debug)]
pub struct Globals {
    /// The limits, in configuration order.
    pub limits: Vec<GlobalLimit>,
    metrics: Vec<GlobalMetrics>,
    log: LogGate,
}

/// Stats of one global limit (`meshguard.rate_limit.<plugin>.<limit>.<stat>`).
#[derive(Debug, Default)]
pub struct GlobalMetrics {
    /// The service admitted the request (`OK`).
    pub allowed: Counter,
    /// The service answered `OVER_LIMIT` and the request was denied.
    pub limited: Counter,
    /// The service answered `OVER_LIMIT` for this shadow limit; the request went on.
    pub shadow_limited: Counter,
    /// No usable answer (error, timeout, `UNKNOWN`).
    pub error: Counter,
    /// No usable answer, and `failureMode: allow` let the request go on.
    pub failure_mode_allowed: Counter,
    /// No usable answer, and `failureMode: deny` refused the request.
    pub failure_mode_denied: Counter,
}

impl GlobalMetrics {
    fn define(host: &mut dyn Host, stats: &Stats, name: &str) -> Self {
        let mut counter = |stat: &str| stats.counter(host, &format!("{name}.{stat}"));
        Self {
            allowed: counter("allowed"),
            limited: counter("limited"),
            shadow_limited: counter("shadow_limited"),
            error: counter("error"),
            failure_mode_allowed: counter("failure_mode_allowed"),
            failure_mode_denied: counter("failure_mode_denied"),
        }
    }

    fn counters(&self) -> [&Counter; 6] {
        [
            &self.allowed,
            &self.limited,
            &self.shadow_limited,
            &self.error,
            &self.failure_mode_allowed,
            &self.failure_mode_denied,
        ]
    }
}

/// A call in flight: its token and the limits whose descriptors it carries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The callout's token.
    pub token: u32,
    /// Indexes into [`Globals::limits`], one per descriptor sent.
    pub matched: Vec<usize>,
}

/// What the service's answer (or its absence) means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request goes on.
    Admit {
        /// Headers the service asks to add to the request (`OK` only).
        request_headers: Vec<(String, String)>,
        /// Headers the service asks to add to the response.
        response_headers: Vec<(String, String)>,
        /// The enforced limits' state, for the RateLimit headers.
        statuses: Vec<LimitStatus>,
    },
    /// The request is refused with this response.
    Deny(LocalResponse),
}

impl Outcome {
    fn admit() -> Self {
        Self::Admit {
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            statuses: Vec::new(),
        }
    }
}

impl Globals {
    /// Defines the stats of `limits` for `plugin`; `holder` names this root in the log lease.
    pub fn new(
        host: &mut dyn Host,
        stats: &Stats,
        plugin: &str,
        limits: Vec<GlobalLimit>,
        holder: u64,
    ) -> Self {
        let metrics = limits
            .iter()
            .map(|limit| GlobalMetrics::define(host, stats, &limit.name))
            .collect();
        let lease = Lease::new(format!("meshguard.rl.v2.{plugin}.global-log"));
        if !limits.is_empty() {
            // Created here, so the first failure can take it (the record is free at once).
            lease.ensure(host, LeaseState::default());
        }
        Self {
            limits,
            metrics,
            log: LogGate {
                lease,
                next_try_ns: Cell::new(0),
                holder,
            },
        }
    }

    /// Adds this worker's pending counts to Envoy's stats.
    pub fn flush(&self, host: &mut dyn Host) {
        for metrics in &self.metrics {
            for counter in metrics.counters() {
                counter.flush(host);
            }
        }
    }

    /// The call for the request seen through `ctx`, with the limits it carries; `None` when
    /// no global limit applies.
    pub fn request(&self, ctx: &Ctx<'_>) -> Option<(GrpcCall, Vec<usize>)> {
        let mut matched = Vec::new();
        let mut descriptors = Vec::new();
        let mut timeout = Duration::ZERO;
        let mut service = None;
        for (index, limit) in self.limits.iter().enumerate() {
            if !limit.matcher.matches(ctx) {
                continue;
            }
            let Some(entries) = descriptor(limit, ctx) else {
                continue;
            };
            descriptors.push(RateLimitDescriptor::new(entries));
            matched.push(index);
            timeout = timeout.max(limit.global.timeout);
            service.get_or_insert(&limit.global);
        }
        let service = service?;
        let message = RateLimitRequest {
            domain: service.domain.clone(),
            descriptors,
            hits_addend: 1,
        }
        .encode_to_vec();
        let call = GrpcCall {
            cluster: service.cluster.clone(),
            service: meshguard_rls::SERVICE.to_string(),
            method: meshguard_rls::METHOD.to_string(),
            message,
            timeout,
        };
        Some((call, matched))
    }

    /// What the answer to a call carrying `matched` means. `now_ns` is for the log gate.
    pub fn answer(
        &self,
        host: &mut dyn Host,
        matched: &[usize],
        response: Option<CallResponse>,
        deny: &DenyResponse,
        style: HeaderStyle,
        now_ns: u64,
    ) -> Outcome {
        let answer = match read(response) {
            Ok(answer) => answer,
            Err(reason) => return self.fail(host, matched, &reason, now_ns),
        };
        let overall = answer.overall_code();
        let mut statuses = Vec::new();
        let mut enforced_over = false;
        let mut wait = Duration::ZERO;
        for (position, &index) in matched.iter().enumerate() {
            let (Some(limit), Some(metrics)) = (self.limits.get(index), self.metrics.get(index))
            else {
                continue;
            };
            let status = answer.statuses.get(position);
            // A service that sends no per-descriptor statuses answers for all of them.
            let over = status.map_or(overall == Code::OverLimit, |status| {
                status.code() == Code::OverLimit
            });
            if over && limit.shadow {
                metrics.shadow_limited.bump();
                host.log(
                    LogLevel::Info,
                    &format!(
                        "rate-limit `{}` (shadow, global) would deny: the service answered OVER_LIMIT",
                        limit.name
                    ),
                );
                continue;
            }
            if !over {
                metrics.allowed.bump();
            }
            if limit.shadow {
                continue;
            }
            if over {
                enforced_over = true;
                metrics.limited.bump();
                let reset = status
                    .and_then(|status| status.duration_until_reset?.to_std())
                    .unwrap_or(Duration::ZERO);
                wait = wait.max(reset);
            }
            if let Some(status) = status.and_then(|status| limit_status(&limit.name, status)) {
                statuses.push(status);
            }
        }
        let response_headers = header_values(&answer.response_headers_to_add);
        if enforced_over {
            let retry_after = wait.as_nanos().div_ceil(1_000_000_000).max(1);
            let mut local = LocalResponse::new(deny.status, deny.body.as_bytes())
                .with_header("content-type", &deny.content_type)
                .with_header("retry-after", retry_after.to_string())
                .with_header("x-envoy-ratelimited", "true");
            local.headers.extend(render(style, &statuses));
            local.headers.extend(response_headers);
            return Outcome::Deny(local);
        }
        Outcome::Admit {
            request_headers: header_values(&answer.request_headers_to_add),
            response_headers,
            statuses,
        }
    }

    /// No usable answer (`reason`): every matched limit applies its failure mode.
    pub fn fail(
        &self,
        host: &mut dyn Host,
        matched: &[usize],
        reason: &str,
        now_ns: u64,
    ) -> Outcome {
        let mut denied_by = None;
        for &index in matched {
            let (Some(limit), Some(metrics)) = (self.limits.get(index), self.metrics.get(index))
            else {
                continue;
            };
            metrics.error.bump();
            if limit.shadow {
                continue;
            }
            match limit.global.failure_mode {
                FailureMode::Allow => metrics.failure_mode_allowed.bump(),
                FailureMode::Deny => {
                    metrics.failure_mode_denied.bump();
                    denied_by.get_or_insert(limit);
                }
            }
        }
        let Some(first) = matched.first().and_then(|&index| self.limits.get(index)) else {
            return Outcome::admit();
        };
        self.log.maybe_log(host, now_ns, || {
            format!(
                "rate-limit: the rate-limit service (cluster `{}`, domain `{}`) gave no usable \
                 answer: {reason}; global limits apply their failureMode (counted in \
                 <limit>.error and <limit>.failure_mode_allowed / _denied; logged at most once \
                 every {}s)",
                first.global.cluster,
                first.global.domain,
                LOG_INTERVAL.as_secs()
            )
        });
        match denied_by {
            None => Outcome::admit(),
            Some(limit) => Outcome::Deny(
                LocalResponse::new(
                    limit.global.status_on_error,
                    format!(
                        "rate limit `{}` could not be checked: {reason}\n",
                        limit.name
                    ),
                )
                .with_header("content-type", "text/plain; charset=utf-8")
                .with_header("x-meshguard-ratelimit", "service-error"),
            ),
        }
    }
}

/// The descriptor entries of `limit` for the request; `None` when a key part is missing and
/// the limit skips such requests.
pub fn descriptor(limit: &GlobalLimit, ctx: &Ctx<'_>) -> Option<Vec<(String, String)>> {
    limit
        .key
        .iter()
        .zip(&limit.descriptor_keys)
        .map(
            |(part, key)| match (request::part_value(part, ctx), limit.on_missing_key) {
                (Some(value), _) => Some((key.clone(), value)),
                (None, MissingKey::Shared) => Some((key.clone(), String::new())),
                (None, MissingKey::Skip) => None,
            },
        )
        .collect()
}

/// The decoded answer, or why there is none to use.
fn read(response: Option<CallResponse>) -> Result<RateLimitResponse, String> {
    let Some(response) = response else {
        return Err("the call failed".to_string());
    };
    match response.grpc_status() {
        Some(0) => {}
        Some(code) => return Err(format!("gRPC status {code} ({})", grpc_code_name(code))),
        None => return Err("the answer was not a gRPC answer".to_string()),
    }
    let answer = RateLimitResponse::decode(response.body.as_slice())
        .map_err(|err| format!("the answer did not decode as a RateLimitResponse: {err}"))?;
    if answer.overall_code() == Code::Unknown {
        return Err("the service answered UNKNOWN".to_string());
    }
    Ok(answer)
}

/// The name of a gRPC status code.
pub fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        16 => "UNAUTHENTICATED",
        _ => "other",
    }
}

/// The RateLimit-header view of one descriptor's status (`None` when no limit applied).
fn limit_status(name: &str, status: &meshguard_rls::DescriptorStatus) -> Option<LimitStatus> {
    let limit = status.current_limit.as_ref()?;
    let window = limit.unit().seconds()?;
    let reset = status
        .duration_until_reset
        .and_then(|duration| duration.to_std())
        .map_or(0, |duration| duration.as_nanos().div_ceil(1_000_000_000));
    Some(LimitStatus {
        name: name.to_string(),
        quota: limit.requests_per_unit,
        window,
        remaining: status.limit_remaining,
        reset: u64::try_from(reset).unwrap_or(u64::MAX),
    })
}

/// The service's headers, keeping only valid names and values (a service is input too: an
/// invalid header would make Envoy refuse the whole local response).
fn header_values(values: &[meshguard_rls::HeaderValue]) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|header| {
            let value = if header.raw_value.is_empty() {
                header.value.clone()
            } else {
                String::from_utf8(header.raw_value.clone()).ok()?
            };
            let name = header.key.to_ascii_lowercase();
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let value_ok = !value.bytes().any(|b| b.is_ascii_control() && b != b'\t');
            (name_ok && value_ok).then_some((name, value))
        })
        .collect()
}

// === impl LogGate ===

/// One failure log line per [`LOG_INTERVAL`] across the plugin's workers.
#[derive(Debug)]
struct LogGate {
    lease: Lease,
    /// This worker does not ask the lease again before then.
    next_try_ns: Cell<u64>,
    holder: u64,
}

impl LogGate {
    fn maybe_log(&self, host: &mut dyn Host, now_ns: u64, message: impl FnOnce() -> String) {
        if now_ns < self.next_try_ns.get() {
            return;
        }
        let retry = u64::try_from(LOG_RETRY.as_nanos()).unwrap_or(u64::MAX);
        self.next_try_ns.set(now_ns.saturating_add(retry));
        let now_ms = now_ns / 1_000_000;
        let hold = u64::try_from(LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if self
            .lease
            .acquire(host, now_ms, self.holder, hold)
            .is_some()
        {
            host.log(LogLevel::Warn, &message());
        }
    }
}
