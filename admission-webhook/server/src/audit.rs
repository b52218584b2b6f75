//! Audit: existing objects (the synced inventory in cluster mode, or manifest files with the
//! `audit` subcommand) evaluated against every constraint enforced at `audit.gatekeeper.sh`, with
//! violations reported per constraint as Gatekeeper's audit reports them in constraint status
//! (`totalViolations`, and per violation the object, message and enforcement action).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshguard_policy_engine::{AuditReport, EnforcementPoint, Inventory, PolicySet, ReviewOptions};
use serde_json::{Value as Json, json};

use crate::metrics::ActionLabels;
use crate::state::State;

/// Audits objects; the deadline applies per object.
pub fn audit<'a>(
    policies: &PolicySet,
    objects: impl IntoIterator<Item = &'a Json>,
    inventory: &Inventory,
    deadline: Duration,
) -> AuditReport {
    let options = ReviewOptions {
        point: EnforcementPoint::Audit,
        deadline,
    };
    policies.audit(objects, inventory, &options)
}

/// The report as JSON: per constraint, `totalViolations` and the violations.
pub fn report_json(report: &AuditReport) -> Json {
    let constraints: Vec<Json> = report
        .by_constraint
        .iter()
        .map(|(id, entries)| {
            json!({
                "kind": id.kind,
                "name": id.name,
                "totalViolations": entries.len(),
                "violations": entries.iter().map(|(object, violation)| json!({
                    "group": object.api_version.split_once('/').map(|(g, _)| g).unwrap_or(""),
                    "version": object.api_version.rsplit('/').next().unwrap_or(""),
                    "kind": object.kind,
                    "namespace": object.namespace,
                    "name": object.name,
                    "message": violation.message,
                    "enforcementAction": violation.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(","),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "objects": report.objects,
        "totalViolations": report.total(),
        "constraints": constraints,
        "errors": report.errors.iter().map(|(object, e)| json!({"object": object.to_string(), "error": e.to_string()})).collect::<Vec<_>>(),
    })
}

/// Audits the inventory held by the state once and records the metrics.
pub fn audit_state(state: &State) -> AuditReport {
    let started = Instant::now();
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    state.metrics.audit_last_run.set(start_time);
    let inventory = state.inventory();
    let report = audit(
        &state.policies(),
        inventory.objects(),
        &inventory,
        state.settings.evaluation_timeout,
    );
    state
        .metrics
        .audit_duration
        .observe(started.elapsed().as_secs_f64());
    let mut by_action = std::collections::BTreeMap::new();
    for entries in report.by_constraint.values() {
        for (_, violation) in entries {
            for action in &violation.actions {
                *by_action.entry(action.as_str()).or_insert(0u64) += 1;
            }
        }
    }
    for enforcement_action in ["deny", "dryrun", "warn"] {
        let count = by_action.get(enforcement_action).copied().unwrap_or(0);
        state
            .metrics
            .audit_violations
            .get_or_create(&ActionLabels { enforcement_action })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    for (id, entries) in &report.by_constraint {
        if !entries.is_empty() {
            tracing::info!(constraint_kind = %id.kind, constraint_name = %id.name, total_violations = entries.len(), "audit");
        }
    }
    report
}

/// Audits every `interval` until the task is dropped.
pub async fn run_periodically(state: Arc<State>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !state.is_ready() {
            continue;
        }
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || audit_state(&state)).await;
    }
}
