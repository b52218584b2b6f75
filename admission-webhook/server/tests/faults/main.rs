//! The webhook under faults: the real binary over TLS on loopback, driven by a paced load of
//! AdmissionReviews while something goes wrong: the certificate rotates, SIGTERM arrives, a
//! policy runs past the deadline, more reviews arrive than it may evaluate, slow clients hold
//! connections open, the policy files are rewritten.
//!
//! Each test prints its figures (requests sent, answered, failed, lost; latency percentiles) on
//! stderr, outside the test harness' capture, as `webhook-faults: ...` lines. Loads are bounded
//! in count and time; assertions on latency are generous (a shared 2-core machine), assertions
//! on correctness are exact.

#[path = "../support/mod.rs"]
mod support;

mod load;

mod deadline;
mod overload;
mod reload;
mod rotation;
mod shutdown;
mod slowloris;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshguard_admission_webhook::client::TlsClient;
use serde_json::Value as Json;
use support::Pki;

/// One fault test at a time: each loads the machine, and its latency figures must be its own.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    SERIAL
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

/// Prints a figure line where `cargo test` shows it (stderr, not captured).
pub fn figure(line: &str) {
    let _ = writeln!(std::io::stderr(), "webhook-faults: {line}");
}

/// A webhook process with its own directory, certificate and settings.
pub struct Webhook {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its directory (settings, certificate and key).
    pub dir: PathBuf,
    /// The CA that signed its certificate.
    pub pki: Arc<Pki>,
    logs: Arc<Mutex<Vec<String>>>,
    exited: Option<ExitStatus>,
}

impl Webhook {
    /// Starts the binary with `settings` (YAML lines added to the base: listen, TLS with a
    /// 100 ms reload interval, policies from `policies`, audit off) and waits until it is ready.
    pub async fn start(name: &str, policies: &Path, settings: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("meshguard-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::new(name);
        let (cert, key) = pki.server_cert("generation-1");
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        let config = format!(
            "listen: 127.0.0.1:0\n\
             tls: {{certFile: {dir}/tls.crt, keyFile: {dir}/tls.key, reloadInterval: 100ms}}\n\
             policies: {{mode: files, paths: [{policies}], reloadInterval: 100ms}}\n\
             audit: {{interval: 0s}}\n{settings}\n",
            dir = dir.display(),
            policies = policies.display()
        );
        std::fs::write(dir.join("webhook.yaml"), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshguard-admission-webhook"))
            .args(["serve", "--config"])
            .arg(dir.join("webhook.yaml"))
            .env("RUST_LOG", "info")
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
            let sink = logs.clone();
            let addr_tx = addr_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(json) = serde_json::from_str::<Json>(&line)
                        && let Some(addr) = json["listen"].as_str()
                    {
                        let _ = addr_tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the webhook did not start: {:?}", logs.lock().unwrap()));
        let webhook = Self {
            child: Some(child),
            addr,
            dir,
            pki: Arc::new(pki),
            logs,
            exited: None,
        };
        webhook.wait_ready().await;
        webhook
    }

    async fn wait_ready(&self) {
        {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(mut conn) = self.client().connect().await
                    && conn
                        .get("/readyz")
                        .await
                        .is_ok_and(|reply| reply.status == 200)
                {
                    return;
                }
                assert!(Instant::now() < deadline, "the webhook never became ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// A client trusting the test CA.
    pub fn client(&self) -> TlsClient {
        TlsClient::new(self.addr, self.pki.ca_pem().as_bytes(), "localhost").unwrap()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    line.strip_prefix("VmRSS:")?
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .ok()
                })
            })
            .unwrap_or(0)
    }

    /// Sends SIGTERM, as the kubelet does when the pod is deleted.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; returns its status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        while started.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.exited = Some(status);
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let mut conn = self.client().connect().await.unwrap();
        conn.get("/metrics").await.unwrap().text()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && self.exited.is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- webhook log ---\n{}", self.logs().join("\n"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of a metric line that starts with `prefix` (`name{labels}`), or 0.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The usual traffic: mostly admitted Deployments, some denied, some warned.
pub fn standard_mix() -> Vec<(load::Kind, usize)> {
    use load::{Expect, Kind};
    vec![
        (
            Kind {
                review: support::allowed_review(),
                expect: Expect::Allowed(vec![]),
                label: "allowed",
            },
            6,
        ),
        (
            Kind {
                review: support::denied_review(),
                expect: Expect::Denied(
                    403,
                    "[deployments-need-team] you must provide labels".into(),
                ),
                label: "denied",
            },
            3,
        ),
        (
            Kind {
                review: support::warned_review(),
                expect: Expect::Allowed(vec![
                    "[no-latest-tag] container <cart> uses a disallowed tag <latest>".into(),
                ]),
                label: "warned",
            },
            1,
        ),
    ]
}

/// A review of the deliberately slow template: answered by the failure policy (Fail) once the
/// evaluation deadline passes.
pub fn slow_kind() -> load::Kind {
    load::Kind {
        review: support::slow_review(),
        expect: load::Expect::Denied(500, "could not be reviewed".into()),
        label: "slow",
    }
}

/// The webhook tests' policies (required labels, image tags, replica limits, the slow template).
pub fn test_policies() -> PathBuf {
    support::testdata("policies")
}
