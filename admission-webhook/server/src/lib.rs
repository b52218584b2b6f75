//! meshguard's validating admission webhook: Gatekeeper ConstraintTemplates and Constraints
//! (evaluated by `meshguard-policy-engine`) enforced at admission.
//!
//! A thin transport over the engine, as Gatekeeper's and Kubewarden's webhooks are:
//! [`admission`] decodes an AdmissionReview and encodes Gatekeeper's answer, [`http::router`]
//! serves it (and health, readiness and Prometheus metrics) without needing a socket,
//! [`serve::serve_tls`] and [`tls`] put it behind rustls with certificates reloaded on rotation.
//! Policies come from files ([`files`], GitOps) or from the cluster ([`cluster`], kube watchers
//! with inventory sync); [`audit`] evaluates existing objects. [`run`] wires it all; [`cli`] is the
//! binary's command line (checked against `deploy/` by `tests/deploy.rs`).

pub mod admission;
pub mod audit;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod files;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod serve;
pub mod state;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{PolicySource, Settings};
use crate::state::State;

/// Loads policies, starts the background tasks (certificate reload, policy reload or cluster
/// sync, audit) and serves until `shutdown` completes. Returns the state once serving ends.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Arc<State>> {
    let state = State::new(settings);
    let (state, tasks) = start(state).await?;
    let certs = tls::CertStore::load(&state.settings.cert_file, &state.settings.key_file)?;
    let mut tasks = tasks;
    tasks.push(tokio::spawn(certs.clone().watch(
        state.settings.tls_reload_interval,
        {
            let state = state.clone();
            move |not_after| {
                state
                    .metrics
                    .certificate_expiry
                    .set(not_after.unwrap_or_default());
            }
        },
    )));
    let result = serve::serve_tls(
        listener,
        certs.server_config()?,
        http::router(state.clone()),
        state.settings.connection_limits(),
        shutdown,
    )
    .await;
    for task in tasks {
        task.abort();
    }
    result.map(|()| state)
}

/// Loads the policies (files mode) or starts the cluster sync, plus the periodic audit; returns
/// the background tasks.
pub async fn start(
    state: Arc<State>,
) -> anyhow::Result<(Arc<State>, Vec<tokio::task::JoinHandle<()>>)> {
    let mut tasks = Vec::new();
    match &state.settings.policies {
        PolicySource::Files(paths) => {
            let paths = paths.clone();
            let load_state = state.clone();
            let load_paths = paths.clone();
            tokio::task::spawn_blocking(move || files::load(&load_state, &load_paths)).await??;
            tasks.push(tokio::spawn(files::watch(
                state.clone(),
                paths,
                state.settings.policy_reload_interval,
            )));
            // A sync list with policies from files: the inventory comes from the cluster.
            if !state.settings.sync.is_empty() {
                let client = kube::Client::try_default().await?;
                let _sync = cluster::ClusterSync::start_inventory(state.clone(), client);
            }
        }
        PolicySource::Cluster => {
            let client = kube::Client::try_default().await?;
            let _sync = cluster::ClusterSync::start(state.clone(), client);
        }
    }
    if !state.settings.audit_interval.is_zero() {
        tasks.push(tokio::spawn(audit::run_periodically(
            state.clone(),
            state.settings.audit_interval,
        )));
    }
    Ok((state, tasks))
}

/// Binds a listener on the settings' address.
pub async fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind(settings.listen).await?)
}
