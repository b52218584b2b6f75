//! The binary over real TLS on loopback: a client trusting an rcgen-made test CA sends
//! AdmissionReview JSON as the API server does. Allowed, denied, warned, dry-run, exempt,
//! malformed, oversized, timeout, JSON logs with the uid, and certificate rotation while serving
//! (open connections keep working, new ones get the new certificate).

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshguard_admission_webhook::client::TlsClient;
use serde_json::{Value as Json, json};
use support::*;

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    pki: Pki,
}

impl Server {
    fn start(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("meshguard-webhook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::new(name);
        let (cert, key) = pki.server_cert("generation-1");
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        let config = format!(
            "listen: 127.0.0.1:0\n\
             tls: {{certFile: {dir}/tls.crt, keyFile: {dir}/tls.key, reloadInterval: 100ms}}\n\
             policies: {{mode: files, paths: [{policies}]}}\n\
             failurePolicy: Fail\nevaluationTimeout: 300ms\nmaxRequestBytes: 65536\n\
             exemptNamespaces: [kube-system]\naudit: {{interval: 0s}}\n",
            dir = dir.display(),
            policies = testdata("policies").display()
        );
        std::fs::write(dir.join("webhook.yaml"), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshguard-admission-webhook"))
            .args(["serve", "--config"])
            .arg(dir.join("webhook.yaml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<Json>(&line)
                    && let Some(addr) = json["listen"].as_str()
                {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server address");
        Self {
            child,
            addr,
            dir,
            logs,
            pki,
        }
    }

    fn client(&self) -> TlsClient {
        TlsClient::new(self.addr, self.pki.ca_pem().as_bytes(), "localhost").unwrap()
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- webhook log ---\n{}", self.logs().join("\n"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn post(client: &TlsClient, review: &Json) -> (u16, Json) {
    let reply = client
        .post_once("/validate", serde_json::to_vec(review).unwrap())
        .await
        .unwrap();
    let json = reply.json().unwrap_or(Json::Null);
    (reply.status, json)
}

#[tokio::test]
async fn reviews_over_tls() {
    let server = Server::start("reviews");
    let client = server.client();
    let mut conn = client.connect().await.unwrap();
    // Ready once the policies are loaded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.get("/readyz").await.unwrap().status != 200 {
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(conn.get("/healthz").await.unwrap().status, 200);

    let (status, answer) = post(&client, &allowed_review()).await;
    assert_eq!(
        (status, answer["response"]["allowed"].clone()),
        (200, json!(true))
    );
    assert_eq!(answer["response"]["uid"], json!(uid(&allowed_review())));

    let (_, answer) = post(&client, &denied_review()).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    assert_eq!(
        answer["response"]["status"]["message"],
        "[deployments-need-team] you must provide labels: {\"team\"}"
    );

    let (_, answer) = post(&client, &warned_review()).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(
        answer["response"]["warnings"][0],
        "[no-latest-tag] container <cart> uses a disallowed tag <latest>"
    );

    let (_, answer) = post(&client, &dryrun_review()).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("warnings").is_none());

    let (_, answer) = post(&client, &in_namespace(denied_review(), "kube-system")).await;
    assert_eq!(answer["response"]["allowed"], true);

    let (_, answer) = post(&client, &v1beta1(denied_review())).await;
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(answer["response"]["allowed"], false);

    let reply = client
        .post_once("/validate", b"{\"kind\":".to_vec())
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("not JSON"), "{}", reply.text());

    let mut big = allowed_review();
    big["request"]["object"]["metadata"]["annotations"]["blob"] = json!("x".repeat(70_000));
    let reply = client
        .post_once("/validate", serde_json::to_vec(&big).unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("larger than"), "{}", reply.text());

    let started = Instant::now();
    let (_, answer) = post(&client, &slow_review()).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 500);

    let metrics = conn.get("/metrics").await.unwrap().text();
    let requests = "gatekeeper_validation_request_count_total";
    let status = |s| [("admission_status", s), ("admission_dryrun", "false")];
    assert_eq!(count(&metrics, requests, &status("deny")), 2, "{metrics}");
    assert_eq!(count(&metrics, requests, &status("error")), 1, "{metrics}");
    let oversized = [("reason", "oversized")];
    let rejected = "meshguard_validation_rejected_total";
    assert_eq!(count(&metrics, rejected, &oversized), 1, "{metrics}");
    let timeout = [("reason", "timeout"), ("failure_policy", "Fail")];
    let errors = "meshguard_validation_errors_total";
    assert_eq!(count(&metrics, errors, &timeout), 1, "{metrics}");

    // One JSON log line per review, with its uid.
    let logs = server.logs();
    let reviewed: Vec<Json> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["message"] == "admission review")
        .collect();
    assert!(reviewed.len() >= 6, "{logs:?}");
    assert!(
        reviewed
            .iter()
            .all(|l| l["uid"] == json!(uid(&allowed_review())))
    );
    assert!(
        reviewed
            .iter()
            .any(|l| l["admission_status"] == "deny" && l["kind"] == "Deployment")
    );
}

#[tokio::test]
async fn certificate_rotation_while_serving() {
    let server = Server::start("rotation");
    let client = server.client();
    let mut old = client.connect().await.unwrap();
    let first_cert = old.peer_certificate().to_vec();
    assert_eq!(
        old.post("/validate", serde_json::to_vec(&allowed_review()).unwrap())
            .await
            .unwrap()
            .status,
        200
    );

    // cert-manager rotates the Secret: new key and certificate (written key first, as a
    // non-atomic writer would; the half-written pair is skipped until both match).
    let (cert, key) = server.pki.server_cert("generation-2");
    std::fs::write(server.dir.join("tls.key"), key).unwrap();
    std::fs::write(server.dir.join("tls.crt"), cert).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let new_cert = loop {
        let conn = client.connect().await.unwrap();
        if conn.peer_certificate() != first_cert.as_slice() {
            break conn.peer_certificate().to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(new_cert, first_cert);

    // The connection opened before the rotation keeps working on its session.
    for _ in 0..3 {
        let reply = old
            .post("/validate", serde_json::to_vec(&denied_review()).unwrap())
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json().unwrap()["response"]["allowed"], false);
    }
    assert_eq!(old.peer_certificate(), first_cert.as_slice());
    let logs = server.logs().join("\n");
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
}
