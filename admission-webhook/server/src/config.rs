//! The webhook's settings: parsed once from a YAML file (and command-line overrides in main) into
//! validated types.
//!
//! ```yaml
//! listen: 0.0.0.0:8443
//! tls: {certFile: /certs/tls.crt, keyFile: /certs/tls.key, reloadInterval: 10s}
//! policies: {mode: files, paths: [/policies]}        # or mode: cluster
//! inventory: {paths: [/inventory]}                  # data.inventory from manifests (or sync)
//! failurePolicy: Fail                                 # or Ignore
//! evaluationTimeout: 2s                               # shorter than the webhook's timeoutSeconds
//! decisionCache: true                                 # reuse decisions for repeated objects
//! maxRequestBytes: 3145728
//! maxConcurrentReviews: 8                            # evaluated at once
//! maxQueuedReviews: 32                                # waiting for a slot; beyond: overloaded
//! maxConnections: 1024                                # beyond: wait in the listen backlog
//! timeouts: {tlsHandshake: 10s, requestHeaders: 30s, requestBody: 10s}
//! shutdownGracePeriod: 15s                            # open requests finish after SIGTERM
//! exemptNamespaces: [kube-system, meshguard-system]   # prefix/suffix globs as in Gatekeeper
//! serviceAccount: system:serviceaccount:meshguard-system:meshguard-admission-webhook
//! audit: {interval: 60s}                              # 0s disables
//! sync:                                               # Config-style sync list: data.inventory
//!                                                     # from the cluster (either policy mode)
//!   syncOnly:
//!   - {group: "", version: v1, kind: Service}
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use meshguard_policy_engine::matching::Wildcard;
use serde::Deserialize;

/// What to do when a review cannot be completed (timeout, internal error, overload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FailurePolicy {
    /// Deny with a message saying why (fail closed).
    Fail,
    /// Allow with a warning saying why (fail open).
    Ignore,
}

impl FailurePolicy {
    /// The name used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

/// Where policies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// Templates and constraints in files and folders (GitOps), reloaded when they change.
    Files(Vec<PathBuf>),
    /// ConstraintTemplate and Constraint resources watched in the cluster.
    Cluster,
}

/// One kind to sync into the inventory (Gatekeeper's Config `sync.syncOnly` entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncKind {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// PEM certificate chain file.
    pub cert_file: PathBuf,
    /// PEM private key file.
    pub key_file: PathBuf,
    /// How often the certificate files are checked for changes.
    pub tls_reload_interval: Duration,
    /// Policy source.
    pub policies: PolicySource,
    /// Manifests loaded as `data.inventory` (files mode; reloaded with the policies).
    pub inventory_paths: Vec<PathBuf>,
    /// How often policy files are checked for changes (files mode).
    pub policy_reload_interval: Duration,
    /// Failure policy.
    pub failure_policy: FailurePolicy,
    /// Deadline for evaluating one review.
    pub evaluation_timeout: Duration,
    /// Whether the engine's decision cache is on (see `meshguard_policy_engine::decision_cache`).
    pub decision_cache: bool,
    /// Largest accepted request body.
    pub max_request_bytes: usize,
    /// Reviews evaluated at once; more wait up to the deadline.
    pub max_concurrent_reviews: usize,
    /// Reviews waiting for an evaluation slot; a review beyond them is answered at once with
    /// the failure policy (reason `overloaded`).
    pub max_queued_reviews: usize,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for a connection's TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers (also how long a kept-alive connection may idle).
    pub header_timeout: Duration,
    /// Time allowed for reading a request's body.
    pub body_timeout: Duration,
    /// How long open requests may take to finish after SIGTERM.
    pub shutdown_grace_period: Duration,
    /// Namespaces whose requests are admitted without evaluation.
    pub exempt_namespaces: Vec<Wildcard>,
    /// The webhook's own service account username (its requests are admitted).
    pub service_account: Option<String>,
    /// Audit interval (zero: no periodic audit).
    pub audit_interval: Duration,
    /// Kinds synced into the inventory from the cluster (with policies from files or cluster).
    pub sync: Vec<SyncKind>,
    /// This replica's name in the `status.byPod` entries it writes in cluster mode (Gatekeeper's
    /// convention: the pod name, from the `POD_NAME` environment variable the Deployment sets
    /// with the downward API; `HOSTNAME` otherwise).
    pub pod_name: String,
}

/// The pod name from the environment (`POD_NAME`, else `HOSTNAME`).
fn pod_name_from_env() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "meshguard-admission-webhook".to_string())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            cert_file: PathBuf::from("/certs/tls.crt"),
            key_file: PathBuf::from("/certs/tls.key"),
            tls_reload_interval: Duration::from_secs(10),
            policies: PolicySource::Files(vec![PathBuf::from("/policies")]),
            inventory_paths: Vec::new(),
            policy_reload_interval: Duration::from_secs(10),
            failure_policy: FailurePolicy::Fail,
            evaluation_timeout: Duration::from_secs(2),
            decision_cache: true,
            max_request_bytes: 3 * 1024 * 1024,
            max_concurrent_reviews: 8,
            max_queued_reviews: 32,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            shutdown_grace_period: Duration::from_secs(15),
            exempt_namespaces: Vec::new(),
            service_account: None,
            audit_interval: Duration::from_secs(60),
            sync: Vec::new(),
            pod_name: pod_name_from_env(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    listen: Option<String>,
    tls: Option<RawTls>,
    policies: Option<RawPolicies>,
    inventory: Option<RawInventory>,
    failure_policy: Option<FailurePolicy>,
    evaluation_timeout: Option<String>,
    decision_cache: Option<bool>,
    max_request_bytes: Option<usize>,
    max_concurrent_reviews: Option<usize>,
    max_queued_reviews: Option<usize>,
    max_connections: Option<usize>,
    timeouts: Option<RawTimeouts>,
    shutdown_grace_period: Option<String>,
    #[serde(default)]
    exempt_namespaces: Vec<String>,
    service_account: Option<String>,
    audit: Option<RawAudit>,
    sync: Option<RawSync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    reload_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicies {
    mode: String,
    #[serde(default)]
    paths: Vec<PathBuf>,
    reload_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTimeouts {
    tls_handshake: Option<String>,
    request_headers: Option<String>,
    request_body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    paths: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    interval: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSync {
    #[serde(default)]
    sync_only: Vec<SyncKind>,
}

/// A settings error: the field and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("settings: field `{field}`: {message}")]
pub struct SettingsError {
    /// Field path.
    pub field: String,
    /// Message.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

impl Settings {
    /// Parses settings from YAML (fields not given keep their defaults).
    pub fn from_yaml(text: &str) -> Result<Self, SettingsError> {
        let raw: RawSettings = if text.trim().is_empty() {
            RawSettings::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| err(&e.path().to_string(), e.inner().to_string()))?
        };
        let mut settings = Settings::default();
        let duration = |field: &str, text: &str| {
            parse_duration(text).ok_or_else(|| {
                err(
                    field,
                    format!("{text:?} is not a duration (e.g. 500ms, 2s, 1m)"),
                )
            })
        };
        if let Some(listen) = raw.listen {
            settings.listen = listen
                .parse()
                .map_err(|e| err("listen", format!("{listen:?}: {e}")))?;
        }
        if let Some(tls) = raw.tls {
            settings.cert_file = tls.cert_file;
            settings.key_file = tls.key_file;
            if let Some(interval) = tls.reload_interval {
                settings.tls_reload_interval = duration("tls.reloadInterval", &interval)?;
            }
        }
        if let Some(policies) = raw.policies {
            settings.policies = match policies.mode.as_str() {
                "files" if policies.paths.is_empty() => {
                    return Err(err("policies.paths", "files mode needs at least one path"));
                }
                "files" => PolicySource::Files(policies.paths),
                "cluster" => PolicySource::Cluster,
                other => {
                    return Err(err(
                        "policies.mode",
                        format!("{other:?} (expected files or cluster)"),
                    ));
                }
            };
            if let Some(interval) = policies.reload_interval {
                settings.policy_reload_interval = duration("policies.reloadInterval", &interval)?;
            }
        }
        if let Some(inventory) = raw.inventory {
            settings.inventory_paths = inventory.paths;
        }
        if let Some(policy) = raw.failure_policy {
            settings.failure_policy = policy;
        }
        if let Some(timeout) = raw.evaluation_timeout {
            settings.evaluation_timeout = duration("evaluationTimeout", &timeout)?;
            if settings.evaluation_timeout.is_zero() {
                return Err(err("evaluationTimeout", "must be positive"));
            }
        }
        if let Some(on) = raw.decision_cache {
            settings.decision_cache = on;
        }
        if let Some(bytes) = raw.max_request_bytes {
            if bytes == 0 {
                return Err(err("maxRequestBytes", "must be positive"));
            }
            settings.max_request_bytes = bytes;
        }
        if let Some(n) = raw.max_concurrent_reviews {
            if n == 0 {
                return Err(err("maxConcurrentReviews", "must be positive"));
            }
            settings.max_concurrent_reviews = n;
        }
        if let Some(n) = raw.max_queued_reviews {
            settings.max_queued_reviews = n;
        }
        if let Some(n) = raw.max_connections {
            if n == 0 {
                return Err(err("maxConnections", "must be positive"));
            }
            settings.max_connections = n;
        }
        if let Some(timeouts) = raw.timeouts {
            for (field, text, slot) in [
                (
                    "timeouts.tlsHandshake",
                    timeouts.tls_handshake,
                    &mut settings.handshake_timeout,
                ),
                (
                    "timeouts.requestHeaders",
                    timeouts.request_headers,
                    &mut settings.header_timeout,
                ),
                (
                    "timeouts.requestBody",
                    timeouts.request_body,
                    &mut settings.body_timeout,
                ),
            ] {
                if let Some(text) = text {
                    *slot = duration(field, &text)?;
                    if slot.is_zero() {
                        return Err(err(field, "must be positive"));
                    }
                }
            }
        }
        if let Some(grace) = raw.shutdown_grace_period {
            settings.shutdown_grace_period = duration("shutdownGracePeriod", &grace)?;
        }
        settings.exempt_namespaces = raw.exempt_namespaces.into_iter().map(Wildcard).collect();
        settings.service_account = raw.service_account;
        if let Some(audit) = raw.audit {
            settings.audit_interval = duration("audit.interval", &audit.interval)?;
        }
        if let Some(sync) = raw.sync {
            settings.sync = sync.sync_only;
        }
        if !settings.sync.is_empty() && !settings.inventory_paths.is_empty() {
            return Err(err(
                "inventory.paths",
                "data.inventory comes from files or from the cluster (sync), not both",
            ));
        }
        Ok(settings)
    }

    /// The listener's connection limits and timeouts.
    pub fn connection_limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            header_timeout: self.header_timeout,
            grace_period: self.shutdown_grace_period,
        }
    }

    /// Whether a namespace is exempt.
    pub fn is_exempt_namespace(&self, namespace: &str) -> bool {
        !namespace.is_empty() && self.exempt_namespaces.iter().any(|w| w.matches(namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let settings = Settings::from_yaml(
            "listen: 127.0.0.1:9443\ntls: {certFile: a.crt, keyFile: a.key, reloadInterval: 500ms}\n\
             policies: {mode: cluster}\nfailurePolicy: Ignore\nevaluationTimeout: 1.5s\n\
             decisionCache: false\n\
             exemptNamespaces: [kube-*]\nsync: {syncOnly: [{version: v1, kind: Service}]}\n\
             maxQueuedReviews: 0\nmaxConnections: 64\nshutdownGracePeriod: 3s\n\
             timeouts: {tlsHandshake: 2s, requestHeaders: 5s, requestBody: 1s}\n",
        )
        .unwrap();
        assert_eq!(settings.max_queued_reviews, 0);
        assert_eq!(settings.max_connections, 64);
        assert_eq!(settings.shutdown_grace_period, Duration::from_secs(3));
        assert_eq!(
            (
                settings.handshake_timeout,
                settings.header_timeout,
                settings.body_timeout
            ),
            (
                Duration::from_secs(2),
                Duration::from_secs(5),
                Duration::from_secs(1)
            )
        );
        assert_eq!(settings.listen.port(), 9443);
        assert_eq!(settings.tls_reload_interval, Duration::from_millis(500));
        assert_eq!(settings.policies, PolicySource::Cluster);
        assert_eq!(settings.failure_policy, FailurePolicy::Ignore);
        assert_eq!(settings.evaluation_timeout, Duration::from_millis(1500));
        assert!(!settings.decision_cache);
        assert!(settings.is_exempt_namespace("kube-system"));
        assert!(!settings.is_exempt_namespace("shop"));
        assert_eq!(settings.sync[0].kind, "Service");
    }

    #[test]
    fn errors_name_the_field() {
        for (yaml, field) in [
            ("failurePolicy: Maybe", "failurePolicy"),
            ("evaluationTimeout: soon", "evaluationTimeout"),
            ("policies: {mode: git}", "policies.mode"),
            ("tls: {certFile: a}", "tls"),
            ("listen: nowhere", "listen"),
            ("timeouts: {requestBody: 0s}", "timeouts.requestBody"),
            ("timeouts: {requestHeader: 1s}", "timeouts"),
            ("maxConnections: 0", "maxConnections"),
            ("exemptNamespace: [a]", "."),
            (
                "inventory: {paths: [x]}\nsync: {syncOnly: [{version: v1, kind: Service}]}",
                "inventory.paths",
            ),
        ] {
            let e = Settings::from_yaml(yaml).unwrap_err();
            assert!(e.field.starts_with(field) || field == ".", "{yaml}: {e}");
        }
    }
}
