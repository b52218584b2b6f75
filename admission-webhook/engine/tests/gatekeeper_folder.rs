//! The repository's `gatekeeper/` folder: every template loads, and every case of every gator
//! suite (`suite.yaml`) gives the asserted violations when reviewed by this engine at the gator
//! enforcement point. This is a minimal suite runner (violation counts, message regexes,
//! inventory, AdmissionReview objects, skip, invalid); the CLI's `policy verify` is the full one.

use std::path::{Path, PathBuf};

use meshguard_policy_engine::{
    AdmissionRequest, Constraint, EnforcementPoint, Inventory, PolicySet, ReviewOptions, Template,
    document,
};
use serde::Deserialize;
use serde_json::Value as Json;

fn gatekeeper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatekeeper")
}

#[derive(Deserialize)]
struct Suite {
    #[serde(default)]
    tests: Vec<SuiteTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuiteTest {
    name: String,
    template: String,
    constraint: String,
    #[serde(default)]
    cases: Vec<SuiteCase>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuiteCase {
    name: String,
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<Assertion>,
    #[serde(default)]
    skip: bool,
}

#[derive(Deserialize)]
struct Assertion {
    #[serde(default)]
    violations: Option<Json>,
    #[serde(default)]
    message: Option<String>,
}

fn suites(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            suites(&path, out);
        } else if path.file_name().is_some_and(|n| n == "suite.yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_template_in_gatekeeper_loads() {
    let dir = gatekeeper_dir();
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let mut templates = 0;
    for file in document::manifest_files(&dir).unwrap() {
        for doc in document::read_file(&file).unwrap() {
            if meshguard_policy_engine::template::is_template(&doc) {
                Template::from_document(&doc).unwrap_or_else(|err| panic!("{err}"));
                templates += 1;
            }
        }
    }
    assert!(
        templates > 0,
        "no ConstraintTemplate under {}",
        dir.display()
    );
}

#[test]
fn gator_suites_in_gatekeeper_pass() {
    let mut found = Vec::new();
    suites(&gatekeeper_dir(), &mut found);
    assert!(!found.is_empty(), "no suite.yaml under gatekeeper/");
    let mut failures = Vec::new();
    let mut cases = 0;
    for suite_path in &found {
        let base = suite_path.parent().unwrap();
        let suite: Suite =
            serde_yaml::from_str(&std::fs::read_to_string(suite_path).unwrap()).unwrap();
        for test in suite.tests.iter().filter(|t| !t.skip) {
            let label = format!("{}: {}", suite_path.display(), test.name);
            let template_docs = document::read_file(&base.join(&test.template)).unwrap();
            let constraint_docs = document::read_file(&base.join(&test.constraint)).unwrap();
            let loaded = Template::from_document(&template_docs[0]).and_then(|template| {
                let mut set = PolicySet::new();
                set.insert_template(template.into());
                set.add_constraint(Constraint::from_document(&constraint_docs[0])?)?;
                Ok(set)
            });
            let set = match (loaded, test.invalid) {
                (Err(_), true) => continue,
                (Ok(_), true) => {
                    failures.push(format!("{label}: expected invalid, loaded"));
                    continue;
                }
                (Err(err), false) => {
                    failures.push(format!("{label}: {err}"));
                    continue;
                }
                (Ok(set), false) => set,
            };
            for case in test.cases.iter().filter(|c| !c.skip) {
                cases += 1;
                let label = format!("{label} / {}", case.name);
                let object = document::read_file(&base.join(&case.object)).unwrap();
                let object = &object[0].value;
                let request = if object["kind"] == "AdmissionReview" {
                    AdmissionRequest::from_json_value(&object["request"])
                } else {
                    AdmissionRequest::from_object(object)
                }
                .unwrap();
                let mut docs = Vec::new();
                for file in &case.inventory {
                    docs.extend(document::read_file(&base.join(file)).unwrap());
                }
                let inventory = Inventory::from_documents(&docs).unwrap();
                let options = ReviewOptions::at(EnforcementPoint::Gator);
                let violations = match set.review_with(&request, &inventory, &options) {
                    Ok(v) => v,
                    Err(err) => {
                        failures.push(format!("{label}: {err}"));
                        continue;
                    }
                };
                for assertion in &case.assertions {
                    let matching = violations
                        .iter()
                        .filter(|v| match &assertion.message {
                            Some(pattern) => {
                                regex::Regex::new(pattern).unwrap().is_match(&v.message)
                            }
                            None => true,
                        })
                        .count();
                    let ok = match assertion.violations.as_ref().unwrap_or(&Json::from("yes")) {
                        Json::String(s) if s == "yes" => matching > 0,
                        Json::String(s) if s == "no" => matching == 0,
                        Json::Bool(true) => matching > 0,
                        Json::Bool(false) => matching == 0,
                        Json::Number(n) => Some(matching as u64) == n.as_u64(),
                        other => panic!("{label}: bad violations {other}"),
                    };
                    if !ok {
                        let got: Vec<&str> =
                            violations.iter().map(|v| v.message.as_str()).collect();
                        failures.push(format!(
                            "{label}: violations {:?} message {:?}: got {got:?}",
                            assertion.violations, assertion.message
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases > 0);
}
