//! Callouts (`proxy_http_call`, and unary gRPC calls, `proxy_grpc_call`): how they are
//! answered and what was recorded.
//!
//! A gRPC call is recorded as Envoy puts it on the wire: `POST /<service>/<method>` to the
//! cluster, with `content-type: application/grpc` and the request message as the body, so the
//! same rules (cluster, path prefix) answer it. A [`CalloutAnswer::Grpc`] answers with a gRPC
//! status and a message; an HTTP answer to a gRPC call maps its status as gRPC clients do
//! (200 is OK with the body as the message, others a gRPC error), a reset is `UNAVAILABLE`,
//! and silence past the timeout is `DEADLINE_EXCEEDED`. The module gets
//! `proxy_on_grpc_receive` for OK and `proxy_on_grpc_close` with the status otherwise, as
//! Envoy calls a unary call's handler.
//!
//! Envoy sends a callout through the cluster's async client and calls the module back later.
//! Here a list of [`CalloutRule`]s decides the answer: a scripted response (optionally after a
//! virtual delay), a reset, silence (the call then times out, and like Envoy's router the
//! module gets a `504 upstream request timeout`), or a real request forwarded to a loopback URL.
//! Answers are always delivered after the dispatching callback returns, never inside it.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a matching rule answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CalloutAnswer {
    /// A scripted response.
    Respond {
        /// Status.
        status: u16,
        /// Headers (lowercase names).
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Body.
        #[serde(default)]
        body: String,
    },
    /// The stream is reset: the module gets a failed call (no headers).
    Reset,
    /// No answer: the call times out after its timeout (504), or stays pending without one.
    Timeout,
    /// A gRPC answer: `status` 0 (OK) with the serialized response `message`, or an error
    /// status. For gRPC calls only (an HTTP call gets it as a reset).
    Grpc {
        /// The gRPC status code.
        status: u32,
        /// The response message (serialized protobuf), for status 0.
        #[serde(default)]
        message: Vec<u8>,
    },
    /// Send the request for real to this loopback base URL (`http://127.0.0.1:PORT`).
    Forward {
        /// Base URL; only loopback addresses are accepted.
        url: String,
    },
}

/// A rule: which callouts it answers and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRule {
    /// Cluster the call targets.
    pub cluster: String,
    /// Path prefix (empty: any path).
    pub path_prefix: String,
    /// Virtual time before the answer arrives.
    pub delay: Duration,
    /// The answer.
    pub answer: CalloutAnswer,
    /// Answer only this many calls (then later rules apply); `None` for every call.
    pub times: Option<u32>,
}

impl CalloutRule {
    /// Answers calls to `cluster` with `status` and `body`.
    pub fn respond(cluster: impl Into<String>, status: u16, body: impl Into<String>) -> Self {
        Self::new(
            cluster,
            CalloutAnswer::Respond {
                status,
                headers: Vec::new(),
                body: body.into(),
            },
        )
    }

    /// Answers gRPC calls to `cluster` with `status` and the serialized `message`.
    pub fn grpc(cluster: impl Into<String>, status: u32, message: impl Into<Vec<u8>>) -> Self {
        Self::new(
            cluster,
            CalloutAnswer::Grpc {
                status,
                message: message.into(),
            },
        )
    }

    /// A rule with an explicit answer.
    pub fn new(cluster: impl Into<String>, answer: CalloutAnswer) -> Self {
        Self {
            cluster: cluster.into(),
            path_prefix: String::new(),
            delay: Duration::ZERO,
            answer,
            times: None,
        }
    }

    /// Restricts the rule to paths with this prefix.
    pub fn path(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = prefix.into();
        self
    }

    /// Delays the answer (virtual time).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Adds a response header (for `Respond` answers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let CalloutAnswer::Respond { headers, .. } = &mut self.answer {
            headers.push((name.into().to_ascii_lowercase(), value.into()));
        }
        self
    }

    /// Answers only the first `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    pub(crate) fn matches(&self, cluster: &str, path: &str) -> bool {
        self.cluster == cluster && path.starts_with(&self.path_prefix)
    }
}

/// Where a callout stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalloutState {
    /// Waiting for its answer.
    Pending,
    /// Answered with this status.
    Answered {
        /// Status delivered to the module.
        status: u16,
    },
    /// A gRPC call answered with this gRPC status (0: OK).
    GrpcAnswered {
        /// The gRPC status delivered to the module.
        grpc_status: u32,
    },
    /// Failed (reset): the module got a response without headers.
    Failed,
    /// The dispatching context ended first; Envoy cancels the request.
    Cancelled,
}

/// A callout the module made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Callout {
    /// The token the module got.
    pub token: u32,
    /// VM index that made it.
    pub vm: usize,
    /// Context that made it (the root context for calls from ticks).
    pub context_id: u32,
    /// Target cluster.
    pub cluster: String,
    /// Request headers (`:method`, `:path`, `:authority` included).
    pub headers: Vec<(String, String)>,
    /// Request body.
    #[serde(serialize_with = "crate::request::lossy")]
    pub body: Vec<u8>,
    /// Timeout the module asked for (0: none).
    pub timeout_ms: u64,
    /// Virtual milliseconds since start when it was made.
    pub at_ms: u64,
    /// Where it stands.
    pub state: CalloutState,
}

impl Callout {
    /// `:path` of the call.
    pub fn path(&self) -> &str {
        crate::request::header(&self.headers, ":path").unwrap_or("")
    }

    /// `:method` of the call.
    pub fn method(&self) -> &str {
        crate::request::header(&self.headers, ":method").unwrap_or("")
    }
}

/// The response handed to `proxy_on_http_call_response` (`None` headers: failure).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CallResponse {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// For failures: `proxy_get_status` reports BrokenConnection / "reset".
    pub failed: bool,
    /// For gRPC calls: the gRPC status (0: OK, `body` is the message).
    pub grpc: Option<u32>,
}

impl CallResponse {
    pub(crate) fn status(&self) -> Option<u16> {
        crate::request::header(&self.headers, ":status").and_then(|s| s.parse().ok())
    }

    pub(crate) fn respond(status: u16, headers: &[(String, String)], body: &[u8]) -> Self {
        let mut all = vec![(":status".to_string(), status.to_string())];
        all.extend(headers.iter().cloned());
        if !all.iter().any(|(k, _)| k == "content-length") {
            all.push(("content-length".to_string(), body.len().to_string()));
        }
        Self {
            headers: all,
            body: body.to_vec(),
            trailers: Vec::new(),
            failed: false,
            grpc: None,
        }
    }

    /// A gRPC answer: `status` and, for OK, the response message.
    pub(crate) fn grpc(status: u32, message: &[u8]) -> Self {
        Self {
            body: if status == 0 {
                message.to_vec()
            } else {
                Vec::new()
            },
            grpc: Some(status),
            ..Self::default()
        }
    }

    /// This answer as a gRPC call sees it (an HTTP status maps as gRPC clients map it).
    pub(crate) fn into_grpc(self) -> Self {
        if self.grpc.is_some() {
            return self;
        }
        let status = match (self.failed, self.status()) {
            (true, _) | (_, None) => 14,
            (false, Some(200)) => 0,
            (false, Some(504)) => 4,
            (false, Some(400)) => 13,
            (false, Some(401)) => 16,
            (false, Some(403)) => 7,
            (false, Some(404)) => 12,
            (false, Some(429 | 502 | 503)) => 14,
            (false, Some(_)) => 2,
        };
        Self::grpc(status, &self.body)
    }

    /// What Envoy's router answers when the call's timeout elapses.
    pub(crate) fn timeout() -> Self {
        let mut response = Self::respond(
            504,
            &[("content-type".to_string(), "text/plain".to_string())],
            b"upstream request timeout",
        );
        response.failed = false;
        response
    }

    pub(crate) fn reset() -> Self {
        Self {
            failed: true,
            ..Self::default()
        }
    }
}

/// Picks the answer for a call and consumes a use of a limited rule.
pub(crate) fn pick<'a>(
    rules: &'a [CalloutRule],
    used: &mut BTreeMap<usize, u32>,
    cluster: &str,
    path: &str,
) -> Option<&'a CalloutRule> {
    let (index, rule) = rules.iter().enumerate().find(|(index, rule)| {
        rule.matches(cluster, path)
            && rule
                .times
                .is_none_or(|n| used.get(index).copied().unwrap_or(0) < n)
    })?;
    *used.entry(index).or_default() += 1;
    Some(rule)
}

/// Performs a forwarded callout against a loopback URL (blocking, bounded by the timeout).
pub(crate) fn forward(
    base: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> CallResponse {
    let Some(rest) = base.strip_prefix("http://") else {
        return CallResponse::reset();
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[") && !host.starts_with("127.") {
        return CallResponse::reset();
    }
    let path = crate::request::header(headers, ":path").unwrap_or("/");
    let method = crate::request::header(headers, ":method").unwrap_or("GET");
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let timeout = if timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        timeout
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let mut request = agent.request(method, &url);
    for (name, value) in headers.iter().filter(|(k, _)| !k.starts_with(':')) {
        request = request.set(name, value);
    }
    let result = if body.is_empty() {
        request.call()
    } else {
        request.send_bytes(body)
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(_) => return CallResponse::reset(),
    };
    let status = response.status();
    let mut response_headers = Vec::new();
    for name in response.headers_names() {
        for value in response.all(&name) {
            response_headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
    }
    let mut body = Vec::new();
    if std::io::Read::read_to_end(&mut response.into_reader(), &mut body).is_err() {
        return CallResponse::reset();
    }
    response_headers.retain(|(k, _)| k != "content-length");
    CallResponse::respond(status, &response_headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_rules_give_way_to_later_ones() {
        let rules = vec![
            CalloutRule::respond("auth", 500, "").times(1),
            CalloutRule::respond("auth", 200, "ok"),
        ];
        let mut used = BTreeMap::new();
        let first = pick(&rules, &mut used, "auth", "/x").unwrap();
        let second = pick(&rules, &mut used, "auth", "/x").unwrap();
        assert!(matches!(
            first.answer,
            CalloutAnswer::Respond { status: 500, .. }
        ));
        assert!(matches!(
            second.answer,
            CalloutAnswer::Respond { status: 200, .. }
        ));
        assert!(pick(&rules, &mut used, "other", "/x").is_none());
    }

    #[test]
    fn forwarding_refuses_non_loopback_targets() {
        let response = forward("http://10.0.0.1:80", &[], b"", Duration::from_millis(10));
        assert!(response.failed);
        let response = forward("https://127.0.0.1:1", &[], b"", Duration::from_millis(10));
        assert!(response.failed);
    }

    #[test]
    fn timeouts_look_like_envoys_router_reply() {
        let response = CallResponse::timeout();
        assert_eq!(response.status(), Some(504));
        assert_eq!(response.body, b"upstream request timeout");
    }
}
