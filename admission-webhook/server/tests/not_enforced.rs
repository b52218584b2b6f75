//! Templates and constraints that fail to load or validate are not enforced, and the webhook
//! says so, in files mode (load errors naming the file, `/readyz`, the `status="error"` gauges).
//! Cluster mode's status reports are in `cluster.rs`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use meshguard_admission_webhook::config::{PolicySource, Settings};
use meshguard_admission_webhook::files;
use meshguard_admission_webhook::http::router;
use meshguard_admission_webhook::state::State;
use serde_json::json;
use support::*;
use tower::ServiceExt;

/// A template with a parameter schema, a valid constraint, one whose parameters break the
/// schema, a template that does not compile and its constraint.
const EXTRA: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sreplicacap}
spec:
  crd:
    spec:
      names: {kind: K8sReplicaCap}
      validation:
        openAPIV3Schema:
          type: object
          properties:
            maxReplicas: {type: integer, minimum: 1}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sreplicacap
      violation[{"msg": msg}] {
        input.review.object.spec.replicas > input.parameters.maxReplicas
        msg := sprintf("at most %v replicas", [input.parameters.maxReplicas])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sReplicaCap
metadata: {name: replicas-capped}
spec:
  match: {kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]}
  parameters: {maxReplicas: 50}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sReplicaCap
metadata: {name: replicas-capped-typo}
spec:
  enforcementAction: warn
  match: {kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]}
  parameters: {maxReplicas: "ten"}
---
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sbroken}
spec:
  crd: {spec: {names: {kind: K8sBroken}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sbroken
      violation[{"msg": "never"}] { input.review.object.spec.x == }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBroken
metadata: {name: broken-one}
spec: {}
"#;

fn policies_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "meshguard-not-enforced-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        testdata("policies/required-labels.yaml"),
        dir.join("required-labels.yaml"),
    )
    .unwrap();
    std::fs::write(dir.join("extra.yaml"), EXTRA).unwrap();
    dir
}

async fn get(state: &Arc<State>, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn allowed(state: &Arc<State>, review: &serde_json::Value) -> (bool, Vec<String>) {
    let request = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(review).unwrap()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let warnings = answer["response"]["warnings"]
        .as_array()
        .map(|w| w.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (answer["response"]["allowed"] == true, warnings)
}

#[tokio::test]
async fn files_mode_enforces_what_is_valid_and_reports_the_rest() {
    let dir = policies_dir("files");
    let state = State::new(Settings {
        policies: PolicySource::Files(vec![dir.clone()]),
        ..Settings::default()
    });
    files::load(&state, std::slice::from_ref(&dir)).unwrap();

    // Enforced: the valid template and its valid constraint, and required-labels.
    let policies = state.policies();
    assert_eq!(policies.templates().count(), 2);
    assert_eq!(policies.constraints().count(), 2);
    let not_enforced = state.not_enforced();
    let what: Vec<&str> = not_enforced.iter().map(|n| n.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "ConstraintTemplate k8sbroken",
            "K8sReplicaCap replicas-capped-typo",
            "K8sBroken broken-one"
        ]
    );
    let extra = dir.join("extra.yaml").display().to_string();
    assert!(
        not_enforced[0].error.starts_with(&format!("{extra}:")),
        "{:?}",
        not_enforced[0]
    );
    assert!(
        not_enforced[1]
            .error
            .starts_with(&format!("{extra} (document 3, line 29)")),
        "{:?}",
        not_enforced[1]
    );
    assert!(
        not_enforced[1]
            .error
            .contains("spec.parameters.maxReplicas: \"ten\" is not of type \"integer\""),
        "{:?}",
        not_enforced[1]
    );
    assert!(
        not_enforced[2]
            .error
            .contains("its ConstraintTemplate k8sbroken failed to load"),
        "{:?}",
        not_enforced[2]
    );

    // /readyz says so, and stays 200: the valid policies are enforced.
    let (status, text) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.starts_with("ready: 2 templates and 2 constraints enforced\nnot enforced (3):\n"),
        "{text}"
    );
    assert!(
        text.contains("  K8sReplicaCap replicas-capped-typo: "),
        "{text}"
    );
    assert!(text.contains(&format!("{extra} (document 3")), "{text}");

    // The gauges count them as Gatekeeper does.
    let (_, metrics) = get(&state, "/metrics").await;
    let errors = |labels: &[(&str, &str)]| metric(&metrics, "gatekeeper_constraints", labels);
    assert_eq!(
        errors(&[("status", "error"), ("enforcement_action", "warn")]),
        1.0
    );
    assert_eq!(
        errors(&[("status", "error"), ("enforcement_action", "deny")]),
        1.0
    );
    assert_eq!(errors(&[("status", "active")]), 2.0);
    let templates = [("status", "error")];
    assert_eq!(
        metric(&metrics, "gatekeeper_constraint_templates", &templates),
        1.0
    );

    // 20 replicas: the valid cap (50) admits; the invalid one ("ten", warn) is not enforced.
    let mut review = allowed_review();
    review["request"]["object"]["spec"]["replicas"] = json!(20);
    assert_eq!(allowed(&state, &review).await, (true, Vec::new()));
    review["request"]["object"]["spec"]["replicas"] = json!(60);
    assert!(!allowed(&state, &review).await.0);

    // Fixed in git, reloaded: everything is enforced and /readyz is plain again.
    let fixed = EXTRA
        .replace("maxReplicas: \"ten\"", "maxReplicas: 10")
        .replace("spec.x == }", "spec.x == 1 }");
    std::fs::write(dir.join("extra.yaml"), fixed).unwrap();
    files::load(&state, std::slice::from_ref(&dir)).unwrap();
    assert!(state.not_enforced().is_empty());
    assert_eq!(state.policies().constraints().count(), 4);
    let (_, text) = get(&state, "/readyz").await;
    assert_eq!(text, "ready: 3 templates and 4 constraints enforced\n");
    review["request"]["object"]["spec"]["replicas"] = json!(20);
    let (admitted, warnings) = allowed(&state, &review).await;
    assert!(admitted);
    assert_eq!(warnings, ["[replicas-capped-typo] at most 10 replicas"]);

    // A file that does not parse: the reload is refused and the previous set stays.
    std::fs::write(dir.join("extra.yaml"), "kind: [").unwrap();
    let err = files::load(&state, std::slice::from_ref(&dir)).unwrap_err();
    assert!(format!("{err:#}").contains("invalid YAML"), "{err:#}");
    assert_eq!(state.policies().constraints().count(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
