//! `meshguard policy verify`: gator's Suites (`test.gatekeeper.sh/v1alpha1`) run on the policy
//! engine the webhook uses, so a suite that passes here describes what admission will do.
//!
//! Semantics follow gator verify: tests of a template and a constraint with cases, one object
//! per case file (an AdmissionReview is reviewed as its request), inventory files for
//! referential policies, assertions `violations: yes|no|N` (default yes) with an optional
//! `message` regular expression, `skip`, and `invalid: true` for a template or constraint that
//! must fail to load (Rego, fields, or parameters against the template's schema). A problem
//! inside a test (a template that does not compile, a missing object file) fails that test
//! (exit 1); a suite that cannot be read as a Suite is a load error (exit 2).

mod filter;
mod report;
mod runner;
mod suite;

use std::path::PathBuf;

use clap::ValueEnum;

use crate::Outcome;
use filter::Filter;
use runner::{Counts, Runner};
pub use suite::is_suite;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Per suite, test and case with timings, then the summary line.
    Pretty,
    /// One JSON document (summary line on stderr).
    Json,
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
    let filter = Filter::parse(args.run.as_deref())?;
    let suites = suite::find_suites(&args.paths)?;
    if suites.is_empty() {
        let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!(
            "no gator Suites (apiVersion: test.gatekeeper.sh/v1alpha1, kind: Suite) found under {}",
            shown.join(", ")
        );
    }
    let mut runner = Runner::default();
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
    }
    Ok(if counts.failed > 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}
