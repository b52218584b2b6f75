//! Running child commands with their output streamed and their failure explained.

use std::process::Command;

use anyhow::{Context, bail};

/// Runs `command`, streaming its output; fails with the command line if it fails.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let started = std::time::Instant::now();
    let status = command
        .status()
        .with_context(|| format!("spawning {}", describe(command)))?;
    // Each step's time in the log, so that a slow CI run says where its minutes went.
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "`{}` failed ({status}) after {took:.0} s",
            describe(command)
        );
    }
    eprintln!("meshguard: `{}` took {took:.0} s", describe(command));
    Ok(())
}

/// Runs `command` and returns its stdout.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("spawning {}", describe(command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// A shell-like rendering of a command.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cargo that runs xtask (so the pinned toolchain is used throughout).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command.current_dir(meshguard_testkit::paths::workspace_root());
    // `cargo xtask test` runs the tests with clippy as the workspace's compiler, and a test that
    // builds (the release test builds every module) inherits that: clippy-driver's modules are
    // not byte-identical to rustc's, so they would not match the committed pins. Whoever wants
    // the wrapper sets it on the command (`build::linted`).
    command
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    command
}
