//! One child process of a test harness (Envoy, Redis, the registry, the rate-limit service,
//! Prometheus), with what every harness needs and had written out on its own: a fresh run
//! folder under `target/`, the process in its own process group (so a test's Ctrl-C does not
//! reach it first and it never outlives the harness), its output in a log file, a bounded wait
//! for readiness that gives up when the process exits, and on drop: killed, then its log
//! printed when the owning test panics, or its folder removed when it passed.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::paths::target_dir;

/// A managed child process and its run folder.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    dir: PathBuf,
    logs: Vec<PathBuf>,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// A process called `name` (in errors and printed logs) with a fresh run folder
    /// `target/<runs>/<pid>-<n>` and its output in `<log>` there. Nothing runs yet.
    pub fn new(name: &'static str, runs: &str, log: &str) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = target_dir().join(runs).join(format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let logs = vec![dir.join(log)];
        Ok(Self {
            name,
            dir,
            logs,
            child: None,
            starts: 0,
        })
    }

    /// One more log file in the run folder, printed after the first (a process whose stdout
    /// and stderr go to different files).
    pub fn with_log(mut self, log: &str) -> Self {
        self.logs.push(self.dir.join(log));
        self
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first log file.
    pub fn log_path(&self) -> &Path {
        self.logs
            .first()
            .map_or(self.dir.as_path(), PathBuf::as_path)
    }

    /// Starts `command` with its stdout and stderr appended to the log (a restart keeps the
    /// earlier starts' lines), stdin closed, in its own process group. A process still running
    /// from an earlier start is killed first.
    pub fn spawn(&mut self, command: &mut Command) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        command.stdout(log.try_clone()?).stderr(log);
        self.spawn_with_own_output(command).map(|_| ())
    }

    /// Starts `command` whose stdout and stderr the caller set up (a pipe it reads, say),
    /// with stdin closed, in its own process group.
    pub fn spawn_with_own_output(&mut self, command: &mut Command) -> anyhow::Result<&mut Child> {
        self.kill();
        let child = command
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} ({})",
                    self.name,
                    command.get_program().to_string_lossy()
                )
            })?;
        self.starts += 1;
        Ok(self.child.insert(child))
    }

    /// Polls `ready` every `every` until it says yes. Fails with the log when the process
    /// exits first or `timeout` passes.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        every: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                bail!(
                    "{} exited during start-up with {status}\n--- {} log ---\n{}",
                    self.name,
                    self.name,
                    self.log()
                );
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} was not ready after {timeout:?}\n--- {} log ---\n{}",
                    self.name,
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// The exit status, once the process has exited (it is reaped then; the status stays).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The process id of the latest start.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The latest start's process.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// SIGKILL unless it has exited, and reaped; [`Process::try_exit`] gives the status after.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// Every log so far, in order.
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|path| fs::read_to_string(path).unwrap_or_default())
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let starts = if self.starts > 1 {
                format!(", {} starts", self.starts)
            } else {
                String::new()
            };
            eprintln!(
                "--- {} log ({}{starts}) ---\n{}--- end of {} log ---",
                self.name,
                self.dir.display(),
                self.log(),
                self.name
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1 (a server given it may still lose it to
/// another process before it binds: the harnesses retry on a new one).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_exits_fails_the_wait_with_its_log() {
        let mut process = Process::new("sh", "process-test-runs", "sh.log").unwrap();
        process
            .spawn(Command::new("sh").args(["-c", "echo starting; echo broken >&2; exit 3"]))
            .unwrap();
        let err = process
            .wait_until(Duration::from_secs(10), Duration::from_millis(10), || false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sh exited during start-up"), "{err}");
        assert!(err.contains("starting") && err.contains("broken"), "{err}");
        let dir = process.dir().to_path_buf();
        drop(process);
        assert!(!dir.exists(), "a passing test's run folder is removed");
    }

    #[test]
    fn a_restart_appends_and_kill_reaps() {
        let mut process = Process::new("sh", "process-test-runs", "sh.log").unwrap();
        process
            .spawn(Command::new("sh").args(["-c", "echo one; sleep 30"]))
            .unwrap();
        let log = process.log_path().to_path_buf();
        process
            .wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
                fs::read_to_string(&log).is_ok_and(|log| log.contains("one"))
            })
            .unwrap_or_else(|err| panic!("{err:#}"));
        assert!(process.is_running());
        process
            .spawn(Command::new("sh").args(["-c", "echo two"]))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(process.log(), "one\ntwo\n");
        process.kill();
        assert!(process.try_exit().is_some(), "killed and reaped");
        assert!(!process.is_running());
    }
}
