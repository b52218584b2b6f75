//! Running suites with gator's semantics on this engine.
//!
//! Per test: the template is compiled (once per file for the whole run: compiling is the costly
//! step) and the constraint is added to a policy set with it, which checks the parameters against
//! the template's schema exactly as the webhook's loading does. A test with `invalid: true`
//! passes when either fails to load. Otherwise each case reviews its object (exactly one per
//! file; an AdmissionReview is reviewed as its request, DELETE with the old object as `object`)
//! with the case's inventory at gator's enforcement point, and every assertion must hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Case, Filter, Suite, Test};
use crate::constraint::{Constraint, is_constraint};
use crate::document::{self, Document};
use crate::enforcement::EnforcementPoint;
use crate::error::LoadError;
use crate::inventory::Inventory;
use crate::policy_set::{PolicySet, ReviewOptions};
use crate::review::AdmissionRequest;
use crate::template::{Template, is_template};

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
    /// Skipped (by `skip` or the filter).
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
    /// Skipped (by `skip` or the filter).
    pub skipped: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Time spent.
    pub duration: Duration,
    /// `(constraint, message)` of every violation the review produced.
    pub violations: Vec<(String, String)>,
}

impl TestResult {
    /// Whether the test failed (itself or one of its cases).
    pub fn failed(&self) -> bool {
        !self.skipped && (self.error.is_some() || self.cases.iter().any(|c| c.error.is_some()))
    }
}

impl SuiteResult {
    /// Whether a test of the suite failed.
    pub fn failed(&self) -> bool {
        self.tests.iter().any(TestResult::failed)
    }

    /// Every failure as `test / case: why` lines (empty when the suite passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for test in self.tests.iter().filter(|t| t.failed()) {
            if let Some(error) = &test.error {
                out.push(format!("{}: {error}", test.name));
            }
            for case in &test.cases {
                if let Some(error) = &case.error {
                    out.push(format!("{} / {}: {error}", test.name, case.name));
                }
            }
        }
        out
    }
}

/// Counts for the summary line: cases, plus tests that have no cases to count (invalid tests,
/// tests that failed to load).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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

/// Why a template or constraint could not be set up.
#[derive(Debug, Clone)]
enum LoadFailure {
    /// The file is missing, unreadable, or does not hold what it should: the test is broken.
    Setup(String),
    /// The template or constraint itself is invalid (Rego, fields, parameter schema): what an
    /// `invalid: true` test expects.
    Invalid(String),
}

impl LoadFailure {
    fn message(&self) -> &str {
        match self {
            LoadFailure::Setup(m) | LoadFailure::Invalid(m) => m,
        }
    }
}

/// Runs suites, keeping compiled templates for the whole run.
#[derive(Default)]
pub struct Runner {
    templates: HashMap<PathBuf, Result<Arc<Template>, LoadFailure>>,
}

impl Runner {
    /// A runner with no templates compiled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one suite; tests and cases the filter leaves out are reported as skipped.
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

    fn template(&mut self, path: &Path) -> Result<Arc<Template>, LoadFailure> {
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
        set.insert_template(template);
        // The parameters are checked against the template's schema here, as the webhook does.
        set.add_constraint(constraint).map_err(|err| match err {
            LoadError::Parameters { .. } => LoadFailure::Invalid(err.to_string()),
            other => LoadFailure::Setup(other.to_string()),
        })?;
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

/// The one document a file must hold.
fn single(path: &Path, what: &str) -> Result<Document, LoadFailure> {
    let docs = document::read_file(path).map_err(|err| LoadFailure::Setup(err.to_string()))?;
    match <[Document; 1]>::try_from(docs) {
        Ok([one]) => Ok(one),
        Err(docs) if docs.is_empty() => Err(LoadFailure::Setup(format!(
            "{}: holds no document; expected one {what}",
            path.display()
        ))),
        Err(docs) => Err(LoadFailure::Setup(format!(
            "{}: holds {} documents; expected exactly one {what}",
            path.display(),
            docs.len()
        ))),
    }
}

/// Reads and compiles the one ConstraintTemplate a file holds.
fn load_template(path: &Path) -> Result<Arc<Template>, LoadFailure> {
    let doc = single(path, "ConstraintTemplate")?;
    if !is_template(&doc) {
        return Err(LoadFailure::Setup(format!(
            "{}: not a ConstraintTemplate (apiVersion templates.gatekeeper.sh/v1, kind \
             ConstraintTemplate), found {} {}",
            doc.location,
            doc.api_version(),
            doc.kind()
        )));
    }
    Template::from_document(&doc)
        .map(Arc::new)
        .map_err(|err| LoadFailure::Invalid(err.to_string()))
}

/// Reads the one constraint a file holds; its kind must be the template's.
fn load_constraint(path: &Path, template: &Template) -> Result<Constraint, LoadFailure> {
    let doc = single(path, "constraint")?;
    if !is_constraint(&doc) {
        return Err(LoadFailure::Setup(format!(
            "{}: not a constraint (apiVersion constraints.gatekeeper.sh/v1beta1), found {} {}",
            doc.location,
            doc.api_version(),
            doc.kind()
        )));
    }
    let constraint =
        Constraint::from_document(&doc).map_err(|err| LoadFailure::Invalid(err.to_string()))?;
    if constraint.id.kind != template.kind {
        return Err(LoadFailure::Setup(format!(
            "{}: the constraint is of kind {} but the test's template defines {}",
            doc.location, constraint.id.kind, template.kind
        )));
    }
    Ok(constraint)
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
    let objects = document::read_file(&object_path).map_err(|err| err.to_string())?;
    let [object] = objects.as_slice() else {
        return Err(format!(
            "{}: defines {} objects; a case object file must define exactly one",
            object_path.display(),
            objects.len()
        ));
    };
    let mut inventory = Inventory::new();
    for path in &case.inventory {
        let path = dir.join(path);
        let docs = document::read_file(&path).map_err(|err| err.to_string())?;
        if docs.is_empty() {
            return Err(format!("{}: defines no objects", path.display()));
        }
        for doc in docs {
            inventory
                .add(doc.value.clone())
                .map_err(|err| format!("{}: {err}", doc.position()))?;
        }
    }
    let request = AdmissionRequest::from_manifest(&object.value)
        .map_err(|err| format!("{}: {err}", object.position()))?;
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
