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

/// The per-stream part of a filter.
pub trait HttpFilter: 'static {
    /// Request headers arrived.
    fn on_request_headers(&mut self, _host: &mut dyn Host, _end_of_stream: bool) -> Decision {
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
