//! Unit tests of the decision core against [`MockHost`]: a fake clock, and several mocks sharing
//! one shared-data store to stand for Envoy workers.

mod config;
mod eviction;
mod gcra;
mod global;
mod headers;
mod hostcalls;
mod keys;
mod workers;

use std::time::Duration;

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::{Decision, Env, Filter, LocalResponse, Root, Stream};

use crate::{RateLimit, RateLimitRoot};

/// The plugin name the tests configure (stats are `meshguard.rate_limit.rate-limit.*`).
pub const PLUGIN: &str = "rate-limit";

/// One simulated Envoy worker: a root context and its host.
pub struct Worker {
    pub root: RateLimitRoot,
    pub host: MockHost,
}

/// What a request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Admitted; the response headers the filter added.
    Admitted(Vec<(String, String)>),
    /// Denied with this local response.
    Denied(LocalResponse),
}

impl Answer {
    pub fn admitted(&self) -> bool {
        matches!(self, Answer::Admitted(_))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = match self {
            Answer::Admitted(headers) => headers,
            Answer::Denied(response) => &response.headers,
        };
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn response(&self) -> &LocalResponse {
        match self {
            Answer::Denied(response) => response,
            Answer::Admitted(_) => panic!("expected a denial, got {self:?}"),
        }
    }
}

impl Worker {
    /// A worker on a fresh store.
    pub fn new(config: &str) -> Self {
        Self::on(SharedHandle::default(), config)
    }

    /// A worker sharing `shared` with others.
    pub fn on(shared: SharedHandle, config: &str) -> Self {
        let mut host = MockHost::new()
            .with_shared(shared)
            .with_property("source.address", b"10.0.0.7:41000");
        let root = RateLimit::configure(&mut host, &Env::single(PLUGIN), config.as_bytes())
            .unwrap_or_else(|err| panic!("config rejected: {err}"));
        Self { root, host }
    }

    /// Sends a GET to `path` with `headers`.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", path, headers)
    }

    /// Sends a request and runs the response path when admitted.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.host.request_headers = vec![
            (":method".to_string(), method.to_string()),
            (":path".to_string(), path.to_string()),
            (":authority".to_string(), "shop.example".to_string()),
        ];
        for (name, value) in headers {
            self.host
                .request_headers
                .push((name.to_string(), value.to_string()));
        }
        self.host.response_headers = vec![(":status".to_string(), "200".to_string())];
        let mut http = Stream::new(self.root.new_http(1));
        match http.on_request_headers(&mut self.host, true) {
            Decision::Continue => {
                http.on_response_headers(&mut self.host, true);
                let added = self
                    .host
                    .response_headers
                    .iter()
                    .filter(|(name, _)| name != ":status")
                    .cloned()
                    .collect();
                Answer::Admitted(added)
            }
            Decision::Respond(response) => Answer::Denied(response),
            Decision::Pause => panic!("the rate limiter never pauses"),
        }
    }

    /// Sends `n` identical requests and counts the admitted ones.
    pub fn admitted(&mut self, n: usize, path: &str, headers: &[(&str, &str)]) -> usize {
        (0..n)
            .filter(|_| self.get(path, headers).admitted())
            .count()
    }

    pub fn advance(&mut self, by: Duration) {
        self.host.advance(by);
    }

    pub fn tick(&mut self) {
        self.root.on_tick(&mut self.host);
    }

    /// A metric of limit `limit` once this worker's batched counts are added (as its root's
    /// tick does, without the tick's sweep).
    pub fn metric(&mut self, limit: &str, stat: &str) -> i64 {
        for metrics in &self.root.engine().metrics {
            metrics.flush(&mut self.host);
        }
        self.root.engine().globals.flush(&mut self.host);
        self.host.metric(&stat_name(limit, stat))
    }
}

/// The full name of a limit's stat.
pub fn stat_name(limit: &str, stat: &str) -> String {
    format!("meshguard.rate_limit.{PLUGIN}.{limit}.{stat}")
}

/// A one-limit config: `requests` per `per`, `burst`, keyed on header `x-user`.
pub fn per_user(requests: u32, per: &str, burst: u32) -> String {
    format!(
        r#"{{"limits":[{{"name":"user","key":[{{"header":"x-user"}}],
            "rate":{{"requests":{requests},"per":"{per}"}},"burst":{burst}}}]}}"#
    )
}
