//! The bytecode VM is the default evaluator only because it decides exactly as the tree
//! interpreter does: every template of the repository's `gatekeeper/` folder and of the
//! benchmark's larger set compiles for the VM, and every constraint gives the same violations
//! (messages and details) on both evaluators for every sample object, with and without an
//! inventory holding all of them.
//!
//! The decision cache is checked the same way: with it on, a repeated review, and a copy of each
//! sample renamed with a new uid (what a ReplicaSet's next replica looks like) reviewed after the
//! original, decide exactly as an uncached evaluation does.

use std::path::{Path, PathBuf};

use meshguard_policy_engine::{
    AdmissionRequest, Corpus, EnforcementPoint, EvalMode, Inventory, PolicySet, ReviewOptions,
    Violation, document,
};

fn repo_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn review(
    set: &PolicySet,
    request: &AdmissionRequest,
    inventory: &Inventory,
    mode: EvalMode,
    cached: bool,
) -> Result<Vec<Violation>, String> {
    let set = set.clone().with_eval_mode(mode).with_decision_cache(cached);
    set.review_with(
        request,
        inventory,
        &ReviewOptions::at(EnforcementPoint::Gator),
    )
    .map_err(|err| err.to_string())
}

/// The request with the object renamed and new uids, as the next replica of a ReplicaSet.
fn renamed(request: &AdmissionRequest) -> AdmissionRequest {
    let mut json = serde_json::to_value(request.value()).expect("request as JSON");
    json["uid"] = "replica-uid".into();
    if let Some(metadata) = json["object"]["metadata"].as_object_mut() {
        let name = metadata.get("name").and_then(|n| n.as_str()).unwrap_or("");
        metadata.insert("name".into(), format!("{name}-x7k2p").into());
        metadata.insert("uid".into(), "5f0c-replica".into());
    }
    let value = meshguard_policy_engine::regorus::Value::from(json);
    AdmissionRequest::from_value(value).expect("renamed request")
}

fn check_corpus(paths: &[PathBuf]) -> usize {
    let corpus = Corpus::load(paths).unwrap_or_else(|err| panic!("{err}"));
    for template in corpus.policies.templates() {
        assert_eq!(
            template.vm_unavailable(),
            None,
            "{} does not run on the VM",
            template.name
        );
    }
    let docs: Vec<_> = document::read_paths(paths)
        .unwrap()
        .into_iter()
        .filter(|doc| !doc.kind().is_empty() && !doc.api_version().contains("gatekeeper.sh"))
        .collect();
    let full = Inventory::from_documents(&docs).unwrap_or_default();
    let requests = corpus.requests();
    assert!(!requests.is_empty());
    let mut compared = 0;
    let mut failures = Vec::new();
    for inventory in [Inventory::new(), full] {
        for (label, request) in &requests {
            let policies = &corpus.policies;
            let interpreter = review(policies, request, &inventory, EvalMode::Interpreter, false);
            let vm = review(policies, request, &inventory, EvalMode::Vm, false);
            compared += interpreter.as_ref().map_or(0, Vec::len);
            if interpreter != vm {
                failures.push(format!(
                    "{label}:\n  interpreter: {interpreter:?}\n  vm:          {vm:?}"
                ));
            }
            for round in ["first", "repeated"] {
                let cached = review(policies, request, &inventory, EvalMode::Vm, true);
                if cached != interpreter {
                    failures.push(format!(
                        "{label} ({round}, cached):\n  interpreter: {interpreter:?}\n  cached:      {cached:?}"
                    ));
                }
            }
            let replica = renamed(request);
            let fresh = review(policies, &replica, &inventory, EvalMode::Interpreter, false);
            let cached = review(policies, &replica, &inventory, EvalMode::Vm, true);
            if cached != fresh {
                failures.push(format!(
                    "{label} (renamed replica, cached):\n  uncached: {fresh:?}\n  cached:   {cached:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    compared
}

#[test]
fn vm_and_interpreter_agree_on_the_gatekeeper_folder() {
    let violations = check_corpus(&[repo_dir("../../gatekeeper")]);
    assert!(violations > 10, "only {violations} violations compared");
}

#[test]
fn vm_and_interpreter_agree_on_the_larger_set() {
    let violations = check_corpus(&[repo_dir("benches-data")]);
    assert!(violations > 10, "only {violations} violations compared");
}

#[test]
fn vm_is_the_default() {
    assert_eq!(PolicySet::new().eval_mode(), EvalMode::Vm);
}

/// A complete rule whose two definitions disagree is an error in OPA (and so a violation
/// carrying the error in Gatekeeper). The VM's copy reports a marker instead, and the engine
/// answers with the interpreter's decision.
#[test]
fn conflicting_definitions_decide_as_the_interpreter() {
    let yaml = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: namespaced}
spec:
  crd: {spec: {names: {kind: Namespaced}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package namespaced
      ns = n { n := input.review.object.metadata.namespace }
      ns = n { n := input.review.namespace }
      violation[{"msg": sprintf("in %v", [ns])}] { ns == "shop" }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: Namespaced
metadata: {name: not-in-shop}
spec: {}
"#;
    let docs = document::parse_documents("conflict.yaml", yaml).unwrap();
    let set = PolicySet::from_documents(&docs).unwrap();
    let template = set.templates().next().unwrap();
    assert_eq!(template.vm_unavailable(), None);
    let object = |namespace: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "namespace": namespace}})
    };
    let mut compared = 0;
    for (object_ns, request_ns) in [("shop", "shop"), ("shop", "other"), ("a", "a")] {
        let mut json = serde_json::to_value(
            AdmissionRequest::from_object(&object(object_ns))
                .unwrap()
                .value(),
        )
        .unwrap();
        json["namespace"] = request_ns.into();
        let request =
            AdmissionRequest::from_value(meshguard_policy_engine::regorus::Value::from(json))
                .unwrap();
        let inventory = Inventory::new();
        let interpreter = review(&set, &request, &inventory, EvalMode::Interpreter, false);
        let vm = review(&set, &request, &inventory, EvalMode::Vm, false);
        assert_eq!(interpreter, vm, "{object_ns}/{request_ns}");
        compared += interpreter.map_or(0, |v| v.len());
    }
    // shop/shop violates; shop/other is the conflict error, reported as a violation.
    assert_eq!(compared, 2);
}
