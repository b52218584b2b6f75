//! `meshguard policy ...`: the policy tooling.
//!
//! - `test`: Rego unit tests (`opa test`), loaded through the policy engine's module path.
//! - `verify`: gator Suites against templates and constraints, by the engine's suite runner.
//! - `check`: manifests against templates and constraints (`gator test`), on the same engine.
//! - `eval`: one query over data and input, for debugging.

mod check;
mod eval;
mod input;
mod regotest;
mod verify;

use crate::Outcome;

/// The `policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Run Rego unit tests (`test_*` rules in *.rego files), as `opa test` does.
    Test(regotest::Args),
    /// Run gator Suites (test.gatekeeper.sh/v1alpha1) against templates and constraints.
    Verify(verify::Args),
    /// Check manifests against templates and constraints, as gator test does.
    Check(check::Args),
    /// Evaluate a Rego query over data and input and print the result as JSON.
    Eval(eval::Args),
}

/// Runs a `policy` subcommand.
pub fn run(command: PolicyCommand) -> anyhow::Result<Outcome> {
    match command {
        PolicyCommand::Test(args) => regotest::run(args),
        PolicyCommand::Verify(args) => verify::run(args),
        PolicyCommand::Check(args) => check::run(args),
        PolicyCommand::Eval(args) => eval::run(args),
    }
}
