//! The filter's configuration: raw JSON as an operator writes it, converted once at configure
//! time into validated types. Field names follow OPA-Envoy (`decisionPath` is its `path`) and
//! Envoy's ext_authz (`withRequestBody.maxRequestBytes`, `statusOnError`).
//!
//! ```json
//! {
//!   "modules": {"rbac.rego": "package envoy.authz\nimport rego.v1\ndefault allow := false\n..."},
//!   "data": {"admins": ["ops"]},
//!   "decisionPath": "envoy/authz/allow",
//!   "onError": "deny",
//!   "statusOnError": 403,
//!   "withRequestBody": {"maxRequestBytes": 8192},
//!   "cacheSize": 1024,
//!   "maxInstructions": 100000,
//!   "explain": false
//! }
//! ```
//!
//! Every rejection names the field (`modules["rbac.rego"]`, `withRequestBody.maxRequestBytes`);
//! the Rego itself is compiled by [`crate::policy`], whose errors name the module and line.

use std::collections::BTreeMap;

use meshguard_filter_core::ConfigError;
use meshguard_filter_core::config::parse_json;
use serde::Deserialize;

/// The decision path when none is configured (OPA-Envoy's default).
pub const DEFAULT_DECISION_PATH: &str = "envoy/authz/allow";
/// Decisions remembered per worker by default.
pub const DEFAULT_CACHE_SIZE: usize = 1024;
/// Default bound on the VM instructions one evaluation may run.
pub const DEFAULT_MAX_INSTRUCTIONS: usize = 100_000;
/// The largest `maxInstructions` accepted: about a few milliseconds of a worker.
pub const MAX_INSTRUCTIONS_LIMIT: usize = 10_000_000;
/// The largest body that may be buffered (Envoy's default connection buffer limit).
pub const MAX_REQUEST_BYTES_LIMIT: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawConfig {
    modules: BTreeMap<String, String>,
    data: Option<serde_json::Value>,
    decision_path: Option<String>,
    on_error: Option<OnError>,
    status_on_error: Option<u32>,
    with_request_body: Option<RawBody>,
    cache_size: Option<u64>,
    max_instructions: Option<u64>,
    #[serde(default)]
    explain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBody {
    max_request_bytes: u64,
}

/// What an evaluation error (including exceeding `maxInstructions`, an undefined or invalid
/// decision, and a request the input cannot be built from) does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// Answer with `statusOnError` (fail closed; the default).
    Deny,
    /// Let the request go on (fail open).
    Allow,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Rego modules by file name, in name order.
    pub modules: Vec<(String, String)>,
    /// `data` (an object; empty when not configured).
    pub data: serde_json::Value,
    /// The decision path as configured (`envoy/authz/allow`).
    pub decision_path: String,
    /// The rule it names (`data.envoy.authz.allow`).
    pub rule: String,
    /// What an error does.
    pub on_error: OnError,
    /// The status of a request denied by an error.
    pub status_on_error: u32,
    /// The largest body buffered for the policy; `None`: the body is never buffered.
    pub max_request_bytes: Option<usize>,
    /// Decisions remembered per worker (0 disables the cache).
    pub cache_size: usize,
    /// Bound on the VM instructions of one evaluation.
    pub max_instructions: usize,
    /// Log which rule decided each request.
    pub explain: bool,
}

/// Parses and validates the plugin configuration (the Rego is compiled later).
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        if raw.modules.is_empty() {
            return Err(ConfigError::new(
                "modules",
                "give at least one Rego module, keyed by file name",
            ));
        }
        for (name, source) in &raw.modules {
            if name.trim().is_empty() {
                return Err(ConfigError::new("modules", "a module name is empty"));
            }
            if source.trim().is_empty() {
                return Err(ConfigError::new(module_field(name), "the module is empty"));
            }
        }
        let data = match raw.data {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some(data @ serde_json::Value::Object(_)) => data,
            Some(_) => return Err(ConfigError::new("data", "must be a JSON object")),
        };
        let decision_path = raw
            .decision_path
            .unwrap_or_else(|| DEFAULT_DECISION_PATH.to_string());
        let rule = rule_of(&decision_path)?;
        let status_on_error = raw.status_on_error.unwrap_or(403);
        if !(200..=599).contains(&status_on_error) {
            return Err(ConfigError::new(
                "statusOnError",
                "must be an HTTP status from 200 to 599",
            ));
        }
        let max_request_bytes = match raw.with_request_body {
            None => None,
            Some(body) => {
                let bytes = usize::try_from(body.max_request_bytes).unwrap_or(usize::MAX);
                if bytes == 0 || bytes > MAX_REQUEST_BYTES_LIMIT {
                    return Err(ConfigError::new(
                        "withRequestBody.maxRequestBytes",
                        format!("must be from 1 to {MAX_REQUEST_BYTES_LIMIT}"),
                    ));
                }
                Some(bytes)
            }
        };
        let cache_size = raw.cache_size.map_or(DEFAULT_CACHE_SIZE, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        if cache_size > 1 << 20 {
            return Err(ConfigError::new("cacheSize", "must be at most 1048576"));
        }
        let max_instructions = raw.max_instructions.map_or(DEFAULT_MAX_INSTRUCTIONS, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        if max_instructions == 0 || max_instructions > MAX_INSTRUCTIONS_LIMIT {
            return Err(ConfigError::new(
                "maxInstructions",
                format!("must be from 1 to {MAX_INSTRUCTIONS_LIMIT}"),
            ));
        }
        Ok(Config {
            modules: raw.modules.into_iter().collect(),
            data,
            decision_path,
            rule,
            on_error: raw.on_error.unwrap_or(OnError::Deny),
            status_on_error,
            max_request_bytes,
            cache_size,
            max_instructions,
            explain: raw.explain,
        })
    }
}

/// The field path of module `name`: `modules["rbac.rego"]` (a file name has dots, so the
/// JSON-quoted name in brackets, as a path into the document reads).
pub fn module_field(name: &str) -> String {
    format!(
        "modules[{}]",
        serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
    )
}

/// `envoy/authz/allow` -> `data.envoy.authz.allow`.
fn rule_of(path: &str) -> Result<String, ConfigError> {
    let segments: Vec<&str> = path.split('/').collect();
    let identifier = |s: &&str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if segments.len() < 2 || !segments.iter().all(identifier) {
        return Err(ConfigError::new(
            "decisionPath",
            format!(
                "`{path}` is not a rule path such as `envoy/authz/allow` (package segments and the rule, separated by `/`)"
            ),
        ));
    }
    Ok(format!("data.{}", segments.join(".")))
}

#[cfg(test)]
mod tests;
