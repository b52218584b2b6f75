//! The bytecode VM is the default evaluator only because it decides exactly as the tree
//! interpreter does: every template of the repository's `gatekeeper/` folder and of the
//! benchmark's larger set compiles for the VM, and every constraint gives the same violations
//! (messages and details) on both evaluators for every sample object, with and without an
//! inventory holding all of them.
//!
//! The decision cache is checked the same way: with it on, a repeated review, and a copy of each
//! sample renamed with a new uid (what a ReplicaSet's next replica looks like) reviewed after the
//! original, decide exactly as an uncached evaluation does. Then every leaf of every sample is
//! perturbed in turn (a string changed, a number moved, a boolean flipped, a field dropped) and
//! reviewed against a cache that holds the original's decisions: a path the read-set analysis
//! missed would show up as a cached decision that differs from the evaluated one. On the
//! public-library-style set, the analysis must also key every template precisely: no template
//! may depend on the object's name or uids, so replicas hit.

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
    let violations = check_corpus(&[
        repo_dir("benches-data/templates.yaml"),
        repo_dir("benches-data/objects"),
    ]);
    assert!(violations > 10, "only {violations} violations compared");
}

#[test]
fn vm_and_interpreter_agree_on_the_public_library_style_set() {
    let violations = check_corpus(&[repo_dir("benches-data/library")]);
    assert!(violations > 100, "only {violations} violations compared");
}

/// Every leaf of `value` (path, value), objects and arrays walked.
fn leaves(
    value: &serde_json::Value,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, serde_json::Value)>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(index.to_string());
                leaves(child, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

fn pointer(path: &[String]) -> String {
    path.iter().map(|s| format!("/{s}")).collect()
}

/// Copies of `object` each with one leaf perturbed or dropped.
fn perturbed(object: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    leaves(object, &mut Vec::new(), &mut found);
    let mut out = Vec::new();
    for (path, leaf) in found {
        let at = pointer(&path);
        if at == "/apiVersion" || at == "/kind" {
            continue;
        }
        let changes: Vec<serde_json::Value> = match &leaf {
            serde_json::Value::String(s) => {
                vec![format!("{s}-x").into(), "".into(), "latest".into()]
            }
            serde_json::Value::Number(n) => {
                let n = n.as_f64().unwrap_or(0.0);
                vec![serde_json::json!(n + 1.0), serde_json::json!(0)]
            }
            serde_json::Value::Bool(b) => vec![(!b).into()],
            serde_json::Value::Null => vec!["x".into()],
            _ => Vec::new(),
        };
        for change in changes {
            let mut copy = object.clone();
            if let Some(slot) = copy.pointer_mut(&at) {
                *slot = change.clone();
                out.push((format!("{at} = {change}"), copy));
            }
        }
        // Dropped (an object field only).
        if let Some((last, parent)) = path.split_last()
            && last.parse::<usize>().is_err()
        {
            let mut copy = object.clone();
            if let Some(map) = copy
                .pointer_mut(&pointer(parent))
                .and_then(|p| p.as_object_mut())
            {
                map.remove(last);
                out.push((format!("{at} dropped"), copy));
            }
        }
    }
    out
}

/// For every entry of `dir` on its own (a template's folder or file, with its constraints and
/// samples): each perturbed copy of each sample, reviewed against a cache holding the original's
/// decisions, decides as an uncached evaluation does.
fn check_perturbations(dir: &Path) -> usize {
    let mut compared = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() || document::is_manifest(path))
        .collect();
    entries.sort();
    for entry in entries {
        let corpus = Corpus::load(&[&entry]).unwrap_or_else(|err| panic!("{err}"));
        if corpus.policies.constraints().next().is_none() {
            continue;
        }
        let inventory = Inventory::new();
        let cached = corpus.policies.clone().with_decision_cache(true);
        for (label, object) in &corpus.objects {
            let plain = object.get("request").is_none() && object.get("uid").is_none();
            let targets: Vec<(String, serde_json::Value)> = if plain {
                perturbed(object)
            } else {
                // An AdmissionRequest: perturb its object.
                perturbed(&object["object"])
                    .into_iter()
                    .map(|(what, changed)| {
                        let mut request = object.clone();
                        request["object"] = changed;
                        (format!("object{what}"), request)
                    })
                    .collect()
            };
            let make = |value: &serde_json::Value| {
                if plain {
                    AdmissionRequest::from_object(value)
                } else {
                    AdmissionRequest::from_json_value(value)
                }
            };
            let Ok(original) = make(object) else {
                continue;
            };
            let options = ReviewOptions::at(EnforcementPoint::Gator);
            let _ = cached.review_with(&original, &inventory, &options);
            for (what, value) in targets {
                let Ok(request) = make(&value) else {
                    continue;
                };
                let fresh = corpus
                    .policies
                    .clone()
                    .with_decision_cache(false)
                    .review_with(&request, &inventory, &options)
                    .map_err(|e| e.to_string());
                let from_cache = cached
                    .review_with(&request, &inventory, &options)
                    .map_err(|e| e.to_string());
                compared += 1;
                if fresh != from_cache {
                    failures.push(format!(
                        "{label} with {what}:\n  uncached: {fresh:?}\n  cached:   {from_cache:?}"
                    ));
                }
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
fn cached_decisions_agree_on_perturbed_samples_of_the_gatekeeper_folder() {
    let compared = check_perturbations(&repo_dir("../../gatekeeper"));
    assert!(compared > 500, "only {compared} perturbed reviews");
}

#[test]
fn cached_decisions_agree_on_perturbed_samples_of_the_public_library_style_set() {
    let compared = check_perturbations(&repo_dir("benches-data/library"));
    assert!(compared > 500, "only {compared} perturbed reviews");
}

/// The public-library-style set: every template analysed on its parse tree, none keyed on the
/// object's name or uids (they may only be shown in messages), so a ReplicaSet's replicas hit.
#[test]
fn public_library_idioms_are_keyed_precisely_and_replicas_hit() {
    let corpus = Corpus::load(&[repo_dir("benches-data/library")]).unwrap();
    let mut problems = Vec::new();
    for template in corpus.policies.templates() {
        if let Some(why) = template.cache_fallback() {
            problems.push(format!(
                "{}: fell back to the text scan: {why}",
                template.name
            ));
        }
        for path in template.cache_key_paths() {
            let keyed = path.starts_with("value ") || path.starts_with("type ");
            let identity = path.ends_with("metadata.name")
                || path.ends_with("metadata.uid")
                || path.ends_with("review.uid")
                || path.ends_with(" input")
                || path.ends_with(" input.review")
                || path.ends_with(" input.review.object") && path.starts_with("value ");
            if keyed && identity && !path.starts_with("type ") {
                problems.push(format!("{}: {path}", template.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // 200 replicas of the benchmark's Pod: after the first, only the decisions whose
    // violations show the Pod's name are evaluated again.
    let pod = document::read_file(&repo_dir("benches-data/objects/pod.yaml")).unwrap();
    let set = corpus.policies.clone().with_decision_cache(true);
    let inventory = Inventory::new();
    let options = ReviewOptions::at(EnforcementPoint::Gator);
    let mut first = None;
    for index in 0..200 {
        let mut object = pod[0].value.clone();
        object["metadata"]["name"] = format!("cart-7d9f8b6c5-{index:05x}").into();
        object["metadata"]["uid"] = format!("00000000-0000-4000-8000-{index:012x}").into();
        let request = AdmissionRequest::from_object(&object).unwrap();
        let violations = set.review_with(&request, &inventory, &options).unwrap();
        let uncached = corpus
            .policies
            .clone()
            .with_decision_cache(false)
            .review_with(&request, &inventory, &options)
            .unwrap();
        assert_eq!(violations, uncached, "replica {index}");
        if index == 0 {
            first = Some(set.cache_stats());
        }
    }
    let first = first.unwrap();
    let stats = set.cache_stats();
    let (hits, misses) = (stats.hits - first.hits, stats.misses - first.misses);
    // The startup-probe constraint names the Pod in its violations: one miss per replica.
    assert!(
        misses <= 199,
        "{misses} misses and {hits} hits over 199 replicas"
    );
    assert!(
        hits >= 199 * 50,
        "{misses} misses and {hits} hits over 199 replicas"
    );
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
