//! The shell over MockHost: mocks sharing one store are Envoy workers sharing one VM id's
//! shared data; their clocks are moved together.

use std::time::Duration;

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::{Decision, Env, Filter, HeaderMap, Host, LogLevel, Root, Stream};

use super::*;
use crate::codec;
use crate::guard::stored_header;
use crate::machine::Phase;
use meshguard_filter_core::racing::RacingHost;

const VIA_UPSTREAM: &[u8] = b"via_upstream";
const UT: i64 = 1 << 2;
const UR: i64 = 1 << 4;
const DC: i64 = 1 << 14;

/// The breaker most tests use: opens at 50 % of 4 calls, 1 s open, 2 probes.
const BASIC: &str = r#"{"breakers":[{"name":"pay","match":{"prefix":"/api/payments"},
    "window":{"size":4},"minimumCalls":4,"failureRateThreshold":50,"openFor":"1s",
    "halfOpen":{"permittedCalls":2,"successToClose":2},
    "fallback":{"status":200,"headers":{"content-type":"application/json"},"body":"{\"status\":\"deferred\"}"}}]}"#;

/// [`BASIC`] with a single half-open probe that closes the breaker on success.
fn one_probe() -> String {
    BASIC.replace(
        r#""permittedCalls":2,"successToClose":2"#,
        r#""permittedCalls":1"#,
    )
}

/// A worker on [`one_probe`] whose breaker four failures opened and whose `openFor` has passed:
/// its next request is the probe.
fn due_one_probe(shared: &SharedHandle) -> Worker {
    let mut w = Worker::new(shared, &one_probe());
    w.fail_four();
    w.host.advance(Duration::from_secs(1));
    w
}

/// The plugin name the tests configure.
const PLUGIN: &str = "cb";

/// A root configured as a single-purpose module named [`PLUGIN`].
fn configure(host: &mut dyn Host, config: &[u8]) -> CircuitBreakerRoot {
    CircuitBreaker::configure(host, &Env::single(PLUGIN), config)
        .unwrap_or_else(|err| panic!("{err}"))
}

/// One Envoy worker: a host and a configured root.
struct Worker {
    host: MockHost,
    root: CircuitBreakerRoot,
}

/// What a test says the upstream did.
#[derive(Clone, Copy)]
enum Upstream {
    /// Answered with this status after this long.
    Status(u16, u64),
    /// No response headers; the stream ended with these flags.
    Reset(i64),
}

impl Worker {
    fn new(shared: &SharedHandle, config: &str) -> Self {
        let mut host = MockHost::new().with_shared(shared.clone());
        let root = configure(&mut host, config.as_bytes());
        Self { host, root }
    }

    fn runtime(&self) -> Rc<Runtime> {
        self.root.runtime().clone()
    }

    fn key(&self) -> String {
        self.runtime().guards[0].key.clone()
    }

    fn phase(&self) -> Phase {
        stored_header(&self.host, &self.key()).unwrap().phase
    }

    /// Request headers for `path`; returns the stream and the decision.
    fn start(&mut self, path: &str) -> (Stream<CircuitBreakerHttp>, Decision) {
        self.host.request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), path.into()),
            (":authority".into(), "shop.local".into()),
        ];
        self.host.response_headers.clear();
        self.host.properties.remove("response.code_details");
        self.host.properties.remove("response.flags");
        self.host.properties.remove("response.grpc_status");
        let mut http = Stream::new(self.root.new_http(1));
        let decision = http.on_request_headers(&mut self.host, true);
        (http, decision)
    }

    /// The upstream's answer reaches the stream, then the stream ends.
    fn finish(&mut self, http: &mut Stream<CircuitBreakerHttp>, upstream: Upstream) {
        match upstream {
            Upstream::Status(status, after_ms) => {
                self.host.advance(Duration::from_millis(after_ms));
                self.host.response_headers = vec![(":status".into(), status.to_string())];
                self.host
                    .properties
                    .insert("response.code_details".into(), VIA_UPSTREAM.to_vec());
                assert_eq!(
                    http.on_response_headers(&mut self.host, false),
                    Decision::Continue
                );
            }
            Upstream::Reset(flags) => {
                self.host
                    .properties
                    .insert("response.flags".into(), flags.to_le_bytes().to_vec());
            }
        }
        http.on_log(&mut self.host);
    }

    /// Four failing calls: enough to open [`BASIC`] and the breakers derived from it.
    fn fail_four(&mut self) {
        for _ in 0..4 {
            self.call("/api/payments", fail());
        }
    }

    /// A whole request; the decision at request headers.
    fn call(&mut self, path: &str, upstream: Upstream) -> Decision {
        let (mut http, decision) = self.start(path);
        if decision == Decision::Continue {
            self.finish(&mut http, upstream);
        } else {
            // Our own local reply passes our response path too; it must not count.
            self.host.response_headers = vec![(":status".into(), "200".into())];
            self.host
                .properties
                .insert("response.code_details".into(), b"wasm_local_reply".to_vec());
            http.on_response_headers(&mut self.host, false);
            http.on_log(&mut self.host);
        }
        decision
    }

    /// A stat after this worker's batched counts were added (as its root's tick does).
    fn metric(&mut self, name: &str) -> i64 {
        for guard in &self.runtime().guards {
            guard.flush_counters(&mut self.host);
        }
        self.host
            .metric(&format!("meshguard.circuit_breaker.{PLUGIN}.pay.{name}"))
    }

    fn logs_containing(&self, text: &str) -> usize {
        self.host
            .logs
            .borrow()
            .iter()
            .filter(|(_, line)| line.contains(text))
            .count()
    }
}

// Instant answers, so the workers' clocks (moved together by the tests) never drift apart.
fn ok() -> Upstream {
    Upstream::Status(200, 0)
}

fn fail() -> Upstream {
    Upstream::Status(503, 0)
}

fn is_short_circuit(decision: &Decision, state: &str) -> bool {
    matches!(decision, Decision::Respond(response)
        if response.headers.iter().any(|(k, v)| k == CIRCUIT_HEADER && v == state))
}

/// Two workers with one store.
fn pair(config: &str) -> (Worker, Worker) {
    let shared = SharedHandle::default();
    (Worker::new(&shared, config), Worker::new(&shared, config))
}

fn advance_both(a: &mut Worker, b: &mut Worker, ms: u64) {
    a.host.advance(Duration::from_millis(ms));
    b.host.advance(Duration::from_millis(ms));
}

mod breaking;
mod hostcalls;
mod outcomes;
mod robustness;
