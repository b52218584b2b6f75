//! The webhook as a process over TLS, its policies and reviews.

use super::*;

/// The webhook as a process over TLS, on a port it picks.
pub(super) struct Webhook {
    child: Child,
    pub(super) addr: SocketAddr,
    pub(super) pki: Pki,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    pub(super) fn start(dir: &Path, policies: &Path) -> Self {
        let binary = std::env::var_os("MESHGUARD_WEBHOOK_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("debug/meshguard-admission-webhook"));
        assert!(
            binary.is_file(),
            "{} is missing: build it with `cargo build -p meshguard-admission-webhook` \
             (`cargo xtask test` builds it)",
            binary.display()
        );
        let pki = Pki::new("monitoring").unwrap();
        let (cert, key) = pki.server_cert("webhook").unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        let config = format!(
            "listen: 127.0.0.1:0\n\
             tls: {{certFile: {dir}/tls.crt, keyFile: {dir}/tls.key}}\n\
             policies: {{mode: files, paths: [{policies}]}}\n\
             audit: {{interval: 0s}}\n\
             failurePolicy: Fail\nevaluationTimeout: 300ms\n",
            dir = dir.display(),
            policies = policies.display()
        );
        std::fs::write(dir.join("webhook.yaml"), config).unwrap();
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(dir.join("webhook.yaml"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (sink, addr_tx) = (logs.clone(), addr_tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(json) = serde_json::from_str::<Value>(&line)
                        && let Some(addr) = json["listen"].as_str()
                        && let Ok(addr) = addr.parse::<SocketAddr>()
                    {
                        let _ = addr_tx.send(addr);
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the webhook did not start: {:?}", logs.lock().unwrap()));
        Self {
            child,
            addr,
            pki,
            logs,
        }
    }

    pub(super) fn client(&self) -> TlsClient {
        TlsClient::new(self.addr, self.pki.ca_pem.as_bytes(), "localhost").unwrap()
    }

    pub(super) async fn post(&self, body: &Value) -> Value {
        let reply = self
            .client()
            .post_once("/validate", serde_json::to_vec(body).unwrap())
            .await
            .unwrap();
        reply.json().unwrap()
    }

    pub(super) async fn metrics(&self) -> String {
        let mut conn = self.client().connect().await.unwrap();
        conn.get("/metrics").await.unwrap().text()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- webhook log ---\n{}",
                self.logs.lock().unwrap().join("\n")
            );
        }
    }
}

/// The webhook's policies: the test policies of the webhook crate (one of them deliberately
/// slow, past the deadline) and one template that does not compile.
pub(super) fn webhook_policies(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let source = workspace_root().join("admission-webhook/server/tests/testdata/policies");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        policies.join("broken.yaml"),
        "apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbroken
spec:
  crd:
    spec:
      names:
        kind: K8sBroken
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbroken
        violation[{\"msg\": msg}] {
          msg := 
        }
",
    )
    .unwrap();
    policies
}

pub(super) fn slow_configmap_review() -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "0b5cf3c5-3c55-4a1c-9d2e-5f0a3c0f1e77",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "slow",
            "namespace": "commerce",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "slow", "namespace": "commerce",
                                    "labels": {"meshguard-test": "slow"}},
                       "data": {}},
            "dryRun": false
        }
    })
}
