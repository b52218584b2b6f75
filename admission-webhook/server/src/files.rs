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
//!
//! A review never sees a half-loaded set: the new set is built whole and swapped in at once
//! ([`State::set_loaded`]). Nor a half-written one: a change is loaded only once the files have
//! stayed the same for a whole check interval, and the set is swapped in only if the files did
//! not change while it was being read. A writer that updates a template and its constraints in
//! several files, or one file in several writes, is otherwise caught half-way (a template with
//! its constraint missing admits what it should deny). Kubernetes' ConfigMap volumes swap their
//! files at once and meet neither case; a folder edited in place or synced file by file does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshguard_policy_engine::{Inventory, PolicySet, document};

use crate::state::{NotEnforced, State};

/// Size and modification time of every manifest file under the paths.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// A fingerprint of every manifest file under the paths.
fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
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
    let loaded = read(state, paths)?;
    commit(state, loaded);
    Ok(())
}

/// A policy set and inventory read from files, not yet in force.
struct Loaded {
    set: PolicySet,
    not_enforced: Vec<NotEnforced>,
    inventory: Option<Inventory>,
    started: std::time::Instant,
}

/// Reads the policy set (and inventory) without putting it in force.
fn read(state: &State, paths: &[PathBuf]) -> anyhow::Result<Loaded> {
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
    let inventory = if inventory_paths.is_empty() {
        None
    } else {
        Some(Inventory::load_paths(inventory_paths)?)
    };
    Ok(Loaded {
        set,
        not_enforced,
        inventory,
        started,
    })
}

/// Puts a read set in force, whole.
fn commit(state: &State, loaded: Loaded) {
    let Loaded {
        set,
        not_enforced,
        inventory,
        started,
    } = loaded;
    if let Some(inventory) = inventory {
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
}

/// Re-loads the policies whenever the files change, until the task is dropped.
pub async fn watch(state: Arc<State>, paths: Vec<PathBuf>, interval: Duration) {
    let watched: Vec<PathBuf> = paths
        .iter()
        .chain(state.settings.inventory_paths.iter())
        .cloned()
        .collect();
    // The files the set in force was read from, and a change seen at the last check.
    let mut in_force = fingerprint(&watched);
    let mut changed: Option<Fingerprint> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = fingerprint(&watched);
        if now == in_force {
            changed = None;
            continue;
        }
        if changed.as_ref() != Some(&now) {
            // Still being written, perhaps: wait until it holds still for one interval.
            changed = Some(now);
            continue;
        }
        let read_state = state.clone();
        let read_paths = paths.clone();
        let read_watched = watched.clone();
        let result = tokio::task::spawn_blocking(move || {
            let loaded = read(&read_state, &read_paths)?;
            Ok::<_, anyhow::Error>((loaded, fingerprint(&read_watched)))
        })
        .await;
        match result {
            Ok(Ok((loaded, after))) if after == now => {
                commit(&state, loaded);
                in_force = now;
                changed = None;
            }
            Ok(Ok(_)) => {
                tracing::info!("policy files changed while being read; reading them again");
                changed = None;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "policies not reloaded; keeping the previous set");
                // Not again until the files change once more.
                in_force = now;
                changed = None;
            }
            Err(e) => tracing::error!(error = %e, "policy reload task failed"),
        }
    }
}
