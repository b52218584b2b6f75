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

/// A unary gRPC call to an upstream cluster (proxy-wasm's `proxy_grpc_call`). Envoy adds the
/// gRPC framing and HTTP/2; the filter gives the serialized request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// Envoy cluster name (an HTTP/2 cluster).
    pub cluster: String,
    /// Fully qualified service, such as `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: String,
    /// Method, such as `ShouldRateLimit`.
    pub method: String,
    /// The serialized request message.
    pub message: Vec<u8>,
    /// How long the host waits for the answer (Envoy answers `DEADLINE_EXCEEDED` after it).
    pub timeout: Duration,
}

/// The gRPC status of an answer, as [`CallResponse::grpc`] records it.
pub const GRPC_STATUS: &str = "grpc-status";
/// The gRPC status message of a failed answer.
pub const GRPC_MESSAGE: &str = "grpc-message";

/// The answer to an [`HttpCall`] or a [`GrpcCall`]. For an HTTP call, `None` in the callback
/// means the call failed (reset, timeout, no healthy upstream). A gRPC call always gets an
/// answer: its status is the `grpc-status` header ([`CallResponse::grpc_status`], 0 for OK,
/// `DEADLINE_EXCEEDED` 4 after the timeout, `UNAVAILABLE` 14 when the cluster has no healthy
/// host) and the body is the response message, so both kinds of callout pause and resume a
/// request through the same callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallResponse {
    /// Response headers, including `:status`.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl CallResponse {
    /// The answer to a gRPC call: `status` (0: OK), its message, and the response message.
    pub fn grpc(status: u32, message: &str, body: Vec<u8>) -> Self {
        let mut headers = vec![(GRPC_STATUS.to_string(), status.to_string())];
        if !message.is_empty() {
            headers.push((GRPC_MESSAGE.to_string(), message.to_string()));
        }
        Self { headers, body }
    }

    /// The gRPC status of a gRPC call's answer (`None` for an HTTP answer).
    pub fn grpc_status(&self) -> Option<u32> {
        self.headers
            .iter()
            .find(|(name, _)| name == GRPC_STATUS)
            .and_then(|(_, value)| value.parse().ok())
    }

    /// The gRPC status message, if the answer carried one.
    pub fn grpc_message(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == GRPC_MESSAGE)
            .map(|(_, value)| value.as_str())
    }

    /// The numeric `:status`, if present and valid.
    pub fn status(&self) -> Option<u16> {
        self.headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse().ok())
    }
}
