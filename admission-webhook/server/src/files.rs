//! Policies from files (GitOps: a ConfigMap or a synced folder mounted into the pod): loaded at
//! start, then re-loaded whenever a manifest file under the paths changes (checked by size and
//! modification time). A set that fails to load is reported and the previous one stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshguard_policy_engine::{Inventory, PolicySet, document};

use crate::state::State;

/// A fingerprint of every manifest file under the paths.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for path in paths {
        if let Ok(files) = document::manifest_files(path) {
            for file in files {
                let meta = std::fs::metadata(&file).ok();
                out.push((
                    file,
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                ));
            }
        }
    }
    out
}

/// Loads the policy set from the paths (and the inventory from the settings' inventory paths)
/// into the state; returns the error when it fails.
pub fn load(state: &State, paths: &[PathBuf]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let set = PolicySet::load_paths(paths)?;
    let inventory_paths = &state.settings.inventory_paths;
    if !inventory_paths.is_empty() {
        let inventory = Inventory::load_paths(inventory_paths)?;
        tracing::info!(objects = inventory.len(), "inventory loaded");
        state.set_inventory(inventory);
    }
    tracing::info!(
        templates = set.templates().count(),
        constraints = set.constraints().count(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "policies loaded"
    );
    for template in set.templates().filter(|t| !t.notes.is_empty()) {
        tracing::info!(template = %template.name, notes = ?template.notes, "Rego rewritten for regorus");
    }
    state.set_policies(set);
    state.set_ready();
    Ok(())
}

/// Re-loads the policies whenever the files change, until the task is dropped.
pub async fn watch(state: Arc<State>, paths: Vec<PathBuf>, interval: Duration) {
    let watched: Vec<PathBuf> = paths
        .iter()
        .chain(state.settings.inventory_paths.iter())
        .cloned()
        .collect();
    let mut last = fingerprint(&watched);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = fingerprint(&watched);
        if now == last {
            continue;
        }
        last = now;
        let state = state.clone();
        let paths = paths.clone();
        let result = tokio::task::spawn_blocking(move || load(&state, &paths)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "policies not reloaded; keeping the previous set")
            }
            Err(e) => tracing::error!(error = %e, "policy reload task failed"),
        }
    }
}
