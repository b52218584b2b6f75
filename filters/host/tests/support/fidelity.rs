//! Runs one scenario in real Envoy 1.40 (through the testkit harness) and in the wasmtime host,
//! and reduces both runs to the same observable facts so they can be compared.
//!
//! What is compared, per request: the status the client got; which cluster (if any) the request
//! reached; every header the upstream received except those Envoy's router and codecs add on
//! their own ([`TRANSPORT_HEADERS`]); every response header except transport ones; and for
//! responses that did not come from an upstream, the body.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Script, Upstream, http,
};
use meshguard_wasm_host::{Plugin, PluginOptions, Request, UpstreamResponse, WasmModule};

/// Headers that Envoy's connection manager, router and codecs (or the test client) add or
/// rewrite by themselves; documented host limits, not filter behaviour.
pub const TRANSPORT_HEADERS: &[&str] = &[
    "host",
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-upstream-service-time",
    "x-forwarded-proto",
    "user-agent",
    "accept",
    "accept-encoding",
    "content-length",
    "connection",
    "transfer-encoding",
    "date",
    "server",
];

/// A request of a scenario.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Step {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A route of a scenario: (prefix, exact header match, cluster).
pub type RouteSpec = (
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static str,
);

/// A scenario: one filter, its config, clusters with routes, scripted upstream failures.
pub struct Scenario {
    pub name: &'static str,
    pub module: PathBuf,
    pub config: String,
    /// (prefix, exact header match, cluster); empty: everything to `backend`.
    pub routes: Vec<RouteSpec>,
    /// Upstream answers by path prefix: (prefix, status).
    pub scripts: Vec<(&'static str, u16)>,
    pub steps: Vec<Step>,
}

/// What a client and an upstream could observe about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: u16,
    pub reached: Option<String>,
    pub upstream_headers: BTreeMap<String, String>,
    pub response_headers: BTreeMap<String, String>,
    pub local_body: Option<String>,
}

fn keep(name: &str) -> bool {
    !name.starts_with(':') && !TRANSPORT_HEADERS.contains(&name)
}

fn merge(headers: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !keep(&name) {
            continue;
        }
        map.entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

impl Scenario {
    fn clusters(&self) -> Vec<&'static str> {
        let mut clusters: Vec<&'static str> = self.routes.iter().map(|r| r.2).collect();
        if clusters.is_empty() {
            clusters.push("backend");
        }
        clusters.sort_unstable();
        clusters.dedup();
        clusters
    }

    /// Runs the scenario in Envoy (one worker); also returns the `:authority` clients used.
    pub fn in_envoy(&self) -> (Vec<Observed>, String) {
        let upstreams: Vec<(&str, Upstream)> = self
            .clusters()
            .into_iter()
            .map(|name| (name, Upstream::start(name).unwrap()))
            .collect();
        for (_, upstream) in &upstreams {
            for (prefix, status) in &self.scripts {
                upstream.script(prefix, Script::status(*status));
            }
        }
        let mut listener = Listener::new("edge").filter(FilterSpec::wasm(
            self.name,
            self.module.clone(),
            self.config.clone(),
        ));
        if self.routes.is_empty() {
            listener = listener.route(Route::prefix("/", "backend"));
        }
        for (prefix, header, cluster) in &self.routes {
            let mut route = Route::prefix(*prefix, *cluster);
            if let Some((name, value)) = header {
                route = route.header(*name, *value);
            }
            listener = listener.route(route);
        }
        let mut bootstrap = Bootstrap::new().listener(listener);
        for (name, upstream) in &upstreams {
            bootstrap = bootstrap.cluster(Cluster::new(*name, upstream.addr()));
        }
        let envoy = Envoy::start(&bootstrap, 1).unwrap();
        let authority = envoy.url("edge").trim_start_matches("http://").to_string();
        let mut observed = Vec::new();
        for step in &self.steps {
            let headers: Vec<(&str, &str)> = step
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let url = format!("{}{}", envoy.url("edge"), step.path);
            let response = http::send(
                step.method,
                &url,
                &headers,
                step.body.as_deref().map(str::as_bytes),
            )
            .unwrap();
            let reached = response.header("x-upstream").map(str::to_string);
            let upstream_headers = match (&reached, response.json()) {
                (Some(_), Ok(echo)) => merge(
                    echo["headers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
                ),
                _ => BTreeMap::new(),
            };
            observed.push(Observed {
                status: response.status,
                local_body: reached.is_none().then(|| response.body.clone()),
                reached,
                upstream_headers,
                response_headers: merge(response.headers.clone()),
            });
        }
        (observed, authority)
    }

    /// Runs the scenario in the wasmtime host (one worker), with the `:authority` Envoy saw.
    pub fn in_host(&self, authority: &str) -> Vec<Observed> {
        let module = WasmModule::from_file(&self.module).unwrap();
        let mut options = PluginOptions::new(self.config.clone()).named(self.name);
        for (prefix, header, cluster) in &self.routes {
            let mut route = meshguard_wasm_host::Route::prefix(*prefix, *cluster);
            if let Some((name, value)) = header {
                route = route.header(*name, *value);
            }
            options = options.route(route);
        }
        let mut plugin = Plugin::start(&module, options).unwrap();
        let mut observed = Vec::new();
        for step in &self.steps {
            let mut request = Request::new(step.method, step.path.clone()).authority(authority);
            for (name, value) in &step.headers {
                request = request.header(name.clone(), value.clone());
            }
            if let Some(body) = &step.body {
                request = request.body(body.clone());
            }
            if let Some((_, status)) = self.scripts.iter().find(|(p, _)| step.path.starts_with(p)) {
                request = request.upstream(UpstreamResponse::status(*status));
            }
            let outcome = plugin.send(request).unwrap();
            assert!(outcome.vm_failure.is_none(), "{}: {outcome:#?}", self.name);
            let response = outcome.response.clone().unwrap();
            let reached = outcome.upstream.as_ref().map(|u| u.cluster.clone());
            observed.push(Observed {
                status: response.status,
                local_body: reached.is_none().then(|| response.text()),
                upstream_headers: outcome
                    .upstream
                    .as_ref()
                    .map(|u| merge(u.headers.clone()))
                    .unwrap_or_default(),
                reached,
                response_headers: merge(response.headers.clone()),
            });
        }
        observed
    }

    /// Runs both and asserts they agree request by request.
    pub fn assert_same(&self) -> Vec<Observed> {
        let (envoy, authority) = self.in_envoy();
        let host = self.in_host(&authority);
        assert_eq!(host.len(), envoy.len());
        for (index, (h, e)) in host.iter().zip(&envoy).enumerate() {
            assert_eq!(
                h, e,
                "{}: request {index} ({} {}) differs between the host (left) and Envoy (right)",
                self.name, self.steps[index].method, self.steps[index].path
            );
        }
        host
    }
}
