//! `cargo xtask`: the workspace's orchestration, so that a fresh machine needs two commands.
//!
//! - `build-filters`: every filter crate for wasm32-wasip1 (size profile) into `target/filters/`.
//! - `reproducible`: a second build of the filters from another path must be byte-identical.
//! - `release`: every module as an OCI image, pushed, and the Istio manifests pinned to it.
//! - `pin-manifests`: `istio/` pinned to this commit's images (no push).
//! - `test`: formatting, clippy (as the tests build), the filter build, Envoy, and every test.
//! - `demo`: the commerce scenario through real Envoy, with a readable summary.
//! - `bench`: one Envoy, one listener per configuration, interleaved load, a table of ratios.
//! - `bench-policy`: wall time of the policy tooling over the repository's policy set.
//! - `bench-webhook`: the admission webhook under load over loopback TLS.
//! - `bench-engine`: policy-engine reviews/s, tree interpreter against the bytecode VM.
//! - `bench-host`: per-request cost of each filter in the embedded wasmtime host, compile time.
//! - `bench-rls`: the global rate-limit service with Redis: decisions/s, p99 at 2,000/s, memory.
//! - `fuzz`: every fuzz target (cargo fuzz, libFuzzer) for a bounded time, with a report.
//!
//! `demo`, `bench` and `bench-webhook` need the webhook and the JWT filter's test keys in process;
//! they live behind the `full` feature, and the default (lean) xtask re-runs itself with it, so
//! that `cargo xtask test` starts in seconds on a fresh clone.

#[cfg(feature = "full")]
mod bench;
mod bench_engine;
mod bench_host;
mod bench_policy;
mod bench_rls;
#[cfg(feature = "full")]
mod bench_webhook;
mod build;
#[cfg(feature = "full")]
mod demo;
mod exports;
mod fuzz;
mod process;
mod release;
mod reproducible;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "meshguard build, test, demo and benchmark tasks",
    after_help = "Also: demo, bench, bench-webhook (built on first use with the `full` feature; \
                  `cargo xtask bench --help` for their options)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every filter for wasm32-wasip1 into target/filters/<crate_name>.wasm.
    BuildFilters,
    /// Check that the built filters are byte-identical when built from another path.
    Reproducible,
    /// Build, package and push every module; render istio/ pinned to the pushed digests.
    Release(release::Args),
    /// Pin istio/ to this commit's images in the approved registry (no push).
    PinManifests {
        /// The meshguard binary to package with (default: `cargo build -p meshguard-cli`).
        #[arg(long, value_name = "PATH")]
        cli: Option<std::path::PathBuf>,
    },
    /// Run every check and test (what CI runs).
    Test,
    /// Run the commerce demo through real Envoy and print a summary.
    #[cfg(feature = "full")]
    Demo,
    /// Benchmark filter configurations against the no-filter baseline in one Envoy.
    #[cfg(feature = "full")]
    Bench(bench::Args),
    /// Time `meshguard policy verify gatekeeper/` and `policy test policies/` (release build).
    BenchPolicy(bench_policy::Args),
    /// Policy engine: reviews/s for a Pod, a Deployment and a Service, interpreter vs VM (release build).
    BenchEngine(bench_engine::Args),
    /// Per-request cost of each filter in the embedded wasmtime host (release build).
    BenchHost(bench_host::Args),
    /// The global rate-limit service with Redis: decisions/s, p99 at a fixed rate, key-flood memory.
    BenchRls(bench_rls::Args),
    /// Fuzz every target (or the named ones) for a bounded time; report executions, coverage
    /// and crashes per target.
    Fuzz(fuzz::Args),
    /// Load the admission webhook over loopback TLS: reviews/s at saturation, p50/p99 at 500/s.
    #[cfg(feature = "full")]
    BenchWebhook(bench_webhook::Args),
}

/// Commands that need the `full` feature; the lean xtask hands them to a `full` build of itself.
#[cfg(not(feature = "full"))]
const FULL_COMMANDS: &[&str] = &["demo", "bench", "bench-webhook"];

/// Re-runs xtask with `--features full` when the command needs it; returns if it does not.
#[cfg(not(feature = "full"))]
fn delegate_to_full() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args
        .first()
        .is_some_and(|first| FULL_COMMANDS.contains(&first.as_str()))
    {
        return;
    }
    eprintln!("meshguard: building xtask with the demo and benchmark tools (feature `full`)");
    let status = process::cargo()
        .args(["run", "-q", "-p", "xtask", "--features", "full", "--"])
        .args(&args)
        .status();
    match status {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(err) => {
            eprintln!("error: running cargo: {err}");
            std::process::exit(2);
        }
    }
}

fn main() {
    #[cfg(not(feature = "full"))]
    delegate_to_full();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildFilters => build::build_filters().map(|_| ()),
        Command::Reproducible => build::build_filters().and_then(|_| reproducible::check()),
        Command::Release(args) => release::run_release(&args),
        Command::PinManifests { cli } => release::run_pin_manifests(cli.as_deref()),
        Command::Test => build::test(),
        #[cfg(feature = "full")]
        Command::Demo => demo::run(),
        #[cfg(feature = "full")]
        Command::Bench(args) => bench::run(&args),
        Command::BenchPolicy(args) => bench_policy::run_bench(&args),
        #[cfg(feature = "full")]
        Command::BenchWebhook(args) => bench_webhook::run_bench(&args),
        Command::BenchEngine(args) => bench_engine::run_bench(&args),
        Command::BenchHost(args) => bench_host::run_bench(&args),
        Command::BenchRls(args) => bench_rls::run_bench(&args),
        Command::Fuzz(args) => fuzz::run_fuzz(&args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
