//! Templates and constraints: load errors (`testdata/load_errors.yaml`), reviews end to end
//! (`testdata/evaluation_cases.yaml`), enforcement actions per point, deadlines, inventory,
//! audit (regorus' divergences are in `divergences.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshguard_policy_engine::{
    AdmissionRequest, Constraint, EnforcementAction, EnforcementPoint, Inventory, PolicySet,
    ReviewError, ReviewOptions, Template, Violation, document,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name)
}

fn line(v: &Violation) -> String {
    let actions: Vec<&str> = v.actions.iter().map(|a| a.as_str()).collect();
    format!("{} {}", actions.join(","), v.gatekeeper_line())
}

// === load errors ===

#[derive(Deserialize)]
struct LoadCases {
    cases: Vec<LoadCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadCase {
    name: String,
    yaml: String,
    error: Vec<String>,
}

#[test]
fn load_errors_name_file_document_and_field() {
    let table: LoadCases =
        serde_yaml::from_str(include_str!("testdata/load_errors.yaml")).expect("table");
    let mut failures = Vec::new();
    for case in &table.cases {
        let outcome = document::parse_documents("case.yaml", &case.yaml)
            .and_then(|docs| PolicySet::from_documents(&docs));
        match outcome {
            Ok(_) => failures.push(format!("{}: loaded", case.name)),
            Err(err) => {
                let text = err.to_string();
                for fragment in &case.error {
                    if !text.contains(fragment.as_str()) {
                        failures.push(format!("{}: {fragment:?} not in: {text}", case.name));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn load_errors_are_collected_across_documents() {
    let yaml = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: A\nmetadata: {name: a}\n---\n\
                apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: B\nmetadata: {name: b}\n";
    let docs = document::parse_documents("two.yaml", yaml).unwrap();
    let err = PolicySet::from_documents(&docs).unwrap_err();
    assert_eq!(err.errors().len(), 2, "{err}");
}

#[test]
fn single_documents_load_for_invalid_suites() {
    let text = std::fs::read_to_string(testdata("templates/requiredlabels.yaml")).unwrap();
    let docs = document::parse_documents("requiredlabels.yaml", &text).unwrap();
    let template = Template::from_document(&docs[0]).expect("template");
    assert_eq!(template.kind, "K8sRequiredLabels");
    assert_eq!(template.rule(), "data.k8srequiredlabels.violation");
    let constraint = Constraint::from_document(&docs[1]).expect("constraint");
    assert_eq!(constraint.id.name, "workloads-need-team");
    assert_eq!(constraint.parameters, json!({"labels": ["app", "team"]}));
    // A template document is not a constraint.
    assert!(Constraint::from_document(&docs[0]).is_err());
}

#[test]
fn duplicates_must_be_identical() {
    let path = testdata("templates/requiredlabels.yaml");
    // The same file twice: identical documents are fine.
    let set = PolicySet::load_paths(&[&path, &path]).expect("identical duplicates");
    assert_eq!(set.constraints().count(), 1);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"team\"]", "\"owner\"]");
    let mut docs = document::read_file(&path).unwrap();
    docs.extend(document::parse_documents("other.yaml", &text).unwrap());
    let err = PolicySet::from_documents(&docs).unwrap_err().to_string();
    assert!(err.contains("other.yaml (document 2"), "{err}");
    assert!(err.contains("already defined by"), "{err}");
}

// === reviews ===

#[derive(Deserialize)]
struct EvalCases {
    cases: Vec<EvalCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalCase {
    name: String,
    policies: Vec<String>,
    #[serde(default)]
    parameters: Option<Json>,
    #[serde(default)]
    object: Option<Json>,
    #[serde(default)]
    request: Option<Json>,
    #[serde(default)]
    inventory: Vec<Json>,
    expect: Vec<String>,
}

#[test]
fn evaluation_cases() {
    let table: EvalCases =
        serde_yaml::from_str(include_str!("testdata/evaluation_cases.yaml")).expect("table");
    let mut failures = Vec::new();
    for case in &table.cases {
        let mut docs = Vec::new();
        for file in &case.policies {
            docs.extend(document::read_file(&testdata(&format!("templates/{file}"))).unwrap());
        }
        if let Some(parameters) = &case.parameters {
            docs.push(document::Document::inline(
                "parameters",
                json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sEdgeCases",
                       "metadata": {"name": "edge"}, "spec": {"parameters": parameters}}),
            ));
        }
        let set = PolicySet::from_documents(&docs).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let request = match (&case.object, &case.request) {
            (Some(object), None) => AdmissionRequest::from_object(object),
            (None, Some(request)) => AdmissionRequest::from_json_value(request),
            _ => panic!("{}: give object or request", case.name),
        }
        .unwrap();
        let mut inventory = Inventory::new();
        for object in &case.inventory {
            inventory.add(object.clone()).unwrap();
        }
        let got: Vec<String> = match set.review(&request, &inventory) {
            Ok(violations) => violations.iter().map(line).collect(),
            Err(err) => vec![format!("error: {err}")],
        };
        let ok = got.len() == case.expect.len()
            && got
                .iter()
                .zip(&case.expect)
                .all(|(got, want)| match want.strip_prefix('~') {
                    Some(pattern) => regex::Regex::new(pattern).unwrap().is_match(got),
                    None => got == want,
                });
        if !ok {
            failures.push(format!(
                "{}:\n  want {:?}\n  got  {got:?}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn details_default_to_an_object_and_are_kept() {
    let set = PolicySet::load_paths(&[testdata("templates/requiredlabels.yaml")]).unwrap();
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "a", "namespace": "shop"}});
    let request = AdmissionRequest::from_object(&object).unwrap();
    let violations = set.review(&request, &Inventory::new()).unwrap();
    assert_eq!(
        violations[0].details,
        json!({"missing_labels": ["app", "team"]})
    );
}

// === enforcement actions ===

#[test]
fn enforcement_actions_per_point() {
    // (spec fragment, point, expected actions; empty: not enforced there, so no violation)
    let cases: Vec<(Json, EnforcementPoint, Vec<EnforcementAction>)> = vec![
        (
            json!({}),
            EnforcementPoint::Validation,
            vec![EnforcementAction::Deny],
        ),
        (
            json!({"enforcementAction": "deny"}),
            EnforcementPoint::Audit,
            vec![EnforcementAction::Deny],
        ),
        (
            json!({"enforcementAction": "dryrun"}),
            EnforcementPoint::Validation,
            vec![EnforcementAction::Dryrun],
        ),
        (
            json!({"enforcementAction": "warn"}),
            EnforcementPoint::Gator,
            vec![EnforcementAction::Warn],
        ),
        // scopedEnforcementActions are ignored unless enforcementAction is scoped.
        (
            json!({"enforcementAction": "warn", "scopedEnforcementActions": [
            {"action": "deny", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]}]}),
            EnforcementPoint::Validation,
            vec![EnforcementAction::Warn],
        ),
        (
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "warn", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]},
            {"action": "deny", "enforcementPoints": [{"name": "gator.gatekeeper.sh"}]}]}),
            EnforcementPoint::Validation,
            vec![EnforcementAction::Warn],
        ),
        (
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "warn", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]},
            {"action": "deny", "enforcementPoints": [{"name": "gator.gatekeeper.sh"}]}]}),
            EnforcementPoint::Gator,
            vec![EnforcementAction::Deny],
        ),
        (
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "deny", "enforcementPoints": [{"name": "audit.gatekeeper.sh"}]}]}),
            EnforcementPoint::Validation,
            vec![],
        ),
        (
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "deny", "enforcementPoints": [{"name": "*"}]}]}),
            EnforcementPoint::Audit,
            vec![EnforcementAction::Deny],
        ),
        (
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "deny", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]},
            {"action": "warn", "enforcementPoints": [{"name": "*"}]}]}),
            EnforcementPoint::Validation,
            vec![EnforcementAction::Deny, EnforcementAction::Warn],
        ),
    ];
    let template = document::read_file(&testdata("templates/requiredlabels.yaml")).unwrap();
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "a", "namespace": "shop"}});
    let request = AdmissionRequest::from_object(&object).unwrap();
    for (index, (spec, point, want)) in cases.into_iter().enumerate() {
        let mut spec = spec;
        spec["parameters"] = json!({"labels": ["team"]});
        let mut docs = vec![template[0].clone()];
        docs.push(document::Document::inline(
            "enforcement",
            json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
                   "metadata": {"name": "c"}, "spec": spec}),
        ));
        let set = PolicySet::from_documents(&docs).unwrap();
        let violations = set
            .review_with(&request, &Inventory::new(), &ReviewOptions::at(point))
            .unwrap();
        let got: Vec<EnforcementAction> = violations
            .first()
            .map(|v| v.actions.clone())
            .unwrap_or_default();
        assert_eq!(got, want, "case {index}");
    }
}

// === deadline ===

#[test]
fn evaluation_stops_at_the_deadline() {
    let yaml = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sslow}
spec:
  crd: {spec: {names: {kind: K8sSlow}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sslow
      violation[{"msg": msg}] {
        n := count([x | numbers.range(1, 2000)[x]; numbers.range(1, 2000)[y]; x < y])
        msg := sprintf("%v", [n])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSlow
metadata: {name: slow}
"#;
    let set =
        PolicySet::from_documents(&document::parse_documents("slow.yaml", yaml).unwrap()).unwrap();
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let request = AdmissionRequest::from_object(&object).unwrap();
    let options = ReviewOptions {
        point: EnforcementPoint::Validation,
        deadline: Duration::from_millis(50),
    };
    let started = std::time::Instant::now();
    let err = set
        .review_with(&request, &Inventory::new(), &options)
        .unwrap_err();
    assert!(matches!(err, ReviewError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

// === inventory ===

#[test]
fn inventory_layout_is_gatekeepers() {
    let mut inventory = Inventory::new();
    inventory
        .add(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart", "namespace": "shop"}}))
        .unwrap();
    inventory
        .add(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"a": "b"}}}))
        .unwrap();
    let value = serde_json::to_value(inventory.value()).unwrap();
    assert_eq!(
        value["namespace"]["shop"]["apps/v1"]["Deployment"]["cart"]["metadata"]["name"],
        "cart"
    );
    assert_eq!(
        value["cluster"]["v1"]["Namespace"]["shop"]["kind"],
        "Namespace"
    );
    assert_eq!(inventory.namespace("shop").unwrap().labels["a"], "b");
    let id = inventory.id();
    assert!(inventory.remove("apps/v1", "Deployment", "shop", "cart"));
    assert_ne!(inventory.id(), id);
    assert_eq!(inventory.len(), 1);
    assert!(inventory.add(json!({"kind": "Pod"})).is_err());
}

#[test]
fn a_changed_inventory_is_seen_by_the_next_review() {
    let set = PolicySet::load_paths(&[testdata("templates/uniqueselector.yaml")]).unwrap();
    let service = json!({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "cart", "namespace": "shop"}, "spec": {"selector": {"app": "cart"}}});
    let request = AdmissionRequest::from_object(&service).unwrap();
    let mut inventory = Inventory::new();
    assert!(set.review(&request, &inventory).unwrap().is_empty());
    inventory
        .add(json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "other", "namespace": "prod"}, "spec": {"selector": {"app": "cart"}}}))
        .unwrap();
    assert_eq!(set.review(&request, &inventory).unwrap().len(), 1);
}

// === audit ===

#[test]
fn audit_reports_violations_per_constraint() {
    let set = PolicySet::load_paths(&[
        testdata("templates/requiredlabels.yaml"),
        testdata("templates/allowedrepos.yaml"),
    ])
    .unwrap();
    let objects = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "shop", "labels": {"app": "a", "team": "t"}},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "docker.io/x"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b", "namespace": "shop"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.example.com/x"}]}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
    ];
    let report = set.audit(
        &objects,
        &Inventory::new(),
        &ReviewOptions::at(EnforcementPoint::Audit),
    );
    assert_eq!(report.objects, 3);
    assert_eq!(report.total(), 2);
    let by_name: Vec<(String, Vec<String>)> = report
        .by_constraint
        .iter()
        .map(|(id, entries)| {
            (
                id.name.clone(),
                entries.iter().map(|(o, _)| o.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        by_name,
        vec![
            (
                "approved-registry".to_string(),
                vec!["Deployment shop/a".to_string()]
            ),
            (
                "workloads-need-team".to_string(),
                vec!["Deployment shop/b".to_string()]
            ),
        ]
    );
}
