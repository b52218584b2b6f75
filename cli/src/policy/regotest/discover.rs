//! Loading Rego modules and data documents the way `opa test` does, and finding the tests.
//!
//! Every `*.rego` file under the given paths goes into one engine (packages see each other, as
//! in OPA), through the policy engine's module path (`meshguard_policy_engine::rego`): the same
//! rewrites template Rego gets, lines kept. `data.json` / `data.yaml` files are merged into
//! `data` at the path of their folder relative to the argument that found them (bundle layout).
//! A test is a rule whose name starts with `test_`; `todo_` rules are tests that are counted as
//! skipped. The rules are found in regorus's own parse tree, so file and line are exact and
//! nothing is matched by text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshguard_policy_engine::{RegoVersion, document, rego};
use regorus::Engine;
use regorus::unstable::{Expr, Module, Ref, Rule, RuleHead};

use crate::policy::input::{files, read_text};

/// One test rule (all the definitions that share its name).
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The package path, `data.pkg`.
    pub package: String,
    /// The rule name (`test_x` or `todo_x`).
    pub name: String,
    /// The file that defines it.
    pub file: String,
    /// Line of its first definition.
    pub line: u32,
    /// Column of its first definition.
    pub col: u32,
    /// A `todo_` rule: reported as skipped.
    pub todo: bool,
    /// The module that defines it (for explanations).
    pub module: Ref<Module>,
    /// The definitions (for explanations).
    pub rules: Vec<Ref<Rule>>,
}

impl TestCase {
    /// `data.pkg.test_x`, the name `--run` matches against.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

/// Modules and data loaded into one engine, with the tests they define.
pub struct Loaded {
    /// The engine with every module and data document.
    pub engine: Engine,
    /// Tests in file, then line order.
    pub tests: Vec<TestCase>,
    /// Files that define at least one test (left out of coverage).
    pub test_files: Vec<String>,
    /// Number of Rego files loaded.
    pub module_count: usize,
    /// Rewrites applied for regorus' divergences from OPA, `file: line N: ...`.
    pub notes: Vec<String>,
}

/// Loads every Rego module and data file under `paths`.
pub fn load(paths: &[PathBuf], rego_v1: bool) -> anyhow::Result<Loaded> {
    let version = if rego_v1 {
        RegoVersion::V1
    } else {
        RegoVersion::V0
    };
    // Configured as template engines are (syntax version, builtin errors undefined as in OPA).
    let mut engine = rego::engine(version);
    engine.set_gather_prints(true);
    let mut module_count = 0;
    let mut notes = Vec::new();
    for root in paths {
        let found = files(root, &|p: &Path| is_rego(p) || is_data_file(p))?;
        for file in found {
            if is_rego(&file) {
                let (name, text) = read_text(&file)?;
                let (_, module_notes) = rego::add_module(&mut engine, &name, &text)?;
                notes.extend(module_notes.into_iter().map(|n| format!("{name}: {n}")));
                module_count += 1;
            } else {
                add_data_file(&mut engine, root, &file)?;
            }
        }
    }
    if module_count == 0 {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no .rego files found under {}; pass the folders that hold your policies and their \
             *_test.rego files",
            shown.join(", ")
        );
    }
    let tests = find_tests(engine.get_modules());
    let mut test_files: Vec<String> = tests.iter().map(|t| t.file.clone()).collect();
    test_files.sort();
    test_files.dedup();
    Ok(Loaded {
        engine,
        tests,
        test_files,
        module_count,
        notes,
    })
}

fn is_rego(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rego")
}

fn is_data_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("data.json" | "data.yaml" | "data.yml")
    )
}

fn add_data_file(engine: &mut Engine, root: &Path, file: &Path) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let docs = document::read_file(file)?;
    let mut value = match docs.as_slice() {
        [] => serde_json::Value::Object(Default::default()),
        [one] => one.value.clone(),
        _ => bail!(
            "{name}: a data file must hold one document, found {}",
            docs.len()
        ),
    };
    if !value.is_object() {
        bail!("{name}: a data file must hold an object at its top level");
    }
    let dir = file.parent().unwrap_or(Path::new(""));
    let relative = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let components: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for key in components.into_iter().rev() {
        value = serde_json::json!({ key: value });
    }
    engine
        .add_data(regorus::Value::from(value))
        .with_context(|| {
            format!("{name}: merging into data (does it conflict with another data file?)")
        })
}

/// Finds `test_*` and `todo_*` rules in the modules, grouped by package and name.
fn find_tests(modules: &[Ref<Module>]) -> Vec<TestCase> {
    let mut by_name: BTreeMap<(String, String), TestCase> = BTreeMap::new();
    for module in modules {
        let package = format!("data.{}", module.package.refr.span().text());
        for rule in &module.policy {
            let Some((name, span)) = test_rule_name(rule) else {
                continue;
            };
            let key = (package.clone(), name.clone());
            by_name
                .entry(key)
                .or_insert_with(|| TestCase {
                    package: package.clone(),
                    todo: name.starts_with("todo_"),
                    name,
                    file: span.source.file().clone(),
                    line: span.line,
                    col: span.col,
                    module: module.clone(),
                    rules: Vec::new(),
                })
                .rules
                .push(rule.clone());
        }
    }
    let mut tests: Vec<TestCase> = by_name.into_values().collect();
    tests.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    tests
}

fn test_rule_name(rule: &Ref<Rule>) -> Option<(String, regorus::unstable::Span)> {
    let Rule::Spec { head, .. } = rule.as_ref() else {
        return None;
    };
    let RuleHead::Compr { refr, .. } = head else {
        return None;
    };
    let Expr::Var { span, .. } = refr.as_ref() else {
        return None;
    };
    let name = span.text();
    (name.starts_with("test_") || name.starts_with("todo_"))
        .then(|| (name.to_string(), span.clone()))
}
