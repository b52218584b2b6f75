//! How a plugin is started: what Envoy's `WasmPlugin`/`envoy.filters.http.wasm` configuration
//! and its surroundings (workers, clusters, routes, node properties) would provide.
//!
//! Defaults mirror the testkit's Envoy bootstrap (plugin name = root id = VM id, one worker plus
//! the main thread, a `backend` cluster behind a catch-all route), so a scenario behaves the same
//! here and in the fidelity runs against real Envoy.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::callout::CalloutRule;
use crate::foreign::ForeignFunctions;
use crate::request::UpstreamResponse;

/// Log levels, as proxy-wasm numbers them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// 0
    Trace,
    /// 1
    Debug,
    /// 2
    Info,
    /// 3
    Warn,
    /// 4
    Error,
    /// 5
    Critical,
}

impl LogLevel {
    /// Decodes proxy-wasm's number.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    /// proxy-wasm's number.
    pub fn raw(self) -> i32 {
        self as i32
    }

    /// Lowercase name (`warn`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// A property value from the configurable table, serialised the way Envoy serialises CEL
/// values for `proxy_get_property`: strings as bytes, integers as 8 little-endian bytes,
/// booleans as one byte, maps as proxy-wasm pairs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// A boolean (`connection.mtls`).
    Bool(bool),
    /// An integer (`source.port`, `response.code`).
    Int(i64),
    /// A string (`source.address`, `node.id`).
    String(String),
    /// A string map (`request.headers`).
    Map(BTreeMap<String, String>),
}

impl PropertyValue {
    /// The bytes `proxy_get_property` returns.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Bool(b) => vec![u8::from(*b)],
            Self::Int(i) => i.to_le_bytes().to_vec(),
            Self::String(s) => s.as_bytes().to_vec(),
            Self::Map(map) => {
                let pairs: Vec<(&str, &str)> =
                    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                crate::abi::encode_pairs(&pairs)
            }
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_string())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for PropertyValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A route: like Envoy's, the first whose prefix and exact header matches fit the request
/// headers (as the filter left them) picks the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    /// Path prefix.
    #[serde(default = "slash")]
    pub prefix: String,
    /// Exact header matches (lowercase names), all of which must hold.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Target cluster.
    pub cluster: String,
}

fn slash() -> String {
    "/".to_string()
}

impl Route {
    /// A prefix route to `cluster`.
    pub fn prefix(prefix: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            headers: BTreeMap::new(),
            cluster: cluster.into(),
        }
    }

    /// Requires an exact header value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    pub(crate) fn matches(&self, headers: &[(String, String)]) -> bool {
        let path = headers
            .iter()
            .find(|(k, _)| k == ":path")
            .map_or("", |(_, v)| v.as_str());
        path.starts_with(&self.prefix)
            && self
                .headers
                .iter()
                .all(|(name, value)| headers.iter().any(|(k, v)| k == name && v == value))
    }
}

/// Everything about how the plugin runs.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// `plugin_name` (the filter's name in the listener).
    pub name: String,
    /// Root id (`plugin_root_id`).
    pub root_id: String,
    /// VM id (`plugin_vm_id`); shared data and queues are scoped by it.
    pub vm_id: String,
    /// The plugin configuration bytes handed to `proxy_on_configure`.
    pub configuration: Vec<u8>,
    /// The VM configuration bytes handed to `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// Worker VMs that serve requests (Envoy `--concurrency`).
    pub workers: usize,
    /// Whether a main-thread VM also starts, configures and ticks (as in Envoy).
    pub main_thread: bool,
    /// Property overrides by dotted path (`source.address`, `node.id`).
    pub properties: BTreeMap<String, PropertyValue>,
    /// Clusters that exist besides those named by routes and callout rules.
    pub clusters: Vec<String>,
    /// How HTTP callouts are answered.
    pub callouts: Vec<CalloutRule>,
    /// Routes; empty means everything goes to `default_cluster`.
    pub routes: Vec<Route>,
    /// The cluster when no routes are configured.
    pub default_cluster: String,
    /// The route timeout: an upstream slower than this gets the router's 504.
    pub route_timeout: Duration,
    /// Per-cluster upstream answers (default: 200 with an echo of the request).
    pub upstreams: BTreeMap<String, UpstreamResponse>,
    /// Wall-clock time when the plugin starts; the clock then only moves when told to.
    pub start_time: SystemTime,
    /// Instruction budget (wasmtime fuel) of one callback.
    pub fuel: u64,
    /// Linear memory limit of one VM, in bytes.
    pub memory_limit: usize,
    /// The level `proxy_get_log_level` reports; lower levels are not recorded.
    pub log_level: LogLevel,
    /// Seed of the deterministic random source (`random_get`, `x-request-id`).
    pub seed: u64,
    /// Foreign functions the module may call.
    pub foreign_functions: ForeignFunctions,
    /// WASI environment variables.
    pub environment: Vec<(String, String)>,
    /// Whether requests get the headers Envoy's connection manager adds before filters run
    /// (`x-forwarded-proto`, `x-request-id`).
    pub envoy_request_headers: bool,
    /// Envoy's `allow_on_headers_stop_iteration` (Wasm `PluginConfig`): a `StopIteration` from
    /// `proxy_on_request_headers` holds the headers while body chunks still reach the filter.
    /// Off (Envoy's default), it stops everything, body callbacks included, until the filter
    /// resumes the stream.
    pub allow_on_headers_stop_iteration: bool,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            name: "meshguard".to_string(),
            root_id: "meshguard".to_string(),
            vm_id: "meshguard".to_string(),
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            workers: 1,
            main_thread: true,
            properties: BTreeMap::new(),
            clusters: Vec::new(),
            callouts: Vec::new(),
            routes: Vec::new(),
            default_cluster: "backend".to_string(),
            route_timeout: Duration::from_secs(15),
            upstreams: BTreeMap::new(),
            start_time: SystemTime::now(),
            fuel: 2_000_000_000,
            memory_limit: 256 << 20,
            log_level: LogLevel::Trace,
            seed: 0x6d65_7368_6775_6172,
            foreign_functions: ForeignFunctions::envoy(),
            environment: Vec::new(),
            envoy_request_headers: true,
            allow_on_headers_stop_iteration: false,
        }
    }
}

impl PluginOptions {
    /// Defaults with the given plugin configuration.
    pub fn new(configuration: impl Into<Vec<u8>>) -> Self {
        Self {
            configuration: configuration.into(),
            ..Self::default()
        }
    }

    /// Sets Envoy's `allow_on_headers_stop_iteration`.
    pub fn allow_on_headers_stop_iteration(mut self, on: bool) -> Self {
        self.allow_on_headers_stop_iteration = on;
        self
    }

    /// Sets the plugin name, root id and VM id at once (as the testkit bootstrap does).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.root_id = name.clone();
        self.vm_id = name.clone();
        self.name = name;
        self
    }

    /// Sets the number of worker VMs.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Turns the main-thread VM on or off.
    pub fn main_thread(mut self, on: bool) -> Self {
        self.main_thread = on;
        self
    }

    /// Sets a property override.
    pub fn property(mut self, path: impl Into<String>, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(path.into(), value.into());
        self
    }

    /// Adds a callout rule.
    pub fn callout(mut self, rule: CalloutRule) -> Self {
        self.callouts.push(rule);
        self
    }

    /// Declares a cluster.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.clusters.push(name.into());
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets the answer of a cluster's upstream.
    pub fn upstream(mut self, cluster: impl Into<String>, response: UpstreamResponse) -> Self {
        self.upstreams.insert(cluster.into(), response);
        self
    }

    /// Sets the start time.
    pub fn start_time(mut self, at: SystemTime) -> Self {
        self.start_time = at;
        self
    }

    /// Sets the per-callback fuel budget.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets the per-VM memory limit in bytes.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Sets the log level.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Sets the random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the VM configuration.
    pub fn vm_configuration(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.vm_configuration = bytes.into();
        self
    }

    /// Replaces the foreign functions.
    pub fn foreign_functions(mut self, functions: ForeignFunctions) -> Self {
        self.foreign_functions = functions;
        self
    }

    /// Whether `cluster` exists (declared, routed to, or answered by a callout rule).
    pub(crate) fn cluster_exists(&self, cluster: &str) -> bool {
        self.default_cluster == cluster
            || self.clusters.iter().any(|c| c == cluster)
            || self.routes.iter().any(|r| r.cluster == cluster)
            || self.upstreams.contains_key(cluster)
            || self.callouts.iter().any(|r| r.cluster == cluster)
    }

    /// The cluster the route table picks for `headers`, if any route matches.
    pub(crate) fn route_for(&self, headers: &[(String, String)]) -> Option<&str> {
        if self.routes.is_empty() {
            return Some(&self.default_cluster);
        }
        self.routes
            .iter()
            .find(|route| route.matches(headers))
            .map(|route| route.cluster.as_str())
    }
}

/// Serde for durations written as text (`250ms`, `2s`) or as a number of milliseconds.
pub mod duration_text {
    use std::time::Duration;

    /// Writes `Nms`.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    /// Reads `250ms`, `2s`, `1m` or a bare number of milliseconds.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match <Raw as serde::Deserialize>::deserialize(d)? {
            Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(text) => super::parse_duration(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration (write e.g. 250ms, 2s, 1m)"
                ))
            }),
        }
    }
}

/// A duration written as `250ms`, `2s`, `1m` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "ms"),
    };
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "us" | "µs" => value / 1_000_000.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("40"), Some(Duration::from_millis(40)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn property_values_serialise_like_envoy() {
        assert_eq!(PropertyValue::Int(443).to_bytes(), 443i64.to_le_bytes());
        assert_eq!(PropertyValue::Bool(true).to_bytes(), vec![1]);
        assert_eq!(PropertyValue::from("10.0.0.1:5").to_bytes(), b"10.0.0.1:5");
    }

    #[test]
    fn routes_match_prefix_and_headers() {
        let options = PluginOptions::default()
            .route(Route::prefix("/api", "canary").header("x-canary", "v2"))
            .route(Route::prefix("/api", "stable"));
        let headers = |canary: &str| {
            vec![
                (":path".to_string(), "/api/orders".to_string()),
                ("x-canary".to_string(), canary.to_string()),
            ]
        };
        assert_eq!(options.route_for(&headers("v2")), Some("canary"));
        assert_eq!(options.route_for(&headers("v1")), Some("stable"));
        assert_eq!(options.route_for(&[]), None);
        assert!(options.cluster_exists("canary"));
        assert!(!options.cluster_exists("elsewhere"));
    }
}
