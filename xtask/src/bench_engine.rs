//! `cargo xtask bench-engine`: how fast the policy engine reviews one Pod, one Deployment and one
//! Service against every template of `gatekeeper/` and against that plus the engine's larger set
//! (`admission-webhook/engine/benches-data/`), on regorus' tree interpreter and on its bytecode VM
//! in the same run, with the speed-up. The measuring code is the engine's `bench_engine` example
//! (built in release, single thread, so reviews/s are per core); this command runs it and saves
//! the table as `target/bench/engine.{md,json}`. A second table reviews 1,000 replicas of the Pod
//! (new name and uid each) against the public-library-style set (`benches-data/library/`, 64
//! constraints) on 2 threads, interpreter, VM and VM plus decision cache in the same run; the
//! target there is at least 2,000 reviews/s with the cache.

use anyhow::Context;
use meshguard_testkit::paths::target_dir;

use crate::process::{cargo, run};

/// Arguments of `bench-engine`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of repeated reviews per object, policy set and evaluator.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

/// Builds and runs the engine's benchmark example; prints and saves its table.
pub fn run_bench(args: &Args) -> anyhow::Result<()> {
    if args.seconds.is_nan() || args.seconds <= 0.0 {
        anyhow::bail!("--seconds must be positive");
    }
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("engine.json");
    let markdown = out.join("engine.md");
    run(cargo().args([
        "run",
        "--release",
        "-q",
        "-p",
        "meshguard-policy-engine",
        "--example",
        "bench_engine",
        "--",
        "--seconds",
        &args.seconds.to_string(),
        "--json",
        &json.display().to_string(),
        "--markdown",
        &markdown.display().to_string(),
    ]))?;
    eprintln!("saved {} and {}", markdown.display(), json.display());
    Ok(())
}
