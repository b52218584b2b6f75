//! `cargo xtask`: the workspace's orchestration, so that a fresh machine needs two commands.
//!
//! - `build-filters`: every filter crate for wasm32-wasip1 (size profile) into `target/filters/`.
//! - `test`: formatting, clippy for host and wasm32, the filter build, Envoy, and every test.
//! - `demo`: the commerce scenario through real Envoy, with a readable summary.
//! - `bench`: one Envoy, one listener per configuration, interleaved load, a table of ratios.

mod bench;
mod build;
mod demo;
mod process;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "meshguard build, test, demo and benchmark tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build every filter for wasm32-wasip1 into target/filters/<crate_name>.wasm.
    BuildFilters,
    /// Run every check and test (what CI runs).
    Test,
    /// Run the commerce demo through real Envoy and print a summary.
    Demo,
    /// Benchmark filter configurations against the no-filter baseline in one Envoy.
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildFilters => build::build_filters().map(|_| ()),
        Command::Test => build::test(),
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
