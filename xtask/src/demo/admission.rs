//! Act: Deployments of the commerce services applied to the admission webhook, in process on
//! loopback over TLS (a throwaway CA), with every ConstraintTemplate and Constraint of
//! `gatekeeper/` loaded and the tier-1 PodDisruptionBudgets as inventory. Each step is one
//! AdmissionReview as the API server sends it; the outcome shows allowed/denied with Gatekeeper's
//! `[constraint] message` lines.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use meshguard_admission_webhook::client::TlsClient;
use meshguard_admission_webhook::config::{PolicySource, Settings};
use meshguard_admission_webhook::pki::Pki;
use serde_json::{Value as Json, json};

use super::Step;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Deployment of a commerce service that every policy of gatekeeper/ admits.
fn deployment(app: &str) -> Json {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": "commerce",
                     "labels": {"app": app, "version": "v2", "team": app}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "version": "v2", "team": app}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
                    "containers": [{
                        "name": app,
                        "image": format!("registry.example.com/commerce/{app}:2.4.1"),
                        "ports": [{"containerPort": 8080}],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    })
}

fn review(object: &Json, uid: usize) -> Json {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-4000-8000-{uid:012}"),
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": "deployments"},
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// (what, object, expected allowed)
fn scenario() -> Vec<(String, Json, bool)> {
    let mut steps = vec![
        (
            "order: compliant, PDB in inventory".to_string(),
            deployment("order"),
            true,
        ),
        (
            "product: compliant".to_string(),
            deployment("product"),
            true,
        ),
    ];
    let mut payment = deployment("payment");
    payment["spec"]["replicas"] = json!(1);
    steps.push(("payment: tier-1 with 1 replica".into(), payment, false));
    let mut search = deployment("search");
    search["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("docker.io/library/search:latest");
    steps.push(("search: docker.io image, :latest".into(), search, false));
    let mut cart = deployment("cart");
    cart["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
        json!({"privileged": true});
    steps.push(("cart: privileged container".into(), cart, false));
    let mut inventory = deployment("inventory");
    inventory["metadata"]["labels"] = json!({"app": "inventory", "version": "v2"});
    steps.push(("inventory: no team label".into(), inventory, false));
    steps
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(act())
}

async fn act() -> anyhow::Result<Vec<Step>> {
    let dir = root().join("target/demo/admission");
    std::fs::create_dir_all(&dir)?;
    let pki = Pki::new("meshguard demo")?;
    let (cert, key) = pki.server_cert("meshguard-admission-webhook")?;
    std::fs::write(dir.join("tls.crt"), cert)?;
    std::fs::write(dir.join("tls.key"), key)?;
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        cert_file: dir.join("tls.crt"),
        key_file: dir.join("tls.key"),
        policies: PolicySource::Files(vec![root().join("gatekeeper")]),
        inventory_paths: vec![root().join(
            "gatekeeper/tier1-disruption-budget/samples/tier1-pdb/example_allowed_inventory.yaml",
        )],
        audit_interval: Duration::ZERO,
        ..Settings::default()
    };
    let listener = meshguard_admission_webhook::bind(&settings).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(meshguard_admission_webhook::run(
        settings,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let client = TlsClient::new(addr, pki.ca_pem.as_bytes(), "localhost")?;
    let mut conn = client.connect().await.context("connecting over TLS")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while conn.get("/readyz").await?.status != 200 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the webhook did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  webhook on https://{addr}/validate (TLS, test CA), policies from gatekeeper/");

    let mut steps = Vec::new();
    for (index, (what, object, expect_allowed)) in scenario().into_iter().enumerate() {
        let started = Instant::now();
        let reply = conn
            .post("/validate", serde_json::to_vec(&review(&object, index))?)
            .await?;
        let elapsed = started.elapsed();
        let answer = reply.json()?;
        let response = &answer["response"];
        let allowed = response["allowed"] == json!(true);
        let mut outcome = if allowed {
            format!("allowed ({:.1} ms)", elapsed.as_secs_f64() * 1000.0)
        } else {
            format!(
                "denied {} ({:.1} ms)",
                response["status"]["code"],
                elapsed.as_secs_f64() * 1000.0
            )
        };
        if let Some(message) = response["status"]["message"].as_str() {
            for line in message.lines() {
                outcome.push_str(&format!("\n{:>48}{line}", ""));
            }
        }
        if let Some(warnings) = response["warnings"].as_array() {
            for warning in warnings {
                outcome.push_str(&format!(
                    "\n{:>48}warning: {}",
                    "",
                    warning.as_str().unwrap_or("")
                ));
            }
        }
        steps.push(Step::new(
            what,
            outcome,
            reply.status == 200 && allowed == expect_allowed,
        ));
    }
    let metrics = conn.get("/metrics").await?.text();
    let denied = metrics
        .lines()
        .find(|l| {
            l.starts_with("gatekeeper_validation_request_count_total{admission_status=\"deny\"")
        })
        .unwrap_or("none")
        .to_string();
    steps.push(Step::new(
        "GET /metrics",
        denied,
        metrics.contains("admission_status=\"deny\""),
    ));
    let _ = stop.send(());
    let _ = server.await;
    Ok(steps)
}

#[cfg(test)]
mod tests {
    /// The act needs no Envoy, so it runs as a test too: every step goes as expected.
    #[test]
    fn the_act_goes_as_expected() {
        let steps = super::run().expect("the act runs");
        for step in &steps {
            println!("{} {} {}", step.ok, step.request, step.outcome);
        }
        assert!(steps.len() >= 7);
        assert!(steps.iter().all(|s| s.ok));
    }
}
