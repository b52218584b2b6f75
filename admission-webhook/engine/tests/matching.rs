//! Constraint `match` semantics, case by case from `testdata/match_cases.yaml`: each case is
//! reviewed end to end (kind index, match, evaluation) against a template that always reports.

use std::collections::BTreeMap;

use meshguard_policy_engine::{AdmissionRequest, Inventory, PolicySet, ReviewError, document};
use serde::Deserialize;
use serde_json::{Value as Json, json};

#[derive(Deserialize)]
struct Table {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    objects: BTreeMap<String, Json>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(rename = "match")]
    matcher: Json,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    old_object: Option<String>,
    #[serde(default)]
    request_namespace: Option<String>,
    expect: Json,
}

const ALWAYS: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8salways}
spec:
  crd: {spec: {names: {kind: K8sAlways}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8salways
      violation[{"msg": "hit"}] { true }
"#;

#[test]
fn match_cases() {
    let table: Table =
        serde_yaml::from_str(include_str!("testdata/match_cases.yaml")).expect("valid table");
    let mut inventory = Inventory::new();
    for (name, labels) in &table.namespaces {
        inventory
            .add(json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "labels": labels}}))
            .expect("namespace");
    }
    let mut failures = Vec::new();
    for case in &table.cases {
        let mut constraint = json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sAlways",
            "metadata": {"name": "case"},
            "spec": {}
        });
        if !case.matcher.is_null() {
            constraint["spec"]["match"] = case.matcher.clone();
        }
        let mut docs = document::parse_documents("always.yaml", ALWAYS).expect("template");
        docs.push(document::Document::inline(&case.name, constraint));
        let policies =
            PolicySet::from_documents(&docs).unwrap_or_else(|err| panic!("{}: {err}", case.name));
        let object = |key: &Option<String>| key.as_ref().map(|k| table.objects[k].clone());
        let object_json = object(&case.object);
        let old_json = object(&case.old_object);
        let facts = object_json
            .as_ref()
            .or(old_json.as_ref())
            .expect("an object");
        let api_version = facts["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let namespace = case
            .request_namespace
            .clone()
            .or_else(|| facts["metadata"]["namespace"].as_str().map(String::from));
        let mut request = json!({
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": group, "version": version, "kind": facts["kind"]},
            "name": facts["metadata"]["name"],
            "operation": case.operation.clone().unwrap_or_else(|| "CREATE".into()),
            "userInfo": {"username": "alice"},
            "object": object_json,
            "oldObject": old_json,
        });
        if let Some(ns) = namespace {
            request["namespace"] = json!(ns);
        }
        let request = AdmissionRequest::from_json_value(&request).expect("request");
        let got = match policies.review(&request, &inventory) {
            Ok(violations) => json!(!violations.is_empty()),
            Err(ReviewError::Match { .. }) => json!("error"),
            Err(other) => panic!("{}: {other}", case.name),
        };
        if got != case.expect {
            failures.push(format!(
                "{}: expected {}, got {got}",
                case.name, case.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(table.cases.len() >= 50);
}
