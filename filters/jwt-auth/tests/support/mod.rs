//! A filter harness over `MockHost`: one configured root, requests with a fixed clock.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Decision, Env, Filter, HeaderMap, Host, LocalResponse, Root, Stream};
use meshguard_jwt_auth::{JwtAuth, JwtRoot};
use serde_json::Value;

/// The fixed clock (2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

pub struct Harness {
    pub root: JwtRoot,
    pub host: MockHost,
}

#[allow(dead_code)]
impl Harness {
    pub fn new(config: &Value) -> Self {
        let mut host = MockHost::new().with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
        let root = JwtAuth::configure(
            &mut host,
            &Env::single("edge"),
            config.to_string().as_bytes(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        Self { root, host }
    }

    /// Sends a request with these headers; returns the decision.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Decision {
        self.host.request_headers = vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            (":authority".into(), "shop.example".into()),
            (":scheme".into(), "https".into()),
        ];
        for (name, value) in headers {
            self.host
                .request_headers
                .push((name.to_string(), value.to_string()));
        }
        self.host.responses.clear();
        // Filter state belongs to one stream.
        self.host
            .properties
            .remove(meshguard_filter_core::claims::FILTER_STATE);
        Stream::new(self.root.new_http(1)).on_request_headers(&mut self.host, true)
    }

    pub fn bearer(&mut self, path: &str, token: &str) -> Decision {
        let value = format!("Bearer {token}");
        self.send("GET", path, &[("authorization", &value)])
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.host.header(HeaderMap::Request, name)
    }

    /// A counter, after flushing the batched counts.
    pub fn metric(&mut self, name: &str) -> i64 {
        self.root.flush_metrics(&mut self.host);
        self.host.metric(&format!("meshguard.jwt_auth.edge.{name}"))
    }

    pub fn advance(&mut self, seconds: u64) {
        self.host.advance(Duration::from_secs(seconds));
    }
}

/// The response of a refused request.
pub fn refused(decision: &Decision) -> &LocalResponse {
    match decision {
        Decision::Respond(response) => response,
        other => panic!("expected a local response, got {other:?}"),
    }
}

/// The JSON `reason` of a refused request.
pub fn reason(decision: &Decision) -> String {
    let body: Value = serde_json::from_slice(&refused(decision).body).unwrap();
    body["reason"].as_str().unwrap_or_default().to_string()
}

/// A header of a local response.
pub fn response_header<'a>(response: &'a LocalResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
