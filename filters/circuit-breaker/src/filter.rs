//! The thin shell: the stream's callbacks (through the request model) mapped onto the guard's
//! steps.
//!
//! Per stream: at request headers, pick the breaker and ask for admission (short-circuit with the
//! fallback if refused, take a bulkhead slot if configured); at response headers, judge the call
//! (status, `response.code_details`, `response.flags`, gRPC status, latency since the request
//! headers) and record it; at stream end (`on_log`), judge calls that never saw response headers
//! (resets, timeouts) or whose gRPC status came in the trailers, and return the bulkhead slot.
//!
//! Every host call is a hostcall crossing into V8 in Envoy, so the common path (closed breaker,
//! healthy upstream) makes only the ones its decision needs: the request facts the matcher asks
//! for, one shared-data read at admission, `:status` (plus `content-type` for a 200 while gRPC
//! statuses are judged) and one CAS write of the outcome. Counters are batched and added on the
//! root's tick. The clock is read at most once per callback and only when something depends on
//! it: both ends of the call when `slowCall` is configured (latency), otherwise only for a time
//! window, a non-closed phase or a transition. `filter/tests/hostcalls.rs` pins these counts.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use meshguard_filter_core::{
    ConfigError, Ctx, Decision, Env, Filter, HeaderMap, Host, HttpFilter, LocalResponse, LogLevel,
    Root, Stats, StreamCallbacks,
};

use crate::config::{Breaker, Config, parse_config};
use crate::guard::{Clock, Count, Guard};
use crate::machine::{Admission, Rejection, Ticket};
use crate::matcher::select;
use crate::outcome::{self, ResponseFacts, Verdict};

/// How often every root context runs the time-driven transitions and adds its streams' counts
/// to Envoy's stats.
pub const TICK: Duration = Duration::from_secs(1);

/// Header on every locally answered request.
pub const CIRCUIT_HEADER: &str = "x-meshguard-circuit";

/// Configuration plus the run-time guard of every breaker, shared by the streams of a worker.
#[derive(Debug)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// One guard per breaker, in the same order.
    pub guards: Vec<Guard>,
}

impl Runtime {
    fn breaker(&self, index: usize) -> Option<(&Breaker, &Guard)> {
        Some((self.config.breakers.get(index)?, self.guards.get(index)?))
    }
}

// === impl CircuitBreaker ===

/// The circuit-breaker filter.
#[derive(Debug)]
pub struct CircuitBreaker;

impl Filter for CircuitBreaker {
    type Root = CircuitBreakerRoot;
    const NAME: &'static str = "circuit_breaker";

    fn configure(
        host: &mut dyn Host,
        env: &Env,
        config: &[u8],
    ) -> Result<CircuitBreakerRoot, ConfigError> {
        let config = parse_config(config)?;
        config.check_env(env)?;
        let stats = Stats::new(Self::NAME, &env.plugin);
        let guards: Vec<Guard> = config
            .breakers
            .iter()
            .map(|breaker| Guard::new(host, &env.plugin, &stats, breaker))
            .collect();
        for (breaker, guard) in config.breakers.iter().zip(&guards) {
            guard.init(host, breaker);
        }
        host.log(
            LogLevel::Info,
            &format!(
                "meshguard circuit breaker: {} breaker(s) configured: {}",
                config.breakers.len(),
                config
                    .breakers
                    .iter()
                    .map(|breaker| breaker.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        Ok(CircuitBreakerRoot {
            runtime: Rc::new(Runtime { config, guards }),
        })
    }
}

// === impl CircuitBreakerRoot ===

/// The root context: the configuration, shared state and metrics; it ticks.
#[derive(Debug)]
pub struct CircuitBreakerRoot {
    runtime: Rc<Runtime>,
}

impl CircuitBreakerRoot {
    /// The runtime.
    pub fn runtime(&self) -> &Rc<Runtime> {
        &self.runtime
    }
}

impl Root for CircuitBreakerRoot {
    type Http = CircuitBreakerHttp;

    fn tick_period(&self) -> Option<Duration> {
        Some(TICK)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let runtime = &self.runtime;
        for (breaker, guard) in runtime.config.breakers.iter().zip(&runtime.guards) {
            guard.tick(host, breaker);
            guard.flush_counters(host);
        }
    }

    fn new_http(&self, _context_id: u32) -> CircuitBreakerHttp {
        CircuitBreakerHttp {
            runtime: Rc::clone(&self.runtime),
            call: None,
        }
    }
}

// === impl CircuitBreakerHttp ===

/// A call the breaker let through, followed until its outcome is known.
#[derive(Debug, Clone, Copy)]
struct Call {
    breaker: usize,
    /// `None` when admission failed open (no state could be read).
    ticket: Option<Ticket>,
    /// When the request headers arrived; only read (and kept) when `slowCall` judges latency.
    started: Option<SystemTime>,
    holds_slot: bool,
    settled: bool,
    awaiting_trailers: bool,
}

/// Per-stream filter.
#[derive(Debug)]
pub struct CircuitBreakerHttp {
    runtime: Rc<Runtime>,
    call: Option<Call>,
}

/// Reads an integer property (Envoy serialises int64 as 8 little-endian bytes).
fn int_property(host: &dyn Host, path: &[&str]) -> Option<i64> {
    let bytes: [u8; 8] = host.property(path)?.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

fn response_flags(host: &dyn Host) -> u64 {
    int_property(host, &["response", "flags"]).map_or(0, |flags| flags as u64)
}

/// The fallback, marked with the circuit state (and when to retry, if known).
fn fallback(breaker: &Breaker, state: &str, retry_after_s: Option<u64>) -> LocalResponse {
    let fallback = &breaker.fallback;
    let mut headers = fallback.headers.clone();
    headers.push((CIRCUIT_HEADER.into(), state.into()));
    if let Some(seconds) = retry_after_s {
        headers.push(("retry-after".into(), seconds.to_string()));
    }
    LocalResponse {
        status: fallback.status,
        headers,
        body: fallback.body.clone(),
    }
}

/// The local answer for a request refused while open or half-open.
pub fn short_circuit(breaker: &Breaker, rejection: Rejection) -> LocalResponse {
    fallback(
        breaker,
        rejection.phase.name(),
        Some(rejection.retry_after_s),
    )
}

/// The local answer for a request the bulkhead refused.
pub fn bulkhead_full(breaker: &Breaker) -> LocalResponse {
    fallback(breaker, "full", None)
}

impl CircuitBreakerHttp {
    /// Acts on `verdict`, reached at the time of `clock`.
    fn settle(&mut self, host: &mut dyn Host, verdict: Verdict, clock: &Clock) {
        let (runtime, Some(call)) = (&self.runtime, &mut self.call) else {
            return;
        };
        let Some((breaker, guard)) = runtime.breaker(call.breaker) else {
            return;
        };
        let Some(ticket) = call.ticket else {
            call.settled = true;
            return;
        };
        match verdict {
            Verdict::AwaitTrailers => call.awaiting_trailers = true,
            Verdict::Record(outcome) => {
                call.settled = true;
                guard.record(host, breaker, ticket, outcome, clock);
            }
            Verdict::Ignore => {
                call.settled = true;
                guard.ignore(host, breaker, ticket);
            }
        }
    }

    /// The call's latency so far; zero (without reading the clock) when no `slowCall` judges it.
    fn latency(host: &dyn Host, clock: &Clock, call: &Call) -> Duration {
        call.started.map_or(Duration::ZERO, |started| {
            clock.read(host).duration_since(started).unwrap_or_default()
        })
    }
}

impl HttpFilter for CircuitBreakerHttp {
    /// Outcomes are recorded at response headers, resets and timeouts at stream end.
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: true,
        request_body: false,
    };

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        let runtime = Rc::clone(&self.runtime);
        let selected = select(&runtime.config.breakers, &*ctx);
        let host: &mut dyn Host = ctx;
        let Some((index, (breaker, guard))) =
            selected.and_then(|index| Some((index, runtime.breaker(index)?)))
        else {
            return Decision::Continue;
        };
        let clock = Clock::new();
        // Latency only matters to `slowCall`; without it the start time is never needed.
        let started = breaker.slow_call.map(|_| clock.read(&*host));
        let ticket = match guard.admit(host, breaker, &clock) {
            Some(Admission::Reject(rejection)) => {
                guard.count(Count::ShortCircuited);
                return Decision::Respond(short_circuit(breaker, rejection));
            }
            Some(Admission::Admit(ticket)) => Some(ticket),
            None => None,
        };
        let mut holds_slot = false;
        if let Some(max) = breaker.max_concurrent {
            match guard.acquire_slot(host, breaker, max) {
                Some(true) => holds_slot = true,
                Some(false) => {
                    guard.count(Count::BulkheadFull);
                    if let Some(ticket) = ticket
                        && ticket.probe
                    {
                        // The probe never went out: give its permit back.
                        guard.release_permit(host, breaker, ticket);
                    }
                    return Decision::Respond(bulkhead_full(breaker));
                }
                None => {}
            }
        }
        self.call = Some(Call {
            breaker: index,
            ticket,
            started,
            holds_slot,
            settled: false,
            awaiting_trailers: false,
        });
        Decision::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        let host: &mut dyn Host = ctx;
        let (runtime, Some(call)) = (&self.runtime, self.call) else {
            return Decision::Continue;
        };
        if call.settled || call.awaiting_trailers || call.ticket.is_none() {
            return Decision::Continue;
        }
        let Some((breaker, _)) = runtime.breaker(call.breaker) else {
            return Decision::Continue;
        };
        let clock = Clock::new();
        let latency = Self::latency(&*host, &clock, &call);
        let status = host
            .header(HeaderMap::Response, ":status")
            .and_then(|status| status.parse().ok());
        let probe = call.ticket.is_some_and(|ticket| ticket.probe);
        let origin = outcome::needs_origin(breaker, status, probe);
        let code_details = origin
            .then(|| host.property(&["response", "code_details"]))
            .flatten()
            .map(|details| String::from_utf8_lossy(&details).into_owned());
        let flags =
            (origin && outcome::needs_flags(code_details.as_deref())).then(|| response_flags(host));
        // gRPC answers are always HTTP 200 (errors included); no other status needs the check.
        let grpc = breaker.failure.grpc_statuses != 0
            && status == Some(200)
            && host
                .header(HeaderMap::Response, "content-type")
                .is_some_and(|content_type| outcome::is_grpc(&content_type));
        let facts = ResponseFacts {
            status,
            code_details,
            flags,
            grpc,
            grpc_status: grpc
                .then(|| host.header(HeaderMap::Response, "grpc-status"))
                .flatten()
                .and_then(|status| outcome::parse_grpc_status(&status)),
        };
        let verdict = outcome::at_headers(breaker, &facts, latency);
        self.settle(host, verdict, &clock);
        Decision::Continue
    }

    fn on_log(&mut self, ctx: &mut Ctx<'_>) {
        let host: &mut dyn Host = ctx;
        let (runtime, Some(call)) = (Rc::clone(&self.runtime), self.call) else {
            return;
        };
        let Some((breaker, guard)) = runtime.breaker(call.breaker) else {
            return;
        };
        if !call.settled && call.ticket.is_some() {
            let clock = Clock::new();
            let latency = Self::latency(&*host, &clock, &call);
            let flags = response_flags(host);
            let verdict = if call.awaiting_trailers {
                let status = int_property(host, &["response", "grpc_status"])
                    .and_then(|code| u32::try_from(code).ok());
                outcome::at_trailers(breaker, status, flags, latency)
            } else {
                outcome::at_stream_end(breaker, flags, latency)
            };
            if let Some(call) = &mut self.call {
                call.awaiting_trailers = false;
            }
            self.settle(host, verdict, &clock);
        }
        if call.holds_slot {
            guard.release_slot(host, breaker);
        }
        self.call = None;
    }
}

#[cfg(test)]
mod tests;
