//! The two traits a filter implements: one root (per plugin and worker) and one per HTTP stream.

use std::time::Duration;

use crate::{CallResponse, ConfigError, Decision, Host};

/// The per-plugin part of a filter: holds validated configuration and any worker-wide state,
/// and creates one [`HttpFilter`] per stream.
pub trait RootFilter: 'static {
    /// The per-stream filter type.
    type Http: HttpFilter;

    /// Parses and validates the plugin configuration. On error the shim logs the message (which
    /// names the offending field) and rejects the configuration, so Envoy refuses it.
    fn configure(&mut self, host: &mut dyn Host, config: &[u8]) -> Result<(), ConfigError>;

    /// How often [`RootFilter::on_tick`] should run; `None` for never.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    /// Periodic work (every root context ticks: the main thread's and each worker's).
    fn on_tick(&mut self, _host: &mut dyn Host) {}

    /// The answer to an HTTP call this root dispatched (`None`: the call failed).
    fn on_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: Option<CallResponse>,
    ) {
    }

    /// A filter for a new HTTP stream. Only called after a successful `configure`.
    fn new_http(&self, context_id: u32) -> Self::Http;
}

/// The stream callbacks, beyond request headers, that an [`HttpFilter`] implements.
///
/// Envoy makes no call into the VM for a callback the module does not export, and each call
/// it skips is work saved on every request (about 0.5-1 µs of Envoy CPU here, measured with
/// `cargo xtask bench`). The shim records this in the module and `cargo xtask build-filters`
/// removes the exports of the callbacks a filter leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCallbacks {
    /// [`HttpFilter::on_response_headers`] is implemented.
    pub response_headers: bool,
    /// [`HttpFilter::on_log`] is implemented.
    pub log: bool,
    /// [`HttpFilter::on_request_body`] is implemented (Envoy calls it for every body chunk).
    pub request_body: bool,
}

impl StreamCallbacks {
    /// Every callback: the safe default, for a filter that has not said otherwise.
    pub const ALL: Self = Self {
        response_headers: true,
        log: true,
        request_body: true,
    };
    /// Request headers only.
    pub const REQUEST_ONLY: Self = Self {
        response_headers: false,
        log: false,
        request_body: false,
    };
}

/// The per-stream part of a filter.
pub trait HttpFilter: 'static {
    /// The optional callbacks this filter implements. A callback left out here is never
    /// called in Envoy (its export is removed from the module), so a filter that overrides
    /// [`HttpFilter::on_response_headers`], [`HttpFilter::on_request_body`] or
    /// [`HttpFilter::on_log`] must list it.
    const CALLBACKS: StreamCallbacks = StreamCallbacks::ALL;

    /// Request headers arrived.
    fn on_request_headers(&mut self, _host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        Decision::Continue
    }

    /// A chunk of the request body arrived; `body_size` is what Envoy holds buffered so far
    /// (read it with [`Host::request_body`]). `Pause` buffers (Envoy's
    /// `StopIterationAndBuffer`), `Continue` lets the request go on with what is buffered.
    fn on_request_body(
        &mut self,
        _host: &mut dyn Host,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Decision {
        Decision::Continue
    }

    /// Response headers arrived (from the upstream or a local reply).
    fn on_response_headers(&mut self, _host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        Decision::Continue
    }

    /// The stream ended (completed, reset or timed out); used to record outcomes.
    fn on_log(&mut self, _host: &mut dyn Host) {}

    /// The answer to an HTTP call this stream dispatched while paused. `Continue` resumes the
    /// request, `Respond` answers locally.
    fn on_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: Option<CallResponse>,
    ) -> Decision {
        Decision::Continue
    }
}
