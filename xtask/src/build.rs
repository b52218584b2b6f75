//! Building the wasm filters and running the full check-and-test sequence.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, bail};
use meshguard_testkit::paths::{target_dir, workspace_root};

use crate::exports::remove_unused_exports;
use crate::process::{cargo, output, run};

/// The wasm target the filters are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// A filter crate: a workspace package under `filters/` with a cdylib target.
#[derive(Debug, Clone)]
pub struct FilterCrate {
    /// Package name (`meshguard-stamp`).
    pub package: String,
    /// Crate name (`meshguard_stamp`), the module's file stem.
    pub crate_name: String,
}

/// Lists the filter crates from `cargo metadata`.
pub fn filter_crates() -> anyhow::Result<Vec<FilterCrate>> {
    let metadata = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let filters_dir = workspace_root().join("filters");
    let mut crates = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&filters_dir) {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            let cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"));
            if cdylib {
                crates.push(FilterCrate {
                    package: package["name"].as_str().unwrap_or_default().to_string(),
                    crate_name: target["name"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('-', "_"),
                });
            }
        }
    }
    if crates.is_empty() {
        bail!("no filter crates (cdylib packages under filters/) found");
    }
    Ok(crates)
}

/// Adds the wasm target with rustup if it is missing, and says so.
pub fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed =
        output(std::process::Command::new("rustup").args(["target", "list", "--installed"]))
            .context("asking rustup for installed targets (is Rust installed with rustup?)")?;
    if !installed.lines().any(|line| line.trim() == WASM_TARGET) {
        eprintln!("meshguard: the {WASM_TARGET} target is missing; adding it with rustup");
        run(std::process::Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

/// Builds every filter with the `wasm` profile and writes the modules, without the exports they
/// never need, to `target/filters/`.
pub fn build_filters() -> anyhow::Result<Vec<(FilterCrate, PathBuf)>> {
    ensure_wasm_target()?;
    let crates = filter_crates()?;
    let mut command = cargo();
    command.args(["build", "--target", WASM_TARGET, "--profile", "wasm"]);
    for filter in &crates {
        command.args(["-p", &filter.package]);
    }
    run(&mut command)?;
    let out_dir = target_dir().join("filters");
    fs::create_dir_all(&out_dir)?;
    let mut built = Vec::new();
    for filter in crates {
        let source = target_dir()
            .join(WASM_TARGET)
            .join("wasm")
            .join(format!("{}.wasm", filter.crate_name));
        let dest = out_dir.join(format!("{}.wasm", filter.crate_name));
        let module = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        // Envoy calls every exported stream callback on every request; drop the ones the
        // filter never needs (see `exports`).
        let trimmed = remove_unused_exports(&module)
            .with_context(|| format!("removing unused exports from {}", source.display()))?;
        fs::write(&dest, &trimmed.module).with_context(|| format!("writing {}", dest.display()))?;
        println!(
            "{:<32} {:>9} bytes  {}  ({} unused exports removed)",
            filter.crate_name,
            trimmed.module.len(),
            dest.display(),
            trimmed.removed.len()
        );
        built.push((filter, dest));
    }
    Ok(built)
}

/// Everything CI checks, in order of cost.
pub fn test() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        // Lints the demo and benchmark code too, with the workspace's own feature set.
        "--features",
        "xtask/full",
        "--",
        "-D",
        "warnings",
    ]))?;
    ensure_wasm_target()?;
    let mut wasm_clippy = cargo();
    wasm_clippy.args(["clippy", "--target", WASM_TARGET, "--lib"]);
    for filter in filter_crates()? {
        wasm_clippy.args(["-p", &filter.package]);
    }
    run(wasm_clippy.args(["--", "-D", "warnings"]))?;
    build_filters()?;
    let envoy = meshguard_testkit::envoy::envoy_binary()?;
    eprintln!("meshguard: using {}", envoy.display());
    run(cargo().args(["test", "--workspace"]))?;
    // The repository's own policy set, through the CLI exactly as a developer runs it. The
    // binary is the one `cargo test` just built (`cargo run -p meshguard-cli` would resolve
    // other features and build the engine a second time).
    let meshguard = target_dir().join("debug").join("meshguard");
    for policy in [["verify", "gatekeeper/"], ["test", "policies/"]] {
        run(std::process::Command::new(&meshguard)
            .current_dir(workspace_root())
            .args(["policy"])
            .args(policy))?;
    }
    // Every fuzz target for a few seconds from its seeds, so a regression in a parser fails CI.
    crate::fuzz::fuzz(&crate::fuzz::Args::smoke(), true)?;
    Ok(())
}
