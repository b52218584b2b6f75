//! meshguard's host-agnostic filter SDK.
//!
//! Every filter's decisions are written against the small [`Host`] trait defined here, never
//! against proxy-wasm directly. The shim crate adapts proxy-wasm to this trait for Envoy; the
//! [`mock::MockHost`] (feature `test-util`) and the wasmtime host adapt it for tests. Keeping the
//! SDK out of the decision code means a filter's logic is a pure function of its config, the
//! request facts and the time, and can be unit-tested natively by the thousand.
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
#[cfg(any(test, feature = "test-util"))]
pub mod mock;
#[cfg(any(test, feature = "test-util"))]
pub mod racing;

pub use config::ConfigError;
pub use decision::{CallResponse, Decision, HttpCall, LocalResponse};
pub use filter::{HttpFilter, RootFilter, StreamCallbacks};
pub use host::{HeaderMap, Host, LogLevel, MetricKind, SharedDataError};
