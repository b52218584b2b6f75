//! What goes into the host (a downstream request, an upstream's answer) and what comes out (an
//! [`Outcome`]: what the filter did to the request and what the client got back).
//!
//! Outcomes are plain data with `Serialize`, so the CLI prints them as JSON and tests compare
//! fields directly.

use std::collections::BTreeMap;

use crate::callout::Callout;
use crate::options::{LogLevel, PropertyValue};

/// A downstream request as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `:method`.
    pub method: String,
    /// `:path` (with query).
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// `:scheme`.
    pub scheme: String,
    /// Other headers in order (names are lowercased on the way in, as HTTP/2 and Envoy do).
    pub headers: Vec<(String, String)>,
    /// Body chunks as they arrive (empty: no body).
    pub body: Vec<Vec<u8>>,
    /// Trailers (empty: none).
    pub trailers: Vec<(String, String)>,
    /// The client address (`source.address`).
    pub source: String,
    /// Per-request property overrides.
    pub properties: BTreeMap<String, PropertyValue>,
    /// How the upstream answers this request (default: the cluster's answer, or an echo).
    pub upstream: Option<UpstreamResponse>,
}

impl Request {
    /// A request with `method` and `path` and no headers.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            authority: "meshguard.local".to_string(),
            scheme: "http".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
            source: "127.0.0.1:50000".to_string(),
            properties: BTreeMap::new(),
            upstream: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// `POST path` with a body.
    pub fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body (one chunk).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body = if body.is_empty() {
            Vec::new()
        } else {
            vec![body]
        };
        self
    }

    /// Sets the body as several chunks.
    pub fn body_chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body = chunks;
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.trailers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets `:authority`.
    pub fn authority(mut self, authority: impl Into<String>) -> Self {
        self.authority = authority.into();
        self
    }

    /// Sets the client address.
    pub fn source(mut self, address: impl Into<String>) -> Self {
        self.source = address.into();
        self
    }

    /// Sets a per-request property.
    pub fn property(mut self, path: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(path.into(), value.into());
        self
    }

    /// Sets the upstream's answer.
    pub fn upstream(mut self, response: UpstreamResponse) -> Self {
        self.upstream = Some(response);
        self
    }

    /// The request headers as Envoy's connection manager hands them to the first filter.
    pub(crate) fn initial_headers(&self, request_id: Option<String>) -> Vec<(String, String)> {
        let mut headers = vec![
            (":authority".to_string(), self.authority.clone()),
            (":path".to_string(), self.path.clone()),
            (":method".to_string(), self.method.clone()),
            (":scheme".to_string(), self.scheme.clone()),
        ];
        headers.extend(self.headers.iter().cloned());
        if let Some(id) = request_id {
            if !headers.iter().any(|(k, _)| k == "x-forwarded-proto") {
                headers.push(("x-forwarded-proto".to_string(), self.scheme.clone()));
            }
            if !headers.iter().any(|(k, _)| k == "x-request-id") {
                headers.push(("x-request-id".to_string(), id));
            }
        }
        headers
    }
}

/// An upstream's (or a scripted callout's) answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamResponse {
    /// Status code (default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// Headers (lowercase names).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body; `None` answers with a JSON echo of the request, like the testkit upstream.
    #[serde(default)]
    pub body: Option<String>,
    /// Trailers.
    #[serde(default)]
    pub trailers: Vec<(String, String)>,
    /// How long the upstream takes to answer (virtual time; `250ms`, `2s`).
    #[serde(default, with = "crate::options::duration_text")]
    pub delay: std::time::Duration,
}

fn ok() -> u16 {
    200
}

impl Default for UpstreamResponse {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: None,
            trailers: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }
}

impl UpstreamResponse {
    /// An answer with `status` and the echo body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// A 200 with a fixed body.
    pub fn body(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: Some(body.into()),
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Makes the upstream take `delay` (virtual time) to answer.
    pub fn delayed(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// How a stream ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The request reached the upstream and its response went back to the client.
    Forwarded,
    /// The filter answered locally (or the router did: no route).
    LocalReply,
    /// The filter reset the stream; the client got no response.
    Reset,
    /// The VM failed (trap, fuel, memory): Envoy answers 503 and fails the VM.
    VmFailed,
    /// The stream is paused, waiting for a callout, a tick or a `proxy_continue_stream`.
    Pending,
}

/// The request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamRequest {
    /// The cluster the route picked.
    pub cluster: String,
    /// Headers after every filter change.
    pub headers: Vec<(String, String)>,
    /// Body.
    #[serde(serialize_with = "lossy")]
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Vec<(String, String)>,
}

/// The response the client received.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (including `:status`) after every filter change.
    pub headers: Vec<(String, String)>,
    /// Body.
    #[serde(serialize_with = "lossy")]
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A local response sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// The headers the filter added.
    pub headers: Vec<(String, String)>,
    /// Body.
    #[serde(serialize_with = "lossy")]
    pub body: Vec<u8>,
    /// Response code details (`wasm_fail_stream`, `route_not_found` for host-made replies).
    pub details: String,
    /// The callback in which it was sent (`on_request_headers`, `on_http_call_response`...).
    pub sent_in: String,
}

/// A change the filter made to the request headers, from the client's version to the
/// upstream's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum HeaderChange {
    /// A header the client did not send.
    Added {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// A client header that did not reach the upstream.
    Removed {
        /// Name.
        name: String,
        /// Value the client sent.
        value: String,
    },
    /// A header whose value changed.
    Changed {
        /// Name.
        name: String,
        /// The client's value.
        from: String,
        /// The upstream's value.
        to: String,
    },
}

/// One `proxy_log` line (or WASI stdout/stderr write).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Message.
    pub message: String,
    /// VM index (0 is the main thread when it is on).
    pub vm: usize,
    /// Context that was active.
    pub context_id: u32,
    /// Virtual milliseconds since the plugin started.
    pub at_ms: u64,
}

/// Everything observable about one stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// The stream's id in this plugin.
    pub stream: u64,
    /// The VM (worker) that served it.
    pub vm: usize,
    /// Its context id in that VM.
    pub context_id: u32,
    /// How it ended.
    pub verdict: Verdict,
    /// What the filter was waiting for when still pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_in: Option<String>,
    /// Request headers as the filter first saw them.
    pub request_headers: Vec<(String, String)>,
    /// The request as the upstream received it (when forwarded).
    pub upstream: Option<UpstreamRequest>,
    /// The response the client received.
    pub response: Option<Response>,
    /// The filter's local reply, if it sent one.
    pub local_reply: Option<LocalReply>,
    /// Request header changes between the client and the upstream.
    pub header_changes: Vec<HeaderChange>,
    /// HTTP callouts the stream made.
    pub callouts: Vec<Callout>,
    /// Log lines emitted by the stream's context.
    pub logs: Vec<LogLine>,
    /// Why the VM failed, when it did.
    pub vm_failure: Option<String>,
}

impl Outcome {
    /// The status the client got (`None`: pending or reset).
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// Whether the request reached the upstream.
    pub fn forwarded(&self) -> bool {
        self.upstream.is_some()
    }

    /// A header the upstream received.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream
            .as_ref()
            .and_then(|u| header(&u.headers, name))
    }

    /// A header of the client's response.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response.as_ref().and_then(|r| r.header(name))
    }

    /// The response body as text (empty when there is none).
    pub fn body_text(&self) -> String {
        self.response
            .as_ref()
            .map(Response::text)
            .unwrap_or_default()
    }
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Computes header changes from the client's headers to the upstream's.
pub(crate) fn diff_headers(
    before: &[(String, String)],
    after: &[(String, String)],
) -> Vec<HeaderChange> {
    let mut changes = Vec::new();
    for (name, value) in after {
        match header(before, name) {
            None => changes.push(HeaderChange::Added {
                name: name.clone(),
                value: value.clone(),
            }),
            Some(old) if old != value && header(after, name) == Some(value.as_str()) => changes
                .push(HeaderChange::Changed {
                    name: name.clone(),
                    from: old.to_string(),
                    to: value.clone(),
                }),
            Some(_) => {}
        }
    }
    for (name, value) in before {
        if header(after, name).is_none() {
            changes.push(HeaderChange::Removed {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    changes
}

pub(crate) fn lossy<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn header_changes_cover_add_remove_change() {
        let before = h(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = h(&[("a", "1"), ("b", "20"), ("d", "4")]);
        let changes = diff_headers(&before, &after);
        assert_eq!(
            changes,
            vec![
                HeaderChange::Changed {
                    name: "b".into(),
                    from: "2".into(),
                    to: "20".into()
                },
                HeaderChange::Added {
                    name: "d".into(),
                    value: "4".into()
                },
                HeaderChange::Removed {
                    name: "c".into(),
                    value: "3".into()
                },
            ]
        );
    }

    #[test]
    fn envoy_adds_forwarding_headers_unless_the_client_sent_them() {
        let request = Request::get("/x").header("X-Request-Id", "mine");
        let headers = request.initial_headers(Some("generated".into()));
        assert_eq!(header(&headers, "x-request-id"), Some("mine"));
        assert_eq!(header(&headers, "x-forwarded-proto"), Some("http"));
        assert_eq!(headers[0].0, ":authority");
    }
}
