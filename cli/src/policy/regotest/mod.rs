//! `meshguard policy test`: Rego unit tests, run as `opa test` runs them.
//!
//! The security team keeps `*_test.rego` next to the policies; this runs every `test_*` rule with
//! regorus (the engine the webhook uses). Modules are loaded through the policy engine's own path
//! (`meshguard_policy_engine::rego`): the same rewrites for regorus' divergences from OPA as
//! template Rego gets, and OPA's treatment of builtin errors, so a policy decides in its unit
//! tests as it decides inside its template, and a test that passes under `opa test` passes here.
//! Modules are read as Rego v0 by default, as Gatekeeper reads templates; `--v1` switches to
//! Rego v1.

mod coverage;
mod discover;
mod explain;
mod report;
mod runner;

pub use report::millis;

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use regex::Regex;

use crate::Outcome;
use runner::Counts;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per test, failures explained, then the summary line.
    Pretty,
    /// One JSON document (tests, summary, coverage).
    Json,
    /// JUnit XML, one testsuite per test file.
    Junit,
}

/// Arguments of `policy test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or folders to load (`*.rego`, plus `data.json` / `data.yaml` as data).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Only run tests whose full name (`data.pkg.test_x`) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Show print() output of every test, for failures the failing expression and values, and
    /// the rewrites applied for regorus' divergences from OPA (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// Report which lines of the policies (test files left out) the tests evaluated.
    #[arg(long)]
    pub coverage: bool,
    /// Fail (exit 1) when total coverage is below this percentage; implies --coverage.
    #[arg(long, value_name = "PERCENT")]
    pub threshold: Option<f64>,
    /// Read modules as Rego v1 (default: v0, as Gatekeeper reads templates).
    #[arg(long)]
    pub v1: bool,
}

/// Runs the tests and prints the report.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let filter = args
        .run
        .as_deref()
        .map(Regex::new)
        .transpose()
        .context("--run is not a valid regular expression")?;
    if let Some(t) = args.threshold {
        anyhow::ensure!(
            (0.0..=100.0).contains(&t),
            "--threshold must be between 0 and 100, got {t}"
        );
    }
    let want_coverage = args.coverage || args.threshold.is_some();
    let mut loaded = discover::load(&args.paths, args.v1)?;
    if args.verbose {
        for note in &loaded.notes {
            eprintln!("meshguard: rewritten as OPA reads it: {note}");
        }
    }
    if want_coverage {
        loaded.engine.set_enable_coverage(true);
    }
    let explain = args.verbose || args.format != Format::Pretty;
    let results = runner::run_tests(&mut loaded.engine, &loaded.tests, filter.as_ref(), explain);
    let coverage = if want_coverage {
        Some(coverage::collect(&loaded.engine, &loaded.test_files)?)
    } else {
        None
    };
    let counts = Counts::of(&results);
    match args.format {
        Format::Pretty => print!(
            "{}",
            report::pretty(&results, coverage.as_ref(), args.verbose)
        ),
        Format::Json => {
            println!("{}", report::json(&results, coverage.as_ref()));
            eprintln!("{}", counts.summary_line());
        }
        Format::Junit => {
            print!("{}", report::junit(&results)?);
            eprintln!("{}", counts.summary_line());
        }
    }
    if results.is_empty() {
        eprintln!(
            "meshguard: no tests ran ({} modules loaded{}); test rules are named test_*",
            loaded.module_count,
            if filter.is_some() {
                ", --run matched none"
            } else {
                ""
            }
        );
    }
    let mut outcome = if counts.failed > 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    if let (Some(threshold), Some(coverage)) = (args.threshold, &coverage)
        && coverage.percent < threshold
    {
        eprintln!(
            "meshguard: coverage {:.2}% is below the threshold {threshold}%",
            coverage.percent
        );
        outcome = Outcome::Failure;
    }
    Ok(outcome)
}
