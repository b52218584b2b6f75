//! gator's Suite format (`test.gatekeeper.sh/v1alpha1`, kind `Suite`) and its runner, shared by
//! `meshguard policy verify` and the engine's own tests (one generated test per `suite.yaml`), so
//! that a suite means the same thing wherever it runs: what the engine decides at admission.
//!
//! A Suite lists tests (a template, a constraint, cases or `invalid: true`); a case names an
//! object file, optional inventory files and assertions (`violations`: `yes` (default), `no` or a
//! number; `message`: a regular expression). Paths are relative to the suite file. Structural
//! mistakes (a misspelt field, `violations: maybe`, a broken regular expression) are load errors
//! naming the file and the place, so a typo cannot silently turn an assertion off. The runner is
//! in [`runner`], `--run`'s filter in [`filter`].

pub mod filter;
pub mod runner;

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::document::{self, Document};
use crate::error::LoadError;

pub use filter::Filter;
pub use runner::{CaseResult, Counts, Runner, SuiteResult, TestResult};

/// The Suite's API group.
pub const GROUP: &str = "test.gatekeeper.sh";

/// A parsed suite.
#[derive(Debug)]
pub struct Suite {
    /// The file as found (for output).
    pub path: String,
    /// Its folder: test paths are relative to it.
    pub dir: PathBuf,
    /// `skip: true`.
    pub skip: bool,
    /// The tests.
    pub tests: Vec<Test>,
}

/// A template and constraint pair with its cases.
#[derive(Debug)]
pub struct Test {
    /// `name`.
    pub name: String,
    /// Template path (may be empty: the test then fails, as in gator).
    pub template: String,
    /// Constraint path (may be empty: the test then fails).
    pub constraint: String,
    /// `cases`.
    pub cases: Vec<Case>,
    /// `invalid: true`: the template or the constraint must fail to load.
    pub invalid: bool,
    /// `skip: true`.
    pub skip: bool,
}

/// One object reviewed against the test's constraint.
#[derive(Debug)]
pub struct Case {
    /// `name`.
    pub name: String,
    /// Object path (may be empty: the case then fails).
    pub object: String,
    /// Inventory paths.
    pub inventory: Vec<String>,
    /// `assertions` (may be empty: the case then fails, as in gator).
    pub assertions: Vec<Assertion>,
    /// `skip: true`.
    pub skip: bool,
}

/// How many violations an assertion expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// At least one.
    Yes,
    /// None.
    No,
    /// Exactly this many.
    Exactly(u64),
}

/// A statement about the violations of a case.
#[derive(Debug)]
pub struct Assertion {
    /// `violations`.
    pub violations: Expected,
    /// `message`, compiled.
    pub message: Option<Regex>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSuite {
    #[serde(default)]
    tests: Vec<RawTest>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    constraint: String,
    #[serde(default)]
    cases: Vec<RawCase>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    #[serde(default)]
    name: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<RawAssertion>,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    #[serde(default)]
    violations: Option<Json>,
    #[serde(default)]
    message: Option<String>,
}

/// Whether a document is a Suite.
pub fn is_suite(value: &Json) -> bool {
    value["kind"].as_str() == Some("Suite")
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.split_once('/').is_some_and(|(group, _)| group == GROUP))
}

/// Finds the suites under `paths`: a file must be a Suite; folders are searched recursively and
/// YAML files that are not Suites are skipped. Sorted by path.
pub fn find_suites<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Suite>, LoadError> {
    let mut suites = Vec::new();
    for root in paths {
        let root = root.as_ref();
        let is_file = std::fs::metadata(root)
            .map_err(|source| LoadError::Io {
                path: root.to_path_buf(),
                source,
            })?
            .is_file();
        let yaml =
            |p: &Path| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        for file in document::files_under(root, &yaml)? {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io {
                path: file.clone(),
                source,
            })?;
            if !(is_file || text.contains("Suite") && text.contains(GROUP)) {
                continue;
            }
            let name = file.display().to_string();
            let docs = document::parse_documents(&name, &text)?;
            let Some(doc) = docs.first().filter(|d| is_suite(&d.value)) else {
                if is_file {
                    return Err(LoadError::Field {
                        location: docs
                            .first()
                            .map(|d| d.location.clone())
                            .unwrap_or_else(|| crate::Location::inline(name.clone())),
                        what: "Suite".into(),
                        field: "kind".into(),
                        message: format!(
                            "not a gator Suite (apiVersion: {GROUP}/v1alpha1, kind: Suite); pass a \
                             suite file or a folder to search"
                        ),
                    });
                }
                continue;
            };
            suites.push(parse_suite(doc, &file)?);
        }
    }
    suites.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(suites)
}

/// Validates one suite document read from `file`.
pub fn parse_suite(doc: &Document, file: &Path) -> Result<Suite, LoadError> {
    let error = |field: String, message: String| LoadError::Field {
        location: doc.location.clone(),
        what: format!("Suite {}", doc.name()),
        field,
        message,
    };
    let raw: RawSuite = serde_path_to_error::deserialize(&doc.value)
        .map_err(|err| error(err.path().to_string(), err.inner().to_string()))?;
    let mut tests = Vec::new();
    for (ti, t) in raw.tests.into_iter().enumerate() {
        let mut cases = Vec::new();
        for (ci, c) in t.cases.into_iter().enumerate() {
            let mut assertions = Vec::new();
            for (ai, a) in c.assertions.into_iter().enumerate() {
                let at = format!("tests[{ti}].cases[{ci}].assertions[{ai}]");
                let violations = match a.violations {
                    None => Expected::Yes,
                    Some(Json::String(s)) if s == "yes" => Expected::Yes,
                    Some(Json::String(s)) if s == "no" => Expected::No,
                    Some(Json::Number(n)) if n.as_u64().is_some() => {
                        Expected::Exactly(n.as_u64().unwrap_or_default())
                    }
                    Some(other) => {
                        return Err(error(
                            format!("{at}.violations"),
                            format!(
                                "must be a non-negative integer, \"yes\" or \"no\", got {other}"
                            ),
                        ));
                    }
                };
                let message = match a.message.as_deref().map(Regex::new).transpose() {
                    Ok(message) => message,
                    Err(err) => {
                        return Err(error(
                            format!("{at}.message"),
                            format!("not a valid regular expression: {err}"),
                        ));
                    }
                };
                assertions.push(Assertion {
                    violations,
                    message,
                });
            }
            cases.push(Case {
                name: c.name,
                object: c.object,
                inventory: c.inventory,
                assertions,
                skip: c.skip,
            });
        }
        tests.push(Test {
            name: t.name,
            template: t.template,
            constraint: t.constraint,
            cases,
            invalid: t.invalid,
            skip: t.skip,
        });
    }
    Ok(Suite {
        path: doc.location.source.clone(),
        dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        skip: raw.skip,
        tests,
    })
}

// === impl Assertion ===

impl Assertion {
    /// Checks the assertion against the messages of a case's violations, with gator's wording.
    pub fn check(&self, messages: &[String]) -> Result<(), String> {
        let matching = messages
            .iter()
            .filter(|m| self.message.as_ref().is_none_or(|re| re.is_match(m)))
            .count() as u64;
        let containing = self
            .message
            .as_ref()
            .map(|re| format!(" containing {:?}", re.as_str()))
            .unwrap_or_default();
        let want = match self.violations {
            Expected::Yes if matching == 0 => "at least 1".to_string(),
            Expected::No if matching > 0 => "none".to_string(),
            Expected::Exactly(n) if matching != n => format!("exactly {n}"),
            _ => return Ok(()),
        };
        Err(format!(
            "got {matching} violations{containing} but want {want}: got messages {messages:?}"
        ))
    }
}
