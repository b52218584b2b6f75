//! An embedded proxy-wasm host on wasmtime: runs the filter modules this workspace builds the
//! way Envoy runs them, but in-process, deterministically, and with a clock that only moves
//! when a test says so.
//!
//! # Why
//!
//! Rate limits and circuit breakers depend on time, and Envoy's clock cannot be moved; a real
//! Envoy also takes seconds to start. This host gives the middle layer of the test pyramid
//! (between the filters' pure decision cores and the end-to-end tests in real Envoy): the built
//! `.wasm` module, the real proxy-wasm SDK and shim, exercised in milliseconds. The same engine
//! powers `meshguard filter run / test / validate`, so operators can try a configuration
//! before it reaches a mesh.
//!
//! # Model
//!
//! * [`WasmModule`] compiles a module once per process (cache keyed by SHA-256) and checks it is
//!   a proxy-wasm module before anything runs.
//! * [`Plugin::start`] creates one VM per worker plus the main thread's (as Envoy does), runs
//!   `_initialize`, `proxy_on_vm_start` and `proxy_on_configure` on each; a rejected
//!   configuration is an error carrying the filter's own message.
//! * [`Plugin::send`] runs a [`Request`] through the phases (headers, body chunks, trailers,
//!   the router, the upstream's answer, response phases, `on_log`/`on_done`/`on_delete`) and
//!   returns an [`Outcome`]: headers the upstream saw, the client's response, local reply,
//!   callouts, logs.
//! * [`Plugin::advance`] moves the virtual clock: ticks fire on every VM's root context,
//!   delayed callout answers arrive, callouts time out.
//! * Shared data (with CAS) and queues are shared by all VMs of a plugin, like Envoy workers.
//!   Stats are process-wide by name. Foreign functions are pluggable; Envoy's
//!   `verify_signature` is built in ([`foreign`]).
//! * Every callback runs with a fuel budget and the VM with a memory limit: a looping or
//!   runaway module fails its call with a clear message, and the VM is marked failed (later
//!   requests get Envoy's 503 `wasm_fail_stream`).
//! * Hostcalls this host does not implement (gRPC streams, TCP streams) answer `Unimplemented`
//!   (WASI: `ENOSYS`) and are listed in [`Plugin::reports`].
//!
//! # Fidelity to Envoy, and known limits
//!
//! Status codes and map availability follow Envoy's `context.cc`: a header map is readable
//! only while its callback runs or while the filter holds the stream (reading request headers
//! in `on_response_headers` is `BadArgument`, which the Rust SDK turns into a panic — as in
//! Envoy); local replies sent while decoding pass through the filter's own
//! `on_response_headers`; continuing, local replies and callout answers are applied after the
//! callback returns. The fidelity suite (`filters/host/tests/fidelity.rs`, through the
//! meshguard-testkit Envoy harness) runs the same scenarios here and in Envoy 1.40 and compares
//! status, the cluster reached, upstream headers, response headers and local replies. Known differences:
//!
//! * Headers added by Envoy's router and codecs (`x-envoy-expected-rq-timeout-ms`,
//!   `x-forwarded-for`, `date`, `server`, `content-length` on empty replies) are not added here;
//!   the connection manager's `x-forwarded-proto` and `x-request-id` are (the id comes from the
//!   seeded random source, so it differs from Envoy's).
//! * The route table is prefix + exact-header matching only; streams are processed one phase at
//!   a time (the upstream answers after the whole request body), not as concurrent byte streams.
//! * Envoy's workers run in parallel; here VMs run one at a time, so races between workers are
//!   exercised by interleaving requests explicitly (`Plugin::begin` / `send_to`), not by chance.
//! * Properties cover the common attributes (`request.*`, `response.code`, `source.*`,
//!   `destination.*`, `cluster_name`, `plugin_*`); others (`node`, `upstream.*`, metadata) come
//!   from [`PluginOptions::properties`].
//! * gRPC calls and streams, TCP (network filter) callbacks, and `proxy_on_foreign_function`
//!   callbacks are not implemented.

pub mod abi;
pub mod callout;
mod driver;
pub mod error;
pub mod foreign;
mod hostcalls;
pub mod module;
pub mod options;
pub mod plugin;
mod properties;
pub mod request;
mod stream;
mod vm;
mod world;

pub use callout::{Callout, CalloutAnswer, CalloutRule, CalloutState};
pub use error::HostError;
pub use foreign::ForeignFunctions;
pub use module::{CacheStats, WasmModule, cache_stats};
pub use options::{LogLevel, PluginOptions, PropertyValue, Route, parse_duration};
pub use plugin::Plugin;
pub use request::{
    HeaderChange, LocalReply, LogLine, Outcome, Request, Response, UpstreamRequest,
    UpstreamResponse, Verdict,
};
pub use world::Metric;
