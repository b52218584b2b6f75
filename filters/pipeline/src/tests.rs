//! The pipeline over [`MockHost`]: the same stages as in Envoy, one module, one pass.

#[cfg(feature = "authz")]
mod authz;
mod config;
mod cross_stage;
mod global;
mod hostcalls;
mod pause;

use std::time::{Duration, SystemTime};

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::{Decision, Env, Filter, LocalResponse, Root, Stream};
use meshguard_jwt_auth::testing::{TestKey, jwks};
use serde_json::{Value, json};

use crate::{Pipeline, PipelineRoot};

/// The plugin name: stats are `meshguard.<filter>.edge.*`.
pub const PLUGIN: &str = "edge";
/// The fixed clock.
pub const NOW: u64 = 1_700_000_000;
/// The JWT issuer of the tests' tokens.
pub const ISSUER: &str = "https://id.shop.example";

/// A token for `sub`, valid for ten minutes.
pub fn token(sub: &str) -> String {
    TestKey::rsa_a().token(&json!({"iss": ISSUER, "sub": sub, "iat": NOW - 5, "exp": NOW + 600}))
}

/// The `jwtAuth` section: tokens required except under `/public`, `sub` copied to `x-jwt-sub`.
pub fn jwt_section() -> Value {
    json!({
        "providers": [{"name": "shop", "issuer": ISSUER, "jwks": jwks(&[&TestKey::rsa_a()]),
                       "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}]}],
        "rules": [{"match": {"prefix": "/public"}},
                  {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    })
}

/// One gateway worker running the pipeline.
pub struct Gateway {
    pub root: PipelineRoot,
    pub host: MockHost,
}

/// What a request got.
#[derive(Debug)]
pub struct Sent {
    /// The decision at request headers (after every stage and the commit).
    pub decision: Decision,
    /// The request headers as the upstream saw them (admitted requests).
    pub upstream: Vec<(String, String)>,
    /// The response headers the stages added.
    pub response: Vec<(String, String)>,
}

impl Sent {
    pub fn status(&self) -> u32 {
        match &self.decision {
            Decision::Respond(LocalResponse { status, .. }) => *status,
            _ => 200,
        }
    }

    pub fn upstream(&self, name: &str) -> Option<&str> {
        self.upstream
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Gateway {
    pub fn new(config: &Value) -> Self {
        Self::on(SharedHandle::default(), config)
    }

    /// A worker sharing `shared` with others.
    pub fn on(shared: SharedHandle, config: &Value) -> Self {
        let mut host = MockHost::new()
            .with_shared(shared)
            .with_now(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW))
            .with_property("source.address", b"10.0.0.7:41000")
            // Envoy's route for every request as it arrives (before any stage re-routes it).
            .with_property("xds.cluster_name", b"product-v1");
        let root = Pipeline::configure(
            &mut host,
            &Env::single(PLUGIN),
            config.to_string().as_bytes(),
        )
        .unwrap_or_else(|err| panic!("{err}"));
        Self { root, host }
    }

    /// A GET with `headers`; an admitted request is answered by an upstream with `status`.
    pub fn send(&mut self, path: &str, headers: &[(&str, &str)], status: u16) -> Sent {
        self.host.request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), path.into()),
            (":authority".into(), "shop.example".into()),
            (":scheme".into(), "https".into()),
        ];
        self.host
            .request_headers
            .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.host.response_headers.clear();
        self.host.properties.remove("response.code_details");
        let mut stream = Stream::new(self.root.new_http(1));
        let decision = stream.on_request_headers(&mut self.host, true);
        let upstream = self.host.request_headers.clone();
        let answered_by = match &decision {
            Decision::Continue => {
                self.host.advance(Duration::from_millis(5));
                "via_upstream"
            }
            Decision::Respond(_) => "wasm_local_reply",
            Decision::Pause => panic!("no stage of these tests pauses"),
        };
        let shown = match &decision {
            Decision::Respond(response) => response.status.to_string(),
            _ => status.to_string(),
        };
        self.host.response_headers = vec![(":status".into(), shown)];
        self.host.properties.insert(
            "response.code_details".into(),
            answered_by.as_bytes().to_vec(),
        );
        stream.on_response_headers(&mut self.host, true);
        stream.on_log(&mut self.host);
        let response = self
            .host
            .response_headers
            .iter()
            .filter(|(name, _)| name != ":status")
            .cloned()
            .collect();
        Sent {
            decision,
            upstream,
            response,
        }
    }

    /// A request with `sub`'s bearer token.
    pub fn as_user(&mut self, sub: &str, path: &str, status: u16) -> Sent {
        let bearer = format!("Bearer {}", token(sub));
        self.send(path, &[("authorization", &bearer)], status)
    }

    /// A stat once this worker's batched counts reached the host (as a tick does).
    pub fn metric(&mut self, name: &str) -> i64 {
        self.root.on_tick(&mut self.host);
        self.host.metric(name)
    }
}
