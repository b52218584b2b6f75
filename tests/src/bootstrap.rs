//! A typed description of an Envoy bootstrap, rendered to Envoy's JSON.
//!
//! Tests, the demo and the benchmark describe listeners (each with an ordered chain of HTTP
//! filters: wasm modules with their JSON configuration, or native Envoy filters for
//! comparison), routes and clusters; ports are chosen by Envoy (port 0) and read back from the
//! admin API, so several Envoys can run side by side without port races.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// A whole bootstrap.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// Listeners, each with its own filter chain.
    pub listeners: Vec<Listener>,
    /// Upstream clusters.
    pub clusters: Vec<Cluster>,
    /// Other top-level bootstrap fields (`stats_config`, `node`), rendered as given.
    pub extra: serde_json::Map<String, Value>,
}

/// One HTTP listener on 127.0.0.1 (port picked by Envoy).
#[derive(Debug, Clone)]
pub struct Listener {
    /// Listener name (also the stats prefix); tests look ports up by it.
    pub name: String,
    /// HTTP filters in order; the router is appended.
    pub filters: Vec<FilterSpec>,
    /// Routes in order; first match wins.
    pub routes: Vec<Route>,
    /// The virtual host's `rate_limits` (Envoy's rate-limit actions, as JSON), applied to
    /// routes that have none of their own.
    pub rate_limits: Vec<Value>,
}

/// An HTTP filter in a listener's chain.
#[derive(Debug, Clone)]
pub enum FilterSpec {
    /// A proxy-wasm module run by V8.
    Wasm {
        /// Plugin name (`plugin_name` property) and root id.
        name: String,
        /// Absolute path of the module.
        module: PathBuf,
        /// JSON configuration passed as a `google.protobuf.StringValue`.
        config: String,
        /// VM id; plugins with the same id and code share one VM per worker and their shared
        /// data.
        vm_id: String,
    },
    /// A native Envoy filter given by name and `typed_config`.
    Native {
        /// Filter name, such as `envoy.filters.http.jwt_authn`.
        name: String,
        /// The filter's `typed_config` (with its `@type`).
        typed_config: Value,
    },
    /// A filter whose configuration Envoy discovers (ECDS, as Istio delivers WasmPlugins),
    /// here from a file: `{"version_info", "resources": [TypedExtensionConfig]}`.
    Discovered {
        /// The filter's name, which is the discovered resource's name.
        name: String,
        /// The file Envoy watches.
        path: PathBuf,
    },
}

/// A route: path prefix and optional exact header matches to a cluster, or (for tests of
/// Envoy's own matching) any `RouteMatch` answered directly.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path prefix.
    pub prefix: String,
    /// Exact header matches (all must match).
    pub headers: Vec<(String, String)>,
    /// Target cluster.
    pub cluster: String,
    /// Upstream timeout.
    pub timeout: Duration,
    /// Envoy's `RouteMatch` as JSON, instead of `prefix` and `headers`.
    pub envoy_match: Option<Value>,
    /// Answer with this status and body (`direct_response`) instead of routing to `cluster`.
    pub direct: Option<(u16, String)>,
    /// The route's `rate_limits` (Envoy's rate-limit actions, as JSON).
    pub rate_limits: Vec<Value>,
}

/// A static upstream cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// Speak HTTP/2 to the endpoints (gRPC services).
    pub http2: bool,
}

impl Bootstrap {
    /// An empty bootstrap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listener.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds a cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Sets a top-level bootstrap field, such as `stats_config` (the tag extraction rules of
    /// the monitoring docs) or `node` (which config discovery from files needs).
    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.extra.insert(field.to_string(), value);
        self
    }

    /// Renders Envoy's bootstrap JSON. `admin` is the admin socket address (port 0 picks one).
    pub fn render(&self) -> Value {
        let mut bootstrap = json!({
            "admin": { "address": socket("127.0.0.1", 0) },
            "static_resources": {
                "listeners": self.listeners.iter().map(Listener::render).collect::<Vec<_>>(),
                "clusters": self.clusters.iter().map(Cluster::render).collect::<Vec<_>>(),
            },
        });
        for (field, value) in &self.extra {
            bootstrap[field.as_str()] = value.clone();
        }
        bootstrap
    }
}

fn socket(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

impl Listener {
    /// A listener with no filters and no routes.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filters: Vec::new(),
            routes: Vec::new(),
            rate_limits: Vec::new(),
        }
    }

    /// Appends a filter to the chain.
    pub fn filter(mut self, filter: FilterSpec) -> Self {
        self.filters.push(filter);
        self
    }

    /// Appends a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Adds a virtual-host rate limit (an Envoy `RateLimit` with its `actions`).
    pub fn rate_limit(mut self, rate_limit: Value) -> Self {
        self.rate_limits.push(rate_limit);
        self
    }

    fn render(&self) -> Value {
        let mut http_filters: Vec<Value> = self.filters.iter().map(FilterSpec::render).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            }
        }));
        json!({
            "name": self.name,
            "address": socket("127.0.0.1", 0),
            "filter_chains": [{
                "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": self.name,
                        "codec_type": "AUTO",
                        "route_config": {
                            "name": format!("{}-routes", self.name),
                            "virtual_hosts": [{
                                "name": "all",
                                "domains": ["*"],
                                "routes": self.routes.iter().map(Route::render).collect::<Vec<_>>(),
                                "rate_limits": self.rate_limits,
                            }],
                        },
                        "http_filters": http_filters,
                    }
                }]
            }]
        })
    }
}

impl FilterSpec {
    /// A wasm filter whose VM id is its name.
    pub fn wasm(
        name: impl Into<String>,
        module: impl Into<PathBuf>,
        config: impl Into<String>,
    ) -> Self {
        let name = name.into();
        Self::Wasm {
            vm_id: name.clone(),
            name,
            module: module.into(),
            config: config.into(),
        }
    }

    /// The same wasm filter with Envoy's `allow_on_headers_stop_iteration: true` (Wasm
    /// `PluginConfig`): a filter that holds the request headers (`StopIteration`) still gets the
    /// body's chunks, which a filter deciding on the body needs (authz's `withRequestBody`).
    /// Envoy's default turns that `StopIteration` into stopping everything, the body callbacks
    /// included, so such a request would wait until it times out. Other specs are unchanged.
    pub fn holding_headers(self) -> Self {
        match self {
            Self::Wasm {
                name,
                module,
                config,
                vm_id,
            } => {
                let code = json!({ "local": { "filename": module.display().to_string() } });
                let mut typed_config = wasm_typed_config(&name, &vm_id, &config, code);
                typed_config["config"]["allow_on_headers_stop_iteration"] = json!(true);
                Self::Native {
                    name: "envoy.filters.http.wasm".to_string(),
                    typed_config,
                }
            }
            other => other,
        }
    }

    /// A native Envoy filter.
    pub fn native(name: impl Into<String>, typed_config: Value) -> Self {
        Self::Native {
            name: name.into(),
            typed_config,
        }
    }

    /// A wasm filter whose module Envoy fetches over HTTP (`vm_config.code.remote`) through
    /// `cluster`, and accepts only if its SHA-256 is `sha256` (hex); VM id = name.
    pub fn wasm_remote(
        name: impl Into<String>,
        uri: impl Into<String>,
        cluster: impl Into<String>,
        sha256: impl Into<String>,
        config: impl Into<String>,
    ) -> Self {
        let name = name.into();
        let code = json!({ "remote": {
            "http_uri": { "uri": uri.into(), "cluster": cluster.into(), "timeout": "10s" },
            "sha256": sha256.into(),
        }});
        Self::Native {
            name: "envoy.filters.http.wasm".to_string(),
            typed_config: wasm_typed_config(&name, &name, &config.into(), code),
        }
    }

    /// The filter's `typed_config` (none for a discovered filter): what a config discovery
    /// file or server delivers for it.
    pub fn typed_config(&self) -> Option<Value> {
        let rendered = self.render();
        rendered.get("typed_config").cloned()
    }

    fn render(&self) -> Value {
        match self {
            Self::Wasm {
                name,
                module,
                config,
                vm_id,
            } => json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": wasm_typed_config(
                    name,
                    vm_id,
                    config,
                    json!({ "local": { "filename": module.display().to_string() } }),
                ),
            }),
            Self::Discovered { name, path } => json!({
                "name": name,
                "config_discovery": {
                    "config_source": {
                        "path_config_source": { "path": path.display().to_string() },
                        "resource_api_version": "V3",
                    },
                    "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                },
            }),
            Self::Native { name, typed_config } => {
                json!({ "name": name, "typed_config": typed_config })
            }
        }
    }
}

/// The `typed_config` of Envoy's wasm HTTP filter running `code` (a `local` or `remote` data
/// source) in V8, closed on failure.
fn wasm_typed_config(name: &str, vm_id: &str, config: &str, code: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": name,
            "root_id": name,
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config,
            },
            "vm_config": {
                "vm_id": vm_id,
                "runtime": "envoy.wasm.runtime.v8",
                "code": code,
            },
            "fail_open": false,
        }
    })
}

impl Route {
    /// A prefix route to `cluster` with a 15 s timeout.
    pub fn prefix(prefix: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            headers: Vec::new(),
            cluster: cluster.into(),
            timeout: Duration::from_secs(15),
            envoy_match: None,
            direct: None,
            rate_limits: Vec::new(),
        }
    }

    /// A route with Envoy's own `RouteMatch` (as JSON) that answers `status` and `body` itself.
    pub fn direct(envoy_match: Value, status: u16, body: impl Into<String>) -> Self {
        Self {
            envoy_match: Some(envoy_match),
            direct: Some((status, body.into())),
            ..Self::prefix("/", "")
        }
    }

    /// This route, answering `status` and `body` itself instead of going upstream.
    pub fn answer(mut self, status: u16, body: impl Into<String>) -> Self {
        self.direct = Some((status, body.into()));
        self
    }

    /// Requires an exact header value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a route rate limit (an Envoy `RateLimit` with its `actions`); a route with its own
    /// rate limits does not use the virtual host's.
    pub fn rate_limit(mut self, rate_limit: Value) -> Self {
        self.rate_limits.push(rate_limit);
        self
    }

    fn render(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "string_match": { "exact": value } }))
            .collect();
        let matcher = self
            .envoy_match
            .clone()
            .unwrap_or_else(|| json!({ "prefix": self.prefix, "headers": headers }));
        match &self.direct {
            Some((status, body)) => json!({
                "match": matcher,
                "direct_response": { "status": status, "body": { "inline_string": body } },
            }),
            None => json!({
                "match": matcher,
                "route": {
                    "cluster": self.cluster,
                    "timeout": format!("{}s", self.timeout.as_secs_f64()),
                    "rate_limits": self.rate_limits,
                },
            }),
        }
    }
}

impl Cluster {
    /// A static cluster with one endpoint.
    pub fn new(name: impl Into<String>, endpoint: SocketAddr) -> Self {
        Self {
            name: name.into(),
            endpoints: vec![endpoint],
            http2: false,
        }
    }

    /// A static gRPC cluster (HTTP/2), round robin over `endpoints`.
    pub fn grpc(name: impl Into<String>, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            name: name.into(),
            endpoints,
            http2: true,
        }
    }

    fn render(&self) -> Value {
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|addr| json!({ "endpoint": { "address": socket(&addr.ip().to_string(), addr.port()) } }))
            .collect();
        let mut cluster = json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": self.name,
                "endpoints": [{ "lb_endpoints": endpoints }],
            },
        });
        if self.http2 {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": { "http2_protocol_options": {} },
                }
            });
        }
        cluster
    }
}
