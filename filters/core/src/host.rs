//! The seam between a filter and whatever runs it (Envoy through proxy-wasm, the wasmtime test
//! host, or a mock).
//!
//! One small object-safe trait: filters take `&mut dyn Host`, so the same decision code runs
//! under every host without generics leaking into it.

use std::time::SystemTime;

/// Which header map a header call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMap {
    /// Headers of the downstream request, including pseudo-headers (`:path`, `:authority`...).
    Request,
    /// Headers of the upstream (or locally generated) response.
    Response,
}

/// Log levels, matching proxy-wasm's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very verbose tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that the filter handled.
    Warn,
    /// A failure, such as rejected configuration.
    Error,
    /// The filter cannot go on (panics are logged at this level).
    Critical,
}

/// Kinds of metric a filter can define; they surface as Envoy stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of recorded values.
    Histogram,
}

/// Why a shared-data write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SharedDataError {
    /// The compare-and-swap token was stale: someone else wrote first; re-read and retry.
    #[error("shared data changed since it was read (CAS mismatch)")]
    CasMismatch,
    /// The host refused the write for another reason.
    #[error("the host refused the shared data operation")]
    Refused,
}

/// Everything a filter may ask of its host.
pub trait Host {
    /// The host's wall clock (Envoy's dispatcher time; virtual in tests).
    fn now(&self) -> SystemTime;

    /// Writes a log line at `level`.
    fn log(&self, level: LogLevel, message: &str);

    /// The value of header `name` (lowercase) in `map`, if present.
    fn header(&self, map: HeaderMap, name: &str) -> Option<String>;

    /// All headers of `map` in order.
    fn headers(&self, map: HeaderMap) -> Vec<(String, String)>;

    /// Replaces header `name` in `map`, or removes it when `value` is `None`.
    fn set_header(&mut self, map: HeaderMap, name: &str, value: Option<&str>);

    /// Appends a header to `map` (keeping existing values of the same name).
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str);

    /// A host property such as `["source", "address"]` or `["cluster_name"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;

    /// Sets a property of the current stream. In Envoy a one-segment path `name` becomes the
    /// filter state `wasm.<name>`, which later filters of the same stream read back with
    /// [`Host::property`] and no client can set. Returns whether the host stored it.
    fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool;

    /// Bytes `start..start + max` of the request body buffered so far (in `on_request_body`),
    /// `None` when the host has none to give.
    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>>;

    /// Reads shared data (shared by every VM of one plugin across Envoy workers): the value and
    /// its CAS token, or `None` if the key was never set.
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)>;

    /// Writes shared data. With `cas = Some(token)` the write only happens if the key has not
    /// changed since the read that returned `token`.
    fn shared_set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError>;

    /// Answers the downstream locally with `response`; the request does not go upstream.
    fn send_response(&mut self, response: &crate::LocalResponse);

    /// Starts an HTTP call to an upstream cluster; the answer arrives later in a
    /// `on_call_response` callback with the returned token.
    fn dispatch(&mut self, call: &crate::HttpCall) -> Option<u32>;

    /// Starts a unary gRPC call; the answer arrives later in an `on_call_response` callback
    /// with the returned token, as a [`crate::CallResponse::grpc`]. `None` when the host
    /// refused the call (an unknown cluster): nothing will answer. Hosts without gRPC refuse.
    fn dispatch_grpc(&mut self, _call: &crate::GrpcCall) -> Option<u32> {
        None
    }

    /// Defines (or looks up) a metric and returns its id.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;

    /// Adds `delta` to a counter or gauge.
    fn increment_metric(&mut self, id: u32, delta: i64);

    /// Sets a gauge or records a histogram value.
    fn record_metric(&mut self, id: u32, value: u64);

    /// Calls a host foreign function (for example Envoy's `verify_signature`). `None` when the
    /// host does not offer it.
    fn foreign_call(&mut self, name: &str, argument: &[u8]) -> Option<Vec<u8>>;

    /// 64 random bits from the host's entropy source.
    fn random_u64(&mut self) -> u64;
}
