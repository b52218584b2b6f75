//! Running suites with gator's semantics on the shared policy engine.
//!
//! Per test: the template is compiled (once per file for the whole run: compiling is the costly
//! step) and the constraint is loaded and checked against the template's parameter schema. A
//! test with `invalid: true` passes when either fails to load. Otherwise each case reviews its
//! object (exactly one per file; an AdmissionReview is reviewed as its request, DELETE with the
//! old object as `object`) with the case's inventory at gator's enforcement point, and every
//! assertion must hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshguard_policy_engine::{EnforcementPoint, Inventory, PolicySet, ReviewOptions};

use super::filter::Filter;
use super::suite::{Case, Suite, Test};
use crate::policy::docs;
use crate::policy::loading::{
    LoadFailure, LoadedTemplate, add_inventory_file, load_constraint, load_template, review_request,
};

/// The result of one suite.
#[derive(Debug)]
pub struct SuiteResult {
    /// The suite file.
    pub path: String,
    /// `skip: true`.
    pub skipped: bool,
    /// Time spent.
    pub duration: Duration,
    /// Per test.
    pub tests: Vec<TestResult>,
}

/// The result of one test.
#[derive(Debug)]
pub struct TestResult {
    /// Test name.
    pub name: String,
    /// Skipped (by `skip` or `--run`).
    pub skipped: bool,
    /// An `invalid: true` test.
    pub invalid: bool,
    /// Why the test failed before or instead of its cases.
    pub error: Option<String>,
    /// Time spent.
    pub duration: Duration,
    /// Per case.
    pub cases: Vec<CaseResult>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Skipped (by `skip` or `--run`).
    pub skipped: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Time spent.
    pub duration: Duration,
    /// `(constraint, message)` of every violation the review produced.
    pub violations: Vec<(String, String)>,
}

/// Counts for the summary line: cases, plus tests that have no cases to count (invalid tests,
/// tests that failed to load).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Counts {
    /// Tallies the results.
    pub fn of(results: &[SuiteResult]) -> Counts {
        let mut c = Counts::default();
        for suite in results {
            for test in &suite.tests {
                if test.skipped {
                    c.skipped += test.cases.len().max(1);
                } else if test.error.is_some() {
                    c.failed += 1;
                } else if test.cases.is_empty() {
                    c.passed += 1;
                }
                for case in test.cases.iter().filter(|_| !test.skipped) {
                    match (case.skipped, &case.error) {
                        (true, _) => c.skipped += 1,
                        (false, None) => c.passed += 1,
                        (false, Some(_)) => c.failed += 1,
                    }
                }
            }
        }
        c
    }

    /// `N passed, N failed` (`, N skipped` when some were skipped).
    pub fn summary_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }
}

/// Runs suites, keeping compiled templates for the whole run.
#[derive(Default)]
pub struct Runner {
    templates: HashMap<PathBuf, Result<LoadedTemplate, LoadFailure>>,
}

impl Runner {
    /// Runs one suite.
    pub fn run_suite(&mut self, suite: &Suite, filter: &Filter) -> SuiteResult {
        let start = Instant::now();
        if suite.skip {
            let tests = suite.tests.iter().map(skipped_test).collect();
            return SuiteResult {
                path: suite.path.clone(),
                skipped: true,
                duration: start.elapsed(),
                tests,
            };
        }
        let tests = suite
            .tests
            .iter()
            .map(|test| {
                if test.skip || !filter.matches_test(test) {
                    skipped_test(test)
                } else {
                    self.run_test(&suite.dir, test, filter)
                }
            })
            .collect();
        SuiteResult {
            path: suite.path.clone(),
            skipped: false,
            duration: start.elapsed(),
            tests,
        }
    }

    fn template(&mut self, path: &Path) -> Result<LoadedTemplate, LoadFailure> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.templates
            .entry(key)
            .or_insert_with(|| load_template(path))
            .clone()
    }

    fn policy_set(&mut self, dir: &Path, test: &Test) -> Result<PolicySet, LoadFailure> {
        if test.template.is_empty() {
            return Err(LoadFailure::Setup("the test names no template".into()));
        }
        if test.constraint.is_empty() {
            return Err(LoadFailure::Setup("the test names no constraint".into()));
        }
        let template = self.template(&dir.join(&test.template))?;
        let constraint = load_constraint(&dir.join(&test.constraint), &template)?;
        let mut set = PolicySet::new();
        set.insert_template(template.template.clone());
        set.add_constraint(constraint)
            .map_err(|err| LoadFailure::Setup(err.to_string()))?;
        Ok(set)
    }

    fn run_test(&mut self, dir: &Path, test: &Test, filter: &Filter) -> TestResult {
        let start = Instant::now();
        let loaded = self.policy_set(dir, test);
        let mut result = TestResult {
            name: test.name.clone(),
            skipped: false,
            invalid: test.invalid,
            error: None,
            duration: Duration::ZERO,
            cases: Vec::new(),
        };
        match (test.invalid, loaded) {
            (true, Err(LoadFailure::Invalid(_))) => {}
            (true, Err(LoadFailure::Setup(message))) => result.error = Some(message),
            (true, Ok(_)) => {
                result.error = Some(
                    "the test expects the template or the constraint to be invalid, but both loaded"
                        .into(),
                );
            }
            (false, Err(failure)) => result.error = Some(failure.message().to_string()),
            (false, Ok(set)) => {
                result.cases = test
                    .cases
                    .iter()
                    .map(|case| {
                        if case.skip || !filter.matches_case(&test.name, &case.name) {
                            skipped_case(case)
                        } else {
                            run_case(&set, dir, case)
                        }
                    })
                    .collect();
            }
        }
        result.duration = start.elapsed();
        result
    }
}

fn skipped_test(test: &Test) -> TestResult {
    TestResult {
        name: test.name.clone(),
        skipped: true,
        invalid: test.invalid,
        error: None,
        duration: Duration::ZERO,
        cases: test.cases.iter().map(skipped_case).collect(),
    }
}

fn skipped_case(case: &Case) -> CaseResult {
    CaseResult {
        name: case.name.clone(),
        skipped: true,
        error: None,
        duration: Duration::ZERO,
        violations: Vec::new(),
    }
}

fn run_case(set: &PolicySet, dir: &Path, case: &Case) -> CaseResult {
    let start = Instant::now();
    let mut result = skipped_case(case);
    result.skipped = false;
    match review_case(set, dir, case) {
        Ok(violations) => {
            let messages: Vec<String> = violations.iter().map(|(_, m)| m.clone()).collect();
            result.error = case
                .assertions
                .iter()
                .find_map(|a| a.check(&messages).err());
            result.violations = violations;
        }
        Err(message) => result.error = Some(message),
    }
    result.duration = start.elapsed();
    result
}

fn review_case(set: &PolicySet, dir: &Path, case: &Case) -> Result<Vec<(String, String)>, String> {
    if case.object.is_empty() {
        return Err("the case names no object".into());
    }
    if case.assertions.is_empty() {
        return Err("the case has no assertions (gator requires at least one)".into());
    }
    let object_path = dir.join(&case.object);
    let objects = docs::read_documents(&object_path).map_err(|err| format!("{err:#}"))?;
    let [object] = objects.as_slice() else {
        return Err(format!(
            "{}: defines {} objects; a case object file must define exactly one",
            object_path.display(),
            objects.len()
        ));
    };
    let mut inventory = Inventory::new();
    for path in &case.inventory {
        add_inventory_file(&mut inventory, &dir.join(path))?;
    }
    let request = review_request(object)?;
    let violations = set
        .review_with(
            &request,
            &inventory,
            &ReviewOptions::at(EnforcementPoint::Gator),
        )
        .map_err(|err| format!("{}: {err}", object.position()))?;
    Ok(violations
        .into_iter()
        .map(|v| (v.constraint.to_string(), v.message))
        .collect())
}
