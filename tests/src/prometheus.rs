//! A real Prometheus for tests and the demo: Debian's `prometheus` package (the server and
//! `promtool`).
//!
//! The binaries are installed with apt-get on first use when missing (a file lock makes parallel
//! test binaries install once; an install needs root, as on CI), as [`crate::redis`] does for
//! Redis. Each [`Prometheus`] runs in its own process group on a free 127.0.0.1 port with its own
//! TSDB folder and log, which is printed when the owning test panics; it is killed on drop.
//! Queries go through the HTTP API (`/api/v1/query`, `/api/v1/rules`, `/api/v1/alerts`), as
//! Grafana's and an operator's do.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use crate::paths::target_dir;
use crate::process::{Process, free_port};

/// `prometheus` and `promtool`.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The server.
    pub server: PathBuf,
    /// The rules and configuration checker (`promtool test rules`).
    pub promtool: PathBuf,
}

/// Returns `prometheus` and `promtool`, installing Debian's package on first use if missing.
pub fn prometheus_binaries() -> anyhow::Result<Binaries> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| install().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(|err| anyhow!(err))
}

fn which(name: &str) -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin").join(name);
    if debian.is_file() {
        return Some(debian);
    }
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    path.is_file().then_some(path)
}

fn find() -> Option<Binaries> {
    Some(Binaries {
        server: which("prometheus")?,
        promtool: which("promtool")?,
    })
}

fn install() -> anyhow::Result<Binaries> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let tools = target_dir().join("tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let lock = File::create(tools.join("prometheus.lock"))?;
    lock.lock().context("locking the Prometheus install")?;
    if let Some(found) = find() {
        return Ok(found);
    }
    eprintln!("meshguard: prometheus is missing; installing Debian's package with apt-get");
    // RUNLEVEL=1 keeps the package's own service (port 9090) from starting; tests never use it.
    let apt = |args: &[&str]| {
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("RUNLEVEL", "1")
            .output()
            .context("running apt-get (Debian's package manager)")?;
        if !output.status.success() {
            bail!(
                "apt-get {} failed ({}):\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    };
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "prometheus",
    ];
    if apt(&install).is_err() {
        apt(&["update", "-q"])?;
        apt(&install).context("installing prometheus (needs root and Debian's package lists)")?;
    }
    find().context("prometheus is still missing after installing Debian's package")
}

/// Runs `promtool` with `args` in `dir`; its output, or an error with the output.
pub fn promtool(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let promtool = prometheus_binaries()?.promtool;
    let output = Command::new(&promtool)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", promtool.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "promtool {} failed ({}):\n{text}",
            args.join(" "),
            output.status
        );
    }
    Ok(text)
}

/// One sample of an instant vector: its labels (with `__name__`) and value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Labels, `__name__` included.
    pub labels: serde_json::Map<String, Value>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A label's value ("" when absent).
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    process: Process,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with the configuration `config` (YAML; rule files named in it are
    /// resolved against the run's folder, where `files` are written first) and waits until it
    /// is ready.
    pub fn start(config: &str, files: &[(&str, String)]) -> anyhow::Result<Self> {
        let binary = prometheus_binaries()?.server;
        // The port is picked by binding port 0 and releasing it; another process may take it
        // in between, so a failed start is retried on a new port.
        let mut last_error = None;
        for _ in 0..5 {
            let mut process = Process::new("prometheus", "prometheus-runs", "prometheus.log")?;
            let dir = process.dir().to_path_buf();
            fs::write(dir.join("prometheus.yml"), config)?;
            for (name, text) in files {
                fs::write(dir.join(name), text)?;
            }
            let port = free_port()?;
            process.spawn(
                Command::new(&binary)
                    .current_dir(&dir)
                    .arg("--config.file=prometheus.yml")
                    .arg("--storage.tsdb.path=data")
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--log.level=info"),
            )?;
            let ready = format!("http://127.0.0.1:{port}/-/ready");
            match process.wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
                ureq::get(&ready)
                    .timeout(Duration::from_secs(2))
                    .call()
                    .is_ok()
            }) {
                Ok(()) => return Ok(Self { process, port }),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("prometheus did not start")))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v1/<path>` with `query` parameters; the `data` of a `success` answer, or an
    /// error with Prometheus' `errorType` and `error`.
    pub fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut request =
            ureq::get(&format!("{}/api/v1/{path}", self.url())).timeout(Duration::from_secs(30));
        for (name, value) in query {
            request = request.query(name, value);
        }
        let text = match request.call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response.into_string()?,
            Err(err) => return Err(err).context(format!("GET /api/v1/{path}")),
        };
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("GET /api/v1/{path}: not JSON: {text}"))?;
        if body["status"] != "success" {
            bail!(
                "{path} {query:?}: {} {}",
                body["errorType"].as_str().unwrap_or_default(),
                body["error"].as_str().unwrap_or_default()
            );
        }
        Ok(body["data"].clone())
    }

    /// Runs an instant query; its samples (an error if it does not parse or evaluate, or if
    /// its result is not an instant vector).
    pub fn query(&self, expr: &str) -> anyhow::Result<Vec<Sample>> {
        let data = self.api("query", &[("query", expr)])?;
        if data["resultType"] != "vector" {
            bail!("{expr}: a {} result, not a vector", data["resultType"]);
        }
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|sample| Sample {
                labels: sample["metric"].as_object().cloned().unwrap_or_default(),
                value: sample["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// The alerts now pending or firing (`/api/v1/alerts`).
    pub fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.api("alerts", &[])?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every rule with its health and last error (`/api/v1/rules`).
    pub fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("rules", &[])?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// Every scrape target with its health and last error (`/api/v1/targets`).
    pub fn targets(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.api("targets", &[])?["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }
}

// === meshguard's monitoring files ===

/// `admission-webhook/deploy/monitoring/`: the rules, the dashboard, the Envoy tag rules.
pub fn monitoring_dir() -> PathBuf {
    crate::paths::workspace_root().join("admission-webhook/deploy/monitoring")
}

/// The Envoy bootstrap's `stats_config` of `envoy-stats-tags.yaml` (the tag rules the alerts
/// and the dashboard rely on).
pub fn stats_config() -> anyhow::Result<Value> {
    let path = monitoring_dir().join("envoy-stats-tags.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let tags: Value = serde_yaml::from_str(&text)?;
    Ok(tags["stats_config"].clone())
}

/// `rules.yaml` with every `for:` set to `duration`, so that a fault raises its alert within
/// seconds (the tests and the demo; the unit tests run the real durations).
pub fn rules_with_for(duration: &str) -> anyhow::Result<String> {
    let path = monitoring_dir().join("rules.yaml");
    let rules = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(rules
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with("for: ") {
                format!("{}for: {duration}", &line[..line.len() - body.len()])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
