//! meshguard's global rate-limit service: Envoy's rate-limit service protocol (RLS v3) over
//! gRPC, so that a limit holds across every gateway replica instead of per pod.
//!
//! - **Configuration** ([`config`]): envoyproxy/ratelimit's format (`domain`, nested `descriptors`
//!   with `key` / `value` / `rate_limit`, `shadow_mode`, `unlimited`, `replaces`), so the
//!   ConfigMap of Istio's global rate-limit task loads unchanged; every error names file, line and
//!   field.
//! - **Matching** ([`matching`]): which limit applies to a descriptor, as envoyproxy/ratelimit
//!   decides it.
//! - **Counting** ([`gcra`], [`store`]): GCRA with the rate-limit filter's semantics (burst =
//!   `requests_per_unit`), one atomic Redis script per decision, exact across any number of
//!   service replicas; keys expire when their state does.
//! - **Decisions** ([`decide`]): the pure-ish core between protocol and store; [`grpc`] and
//!   [`http`] are thin faces, [`serve`] wires the process.
//!
//! Redis unreachable or slow is an error, counted and answered with gRPC `UNKNOWN`, so the caller
//! applies its failure mode: never an in-process count, never a silent grant or refusal.

pub mod cli;
pub mod config;
pub mod decide;
pub mod gcra;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod matching;
pub mod metrics;
pub mod serve;
pub mod store;
