//! `cargo xtask fuzz`: builds the fuzz targets with `cargo fuzz` (libFuzzer) on the workspace's
//! pinned stable toolchain and runs each for a bounded time, then reports executions, coverage
//! and crashes per target.
//!
//! cargo-fuzz needs a nightly compiler only for its sanitizers (`-Zsanitizer`). With
//! `--sanitizer none` every flag it passes (`-Cpasses=sancov-module`, the `-Cllvm-args`
//! coverage options, `--cfg fuzzing`) is stable, so the fuzzers build with the workspace's
//! 1.95.0. meshguard is safe Rust: what the fuzzers look for (panics, overflows in debug
//! assertions, hangs, runaway memory, wrong decisions) needs no sanitizer.
//!
//! The targets live in `tests/fuzz` (the harness, a workspace crate) and `tests/fuzz/targets`
//! (one-line libFuzzer binaries, a cargo-fuzz project with its own workspace). Before building,
//! the workspace's `Cargo.lock` is copied there, so the fuzzers build the same dependency
//! versions as everything else; before running, the seed corpus is written from the tests' own
//! inputs (`fuzz-seeds`). Inputs that grow coverage stay in `target/fuzz/corpus/<target>/`
//! between runs; a crashing input is written to `target/fuzz/artifacts/<target>/` and fails the
//! command with the line that replays it.
//!
//! A campaign (issue 20 aims at ten million executions per target with no open crash) takes
//! hours of one core per slow target, more than one sitting on a 2-core machine gives. So every
//! run adds its executions to a ledger, `target/fuzz/campaign.json`, kept next to the corpus it
//! grew (the two belong together: deleting the corpus restarts the campaign), and appends the
//! run to `target/fuzz/campaign-runs.jsonl` with the commit it fuzzed. `--campaign` runs each
//! target only as long as its ledger still needs at the target's last measured rate, and skips
//! the targets that have reached the aim.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{target_dir, workspace_root};

use crate::process::{cargo, describe, output, run};

/// The cargo-fuzz release installed when missing (into `target/tools/cargo-fuzz`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The longest input libFuzzer makes (`-max_len`): Envoy's default request-header limit (60 KiB,
/// `max_request_headers_kb`) rounded up, far above any template, review or module the targets
/// read. Without it libFuzzer takes the largest seed's length, and the 1 MiB tokens among the
/// JWT seeds (which check the refusal by size; `cargo test` still replays them whole) let
/// mutations grow to a megabyte, each input as slow as its length. Longer seeds are truncated.
const MAX_LEN: usize = 64 * 1024;

/// Options of `cargo xtask fuzz`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Targets to run (all when none are named; `cargo xtask fuzz --list` names them).
    pub targets: Vec<String>,
    /// Lists the targets and exits.
    #[arg(long)]
    pub list: bool,
    /// Builds with the fast-to-compile `dev` profile of `tests/fuzz/targets` instead of an
    /// optimised release build (slower to build, several times more exec/s).
    #[arg(long)]
    pub dev: bool,
    /// Builds as CI's smoke run does: every target in one binary (`fuzz-smoke`) built inside the
    /// workspace, with coverage instrumentation on meshguard's own crates only, so it reuses the
    /// dependencies `cargo test` compiled (no cargo-fuzz, no second build of regorus and
    /// wasmtime). Coverage then leaves out the dependencies: for a campaign, leave it off.
    #[arg(long, conflicts_with_all = ["dev", "campaign"])]
    pub smoke: bool,
    /// Targets fuzzed at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// libFuzzer's per-input timeout in seconds: a slower input is reported as a hang.
    #[arg(long, default_value_t = 20)]
    pub timeout: u64,
    /// Works towards the campaign's aim (ten million executions per target, counted in
    /// `target/fuzz/campaign.json` across runs): skips targets that reached it and runs the
    /// others at most `--seconds`, stopping each at the executions it still needs (`-runs`).
    #[arg(long)]
    pub campaign: bool,
}

impl Args {
    /// The short run CI does: every target for a few seconds, dev build.
    pub fn smoke() -> Self {
        Self {
            seconds: 3,
            targets: Vec::new(),
            list: false,
            dev: false,
            smoke: true,
            jobs: None,
            timeout: 20,
            campaign: false,
        }
    }
}

/// Where the libFuzzer binaries are: cargo fuzz's, one per target, or CI's one smoke binary.
enum Binaries {
    /// `<dir>/<target>`, everything instrumented (`cargo fuzz build` with cargo's `profile`).
    PerTarget { dir: PathBuf, profile: &'static str },
    /// `fuzz-smoke`, told its target by `MESHGUARD_FUZZ_TARGET`.
    Smoke(PathBuf),
}

impl Binaries {
    /// The command that fuzzes `target`, before libFuzzer's arguments.
    fn command(&self, target: &str) -> Command {
        match self {
            Self::PerTarget { dir, .. } => Command::new(dir.join(target)),
            Self::Smoke(binary) => {
                let mut command = Command::new(binary);
                command.env("MESHGUARD_FUZZ_TARGET", target);
                command
            }
        }
    }

    /// The build's name in `campaign-runs.jsonl`: cargo's profile, or `smoke`.
    fn profile(&self) -> &'static str {
        match self {
            Self::PerTarget { profile, .. } => profile,
            Self::Smoke(_) => "smoke",
        }
    }

    /// How to replay a crashing input, for the failure message.
    fn replay(&self) -> String {
        match self {
            Self::PerTarget { dir, .. } => format!("{}/<target> <artifact>", dir.display()),
            Self::Smoke(binary) => {
                format!(
                    "MESHGUARD_FUZZ_TARGET=<target> {} <artifact>",
                    binary.display()
                )
            }
        }
    }
}

/// `cargo fuzz build` of `tests/fuzz/targets`: one binary per target, every crate instrumented.
fn build_per_target(work: &Path, dev: bool) -> anyhow::Result<Binaries> {
    let cargo_fuzz = cargo_fuzz()?;
    // The fuzzers build the workspace's dependency versions.
    fs::copy(
        workspace_root().join("Cargo.lock"),
        fuzz_dir().join("Cargo.lock"),
    )
    .context("copying Cargo.lock into tests/fuzz/targets")?;
    let build_dir = work.join("build");
    let mut build = Command::new(&cargo_fuzz);
    build
        .current_dir(workspace_root())
        .args([
            "fuzz",
            "build",
            "--sanitizer",
            "none",
            "--strip-dead-code",
            "--fuzz-dir",
        ])
        .arg(fuzz_dir())
        .arg("--target-dir")
        .arg(&build_dir);
    if dev {
        build.arg("--dev");
    }
    // The workspace's cargo, not whatever `cargo` is first on PATH.
    if let Ok(cargo) = std::env::var("CARGO")
        && let Some(bin) = Path::new(&cargo).parent()
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        build.env("PATH", std::env::join_paths(paths)?);
    }
    run(&mut build)?;
    let profile = if dev { "debug" } else { "release" };
    Ok(Binaries::PerTarget {
        dir: build_dir.join(host_triple()?).join(profile),
        profile,
    })
}

/// The flags `cargo fuzz build --sanitizer none` gives rustc (cargo-fuzz 0.13's
/// `project.rs`): libFuzzer's coverage instrumentation, all of it stable.
const SANCOV_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "--cfg",
    "fuzzing",
];

/// CI's smoke build: `fuzz-smoke` with the dev profile, in the workspace's target folder.
///
/// cargo fuzz passes its flags in `RUSTFLAGS`, which reach every crate: the build shares
/// nothing with the test build and compiled all 300 dependencies again (about 300 s of CI).
/// Here they reach only the workspace's crates, through a `RUSTC_WORKSPACE_WRAPPER` that adds
/// them (and leaves build scripts alone: they run without libFuzzer's runtime), so every
/// dependency is the test build's.
fn build_smoke(work: &Path) -> anyhow::Result<Binaries> {
    fs::create_dir_all(work)?;
    let wrapper = work.join("sancov-rustc");
    let script = format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask fuzz --smoke`: cargo runs it as `sancov-rustc RUSTC ARGS...`\n\
         # for the workspace's crates. Adds libFuzzer's coverage flags, except to build scripts.\n\
         case \" $* \" in\n\
         *\" --crate-name build_script_\"*) exec \"$@\" ;;\n\
         *\" --crate-name \"*) exec \"$@\" {} ;;\n\
         *) exec \"$@\" ;;\n\
         esac\n",
        SANCOV_FLAGS.join(" ")
    );
    fs::write(&wrapper, script).with_context(|| format!("writing {}", wrapper.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
    }
    // `--workspace` with the test build's features, though only one binary is built: cargo
    // resolves dependency features for the packages selected, and `-p meshguard-fuzz` alone
    // resolved dozens of them differently (jsonschema, regex, chrono, ...), compiling them again.
    run(cargo()
        .env("RUSTC_WORKSPACE_WRAPPER", &wrapper)
        .env("CARGO_INCREMENTAL", "0")
        .args([
            "build",
            "--workspace",
            "--features",
            crate::build::TEST_FEATURES,
            "--bin",
            "fuzz-smoke",
        ]))?;
    Ok(Binaries::Smoke(
        target_dir().join("debug").join("fuzz-smoke"),
    ))
}

/// What one target's run found.
#[derive(Debug, Clone, Default)]
struct Report {
    target: String,
    executions: u64,
    exec_per_sec: u64,
    edges: u64,
    features: u64,
    corpus: u64,
    peak_rss_mb: u64,
    seconds: f64,
    crash: Option<String>,
    /// Why the watchdog, not libFuzzer, ended the run (a stuck start, or a process suspended
    /// past its time): no find, and no clean run either.
    stopped: Option<String>,
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("tests").join("fuzz").join("targets")
}

fn work_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// Every target, from the cargo-fuzz project's binaries.
fn all_targets() -> anyhow::Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut targets: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            (path.extension()? == "rs").then_some(stem)
        })
        .collect();
    targets.sort();
    Ok(targets)
}

/// The cargo-fuzz binary, installed with `cargo install` into `target/tools` when missing.
fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let root = target_dir().join("tools").join("cargo-fuzz");
    let binary = root.join("bin").join("cargo-fuzz");
    let installed = binary.is_file()
        && output(Command::new(&binary).args(["fuzz", "--version"]))
            .is_ok_and(|version| version.contains(CARGO_FUZZ_VERSION));
    if !installed {
        eprintln!(
            "meshguard: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}",
            root.display()
        );
        run(cargo()
            .args([
                "install",
                "--locked",
                "--quiet",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&root))?;
    }
    Ok(binary)
}

/// Writes the seed corpus with the `fuzz-seeds` binary: the one `cargo test --workspace` built
/// when `prebuilt`, else built now.
fn write_seeds(dir: &Path, targets: &[String], prebuilt: bool) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(dir);
    let binary = target_dir().join("debug").join("fuzz-seeds");
    if !(prebuilt && binary.is_file()) {
        run(cargo().args(["build", "-q", "-p", "meshguard-fuzz", "--bin", "fuzz-seeds"]))?;
    }
    run(Command::new(&binary).arg(dir).args(targets))
}

/// `cargo xtask fuzz`.
pub fn run_fuzz(args: &Args) -> anyhow::Result<()> {
    fuzz(args, false)
}

/// Builds and runs the targets; `prebuilt`: the workspace's test build already made the seed
/// writer (inside `cargo xtask test`).
pub fn fuzz(args: &Args, prebuilt: bool) -> anyhow::Result<()> {
    let known = all_targets()?;
    if args.list {
        known.iter().for_each(|target| println!("{target}"));
        return Ok(());
    }
    for target in &args.targets {
        if !known.contains(target) {
            bail!("no fuzz target `{target}` (see `cargo xtask fuzz --list`)");
        }
    }
    let targets = if args.targets.is_empty() {
        known
    } else {
        args.targets.clone()
    };
    let ledger_path = work_dir().join("campaign.json");
    let ledger = Ledger::read(&ledger_path)?;
    // Each target with its time budget and, in a campaign, the executions it still needs
    // (libFuzzer's `-runs`: it stops exactly at the aim).
    let plan: Vec<(String, u64, Option<u64>)> = targets
        .iter()
        .filter_map(|target| {
            if !args.campaign {
                return Some((target.clone(), args.seconds, None));
            }
            let left = ledger.executions_left(target);
            if left == 0 {
                eprintln!("meshguard: {target} has reached the campaign's aim; skipped");
            }
            (left > 0).then(|| (target.clone(), args.seconds, Some(left)))
        })
        .collect();
    if plan.is_empty() {
        println!("every target named has reached the campaign's aim");
        print_campaign(&ledger, &targets);
        return Ok(());
    }
    let targets: Vec<String> = plan.iter().map(|(target, ..)| target.clone()).collect();
    // The commit the binaries are built from, read before the (long) build and runs.
    let commit = current_commit();
    let work = work_dir();
    write_seeds(&work.join("seeds"), &targets, prebuilt)?;
    let started = Instant::now();
    let binaries = if args.smoke {
        build_smoke(&work)?
    } else {
        build_per_target(&work, args.dev)?
    };
    let profile = binaries.profile();
    eprintln!(
        "meshguard: fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let queue = Mutex::new(plan.iter());
    let reports = Mutex::new(Vec::new());
    // Each target's run enters the ledger as it ends, so an interrupted campaign keeps what
    // the finished targets did. A smoke run is only logged: its binary instruments meshguard's
    // crates alone, so its edges do not compare with a campaign's.
    let ledger = Mutex::new(ledger);
    let record = |report: &Report| -> anyhow::Result<()> {
        if !args.smoke {
            let mut ledger = ledger
                .lock()
                .map_err(|_| anyhow::anyhow!("the ledger's lock is poisoned"))?;
            ledger.record(report);
            ledger.write(&ledger_path)?;
        }
        append_runs(
            &work.join("campaign-runs.jsonl"),
            std::slice::from_ref(report),
            &commit,
            profile,
        )
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut queue| queue.next().cloned());
                    let Ok(Some((target, seconds, runs))) = next else {
                        break;
                    };
                    let report = fuzz_one(&binaries, &work, &target, seconds, runs, args)
                        .unwrap_or_else(|err| Report {
                            target: target.clone(),
                            crash: Some(format!("{err:#}")),
                            ..Report::default()
                        });
                    eprintln!("meshguard: {} done", report.target);
                    if let Err(err) = record(&report) {
                        eprintln!("meshguard: the campaign ledger missed {}: {err:#}", target);
                    }
                    if let Ok(mut reports) = reports.lock() {
                        reports.push(report);
                    }
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by(|a, b| a.target.cmp(&b.target));
    print_table(&reports);
    write_json(&work.join("report.json"), &reports)?;
    if !args.smoke {
        let ledger = ledger.into_inner().unwrap_or_default();
        print_campaign(&ledger, &targets);
    }
    let crashed = print_failures(&reports, |r| r.crash.as_deref());
    if crashed > 0 {
        bail!(
            "{} fuzz target(s) found a crash or hang; replay with `{}`, then add the input to \
             tests/fuzz/regressions/<target>/",
            crashed,
            binaries.replay()
        );
    }
    let stopped = print_failures(&reports, |r| r.stopped.as_deref());
    if stopped > 0 {
        bail!(
            "{} fuzz target(s) did not finish their run (no crash found, none cleared): run them \
             again on a machine where they are not suspended",
            stopped
        );
    }
    Ok(())
}

/// Prints each report's `why` (a crash, a watchdog's kill) under its target; how many had one.
fn print_failures(reports: &[Report], why: impl Fn(&Report) -> Option<&str>) -> usize {
    let mut count = 0;
    for report in reports {
        if let Some(why) = why(report) {
            eprintln!("\n{}: {why}", report.target);
            count += 1;
        }
    }
    count
}

fn host_triple() -> anyhow::Result<String> {
    let version = output(
        Command::new("rustc")
            .current_dir(workspace_root())
            .arg("-vV"),
    )?;
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// Runs one target for `args.seconds` and reads libFuzzer's statistics from its output.
fn fuzz_one(
    binaries: &Binaries,
    work: &Path,
    target: &str,
    seconds: u64,
    runs: Option<u64>,
    args: &Args,
) -> anyhow::Result<Report> {
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&artifacts)?;
    let log_path = work.join("logs").join(format!("{target}.log"));
    fs::create_dir_all(log_path.parent().unwrap_or(work))?;
    let log = fs::File::create(&log_path)?;
    let mut command = binaries.command(target);
    command
        .arg(&corpus)
        .arg(work.join("seeds").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .args(runs.map(|runs| format!("-runs={runs}")))
        .arg(format!("-timeout={}", args.timeout))
        .arg("-rss_limit_mb=4096")
        .arg(format!("-max_len={MAX_LEN}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // A panic still prints its backtrace (RUST_BACKTRACE), but the errors a target expects
        // by the thousand (anyhow's, in regorus and wasmtime) do not capture one each: with
        // RUST_BACKTRACE=1 alone they did, and rego_template ran four times slower.
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(log);
    let started = Instant::now();
    // libFuzzer stops itself at -max_total_time; the watchdog covers a stuck start.
    let mut child = command.spawn().with_context(|| describe(&command))?;
    let limit = Duration::from_secs(seconds + args.timeout + 120);
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            killed = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let mut report = parse_log(target, &text);
    report.seconds = started.elapsed().as_secs_f64();
    if killed {
        // A suspended campaign (SIGSTOP during CI) resumed past its time looked like a crash
        // with no executions: it is the watchdog's kill, and the executions libFuzzer printed
        // before it still count.
        report.stopped = Some(format!(
            "stopped by the watchdog after {:.0} s of wall time (libFuzzer was to stop itself \
             at {seconds} s): the run was stuck or its process suspended; executions are \
             counted from libFuzzer's last status line; run the target again\n  log: {}",
            report.seconds,
            log_path.display()
        ));
    } else if !status.success() {
        let artifact = text
            .lines()
            .find_map(|line| {
                line.split_once("Test unit written to ")
                    .map(|(_, path)| path.trim())
            })
            .unwrap_or("(no artifact)");
        let reason = text
            .lines()
            .find(|line| line.contains("panicked at") || line.contains("ERROR: libFuzzer"))
            .unwrap_or("the fuzzer exited with an error")
            .trim();
        report.crash = Some(format!(
            "{reason}\n  input: {artifact}\n  log: {}",
            log_path.display()
        ));
    }
    Ok(report)
}

/// libFuzzer's final statistics and its last status line (`#N ... cov: E ft: F corp: C/..`).
fn parse_log(target: &str, text: &str) -> Report {
    let stat = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .skip_while(|word| *word != name)
            .nth(1)
            .and_then(|value| value.split('/').next()?.parse::<u64>().ok())
    };
    let status = text
        .lines()
        .rev()
        .find(|line| line.starts_with('#') && line.contains("cov: "));
    // A run killed before its final statistics: the last status line's `#N` and `exec/s:`.
    let executed = status
        .and_then(|line| {
            line.split_whitespace()
                .next()?
                .strip_prefix('#')?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let or_status = |value: u64, fallback: Option<u64>| {
        if value > 0 {
            value
        } else {
            fallback.unwrap_or(0)
        }
    };
    Report {
        target: target.to_string(),
        executions: or_status(stat("number_of_executed_units"), Some(executed)),
        exec_per_sec: or_status(
            stat("average_exec_per_sec"),
            status.and_then(|line| field(line, "exec/s:")),
        ),
        peak_rss_mb: stat("peak_rss_mb"),
        edges: status.and_then(|line| field(line, "cov:")).unwrap_or(0),
        features: status.and_then(|line| field(line, "ft:")).unwrap_or(0),
        corpus: status.and_then(|line| field(line, "corp:")).unwrap_or(0),
        ..Report::default()
    }
}

/// The executions a campaign aims at per target (issue 20: ten million, no open crash).
const CAMPAIGN_EXECUTIONS: f64 = 10_000_000.0;

/// Hours one core needs for [`CAMPAIGN_EXECUTIONS`] at `exec_per_sec`.
fn campaign_hours(exec_per_sec: u64) -> Option<f64> {
    (exec_per_sec > 0).then(|| CAMPAIGN_EXECUTIONS / exec_per_sec as f64 / 3600.0)
}

/// One target's campaign so far, summed over every run that grew this corpus.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct CampaignEntry {
    executions: u64,
    seconds: f64,
    runs: u64,
    /// Runs that ended in a crash or hang (each stops libFuzzer at its first find).
    crashes: u64,
    /// The last run's rate, edges and corpus size.
    exec_per_sec: u64,
    edges: u64,
    corpus: u64,
    /// Whether the last run ended in a crash: an open crash until a later run ends clean.
    open_crash: bool,
}

/// `target/fuzz/campaign.json`: every target's [`CampaignEntry`].
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Ledger(std::collections::BTreeMap<String, CampaignEntry>);

impl Ledger {
    fn read(path: &Path) -> anyhow::Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a campaign ledger; move it away to start a new campaign",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn record(&mut self, report: &Report) {
        let entry = self.0.entry(report.target.clone()).or_default();
        entry.executions += report.executions;
        entry.seconds += report.seconds;
        entry.runs += 1;
        entry.crashes += u64::from(report.crash.is_some());
        // A run the watchdog stopped neither finds a crash nor clears one.
        if report.stopped.is_none() {
            entry.open_crash = report.crash.is_some();
        }
        if report.exec_per_sec > 0 {
            entry.exec_per_sec = report.exec_per_sec;
        }
        entry.edges = report.edges;
        entry.corpus = report.corpus;
    }

    /// The executions `--campaign` still runs on `target`: 0 once it reached the aim with no
    /// open crash; a target with an open crash runs at least a tenth of the aim again (its
    /// fix is checked by fuzzing on, not by the ledger).
    fn executions_left(&self, target: &str) -> u64 {
        const AIM: u64 = CAMPAIGN_EXECUTIONS as u64;
        let Some(entry) = self.0.get(target) else {
            return AIM;
        };
        let left = AIM - entry.executions.min(AIM);
        if entry.open_crash {
            left.max(AIM / 10)
        } else {
            left
        }
    }
}

/// The commit the fuzzers were built from (`+dirty` with uncommitted changes).
fn current_commit() -> String {
    let git = |args: &[&str]| {
        output(Command::new("git").current_dir(workspace_root()).args(args)).unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]);
    let head = head.trim();
    if head.is_empty() {
        return "unknown".into();
    }
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])
        .trim()
        .is_empty();
    format!("{head}{}", if dirty { "+dirty" } else { "" })
}

/// Appends one line per target run to the campaign's history.
fn append_runs(path: &Path, reports: &[Report], commit: &str, profile: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    for r in reports {
        let line = serde_json::json!({
            "finished_unix": unix, "commit": commit, "profile": profile, "target": r.target,
            "executions": r.executions, "exec_per_sec": r.exec_per_sec, "edges": r.edges,
            "seconds": r.seconds, "crash": r.crash,
        });
        writeln!(file, "{line}")?;
    }
    Ok(())
}

/// The campaign's totals for `targets`.
fn print_campaign(ledger: &Ledger, targets: &[String]) {
    println!(
        "\ncampaign (target/fuzz/campaign.json, all runs on this corpus; aim: 10M executions, no open crash)"
    );
    println!(
        "{:<26} {:>12} {:>6} {:>9} {:>8} {:>7} {:>9}  status",
        "target", "executions", "runs", "cpu h", "crashes", "edges", "h left"
    );
    for target in targets {
        let entry = ledger.0.get(target).cloned().unwrap_or_default();
        let left = (CAMPAIGN_EXECUTIONS - entry.executions as f64).max(0.0);
        let hours_left = if left == 0.0 {
            "0.0".to_string()
        } else if entry.exec_per_sec == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", left / entry.exec_per_sec as f64 / 3600.0)
        };
        let status = match (entry.open_crash, left == 0.0) {
            (true, _) => "OPEN CRASH",
            (false, true) => "reached",
            (false, false) => "running",
        };
        println!(
            "{:<26} {:>12} {:>6} {:>9.2} {:>8} {:>7} {:>9}  {status}",
            target,
            entry.executions,
            entry.runs,
            entry.seconds / 3600.0,
            entry.crashes,
            entry.edges,
            hours_left
        );
    }
}

fn print_table(reports: &[Report]) {
    println!(
        "\n{:<26} {:>12} {:>9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>7}  result",
        "target",
        "executions",
        "exec/s",
        "edges",
        "features",
        "corpus",
        "rss MB",
        "crashes",
        "10M h"
    );
    for r in reports {
        println!(
            "{:<26} {:>12} {:>9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>7}  {}",
            r.target,
            r.executions,
            r.exec_per_sec,
            r.edges,
            r.features,
            r.corpus,
            r.peak_rss_mb,
            u8::from(r.crash.is_some()),
            campaign_hours(r.exec_per_sec).map_or("-".to_string(), |h| format!("{h:.1}")),
            match (&r.crash, &r.stopped) {
                (Some(_), _) => "CRASH",
                (None, Some(_)) => "STOPPED",
                (None, None) => "ok",
            }
        );
    }
    let total: u64 = reports.iter().map(|r| r.executions).sum();
    println!(
        "{} targets, {total} executions in all (libFuzzer stops at a target's first crash; \
         `10M h`: hours one core needs for 10 million executions at this rate)",
        reports.len()
    );
}

fn write_json(path: &Path, reports: &[Report]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "target": r.target, "executions": r.executions, "exec_per_sec": r.exec_per_sec,
                "edges": r.edges, "features": r.features, "corpus": r.corpus,
                "peak_rss_mb": r.peak_rss_mb, "seconds": r.seconds, "crash": r.crash,
                "stopped": r.stopped,
            })
        })
        .collect();
    fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_sums_runs_and_plans_the_remainder() {
        let mut ledger = Ledger::default();
        assert_eq!(
            ledger.executions_left("t"),
            10_000_000,
            "an unknown target runs in full"
        );
        let run = |executions, exec_per_sec, crash: Option<&str>| Report {
            target: "t".into(),
            executions,
            exec_per_sec,
            seconds: 60.0,
            crash: crash.map(str::to_string),
            ..Report::default()
        };
        ledger.record(&run(9_000_000, 100_000, None));
        assert_eq!(ledger.executions_left("t"), 1_000_000);
        ledger.record(&run(2_000_000, 100_000, Some("panicked")));
        let entry = &ledger.0["t"];
        assert_eq!(
            (entry.executions, entry.runs, entry.crashes),
            (11_000_000, 2, 1)
        );
        assert!(entry.open_crash);
        assert_eq!(
            ledger.executions_left("t"),
            1_000_000,
            "an open crash keeps the target in the campaign"
        );
        ledger.record(&run(50_000, 100_000, None));
        assert_eq!(
            ledger.executions_left("t"),
            0,
            "reached, and the crash is fixed"
        );
        let text = serde_json::to_string(&ledger).unwrap_or_default();
        let back: Ledger = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back.0["t"].executions, 11_050_000);
    }

    #[test]
    fn a_run_the_watchdog_stopped_counts_its_executions_and_no_crash() {
        // Killed before `-print_final_stats`: the last status line is all there is.
        let log = "INFO: Seed: 1\n\
                   #2\tINITED cov: 120 ft: 130 corp: 5/1024b exec/s: 0 rss: 40Mb\n\
                   #262144\tpulse  cov: 150 ft: 210 corp: 9/2Kb lim: 4 exec/s: 1310 rss: 41Mb\n\
                   #300000\tNEW    cov: 151 ft: 212 corp: 10/2Kb lim: 4 exec/s: 1250 rss: 41Mb L: 3/4 MS: 1 ChangeBit-\n";
        let mut report = parse_log("t", log);
        assert_eq!(
            (report.executions, report.exec_per_sec, report.edges),
            (300_000, 1250, 151)
        );
        let mut ledger = Ledger::default();
        ledger.record(&Report {
            target: "t".into(),
            executions: 100,
            crash: Some("panicked at".into()),
            ..Report::default()
        });
        report.stopped = Some("stopped by the watchdog".into());
        ledger.record(&report);
        let entry = &ledger.0["t"];
        assert_eq!((entry.executions, entry.crashes), (300_100, 1));
        assert!(
            entry.open_crash,
            "a stopped run does not clear an open crash"
        );
    }

    #[test]
    fn reads_libfuzzers_statistics() {
        let log = "INFO: Seed: 1\n\
                   #2\tINITED cov: 120 ft: 130 corp: 5/1024b exec/s: 0 rss: 40Mb\n\
                   #4096\tpulse  cov: 150 ft: 210 corp: 9/2Kb lim: 4 exec/s: 2048 rss: 41Mb\n\
                   Done 5000 runs in 3 second(s)\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     1666\n\
                   stat::new_units_added:          4\n\
                   stat::peak_rss_mb:              41\n";
        let report = parse_log("t", log);
        assert_eq!(campaign_hours(1666).map(|h| h.round()), Some(2.0));
        assert_eq!(campaign_hours(0), None);
        assert_eq!(
            (
                report.executions,
                report.exec_per_sec,
                report.edges,
                report.features,
                report.corpus,
                report.peak_rss_mb
            ),
            (5000, 1666, 150, 210, 9, 41)
        );
    }
}
