//! `fuzz-time <corpus dir> [target...]`: runs every input in `<corpus dir>/<target>/` through its
//! target (as the libFuzzer binary does, without the fuzzer) and prints the mean cost per input.
//! A campaign aims at millions of executions per target, so this is the figure to watch when a
//! target gets slow; build it release (`cargo run --release -p meshguard-fuzz --bin fuzz-time`)
//! to measure what a campaign sees, in the campaign's environment: with `RUST_BACKTRACE=1` set
//! and `RUST_LIB_BACKTRACE` unset, every `anyhow` error (regorus', wasmtime's) captures a
//! backtrace, which made `rego_template` four times slower per input on a loaded machine;
//! `RUST_LIB_BACKTRACE=0` drops those and keeps the backtraces of panics.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

fn inputs(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: fuzz-time <corpus dir> [target...]")?,
    );
    let wanted: Vec<String> = args.collect();
    for target in meshguard_fuzz::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|name| name == target.name) {
            continue;
        }
        let path = dir.join(target.name);
        if !path.is_dir() {
            continue;
        }
        let inputs = inputs(&path)?;
        // One pass to warm what the target builds once per process, then the timed pass.
        for input in inputs.iter().take(1) {
            (target.run)(input);
        }
        let start = Instant::now();
        for input in &inputs {
            (target.run)(input);
        }
        let elapsed = start.elapsed();
        let count = inputs.len().max(1);
        let per_input = elapsed.as_secs_f64() / count as f64;
        println!(
            "{:<26} {:>6} inputs {:>10.1} µs/input {:>9.0} inputs/s",
            target.name,
            inputs.len(),
            per_input * 1e6,
            1.0 / per_input.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}
