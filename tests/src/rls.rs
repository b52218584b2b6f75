//! meshguard's rate-limit service as a process, for tests, the benchmark and the demo: started
//! on loopback ports it picks itself, with its JSON log kept in a file and printed when the
//! owning test panics, stopped gracefully ([`RateLimitService::terminate`]) or killed on drop.
//!
//! The binary is `meshguard-rate-limit-service`: the service crate's own tests pass
//! `env!("CARGO_BIN_EXE_meshguard-rate-limit-service")`; other callers use
//! [`service_binary`], the one `cargo test --workspace` / `cargo build` put in `target/debug`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::paths::target_dir;
use crate::process::Process;

/// The debug build of the service in this workspace's target folder, or an error that says how
/// to build it. `MESHGUARD_RLS_BINARY` names another one.
pub fn service_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESHGUARD_RLS_BINARY") {
        return Ok(PathBuf::from(path));
    }
    let path = target_dir()
        .join("debug")
        .join("meshguard-rate-limit-service");
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p meshguard-rate-limit-service` \
             (`cargo xtask test` builds it)",
            path.display()
        );
    }
    Ok(path)
}

/// A running service.
#[derive(Debug)]
pub struct RateLimitService {
    process: Process,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl RateLimitService {
    /// Starts `binary serve` with the configuration `config` (a file or folder), counting in
    /// `redis_url`, plus `extra` flags; waits until it listens.
    pub fn start(
        binary: &Path,
        config: &Path,
        redis_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut process =
            Process::new("rate-limit service", "rls-runs", "service.log")?.with_log("stderr.log");
        let log_path = process.log_path().to_path_buf();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--redis-url", redis_url])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(File::create(process.dir().join("stderr.log"))?);
        let child = process.spawn_with_own_output(&mut command)?;
        let stdout = child.stdout.take().context("the service's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Copy the JSON log to a file, and hand over the listening addresses.
        std::thread::spawn(move || {
            let Ok(mut log) = File::create(&log_path) else {
                return;
            };
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if !sent && line.contains("\"grpc_listen\"") {
                    let _ = tx.send(line);
                    sent = true;
                }
            }
        });
        let mut listening = None;
        process.wait_until(Duration::from_secs(30), Duration::from_millis(1), || {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                listening = Some(line);
            }
            listening.is_some()
        })?;
        let line = listening.unwrap_or_default();
        let event: serde_json::Value = serde_json::from_str(&line)?;
        let address = |field: &str| -> anyhow::Result<SocketAddr> {
            event[field]
                .as_str()
                .with_context(|| format!("no {field} in {line}"))?
                .parse()
                .with_context(|| format!("{field} in {line}"))
        };
        Ok(Self {
            grpc: address("grpc_listen")?,
            http: address("http_listen")?,
            process,
        })
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// `http://127.0.0.1:PORT` of the gRPC listener (for tonic clients).
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `http://127.0.0.1:PORT` of the HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The metrics as `name{labels}` -> value (OpenMetrics text, comments dropped).
    pub fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let response = crate::http::get(&format!("{}/metrics", self.http_url()), &[])?;
        if response.status != 200 {
            bail!("/metrics answered {}: {}", response.status, response.body);
        }
        Ok(response
            .body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect())
    }

    /// One series' value (0 when the series does not exist yet).
    pub fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(self.metrics()?.get(series).copied().unwrap_or(0.0))
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the service is not running"))?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        self.process.try_exit()
    }

    /// Kills the process at once (a crashed or unreachable replica).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// The service's log so far (JSON lines, then anything on stderr).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Envoy's native global rate-limit filter (`envoy.filters.http.ratelimit`) calling the RLS v3
/// service behind `cluster` for `domain`: the reference every RLS client is compared with.
/// `failure_mode_deny` refuses with 503 when the service errs or times out (Envoy's default
/// would be 500); otherwise such requests pass and count as `failure_mode_allowed`.
pub fn native_filter(
    domain: &str,
    cluster: &str,
    timeout: Duration,
    failure_mode_deny: bool,
) -> crate::FilterSpec {
    crate::FilterSpec::native(
        "envoy.filters.http.ratelimit",
        serde_json::json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": domain,
            "failure_mode_deny": failure_mode_deny,
            "status_on_error": { "code": 503 },
            "timeout": format!("{}s", timeout.as_secs_f64()),
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            "rate_limit_service": {
                "grpc_service": { "envoy_grpc": { "cluster_name": cluster } },
                "transport_api_version": "V3",
            },
        }),
    )
}

/// A rate-limit action list with one `request_headers` action: the descriptor
/// `(descriptor_key, <value of header>)`.
pub fn header_action(header: &str, descriptor_key: &str) -> serde_json::Value {
    serde_json::json!({
        "actions": [{
            "request_headers": { "header_name": header, "descriptor_key": descriptor_key }
        }]
    })
}
