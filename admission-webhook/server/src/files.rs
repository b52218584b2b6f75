//! Policies from files (GitOps: a ConfigMap or a synced folder mounted into the pod): loaded at
//! start, then re-loaded whenever a manifest file under the paths changes (checked by size and
//! modification time).
//!
//! A template that does not compile, or a constraint that fails validation (its fields, its
//! parameters against the template's schema, a template that failed), is not enforced and is
//! reported as a load error naming the file and the document: in the log at every load, on
//! `/readyz`, and in the `status="error"` series of the template and constraint gauges; the rest
//! of the set is enforced. A file that cannot be read or parsed at all is different: what it
//! holds is unknown, so the whole reload is refused and the previous set stays in force (at
//! start, the webhook does not start).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshguard_policy_engine::{Inventory, PolicySet, document};

use crate::state::{NotEnforced, State};

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
/// into the state, leaving out (and reporting) the templates and constraints that are invalid;
/// returns the error when a file cannot be read or parsed.
pub fn load(state: &State, paths: &[PathBuf]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let docs = document::read_paths(paths)?;
    let loaded = PolicySet::load_documents(&docs);
    let not_enforced: Vec<NotEnforced> = loaded
        .rejected
        .iter()
        .map(NotEnforced::from_rejected)
        .collect();
    for item in &not_enforced {
        tracing::error!(resource = %item.what, error = %item.error, "not enforced: load error");
    }
    let set = loaded.set;
    let inventory_paths = &state.settings.inventory_paths;
    if !inventory_paths.is_empty() {
        let inventory = Inventory::load_paths(inventory_paths)?;
        tracing::info!(objects = inventory.len(), "inventory loaded");
        state.set_inventory(inventory);
    }
    tracing::info!(
        templates = set.templates().count(),
        constraints = set.constraints().count(),
        not_enforced = not_enforced.len(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "policies loaded"
    );
    for template in set.templates().filter(|t| !t.notes.is_empty()) {
        tracing::info!(template = %template.name, notes = ?template.notes, "Rego rewritten for regorus");
    }
    for constraint in set.constraints() {
        for warning in &constraint.warnings {
            tracing::warn!(constraint = %constraint.what(), location = %constraint.location, warning = %warning, "constraint parameters");
        }
    }
    state.set_loaded(set, not_enforced);
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
