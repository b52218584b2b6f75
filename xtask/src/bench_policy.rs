//! `cargo xtask bench-policy`: how fast the policy tooling checks the repository's own policy
//! set, measured the way a developer meets it: wall time of the release `meshguard` binary,
//! process start included, for `policy verify gatekeeper/` (gator suites on the shared engine)
//! and `policy test policies/` (Rego unit tests). Each command runs several times and the median
//! is reported with the cases (or tests) per second; the target is the whole set, both commands,
//! under one second of wall time on the project machine.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{target_dir, workspace_root};

use crate::process::{cargo, run};

/// The budget for the whole repository set (both commands).
const TARGET: Duration = Duration::from_secs(1);

/// Arguments of `bench-policy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs of each command (the median is reported).
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

struct Measured {
    label: &'static str,
    unit: &'static str,
    items: u64,
    times: Vec<Duration>,
}

impl Measured {
    fn median(&self) -> Duration {
        percentile(&self.times, 50)
    }
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let index = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(index).copied().unwrap_or_default()
}

/// Builds the release binary, times both commands, prints the table.
pub fn run_bench(args: &Args) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    run(cargo().args(["build", "--release", "-q", "-p", "meshguard-cli"]))?;
    let binary = target_dir().join("release").join("meshguard");
    let verify = measure(
        &binary,
        "policy verify gatekeeper/",
        "cases",
        &["policy", "verify", "gatekeeper/"],
        args.runs,
    )?;
    let test = measure(
        &binary,
        "policy test policies/",
        "tests",
        &["policy", "test", "policies/"],
        args.runs,
    )?;
    println!();
    println!(
        "{:<28} {:>6} {:>6} {:>10} {:>10} {:>12}",
        "command (release, wall)", "items", "unit", "median", "p90", "items/s"
    );
    for m in [&verify, &test] {
        let median = m.median();
        println!(
            "{:<28} {:>6} {:>6} {:>8.1}ms {:>8.1}ms {:>12.0}",
            m.label,
            m.items,
            m.unit,
            ms(median),
            ms(percentile(&m.times, 90)),
            m.items as f64 / median.as_secs_f64().max(f64::EPSILON)
        );
    }
    let whole = verify.median() + test.median();
    let verdict = if whole < TARGET { "met" } else { "MISSED" };
    println!(
        "whole repository set: {:.1}ms ({} runs each; target under {}ms: {verdict})",
        ms(whole),
        args.runs,
        TARGET.as_millis()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn measure(
    binary: &PathBuf,
    label: &'static str,
    unit: &'static str,
    argv: &[&str],
    runs: usize,
) -> anyhow::Result<Measured> {
    let mut times = Vec::with_capacity(runs);
    let mut items = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let output = Command::new(binary)
            .args(argv)
            .args(["--format", "json"])
            .current_dir(workspace_root())
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        times.push(start.elapsed());
        if !output.status.success() {
            bail!(
                "`meshguard {}` failed ({}): {}",
                argv.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("`meshguard {}` did not print JSON", argv.join(" ")))?;
        items = doc["summary"]["passed"].as_u64().unwrap_or_default()
            + doc["summary"]["failed"].as_u64().unwrap_or_default();
    }
    eprintln!(
        "meshguard: measured `meshguard {}` {runs} times",
        argv.join(" ")
    );
    Ok(Measured {
        label,
        unit,
        items,
        times,
    })
}
