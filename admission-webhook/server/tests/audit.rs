//! Audit as Gatekeeper's: existing objects evaluated against every constraint, violations reported
//! per constraint (`totalViolations`, object, message, enforcement action). Once through the
//! binary's `audit` subcommand on manifest files, once as the periodic audit of the state's
//! inventory with its Gatekeeper metrics.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use meshguard_admission_webhook::audit::audit_state;
use meshguard_admission_webhook::config::Settings;
use meshguard_admission_webhook::state::State;
use meshguard_policy_engine::{Inventory, PolicySet};
use serde_json::{Value as Json, json};
use support::*;

/// Four Deployments: compliant, missing the team label (deny), `:latest` (warn), 20 replicas
/// (dryrun); plus a Service no constraint matches.
fn objects() -> Vec<Json> {
    let named = |review: Json, name: &str| {
        let mut object = review["request"]["object"].clone();
        object["metadata"]["name"] = json!(name);
        object
    };
    vec![
        named(allowed_review(), "order"),
        named(denied_review(), "cart"),
        named(warned_review(), "search"),
        named(dryrun_review(), "product"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "cart", "namespace": "commerce"},
               "spec": {"selector": {"app": "cart"}, "ports": [{"port": 80}]}}),
    ]
}

fn by_constraint(report: &Json) -> BTreeMap<String, Json> {
    report["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

#[test]
fn audit_subcommand_reports_per_constraint() {
    let dir = std::env::temp_dir().join(format!("meshguard-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifests: Vec<String> = objects()
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    std::fs::write(dir.join("objects.yaml"), manifests.join("---\n")).unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    // Every test policy except the deliberately slow one.
    for name in [
        "required-labels.yaml",
        "image-tags.yaml",
        "replica-limits.yaml",
    ] {
        std::fs::copy(testdata("policies").join(name), policies.join(name)).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_meshguard-admission-webhook"))
        .args(["audit", "--policies"])
        .arg(&policies)
        .arg("--objects")
        .arg(dir.join("objects.yaml"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "violations found: exit 1\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["objects"], 5);
    assert_eq!(report["totalViolations"], 3);
    let constraints = by_constraint(&report);
    let deny = &constraints["deployments-need-team"];
    assert_eq!(deny["kind"], "K8sRequiredLabels");
    assert_eq!(deny["totalViolations"], 1);
    assert_eq!(
        deny["violations"][0],
        json!({"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "commerce",
               "name": "cart", "message": "you must provide labels: {\"team\"}",
               "enforcementAction": "deny"})
    );
    let warn = &constraints["no-latest-tag"]["violations"][0];
    assert_eq!(
        (&warn["name"], &warn["enforcementAction"]),
        (&json!("search"), &json!("warn"))
    );
    let dryrun = &constraints["replicas-at-most-10"]["violations"][0];
    assert_eq!(
        (&dryrun["name"], &dryrun["enforcementAction"]),
        (&json!("product"), &json!("dryrun"))
    );
}

#[test]
fn periodic_audit_of_the_inventory_sets_gatekeeper_metrics() {
    let policies = PolicySet::load_paths(&[
        testdata("policies/required-labels.yaml"),
        testdata("policies/image-tags.yaml"),
        testdata("policies/replica-limits.yaml"),
    ])
    .unwrap();
    let state = State::with_policies(Settings::default(), policies);
    let mut inventory = Inventory::new();
    for object in objects() {
        inventory.add(object).unwrap();
    }
    state.set_inventory(inventory);
    let report = audit_state(&state);
    assert_eq!(report.objects, 5);
    assert_eq!(report.total(), 3);
    let metrics = state.metrics.render();
    for action in ["deny", "warn", "dryrun"] {
        let labels = [("enforcement_action", action)];
        assert_eq!(
            metric(&metrics, "gatekeeper_violations", &labels),
            1.0,
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("gatekeeper_audit_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "gatekeeper_audit_last_run_time", &[]) > 1.6e9,
        "{metrics}"
    );
}
