//! Decisions are data: a filter says what should happen, the shim makes it happen.

use std::time::Duration;

/// What an HTTP filter wants done with the stream at this point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the request (or response) go on to the next filter.
    Continue,
    /// Answer the downstream locally; the request does not reach the upstream.
    Respond(LocalResponse),
    /// Hold the stream until an asynchronous callback (such as an HTTP call response) resumes it.
    Pause,
}

/// A locally generated response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status code.
    pub status: u32,
    /// Headers to send (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// A response with a status and a body and no extra headers.
    pub fn new(status: u32, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTP call to an upstream cluster (an Envoy "callout").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Envoy cluster name.
    pub cluster: String,
    /// Request headers, including `:method`, `:path` and `:authority`.
    pub headers: Vec<(String, String)>,
    /// Optional body.
    pub body: Option<Vec<u8>>,
    /// How long the host waits for the answer.
    pub timeout: Duration,
}

/// The answer to an [`HttpCall`]; `None` in the callback means the call failed (reset, timeout,
/// no healthy upstream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallResponse {
    /// Response headers, including `:status`.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl CallResponse {
    /// The numeric `:status`, if present and valid.
    pub fn status(&self) -> Option<u16> {
        self.headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse().ok())
    }
}
