//! Building the wasm filters and running the full check-and-test sequence.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{target_dir, workspace_root};

use crate::exports::{Trimmed, remove_unused_exports};
use crate::process::{cargo, output, run};

/// The wasm target the filters are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// A filter module: a cdylib example of a workspace package under `filters/` (`module.rs`; the
/// filter itself is the package's library, so the `meshguard` pipeline can link it).
#[derive(Debug, Clone)]
pub struct FilterCrate {
    /// Package name (`meshguard-stamp`).
    pub package: String,
    /// The module's name (`meshguard_stamp`, `meshguard`): the cdylib example's, and the file
    /// stem of `target/filters/<name>.wasm`.
    pub crate_name: String,
    /// The package features the example requires (`authz` for `meshguard_with_authz`): such a
    /// module is built in a cargo invocation of its own, since features unify within one.
    pub features: Vec<String>,
}

/// The toolchain's `clippy-driver`, beside its `cargo`.
fn clippy_driver() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let bin = Path::new(&cargo)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let driver = bin.join(format!("clippy-driver{}", std::env::consts::EXE_SUFFIX));
    if !driver.is_file() {
        bail!(
            "no clippy-driver beside {cargo}; install clippy for the pinned toolchain \
             (`rustup component add clippy`)"
        );
    }
    Ok(driver)
}

/// `cargo` with clippy as the compiler of the workspace's own crates: what `cargo clippy` does,
/// with code generation, so that a test build lints the code it builds (`-D warnings`, as
/// `cargo clippy -- -D warnings`). Dependencies are compiled by rustc as usual.
fn linted(clippy: &Path) -> std::process::Command {
    let mut command = cargo();
    command
        // A cold build with incremental compilation off is faster, and a test run is one.
        .env("CARGO_INCREMENTAL", "0")
        .env("RUSTC_WORKSPACE_WRAPPER", clippy)
        .env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
    command
}

/// The features of CI's test build: the demo and benchmark code (`xtask/full`), and the fuzz
/// smoke binary (`meshguard-fuzz/libfuzzer`). With libfuzzer-sys in the build, `cc` is built with
/// the features libFuzzer's build needs, so the smoke build that follows (`fuzz::build_smoke`)
/// finds every dependency compiled; without it, `cc` changed between the two and ring, regorus
/// and wasmtime were compiled again.
pub const TEST_FEATURES: &str = "xtask/full,meshguard-fuzz/libfuzzer";

/// Builds the pipeline's tests with its `authz` feature within the whole workspace, and runs
/// them as `cargo test` would (from the package's folder).
///
/// Why not `cargo test -p meshguard-pipeline --features authz`: cargo resolves dependency features
/// for the packages it is given, and that package alone resolves about 400 dependencies with
/// other features than the workspace, so they were compiled a second time (three minutes of a
/// cold CI run). Selecting the whole workspace keeps its resolution: only the pipeline and its
/// one dependent (the fuzz harness) are compiled again.
fn pipeline_tests_with_authz(clippy: &Path) -> anyhow::Result<()> {
    const PACKAGE: &str = "meshguard-pipeline";
    let started = std::time::Instant::now();
    let mut build = linted(clippy);
    build.args([
        "test",
        "--workspace",
        "--features",
        &format!("{TEST_FEATURES},meshguard-pipeline/authz"),
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ]);
    eprintln!("$ {}", crate::process::describe(&build));
    let built = build
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("spawning cargo")?;
    if !built.status.success() {
        bail!(
            "building the pipeline's tests with `authz` failed ({})",
            built.status
        );
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&built.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let of_package = message["package_id"]
            .as_str()
            .is_some_and(|id| id.contains(&format!("#{PACKAGE}@")));
        if message["reason"] == "compiler-artifact"
            && of_package
            && message["profile"]["test"] == true
            && let Some(executable) = message["executable"].as_str()
            && let Some(manifest) = message["manifest_path"].as_str()
        {
            binaries.push((PathBuf::from(executable), PathBuf::from(manifest)));
        }
    }
    if binaries.is_empty() {
        bail!("cargo built no test binary of {PACKAGE} with `authz`");
    }
    for (binary, manifest) in binaries {
        let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        run(std::process::Command::new(&binary)
            .current_dir(&dir)
            .env("CARGO_MANIFEST_DIR", &dir)
            .env("CARGO_PKG_NAME", PACKAGE))?;
    }
    eprintln!(
        "meshguard: the pipeline's tests with `authz` took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Lists the filter modules from `cargo metadata`.
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
            let example = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
            if cdylib && example {
                crates.push(FilterCrate {
                    package: package["name"].as_str().unwrap_or_default().to_string(),
                    crate_name: target["name"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('-', "_"),
                    features: target["required-features"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|feature| feature.as_str().map(String::from))
                        .collect(),
                });
            }
        }
    }
    if crates.is_empty() {
        bail!("no filter modules (cdylib examples of packages under filters/) found");
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

/// Where cargo leaves module `name` as built, with every export the SDK defines (the benchmark's
/// untrimmed floor row; the benchmarks are in the `full` build only).
#[cfg(feature = "full")]
pub fn untrimmed_module_path(name: &str) -> PathBuf {
    built_module_path(&target_dir(), name)
}

/// Where a build into `target` leaves module `name`, before its exports are trimmed.
fn built_module_path(target: &Path, name: &str) -> PathBuf {
    target
        .join(WASM_TARGET)
        .join("wasm")
        .join("examples")
        .join(format!("{name}.wasm"))
}

/// Builds every filter module with the `wasm` profile and writes them, without the exports they
/// never need, to `target/filters/`.
pub fn build_filters() -> anyhow::Result<Vec<(FilterCrate, PathBuf)>> {
    ensure_wasm_target()?;
    let crates = filter_crates()?;
    let modules = build_modules(&workspace_root(), &target_dir(), &crates)?;
    let out_dir = target_dir().join("filters");
    fs::create_dir_all(&out_dir)?;
    let mut built = Vec::new();
    for (filter, module) in crates.into_iter().zip(modules) {
        let dest = out_dir.join(format!("{}.wasm", filter.crate_name));
        // Other processes (a test run, a demo) may be reading the module: replace it whole.
        let partial = dest.with_extension(format!("wasm.{}.tmp", std::process::id()));
        fs::write(&partial, &module.module)
            .with_context(|| format!("writing {}", partial.display()))?;
        fs::rename(&partial, &dest).with_context(|| format!("writing {}", dest.display()))?;
        println!(
            "{:<32} {:>9} bytes  {}  ({} unused exports removed)",
            filter.crate_name,
            module.module.len(),
            dest.display(),
            module.removed.len()
        );
        built.push((filter, dest));
    }
    Ok(built)
}

/// Builds `crates` of the workspace at `root` into `target` and returns each module with its
/// unused exports removed, in the order of `crates`.
///
/// Reproducible: the toolchain is pinned (rust-toolchain.toml), the wasm profile strips debug
/// info and symbols, and rustc sees workspace sources by relative path. What is left of the
/// build machine is the absolute path of cargo's registry sources (`$CARGO_HOME/registry/src/...`),
/// which panic locations embed even with `panic = "abort"`: it is remapped to `/cargo`. The
/// flags are set whole (`CARGO_ENCODED_RUSTFLAGS`), so a developer's `RUSTFLAGS` cannot change
/// what ships. `cargo xtask reproducible` checks all of this by building a second copy.
///
/// Modules without required features are built in one cargo invocation; each module that
/// requires features (`meshguard_with_authz`) in one of its own with exactly those, because
/// cargo unifies features within an invocation: built together, `meshguard.wasm` would carry
/// the Rego engine too.
pub fn build_modules(
    root: &Path,
    target: &Path,
    crates: &[FilterCrate],
) -> anyhow::Result<Vec<Trimmed>> {
    if std::env::var_os("RUSTFLAGS").is_some()
        || std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_some()
    {
        eprintln!(
            "meshguard: RUSTFLAGS are ignored for the filters: shipped modules are built with fixed flags"
        );
    }
    let flags = wasm_rustflags()?.join("\x1f");
    let invocation = || {
        let mut command = cargo();
        command
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target)
            .env("CARGO_ENCODED_RUSTFLAGS", &flags)
            .env_remove("RUSTFLAGS")
            .args(["build", "--target", WASM_TARGET, "--profile", "wasm"]);
        command
    };
    let plain: Vec<&FilterCrate> = crates.iter().filter(|f| f.features.is_empty()).collect();
    if !plain.is_empty() {
        let mut command = invocation();
        for filter in plain {
            command.args(["-p", &filter.package, "--example", &filter.crate_name]);
        }
        run(&mut command)?;
    }
    for filter in crates.iter().filter(|f| !f.features.is_empty()) {
        run(invocation().args([
            "-p",
            &filter.package,
            "--example",
            &filter.crate_name,
            "--features",
            &filter.features.join(","),
        ]))?;
    }
    crates
        .iter()
        .map(|filter| {
            let source = built_module_path(target, &filter.crate_name);
            let module =
                fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
            // Envoy calls every exported stream callback on every request; drop the ones the
            // filter never needs (see `exports`).
            remove_unused_exports(&module)
                .with_context(|| format!("removing unused exports from {}", source.display()))
        })
        .collect()
}

/// The flags of the wasm build: every spelling of cargo's home remapped to `/cargo`.
pub fn wasm_rustflags() -> anyhow::Result<Vec<String>> {
    let home = cargo_home()?;
    let mut homes = vec![home.clone()];
    if let Ok(canonical) = home.canonicalize()
        && canonical != home
    {
        homes.push(canonical);
    }
    Ok(homes
        .iter()
        .map(|home| format!("--remap-path-prefix={}=/cargo", home.display()))
        .collect())
}

/// `$CARGO_HOME`, or `~/.cargo` as cargo defaults it.
pub fn cargo_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|home| !home.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// Everything CI checks, in order of cost.
pub fn test() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    let clippy = clippy_driver()?;
    // No clippy pass for wasm32: the filter crates are workspace members, built and linted on
    // the host by the test build below, and their only wasm32-only code is the one
    // `export_filter!` line of each `module.rs`. A wasm32 check of them and their dependencies
    // cost CI 150-270 s, and it cannot ride on the wasm build itself: clippy-driver's modules
    // are not byte-identical to rustc's, so CI would not test the modules that ship.
    build_filters()?;
    // The second build of the reproducibility check is the release test's pin check (see
    // `reproducible`); the search for this machine's paths in the modules runs here.
    crate::reproducible::no_machine_paths(&filter_crates()?)?;
    let installs = std::time::Instant::now();
    let envoy = meshguard_testkit::envoy::envoy_binary()?;
    eprintln!("meshguard: using {}", envoy.display());
    // The global rate-limit tests run a real Redis (Debian's, installed here when missing).
    let redis = meshguard_testkit::redis::redis_binaries()?;
    eprintln!("meshguard: using {}", redis.server.display());
    let registry = meshguard_testkit::registry::registry_binary()?;
    eprintln!("meshguard: using {}", registry.display());
    // The monitoring tests run promtool and a real Prometheus (Debian's, installed when missing).
    let prometheus = meshguard_testkit::prometheus::prometheus_binaries()?;
    eprintln!("meshguard: using {}", prometheus.server.display());
    eprintln!(
        "meshguard: the test tools were ready in {:.0} s",
        installs.elapsed().as_secs_f64()
    );
    // Clippy `-D warnings` on every workspace target (lib, bins, tests, examples: the workspace
    // has no benches), linted as the tests build them: one compilation of the dependencies
    // instead of a `cargo clippy` check of all of them and then a build. The demo and benchmark
    // code (`xtask/full`) and the fuzz smoke binary are built and linted too.
    run(linted(&clippy).args(["test", "--workspace", "--features", TEST_FEATURES]))?;
    // The pipeline's tests again with the `authz` stage (`meshguard_with_authz.wasm`): above,
    // they ran as `meshguard.wasm` is built, without it.
    pipeline_tests_with_authz(&clippy)?;
    // The repository's own policy set, and its own Istio manifests against it, through the CLI
    // exactly as a developer runs it. The binary is the one `cargo test` just built (`cargo
    // run -p meshguard-cli` would resolve other features and build the engine a second time).
    let meshguard = target_dir().join("debug").join("meshguard");
    let policy_runs: [&[&str]; 3] = [
        &["verify", "gatekeeper/"],
        &["test", "policies/"],
        &["check", "-f", "istio/", "--policies", "gatekeeper/"],
    ];
    for policy in policy_runs {
        run(std::process::Command::new(&meshguard)
            .current_dir(workspace_root())
            .args(["policy"])
            .args(policy))?;
    }
    // Every fuzz target for a few seconds from its seeds, so a regression in a parser fails CI.
    let smoke = std::time::Instant::now();
    crate::fuzz::fuzz(&crate::fuzz::Args::smoke(), true)?;
    eprintln!(
        "meshguard: the fuzz smoke run took {:.0} s",
        smoke.elapsed().as_secs_f64()
    );
    Ok(())
}
