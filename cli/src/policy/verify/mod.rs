//! `meshguard policy verify`: gator's Suites (`test.gatekeeper.sh/v1alpha1`) run by the policy
//! engine's suite runner, the one the engine's own tests use, on the engine the webhook uses: a
//! suite that passes here describes what admission will do.
//!
//! Semantics follow gator verify (see `meshguard_policy_engine::suite`): tests of a template and
//! a constraint with cases, one object per case file (an AdmissionReview is reviewed as its
//! request), inventory files for referential policies, assertions `violations: yes|no|N` (default
//! yes) with an optional `message` regular expression, `skip`, and `invalid: true` for a template
//! or constraint that must fail to load (Rego, fields, or parameters against the template's
//! schema, checked exactly as the webhook checks them). A problem inside a test (a template that
//! does not compile, a missing object file) fails that test (exit 1); a suite that cannot be read
//! as a Suite is a load error (exit 2). This module only parses arguments and prints.

mod report;

use std::path::PathBuf;

use clap::ValueEnum;
use meshguard_policy_engine::suite::{self, Counts, Filter, Runner};

use crate::Outcome;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Per suite, test and case with timings, then the summary line.
    Pretty,
    /// One JSON document (summary line on stderr).
    Json,
    /// JUnit XML, one testsuite per suite file (summary line on stderr).
    Junit,
}

/// Arguments of `policy verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite files, or folders searched recursively for Suites.
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Only run matching tests and cases: `REGEX` (test or case name) or `TEST//CASE`.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// List the violations of every case, not only of failing ones.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs the suites and prints the report.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let filter = Filter::parse(args.run.as_deref()).map_err(anyhow::Error::msg)?;
    for path in &args.paths {
        std::fs::metadata(path)
            .map_err(|err| anyhow::anyhow!("cannot access {}: {err}", path.display()))?;
    }
    let suites = suite::find_suites(&args.paths)?;
    if suites.is_empty() {
        let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!(
            "no gator Suites (apiVersion: test.gatekeeper.sh/v1alpha1, kind: Suite) found under {}",
            shown.join(", ")
        );
    }
    let mut runner = Runner::new();
    let results: Vec<_> = suites
        .iter()
        .map(|s| runner.run_suite(s, &filter))
        .collect();
    let counts = Counts::of(&results);
    match args.format {
        Format::Pretty => print!("{}", report::pretty(&results, args.verbose)),
        Format::Json => {
            println!("{}", report::json(&results));
            eprintln!("{}", counts.summary_line());
        }
        Format::Junit => {
            print!("{}", report::junit(&results)?);
            eprintln!("{}", counts.summary_line());
        }
    }
    Ok(if counts.failed > 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}
