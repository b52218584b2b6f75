//! `meshguard`: one binary for the people who write and ship mesh policy.
//!
//! Developers check manifests before they deploy and the security team tests its policies with
//! the same engine the admission webhook runs, so a verdict here is the verdict at admission.
//! Each subcommand family lives in its own module; this file only parses the command line and
//! maps outcomes to exit codes: 0 success, 1 a failing test or a violation, 2 a usage or load
//! error (clap's own usage errors already exit 2).

mod filter;
mod policy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What a command reports back to `main`, which turns it into the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything passed (exit 0).
    Success,
    /// A test failed or a policy was violated (exit 1).
    Failure,
}

/// Exit code for errors that stop a command before it can judge anything.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "meshguard",
    version,
    about = "Guard an Istio service mesh: test and enforce policy, run filters",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Test Rego, verify Gatekeeper suites, check manifests against policy, evaluate queries.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run proxy-wasm filters in an embedded host: try requests, run suites, validate config.
    #[command(subcommand)]
    Filter(filter::FilterCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(command) => policy::run(command),
        Command::Filter(command) => filter::run(command),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
