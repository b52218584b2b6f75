//! The binary's command line, in the library so that the deployment manifests' container args can
//! be checked against the real flags (`tests/deploy.rs`) and not against a copy of them.
//!
//! ```text
//! meshguard-admission-webhook serve --config /etc/meshguard/webhook.yaml
//! meshguard-admission-webhook serve --cert tls.crt --key tls.key --policies gatekeeper/
//! meshguard-admission-webhook audit --policies gatekeeper/ --objects manifests/
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{FailurePolicy, PolicySource, Settings, parse_duration};

/// `meshguard-admission-webhook`.
#[derive(Debug, Parser)]
#[command(
    name = "meshguard-admission-webhook",
    about = "meshguard's Gatekeeper-compatible validating admission webhook"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhook over TLS.
    Serve(ServeArgs),
    /// Evaluate existing objects against every constraint and report violations per constraint.
    Audit(AuditArgs),
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Settings file (YAML); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Policy files or folders (files mode).
    #[arg(long = "policies")]
    pub policies: Vec<PathBuf>,
    /// Read policies from the cluster (ConstraintTemplate and Constraint resources).
    #[arg(long, conflicts_with = "policies")]
    pub cluster: bool,
    /// Fail (deny) or Ignore (allow with a warning) when a review cannot be completed.
    #[arg(long, value_parser = ["Fail", "Ignore"])]
    pub failure_policy: Option<String>,
    /// Evaluation deadline, e.g. 2s (keep it below the webhook's timeoutSeconds).
    #[arg(long)]
    pub evaluation_timeout: Option<String>,
    /// Namespaces admitted without evaluation (globs), repeatable.
    #[arg(long = "exempt-namespace")]
    pub exempt_namespaces: Vec<String>,
}

/// Flags of `audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Policy files or folders.
    #[arg(long = "policies", required = true)]
    pub policies: Vec<PathBuf>,
    /// Objects to audit (files or folders of manifests); they also form the inventory.
    #[arg(long = "objects", required = true)]
    pub objects: Vec<PathBuf>,
}

impl ServeArgs {
    /// The settings: the `--config` file (defaults without one) with the flags applied.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let base = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Settings::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Settings::default(),
        };
        self.apply(base)
    }

    /// Applies the flags over settings read from the config file.
    pub fn apply(&self, mut settings: Settings) -> anyhow::Result<Settings> {
        if let Some(listen) = self.listen {
            settings.listen = listen;
        }
        if let Some(cert) = &self.cert {
            settings.cert_file = cert.clone();
        }
        if let Some(key) = &self.key {
            settings.key_file = key.clone();
        }
        if !self.policies.is_empty() {
            settings.policies = PolicySource::Files(self.policies.clone());
        }
        if self.cluster {
            settings.policies = PolicySource::Cluster;
        }
        match self.failure_policy.as_deref() {
            Some("Fail") => settings.failure_policy = FailurePolicy::Fail,
            Some("Ignore") => settings.failure_policy = FailurePolicy::Ignore,
            _ => {}
        }
        if let Some(timeout) = &self.evaluation_timeout {
            settings.evaluation_timeout = parse_duration(timeout)
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("--evaluation-timeout {timeout:?} is not a positive duration (e.g. 2s)")
                })?;
        }
        settings.exempt_namespaces.extend(
            self.exempt_namespaces
                .iter()
                .cloned()
                .map(meshguard_policy_engine::matching::Wildcard),
        );
        Ok(settings)
    }
}
