//! Shared test support: the AdmissionReview fixture as the API server sends it, variations of it,
//! the test policies, and an rcgen-made CA with server certificates.

#![allow(dead_code, reason = "each test file uses a part")]

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name)
}

/// The Deployment CREATE review from the fixture (admission.k8s.io/v1).
pub fn deployment_review() -> Json {
    serde_json::from_str(&std::fs::read_to_string(testdata("deployment-review.json")).unwrap())
        .unwrap()
}

/// The fixture with `team` added: admitted by every test policy.
pub fn allowed_review() -> Json {
    let mut review = deployment_review();
    review["request"]["object"]["metadata"]["labels"]["team"] = json!("shop");
    review
}

/// The fixture as is: denied (no team label).
pub fn denied_review() -> Json {
    deployment_review()
}

/// Admitted with a warning: team label present, image tag latest.
pub fn warned_review() -> Json {
    let mut review = allowed_review();
    review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/commerce/cart:latest");
    review
}

/// Admitted, with a dry-run violation: 20 replicas.
pub fn dryrun_review() -> Json {
    let mut review = allowed_review();
    review["request"]["object"]["spec"]["replicas"] = json!(20);
    review
}

/// A ConfigMap the slow template evaluates (past any short deadline).
pub fn slow_review() -> Json {
    let mut review = deployment_review();
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    review["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "configmaps"});
    review["request"]["requestKind"] = review["request"]["kind"].clone();
    review["request"]["requestResource"] = review["request"]["resource"].clone();
    review["request"]["name"] = json!("settings");
    review["request"]["object"] = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "commerce", "labels": {"meshguard-test": "slow"}},
        "data": {"a": "b"}
    });
    review
}

/// The same review as v1beta1.
pub fn v1beta1(mut review: Json) -> Json {
    review["apiVersion"] = json!("admission.k8s.io/v1beta1");
    review
}

/// Moves the review into another namespace.
pub fn in_namespace(mut review: Json, namespace: &str) -> Json {
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    review
}

pub fn uid(review: &Json) -> String {
    review["request"]["uid"].as_str().unwrap().to_string()
}

/// The library's throwaway CA, with unwrapping helpers.
pub struct Pki(meshguard_admission_webhook::pki::Pki);

impl Pki {
    pub fn new(name: &str) -> Self {
        Self(meshguard_admission_webhook::pki::Pki::new(name).unwrap())
    }

    pub fn ca_pem(&self) -> &str {
        &self.0.ca_pem
    }

    pub fn server_cert(&self, common_name: &str) -> (String, String) {
        self.0.server_cert(common_name).unwrap()
    }
}

/// The sum of the samples named `name` whose labels include `labels`, in a Prometheus text
/// exposition parsed with `prometheus-parse` (a parser independent of the crate that writes it).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a Prometheus text exposition");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// [`metric`] for a counter, as a whole number.
pub fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metric(text, name, labels) as u64
}
