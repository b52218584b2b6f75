//! The repository's `gatekeeper/` folder: one test per gator suite (`suite.yaml`), generated when
//! the tests start, run by the engine's own suite runner (the one `meshguard policy verify`
//! uses), so a single suite can be run and fails by its name:
//!
//! ```text
//! cargo test -p meshguard-policy-engine --test gatekeeper_suites -- required-labels
//! ```
//!
//! Plus one test that every ConstraintTemplate in the folder loads, suites or not.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use meshguard_policy_engine::suite::{self, Counts, Filter, Runner};
use meshguard_policy_engine::{Template, document};

fn gatekeeper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatekeeper")
}

/// Runs one suite file; the failure lists every failing test and case with gator's wording.
fn run_suite(path: &Path) -> Result<(), Failed> {
    let suites = suite::find_suites(&[path]).map_err(|err| err.to_string())?;
    let mut runner = Runner::new();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    for suite in &suites {
        let result = runner.run_suite(suite, &Filter::All);
        failures.extend(result.failures());
        results.push(result);
    }
    let counts = Counts::of(&results);
    if !failures.is_empty() {
        return Err(format!("{}\n{}", failures.join("\n"), counts.summary_line()).into());
    }
    if counts.passed == 0 {
        return Err(format!("{}: no test or case ran", path.display()).into());
    }
    Ok(())
}

fn every_template_loads(dir: &Path) -> Result<(), Failed> {
    let mut templates = 0;
    for file in document::manifest_files(dir).map_err(|err| err.to_string())? {
        for doc in document::read_file(&file).map_err(|err| err.to_string())? {
            if meshguard_policy_engine::template::is_template(&doc) {
                Template::from_document(&doc).map_err(|err| err.to_string())?;
                templates += 1;
            }
        }
    }
    if templates == 0 {
        return Err(format!("no ConstraintTemplate under {}", dir.display()).into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dir = gatekeeper_dir();
    let suites = document::files_under(&dir, &|p: &Path| {
        p.file_name().is_some_and(|name| name == "suite.yaml")
    })
    .unwrap_or_default();
    let mut trials = vec![Trial::test("every_template_in_gatekeeper_loads", {
        let dir = dir.clone();
        move || every_template_loads(&dir)
    })];
    if suites.is_empty() {
        trials.push(Trial::test("gatekeeper_has_suites", move || {
            Err(format!("no suite.yaml under {}", gatekeeper_dir().display()).into())
        }));
    }
    for path in suites {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        trials.push(Trial::test(format!("gatekeeper/{name}"), move || {
            run_suite(&path)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
