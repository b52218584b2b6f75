//! A real Redis for tests, the benchmark and the demo: Debian's `redis-server`.
//!
//! The binary is installed with apt-get on first use when it is missing (a file lock makes
//! parallel test binaries install it once; an install needs root, as on CI). Each [`Redis`] runs
//! in its own process group on a free 127.0.0.1 port, without persistence, with its log in a file
//! that is printed when the owning test panics; it is killed on drop. Tests can stop it mid-run
//! and start it again on the same port ([`Redis::stop`], [`Redis::restart`]), and send it
//! commands with `redis-cli` (Debian's `redis-tools`, which `redis-server` depends on): the
//! operator's own tool, and no Redis client crate in the testkit, which the lean `xtask` builds.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::paths::target_dir;
use crate::process::Process;

/// `redis-server` and `redis-cli`.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The server.
    pub server: PathBuf,
    /// The command-line client.
    pub cli: PathBuf,
}

/// Returns `redis-server` and `redis-cli`, installing Debian's package on first use if missing.
pub fn redis_binaries() -> anyhow::Result<Binaries> {
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
        server: which("redis-server")?,
        cli: which("redis-cli")?,
    })
}

fn install() -> anyhow::Result<Binaries> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let tools = target_dir().join("tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let lock = File::create(tools.join("redis.lock"))?;
    lock.lock().context("locking the Redis install")?;
    if let Some(found) = find() {
        return Ok(found);
    }
    eprintln!("meshguard: redis-server is missing; installing Debian's package with apt-get");
    // The package's own service would take port 6379; tests never use it, so it is not started.
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
        "redis-server",
    ];
    if apt(&install).is_err() {
        apt(&["update", "-q"])?;
        apt(&install).context("installing redis-server (needs root and Debian's package lists)")?;
    }
    find().context("redis-server is still missing after installing Debian's package")
}

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    process: Process,
    port: u16,
}

impl Redis {
    /// Starts Redis on a free loopback port and waits until it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        // The port is picked by binding port 0 and releasing it; another process may take it in
        // between, so a failed start is retried on a new port.
        let mut last_error = None;
        for _ in 0..5 {
            let mut redis = Self {
                process: Process::new("redis", "redis-runs", "redis.log")?,
                port: free_port()?,
            };
            match redis.spawn() {
                Ok(()) => return Ok(redis),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("redis did not start")))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let binary = redis_binaries()?.server;
        let mut command = Command::new(&binary);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .arg("--dir")
            .arg(self.process.dir());
        self.process.spawn(&mut command)?;
        let port = self.port;
        self.process
            .wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
                cli(port, &["PING"]).is_ok_and(|reply| reply == "PONG")
            })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL, as a crash or a lost node looks to clients).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (empty: there is no persistence).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Runs one command with `redis-cli` and returns its reply as redis-cli prints it to a
    /// pipe: integers as digits, strings bare, arrays one element per line, nil as nothing. An
    /// error reply is an error.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        cli(self.port, args)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The folder of this server's files.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }
}

/// One `redis-cli` command against the server on `port` ([`Redis::command`]).
fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let cli = redis_binaries()?.cli;
    let output = Command::new(&cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", cli.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stdout.starts_with("ERR") || stdout.starts_with("(error)") {
        bail!(
            "redis-cli {} failed ({}): {stdout}{stderr}",
            args.join(" "),
            output.status
        );
    }
    Ok(stdout)
}

/// A port that was free a moment ago on 127.0.0.1.
pub use crate::process::free_port;
