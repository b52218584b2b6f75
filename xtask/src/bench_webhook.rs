//! `cargo xtask bench-webhook`: the admission webhook under load over TLS on loopback, with every
//! ConstraintTemplate and Constraint of `gatekeeper/` loaded (and the tier-1 PodDisruptionBudgets
//! as inventory).
//!
//! The release webhook binary runs as its own process with its production defaults (JSON logs at
//! info, written to a file); the release `loadgen` example drives it with AdmissionReview JSON as
//! the API server sends it, cycling through 64 rounds of three distinct reviews (a compliant
//! Deployment rolled out to a new image tag, a denied Deployment under a new name, the next
//! replica of a ReplicaSet's Pod):
//! 1. saturation: closed loop on many kept-alive connections, reviews per second;
//! 2. fixed rate: 500 reviews/s open loop, p50/p99 from each request's scheduled time.
//!
//! Then the same load against a webhook with the decision cache off (`decisionCache: false`), the
//! baseline: what the repository's policy costs when every review is evaluated.
//!
//! Targets (2-core machine): at least 2,000 reviews/s at saturation, p99 under 10 ms at 500/s.
//! Results go to target/bench/webhook.{md,json}.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use meshguard_admission_webhook::pki::Pki;
use meshguard_testkit::paths::{target_dir, workspace_root};
use serde_json::{Value as Json, json};

use crate::process::{cargo, output, run};

/// Arguments of `bench-webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections in the saturation phase.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Rate of the fixed-rate phase.
    #[arg(long, default_value_t = 500)]
    rate: u64,
}

const TARGET_RPS: f64 = 2000.0;
const TARGET_P99_MS: f64 = 10.0;
/// Rounds of three distinct reviews the load generator cycles through.
const ROUNDS: u32 = 64;

fn deployment(app: &str, labels: Json, image: &str) -> Json {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": "commerce", "labels": labels.clone(),
                     "annotations": {"deployment.kubernetes.io/revision": "4"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
                    "containers": [
                        {"name": app, "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                         "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                         "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                         "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"},
                        {"name": "log-shipper", "image": "registry.example.com/platform/log-shipper:1.9.0",
                         "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                         "livenessProbe": {"tcpSocket": {"port": 9000}}, "readinessProbe": {"tcpSocket": {"port": 9000}},
                         "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}
                    ],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"
                }
            }
        }
    })
}

fn review(object: &Json, resource: &str, uid: u32) -> Json {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("6c1b9a54-0000-4000-8000-{uid:012}"),
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": object["kind"]},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"], "namespace": "commerce", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "argocd-controller"}
        }
    })
}

/// Runs the benchmark.
pub fn run_bench(args: &Args) -> anyhow::Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "meshguard-admission-webhook",
        "--bin",
        "meshguard-admission-webhook",
        "--example",
        "loadgen",
    ]))?;
    let release = target_dir().join("release");
    let dir = target_dir().join("bench/webhook");
    std::fs::create_dir_all(&dir)?;
    let pki = Pki::new("meshguard bench")?;
    let (cert, key) = pki.server_cert("meshguard-admission-webhook")?;
    std::fs::write(dir.join("ca.crt"), &pki.ca_pem)?;
    std::fs::write(dir.join("tls.crt"), cert)?;
    std::fs::write(dir.join("tls.key"), key)?;
    let root = workspace_root();
    let labels = |app: &str| json!({"app": app, "version": "v2", "team": app});
    let mut pod = deployment(
        "search",
        labels("search"),
        "registry.example.com/commerce/search:2.4.1",
    );
    let template = pod["spec"]["template"].clone();
    pod = json!({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "search-6d8f7c9b5-x2lkq", "namespace": "commerce", "labels": template["metadata"]["labels"]},
                 "spec": template["spec"]});
    // A realistic stream, not one review repeated: each round is a rollout of the order
    // Deployment to a new image tag (a new spec), a denied cart Deployment under a new name, and
    // the next replica of the search ReplicaSet (new name and uid). The decision cache can reuse
    // only what really repeats.
    let mut paths = Vec::new();
    for round in 0..ROUNDS {
        let uid = 3 * round;
        let allowed = deployment(
            "order",
            labels("order"),
            &format!("registry.example.com/commerce/order:2.4.{round}"),
        );
        let mut denied = deployment(
            "cart",
            json!({"app": "cart", "version": "v2"}),
            "docker.io/library/cart:latest",
        );
        denied["metadata"]["name"] = format!("cart-{round}").into();
        let mut replica = pod.clone();
        replica["metadata"]["name"] = format!("search-6d8f7c9b5-{round:05x}").into();
        replica["metadata"]["uid"] = format!("0b5e2c7a-0000-4000-8000-{round:012x}").into();
        for (name, review) in [
            ("allowed-deployment", review(&allowed, "deployments", uid)),
            ("denied-deployment", review(&denied, "deployments", uid + 1)),
            ("pod", review(&replica, "pods", uid + 2)),
        ] {
            let path = dir.join(format!("{name}-{round}.json"));
            std::fs::write(&path, serde_json::to_vec(&review)?)?;
            paths.push(path.display().to_string());
        }
    }
    let (saturate, rate) = serve_and_load(args, &dir, &release, &root, &paths, true)?;
    // The same load with the cache off: what every review costs when it is evaluated.
    let (base_saturate, base_rate) = serve_and_load(args, &dir, &release, &root, &paths, false)?;
    let rps = saturate["reviews_per_second"].as_f64().unwrap_or(0.0);
    let p99 = rate["p99_ms"].as_f64().unwrap_or(f64::MAX);
    let rows = [
        format!(
            "| saturation ({} conns) | {:.0} reviews/s | p50 {:.2} ms, p99 {:.2} ms | {} requests, {} errors | target >= {TARGET_RPS:.0}/s: {} |",
            args.connections,
            rps,
            saturate["p50_ms"].as_f64().unwrap_or(0.0),
            saturate["p99_ms"].as_f64().unwrap_or(0.0),
            saturate["requests"],
            saturate["errors"],
            if rps >= TARGET_RPS { "met" } else { "MISSED" }
        ),
        format!(
            "| fixed {}/s | {:.0} reviews/s | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | {} requests, {} errors | target p99 < {TARGET_P99_MS} ms: {} |",
            args.rate,
            rate["reviews_per_second"].as_f64().unwrap_or(0.0),
            rate["p50_ms"].as_f64().unwrap_or(0.0),
            p99,
            rate["max_ms"].as_f64().unwrap_or(0.0),
            rate["requests"],
            rate["errors"],
            if p99 < TARGET_P99_MS { "met" } else { "MISSED" }
        ),
    ];
    let base_rps = base_saturate["reviews_per_second"].as_f64().unwrap_or(0.0);
    let baseline = [
        format!(
            "| saturation, decision cache off (baseline) | {:.0} reviews/s | p50 {:.2} ms, p99 {:.2} ms | {} requests, {} errors | cache on: {:.1}x the throughput |",
            base_rps,
            base_saturate["p50_ms"].as_f64().unwrap_or(0.0),
            base_saturate["p99_ms"].as_f64().unwrap_or(0.0),
            base_saturate["requests"],
            base_saturate["errors"],
            rps / base_rps.max(f64::EPSILON)
        ),
        format!(
            "| fixed {}/s, decision cache off (baseline) | {:.0} reviews/s | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | {} requests, {} errors | cache on: {:.2}x the p99 |",
            args.rate,
            base_rate["reviews_per_second"].as_f64().unwrap_or(0.0),
            base_rate["p50_ms"].as_f64().unwrap_or(0.0),
            base_rate["p99_ms"].as_f64().unwrap_or(0.0),
            base_rate["max_ms"].as_f64().unwrap_or(0.0),
            base_rate["requests"],
            base_rate["errors"],
            p99 / base_rate["p99_ms"].as_f64().unwrap_or(f64::MAX)
        ),
    ];
    let table = format!(
        "| phase | throughput | latency | volume | target |\n|---|---|---|---|---|\n{}\n{}\n",
        rows.join("\n"),
        baseline.join("\n")
    );
    println!("\n{table}");
    let bench_dir = target_dir().join("bench");
    std::fs::write(bench_dir.join("webhook.md"), &table)?;
    std::fs::write(
        bench_dir.join("webhook.json"),
        serde_json::to_vec_pretty(&json!({
            "saturate": saturate, "rate": rate,
            "baseline_no_cache": {"saturate": base_saturate, "rate": base_rate},
        }))?,
    )?;
    for (phase, result) in [
        ("saturation", &saturate),
        ("fixed rate", &rate),
        ("saturation (cache off)", &base_saturate),
        ("fixed rate (cache off)", &base_rate),
    ] {
        if result["errors"].as_u64().unwrap_or(1) > 0 {
            bail!("{phase}: requests failed during the benchmark");
        }
        // Answers from the failure policy (timeouts, overload) are not verdicts: a fast run of
        // them would measure nothing.
        if result["failed"].as_u64().unwrap_or(1) > 0 {
            bail!(
                "{phase}: {} reviews were answered by the failure policy (see {})",
                result["failed"],
                dir.join("webhook.log.json").display()
            );
        }
        // One review in three is the denied Deployment.
        let requests = result["requests"].as_f64().unwrap_or(0.0);
        let denied = result["denied"].as_f64().unwrap_or(0.0);
        if requests > 0.0 && !(0.3..=0.37).contains(&(denied / requests)) {
            bail!("{phase}: {denied} of {requests} reviews denied, expected one in three");
        }
    }
    Ok(())
}

/// Starts the release webhook with the decision cache on or off and runs both load phases.
fn serve_and_load(
    args: &Args,
    dir: &std::path::Path,
    release: &std::path::Path,
    root: &std::path::Path,
    paths: &[String],
    cache: bool,
) -> anyhow::Result<(Json, Json)> {
    let config = format!(
        "listen: 127.0.0.1:0\ntls: {{certFile: {d}/tls.crt, keyFile: {d}/tls.key}}\n\
         policies: {{mode: files, paths: [{g}]}}\n\
         inventory: {{paths: [{g}/tier1-disruption-budget/samples/tier1-pdb/example_allowed_inventory.yaml]}}\n\
         evaluationTimeout: 2s\nmaxConcurrentReviews: 4\naudit: {{interval: 0s}}\n\
         decisionCache: {cache}\n",
        d = dir.display(),
        g = root.join("gatekeeper").display()
    );
    let name = if cache { "webhook" } else { "webhook-nocache" };
    std::fs::write(dir.join(format!("{name}.yaml")), config)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut server = Command::new(release.join("meshguard-admission-webhook"))
        .args(["serve", "--config"])
        .arg(dir.join(format!("{name}.yaml")))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the webhook")?;
    let stdout = server.stdout.take().context("webhook stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    let mut ready_log = Vec::new();
    for line in lines.by_ref().take(100) {
        let line = line?;
        let parsed: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
        ready_log.push(line);
        if let Some(listen) = parsed["listen"].as_str() {
            addr = Some(listen.to_string());
            break;
        }
    }
    // Keep draining the webhook's log (to a file) so it never blocks on a full pipe.
    let log_path = dir.join(format!("{name}.log.json"));
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok(mut file) = std::fs::File::create(log_path) {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
        }
    });
    let Some(addr) = addr else {
        let _ = server.kill();
        bail!("the webhook did not start:\n{}", ready_log.join("\n"));
    };
    let templates = std::fs::read_dir(root.join("gatekeeper"))?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("template.yaml").is_file())
        .count();
    println!(
        "webhook (release, {templates} templates from gatekeeper/, decision cache {}) on {addr}",
        if cache { "on" } else { "off" }
    );
    let phase = |mode: &str| -> anyhow::Result<Json> {
        let mut command = Command::new(release.join("examples/loadgen"));
        command
            .args(["--addr", &addr, "--ca"])
            .arg(dir.join("ca.crt"));
        command.args([
            "--reviews",
            &paths.join(","),
            "--seconds",
            &args.seconds.to_string(),
        ]);
        match mode {
            "saturate" => {
                command.args(["saturate", "--connections", &args.connections.to_string()])
            }
            _ => command.args([
                "rate",
                "--per-second",
                &args.rate.to_string(),
                "--connections",
                "16",
            ]),
        };
        let out = output(&mut command)?;
        Ok(serde_json::from_str(out.trim())?)
    };
    std::thread::sleep(Duration::from_millis(500));
    let result =
        (|| -> anyhow::Result<(Json, Json)> { Ok((phase("saturate")?, phase("rate")?)) })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
