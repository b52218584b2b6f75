//! `circuit-breaker`: request-level circuit breaking for Envoy, shared across workers.
//!
//! Envoy's own circuit breakers cap connections and pending requests, and outlier detection
//! ejects single hosts; neither opens on a *service's* error rate and answers with a degraded
//! response. This filter does, the way Resilience4j's CircuitBreaker does for a JVM client:
//! outcomes (status, Envoy response flags for resets and timeouts, gRPC status, latency) go into
//! a count- or time-based sliding window; when the failure rate or the slow-call rate reaches its
//! threshold (after a minimum number of calls) the breaker opens, and matching requests are
//! answered locally with a configured fallback (or a plain 503) carrying
//! `x-meshguard-circuit: open` and `Retry-After`, never reaching the upstream. After `openFor` a
//! limited number of probes pass; enough successes close the breaker, a failure opens it again.
//! Requests refused while half-open (every probe permit taken) carry `x-meshguard-circuit:
//! half-open`; requests refused by the optional bulkhead (`maxConcurrent` calls in flight across
//! all workers) carry `x-meshguard-circuit: full`. Place the filter last before the router, so
//! only calls that really go upstream are judged.
//!
//! The state and the window live in proxy-wasm shared data, updated with compare-and-swap, so
//! all workers of one Envoy open and close together and half-open admits `permittedCalls`
//! probes in total, not per worker.
//!
//! Layout: [`config`] (raw JSON -> validated types), [`window`] and [`machine`] (the pure core:
//! sliding windows and the state machine as functions of config, state, time and outcome),
//! [`outcome`] (judging responses), [`codec`] (the compact shared-data form), [`guard`] (one
//! breaker's steps over shared data through the core's CAS helper, metrics, transition logs),
//! [`matcher`] (which breaker guards a request, by the shared route matcher) and [`filter`]
//! (the shell over the request model).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod codec;
pub mod config;
pub mod filter;
pub mod guard;
pub mod machine;
pub mod matcher;
pub mod outcome;
pub mod window;

pub use config::{Config, parse_config};
pub use filter::{CircuitBreaker, CircuitBreakerHttp, CircuitBreakerRoot};
