//! meshguard's host-agnostic filter SDK.
//!
//! Every filter's decisions are written against the small [`Host`] trait defined here, never
//! against proxy-wasm directly. The shim crate adapts proxy-wasm to this trait for Envoy; the
//! [`mock::MockHost`] (feature `test-util`) and the wasmtime host adapt it for tests. Keeping the
//! SDK out of the decision code means a filter's logic is a pure function of its config, the
//! request facts and the time, and can be unit-tested natively by the thousand.
//!
//! What every filter shares, so each word has one meaning:
//! - [`filter`]: the plugin's life ([`Filter`] -> [`Root`] -> [`HttpFilter`]), fail-closed by
//!   construction;
//! - [`request`]: the request model, each fact read at most once per request ([`Exchange`],
//!   [`Ctx`]);
//! - [`route`]: the route matcher, with Envoy's route-match semantics;
//! - [`shared`] and [`lease`]: the compare-and-swap update of shared data and the lease for
//!   periodic jobs one root runs;
//! - [`stats`] and [`counters`]: the stats naming scheme and batched counters.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod claims;
pub mod config;
pub mod counters;
pub mod decision;
pub mod filter;
pub mod host;
pub mod lease;
#[cfg(any(test, feature = "test-util"))]
pub mod mock;
#[cfg(any(test, feature = "test-util"))]
pub mod racing;
pub mod request;
pub mod route;
pub mod shared;
pub mod stats;
pub mod stream;

pub use config::ConfigError;
pub use decision::{CallResponse, Decision, GrpcCall, HttpCall, LocalResponse};
pub use filter::{Env, Filter, HttpFilter, Provides, Root, RouteKnowledge, StreamCallbacks};
pub use host::{HeaderMap, Host, LogLevel, MetricKind, SharedDataError};
pub use request::{Ctx, Exchange};
pub use route::{RawRouteMatch, RouteMatch};
pub use stats::Stats;
pub use stream::Stream;
