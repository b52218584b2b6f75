//! The proxy-wasm adapter: the only meshguard crate that depends on the proxy-wasm SDK.
//!
//! It implements [`Host`] on top of the SDK's hostcalls, wraps a [`Filter`] (its [`Root`] and
//! [`HttpFilter`]) in proxy-wasm contexts, each stream with its own request model
//! ([`Stream`]), turns [`Decision`]s into host actions, installs a
//! panic hook that logs at critical (a panic aborts the wasm VM, and Envoy then fails every
//! later request on that worker, so the log line is the only trace), and exports one filter per
//! module with [`export_filter!`], recording in the module which SDK exports the filter never
//! needs ([`exports`]).

use std::time::SystemTime;

use meshguard_filter_core::{
    CallResponse, Decision, Env, Filter, GrpcCall, HeaderMap, Host, HttpCall, HttpFilter,
    LocalResponse, LogLevel, MetricKind, Root, SharedDataError, Stream,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{self, Action, BufferType, ContextType, MapType, MetricType, Status};

pub mod exports;

#[doc(hidden)]
pub use proxy_wasm;

/// Exports the [`Filter`] type `$filter` as the module's only filter.
///
/// ```text
/// meshguard_filter_shim::export_filter!(meshguard_rate_limit::RateLimit);
/// ```
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        // An anonymous const keeps the generated `_initialize` out of the crate's public docs
        // while `#[no_mangle]` still exports it.
        #[allow(missing_docs)]
        const _: () = {
            $crate::proxy_wasm::main! {{
                $crate::install::<$filter>();
            }}
            // The exports this filter never needs, for `cargo xtask build-filters` to remove
            // (see the `exports` module).
            const CALLBACKS: $crate::exports::StreamCallbacks =
                $crate::exports::callbacks_of::<$filter>();
            #[allow(unsafe_code)]
            #[used]
            #[unsafe(link_section = "meshguard.unused_exports")]
            static UNUSED_EXPORTS: [u8; $crate::exports::unused_len(CALLBACKS)] =
                $crate::exports::unused_names(CALLBACKS);
        };
    };
}

/// Registers the filter's root contexts and the panic hook. Called from the module's
/// `_initialize` by [`export_filter!`].
pub fn install<F: Filter>() {
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(
            types::LogLevel::Critical,
            &format!("meshguard filter panicked (the VM is now unusable): {info}"),
        );
    }));
    proxy_wasm::set_log_level(types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(RootAdapter::<F> {
            root: None,
            host: ProxyHost,
        })
    });
}

// === impl RootAdapter ===

/// A plugin's root context: unconfigured until `on_configure` accepts the configuration, and
/// then holding the filter's configured [`Root`].
struct RootAdapter<F: Filter> {
    root: Option<F::Root>,
    host: ProxyHost,
}

impl<F: Filter> Context for RootAdapter<F> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        let response = call_response(body);
        if let Some(root) = &mut self.root {
            root.on_call_response(&mut self.host, token, response);
        }
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let response = grpc_response(status, size);
        if let Some(root) = &mut self.root {
            root.on_call_response(&mut self.host, token, Some(response));
        }
    }
}

impl<F: Filter> RootContext for RootAdapter<F> {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let plugin = self
            .host
            .property(&["plugin_name"])
            .map(|name| String::from_utf8_lossy(&name).into_owned())
            .unwrap_or_default();
        match F::configure(&mut self.host, &Env::single(plugin), &config) {
            Ok(root) => {
                if let Some(period) = root.tick_period() {
                    let _ = hostcalls::set_tick_period(period);
                }
                self.root = Some(root);
                true
            }
            Err(err) => {
                self.host.log(
                    LogLevel::Error,
                    &format!("meshguard: rejected configuration: {err}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(root) = &mut self.root {
            root.on_tick(&mut self.host);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The only place "not configured" exists: such a plugin never runs its filter, it
        // refuses the stream (returning `None` would panic the SDK and with it the VM).
        Some(match &self.root {
            Some(root) => Box::new(HttpAdapter {
                stream: Stream::new(root.new_http(context_id)),
                host: ProxyHost,
            }),
            None => Box::new(Refusing),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

// === impl Refusing ===

/// The stream of a plugin without an accepted configuration: answered with a local 503.
struct Refusing;

impl Context for Refusing {}

impl HttpContext for Refusing {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        ProxyHost.send_response(
            &LocalResponse::new(503, "meshguard: the filter has no valid configuration\n")
                .with_header("content-type", "text/plain; charset=utf-8"),
        );
        Action::Pause
    }
}

// === impl HttpAdapter ===

struct HttpAdapter<H> {
    stream: Stream<H>,
    host: ProxyHost,
}

impl<H: HttpFilter> HttpAdapter<H> {
    fn act(&mut self, decision: Decision) -> Action {
        match decision {
            Decision::Continue => Action::Continue,
            Decision::Pause => Action::Pause,
            Decision::Respond(response) => {
                self.host.send_response(&response);
                Action::Pause
            }
        }
    }
}

impl<H: HttpFilter> Context for HttpAdapter<H> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        let response = call_response(body);
        self.answered(token, response);
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let response = grpc_response(status, size);
        self.answered(token, Some(response));
    }
}

impl<H: HttpFilter> HttpAdapter<H> {
    /// A callout this stream made answered: the filter decides whether the request resumes.
    fn answered(&mut self, token: u32, response: Option<CallResponse>) {
        match self
            .stream
            .on_call_response(&mut self.host, token, response)
        {
            Decision::Continue => {
                let _ = hostcalls::resume_http_request();
            }
            Decision::Pause => {}
            Decision::Respond(response) => self.host.send_response(&response),
        }
    }
}

impl<H: HttpFilter> HttpContext for HttpAdapter<H> {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let decision = self
            .stream
            .on_request_headers(&mut self.host, end_of_stream);
        self.act(decision)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let decision = self
            .stream
            .on_request_body(&mut self.host, body_size, end_of_stream);
        self.act(decision)
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let decision = self
            .stream
            .on_response_headers(&mut self.host, end_of_stream);
        self.act(decision)
    }

    fn on_log(&mut self) {
        self.stream.on_log(&mut self.host);
    }
}

/// Collects the current HTTP call response; `None` when the call failed (Envoy reports a
/// failed call as a response without headers).
/// Header values as text: invalid UTF-8 (untrusted clients and upstreams send anything) is
/// replaced with U+FFFD instead of failing.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Collects the current gRPC call answer: on success (status 0, `on_grpc_receive`) the
/// response message; on failure (`on_grpc_close`) the status alone. Envoy's status message
/// is not read: the SDK's reader unwraps its UTF-8 (a panic on a server's odd message), and
/// the code says what a filter needs.
fn grpc_response(status: u32, size: usize) -> CallResponse {
    let body = if status == 0 {
        hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    CallResponse::grpc(status, "", body)
}

fn call_response(body_size: usize) -> Option<CallResponse> {
    let headers: Vec<(String, String)> = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, lossy(value)))
        .collect();
    if headers.is_empty() {
        return None;
    }
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    Some(CallResponse { headers, body })
}

// === impl ProxyHost ===

/// [`Host`] over proxy-wasm hostcalls. Stateless: the SDK sets the effective context before each
/// callback, so hostcalls address the right stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyHost;

fn map_type(map: HeaderMap) -> MapType {
    match map {
        HeaderMap::Request => MapType::HttpRequestHeaders,
        HeaderMap::Response => MapType::HttpResponseHeaders,
    }
}

impl Host for ProxyHost {
    fn now(&self) -> SystemTime {
        hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => types::LogLevel::Trace,
            LogLevel::Debug => types::LogLevel::Debug,
            LogLevel::Info => types::LogLevel::Info,
            LogLevel::Warn => types::LogLevel::Warn,
            LogLevel::Error => types::LogLevel::Error,
            LogLevel::Critical => types::LogLevel::Critical,
        };
        let _ = hostcalls::log(level, message);
    }

    fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        // Bytes, not the SDK's `get_map_value`: that unwraps UTF-8 and one client header with
        // invalid bytes would panic the VM and fail every later request on the worker.
        hostcalls::get_map_value_bytes(map_type(map), name)
            .ok()
            .flatten()
            .map(lossy)
    }

    fn headers(&self, map: HeaderMap) -> Vec<(String, String)> {
        hostcalls::get_map_bytes(map_type(map))
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name, lossy(value)))
            .collect()
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: Option<&str>) {
        let _ = hostcalls::set_map_value(map_type(map), name, value);
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(map_type(map), name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_property(&mut self, path: &[&str], value: &[u8]) -> bool {
        hostcalls::set_property(path.to_vec(), Some(value)).is_ok()
    }

    fn request_body(&self, start: usize, max: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, start, max)
            .ok()
            .flatten()
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            _ => None,
        }
    }

    fn shared_set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SharedDataError::CasMismatch),
            Err(_) => Err(SharedDataError::Refused),
        }
    }

    fn send_response(&mut self, response: &LocalResponse) {
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!response.body.is_empty()).then_some(response.body.as_slice());
        let _ = hostcalls::send_http_response(response.status, headers, body);
    }

    fn dispatch(&mut self, call: &HttpCall) -> Option<u32> {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            call.body.as_deref(),
            Vec::new(),
            call.timeout,
        )
        .ok()
    }

    /// The cluster is given by name, as Envoy's own filters name it; Envoy answers an unknown
    /// cluster with `ParseFailure`, which the SDK returns as an error (no panic).
    fn dispatch_grpc(&mut self, call: &GrpcCall) -> Option<u32> {
        hostcalls::dispatch_grpc_call(
            &call.cluster,
            &call.service,
            &call.method,
            Vec::new(),
            Some(&call.message),
            call.timeout,
        )
        .ok()
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn foreign_call(&mut self, name: &str, argument: &[u8]) -> Option<Vec<u8>> {
        hostcalls::call_foreign_function(name, Some(argument))
            .ok()
            .flatten()
    }

    fn random_u64(&mut self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from WASI `random_get` once per thread and then incremented;
        // hashing the time with it gives independent-looking 64-bit values cheaply.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            self.now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.finish()
    }
}
