//! `cargo xtask bench-host`: the embedded wasmtime host's own benchmark (not Envoy's): per
//! request cost of each repository filter through one VM, and module compile time with and
//! without the compiled-module cache. Builds the filters, then runs the host crate's
//! `bench_host` example in release mode (wasmtime stays out of xtask's own dependencies).

use crate::build::build_filters;
use crate::process::{cargo, run};

/// Arguments of `bench-host`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured seconds per module, spread over three interleaved rounds.
    #[arg(long, default_value_t = 3.0)]
    seconds_per_row: f64,
}

/// Builds the filters and runs the measurement.
pub fn run_bench(args: &Args) -> anyhow::Result<()> {
    build_filters()?;
    run(cargo().args([
        "run",
        "--release",
        "-q",
        "-p",
        "meshguard-wasm-host",
        "--example",
        "bench_host",
        "--",
        "--seconds-per-row",
        &args.seconds_per_row.to_string(),
    ]))
}
