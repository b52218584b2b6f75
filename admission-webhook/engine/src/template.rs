//! ConstraintTemplates (`templates.gatekeeper.sh/v1`, `v1beta1`, `v1alpha1`): parsed, checked the
//! way Gatekeeper's constraint framework checks them, and compiled once into a prepared regorus
//! engine that every evaluation clones.
//!
//! Gatekeeper's rules applied here:
//! - the template's name is the lowercase of the kind it defines; exactly one target,
//!   `admission.k8s.gatekeeper.sh`;
//! - the Rego comes from `targets[0].code[engine: Rego].source` (`rego`, `libs`, `version`) or the
//!   legacy `targets[0].rego` / `targets[0].libs`; it is Rego v0 unless `version: "v1"`;
//! - the Rego must define `violation`; libs must be in packages under `lib` (`package lib.x`),
//!   read as `data.lib.x`; the only other `data` the Rego may read is `data.inventory`;
//! - each template gets its own engine, so libs of different templates may reuse package names.

use std::sync::{Arc, Mutex};

use regorus::Value;
use regorus::rvm::Program;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::decision_cache::{self, DecisionCache};
use crate::document::{self, Document};
use crate::error::{LoadError, Location};
use crate::read_set::ReadSet;
use crate::rego_scan;
use crate::rewrite;
use crate::schema::{Checked, ParameterSchema};
use crate::vm;
use crate::vm_rules;

/// The API group of templates.
pub const TEMPLATES_GROUP: &str = "templates.gatekeeper.sh";
/// The only target Gatekeeper's validating webhook evaluates.
pub const ADMISSION_TARGET: &str = "admission.k8s.gatekeeper.sh";

/// Which Rego syntax a template is written in (shared with the rewrites).
pub use meshguard_rego_compat::vm_rules::RegoVersion;

/// A compiled ConstraintTemplate.
#[derive(Debug)]
pub struct Template {
    /// `metadata.name`.
    pub name: String,
    /// The constraint kind it defines (`spec.crd.spec.names.kind`).
    pub kind: String,
    /// Rego syntax version.
    pub rego_version: RegoVersion,
    /// Where it was defined.
    pub location: Location,
    /// Rewrites applied to compensate regorus divergences (empty for most templates).
    pub notes: Vec<String>,
    /// Whether the Rego reads `data.inventory`.
    pub uses_inventory: bool,
    pub(crate) rule: String,
    pub(crate) base: regorus::Engine,
    pub(crate) with_inventory: Mutex<Option<(u64, regorus::Engine)>>,
    /// The VM program, or why the VM compiler refused the template.
    pub(crate) program: Result<Arc<Program>, String>,
    /// Whether the VM's program reports [`vm_rules::CONFLICT_MARKER`] (then the interpreter
    /// decides).
    vm_checks_conflicts: bool,
    /// The whole document as loaded (cluster mode compares it to skip unchanged updates).
    pub source: Json,
    /// The parameter schema (`spec.crd.spec.validation`), None when the template declares none.
    pub(crate) parameters: Option<ParameterSchema>,
    /// What the Rego reads of `input`, and whether its decisions may be cached.
    pub(crate) reads: ReadSet,
    pub(crate) cache: DecisionCache,
}

// === impl raw (serde) ===

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTemplate {
    api_version: String,
    kind: String,
    metadata: RawMetadata,
    spec: RawSpec,
}

#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    crd: RawCrd,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrd {
    spec: RawCrdSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrdSpec {
    names: RawNames,
    #[serde(default)]
    validation: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawNames {
    kind: String,
    #[serde(default)]
    #[allow(dead_code, reason = "short names only matter to kubectl")]
    short_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    target: String,
    #[serde(default)]
    rego: Option<String>,
    #[serde(default)]
    libs: Vec<String>,
    #[serde(default)]
    code: Vec<RawCode>,
    #[serde(default)]
    #[allow(dead_code, reason = "operations narrow generated VAP bindings only")]
    operations: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    engine: String,
    source: Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegoSource {
    rego: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    libs: Vec<String>,
}

/// Whether a document is a ConstraintTemplate.
pub fn is_template(doc: &Document) -> bool {
    doc.kind() == "ConstraintTemplate"
        && doc
            .api_version()
            .split_once('/')
            .is_some_and(|(group, _)| group == TEMPLATES_GROUP)
}

/// The Rego of a template: main module, libs and version.
struct RegoSource {
    rego: String,
    libs: Vec<String>,
    version: RegoVersion,
}

impl Template {
    /// Parses and compiles a ConstraintTemplate document.
    pub fn from_document(doc: &Document) -> Result<Self, LoadError> {
        let what = format!("ConstraintTemplate {}", doc.name());
        let field_error = |field: &str, message: String| LoadError::Field {
            location: doc.location.clone(),
            what: what.clone(),
            field: field.to_string(),
            message,
        };
        let raw: RawTemplate = serde_path_to_error::deserialize(&doc.value)
            .map_err(|err| field_error(&err.path().to_string(), err.inner().to_string()))?;
        let legacy_schema = match raw.api_version.split_once('/') {
            Some((TEMPLATES_GROUP, "v1")) => false,
            Some((TEMPLATES_GROUP, "v1beta1" | "v1alpha1")) => true,
            _ => {
                return Err(field_error(
                    "apiVersion",
                    format!(
                        "{:?} is not a ConstraintTemplate version (expected {TEMPLATES_GROUP}/v1)",
                        raw.api_version
                    ),
                ));
            }
        };
        if raw.kind != "ConstraintTemplate" {
            return Err(field_error("kind", "must be ConstraintTemplate".into()));
        }
        let kind = raw.spec.crd.spec.names.kind;
        if kind.is_empty() {
            return Err(field_error(
                "spec.crd.spec.names.kind",
                "must not be empty".into(),
            ));
        }
        if raw.metadata.name != kind.to_lowercase() {
            return Err(field_error(
                "metadata.name",
                format!(
                    "{:?} must be the lowercase of spec.crd.spec.names.kind ({:?}), as Gatekeeper requires",
                    raw.metadata.name,
                    kind.to_lowercase()
                ),
            ));
        }
        let target = match raw.spec.targets.as_slice() {
            [target] => target,
            [] => return Err(field_error("spec.targets", "must have one target".into())),
            _ => {
                return Err(field_error(
                    "spec.targets",
                    "must have exactly one target (Gatekeeper supports one per template)".into(),
                ));
            }
        };
        if target.target != ADMISSION_TARGET {
            return Err(field_error(
                "spec.targets[0].target",
                format!(
                    "{:?} is not supported (expected {ADMISSION_TARGET})",
                    target.target
                ),
            ));
        }
        let source =
            rego_source(target).map_err(|(field, message)| field_error(&field, message))?;
        let parameters = match &raw.spec.crd.spec.validation {
            Some(validation) => ParameterSchema::compile(validation, legacy_schema)
                .map_err(|message| field_error("spec.crd.spec.validation", message))?,
            None => None,
        };
        let mut template = compile(doc, raw.metadata.name, kind, source)?;
        template.parameters = parameters;
        Ok(template)
    }

    /// Checks a constraint's parameters against the template's schema as the API server checks
    /// them against the constraint CRD (see [`crate::schema`]): the parameters as stored (unknown
    /// fields pruned) with a warning per pruned field, or every problem.
    pub fn check_parameters(&self, parameters: &Json) -> Result<Checked, Vec<String>> {
        match &self.parameters {
            Some(schema) => schema.check(parameters),
            None => Ok(Checked {
                parameters: parameters.clone(),
                warnings: Vec::new(),
            }),
        }
    }

    /// The rule evaluated for violations (`data.<package>.violation`).
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Why the VM cannot run this template (it then runs on the interpreter), or None.
    pub fn vm_unavailable(&self) -> Option<&str> {
        self.program.as_ref().err().map(String::as_str)
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The execution timer fired.
    Timeout,
    /// Anything else.
    Error(String),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        let timed_out = err.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<regorus::utils::limits::LimitError>(),
                Some(regorus::utils::limits::LimitError::TimeLimitExceeded { .. })
            )
        }) || err.to_string().contains("exceeded time limit");
        if timed_out {
            Failure::Timeout
        } else {
            Failure::Error(format!("{err:#}"))
        }
    }
}

fn rego_source(target: &RawTarget) -> Result<RegoSource, (String, String)> {
    let rego_code = target
        .code
        .iter()
        .enumerate()
        .find(|(_, code)| code.engine == "Rego");
    if let Some((index, code)) = rego_code {
        let field = format!("spec.targets[0].code[{index}].source");
        let source: RawRegoSource = serde_path_to_error::deserialize(&code.source)
            .map_err(|err| (format!("{field}.{}", err.path()), err.inner().to_string()))?;
        let version = match source.version.as_deref() {
            None | Some("") | Some("v0") => RegoVersion::V0,
            Some("v1") => RegoVersion::V1,
            Some(other) => {
                return Err((
                    format!("{field}.version"),
                    format!("unsupported Rego version {other:?} (expected \"v0\" or \"v1\")"),
                ));
            }
        };
        return Ok(RegoSource {
            rego: source.rego,
            libs: source.libs,
            version,
        });
    }
    match &target.rego {
        Some(rego) if !rego.trim().is_empty() => Ok(RegoSource {
            rego: rego.clone(),
            libs: target.libs.clone(),
            version: RegoVersion::V0,
        }),
        _ => {
            let engines: Vec<&str> = target.code.iter().map(|c| c.engine.as_str()).collect();
            Err((
                "spec.targets[0].rego".into(),
                if engines.is_empty() {
                    "the template has no Rego".into()
                } else {
                    format!(
                        "the template has no Rego (only {}); meshguard evaluates Rego templates",
                        engines.join(", ")
                    )
                },
            ))
        }
    }
}

fn compile(
    doc: &Document,
    name: String,
    kind: String,
    source: RegoSource,
) -> Result<Template, LoadError> {
    let rego_error = |module: &str, text: &str, message: String| {
        let (line_in_rego, message) = split_position(module, &message);
        let base = document::locate_block(&doc.text, text)
            .map(|line| doc.text_line + line - 1)
            .unwrap_or(doc.location.line);
        LoadError::Rego {
            source_name: doc.location.source.clone(),
            line: line_in_rego.map_or(base, |l| base + l.saturating_sub(1)),
            template: name.clone(),
            module: match line_in_rego {
                Some(line) => format!("{module} line {line}"),
                None => module.to_string(),
            },
            message,
        }
    };
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(source.version == RegoVersion::V0);
    // OPA (and so Gatekeeper) evaluates a failing builtin call to undefined; regorus raises an
    // error unless told otherwise.
    engine.set_strict_builtin_errors(false);
    let mut notes = Vec::new();
    let mut uses_inventory = false;
    let modules = std::iter::once(("rego".to_string(), &source.rego)).chain(
        source
            .libs
            .iter()
            .enumerate()
            .map(|(index, lib)| (format!("libs[{index}]"), lib)),
    );
    let mut package = String::new();
    let mut vm_modules = Vec::new();
    let mut vm_checks_conflicts = false;
    let mut vm_refused: Option<String> = None;
    for (module, text) in modules {
        // Before regorus parses it: its parse time doubles per bracket level and grows with
        // a number's exponent.
        if let Err(err) = meshguard_rego_compat::check_parse_cost(text) {
            return Err(rego_error(
                &module,
                text,
                format!("{module}:{}: {err}", err.line()),
            ));
        }
        for data_ref in rego_scan::data_refs(text) {
            match data_ref.root.as_deref() {
                Some("lib" | "inventory") => {
                    uses_inventory |= data_ref.root.as_deref() == Some("inventory");
                }
                other => {
                    return Err(rego_error(
                        &module,
                        text,
                        format!(
                            "{module}:{}: disallowed reference data{} (templates may read only data.lib.* and data.inventory)",
                            data_ref.line,
                            other.map(|root| format!(".{root}")).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        // `some` declarations OPA refuses and regorus would run (divergence 11).
        if let Some(refused) = rego_scan::refused_declarations(text).into_iter().next() {
            return Err(rego_error(
                &module,
                text,
                format!(
                    "{module}:{}: {} (a compile error in OPA)",
                    refused.line, refused.message
                ),
            ));
        }
        // A rewrite that cannot apply its edits refuses the template (see RewriteError); the
        // line is the module's when the rewrite was on the module as written, else the one
        // nearest to it that the rewrites kept.
        let refused = |err: rewrite::RewriteError| {
            rego_error(&module, text, format!("{module}:{}: {err}", err.line()))
        };
        let (rewritten, module_notes) = rewrite::opa_compatible(text).map_err(refused)?;
        // The rewrites copy text (a head onto each chained body, a `with` onto each binding):
        // what regorus parses is bounded too, lines kept.
        let too_costly = |err: meshguard_rego_compat::TooCostly| {
            rego_error(
                &module,
                text,
                format!("{module}:{}: {err} {}", err.line(), crate::rego::REWRITTEN),
            )
        };
        meshguard_rego_compat::check_parse_cost(&rewritten).map_err(too_costly)?;
        notes.extend(
            module_notes
                .into_iter()
                .map(|note| format!("{module} {note}")),
        );
        // The VM's copy: conflicting-definition checks and lookup tables rewritten (see
        // vm_rules), then the assignment guards.
        match vm_rules::single_value_rules(&rewritten, source.version, module == "rego")
            .map_err(refused)?
        {
            Ok((single, changed)) => {
                vm_checks_conflicts |= changed;
                let (tabled, _) =
                    vm_rules::table_functions(&single, source.version).map_err(refused)?;
                let guarded = rewrite::vm_assignment_guards(&tabled).map_err(refused)?;
                meshguard_rego_compat::check_parse_cost(&guarded).map_err(too_costly)?;
                vm_modules.push((module.clone(), guarded));
            }
            Err(why) => vm_refused = vm_refused.or(Some(format!("{module}: {why}"))),
        }
        let pkg = engine
            .add_policy(module.clone(), rewritten)
            .map_err(|err| rego_error(&module, text, format!("{err:#}")))?;
        if module == "rego" {
            package = pkg;
        } else if !pkg.starts_with("data.lib.") {
            return Err(rego_error(
                &module,
                text,
                format!(
                    "package {} is not under `lib` (Gatekeeper requires libs in packages lib.*)",
                    pkg.trim_start_matches("data.")
                ),
            ));
        }
    }
    let declares_violation = engine
        .has_declared_rule_rooted_at("rego", "violation")
        .unwrap_or(false);
    if !declares_violation {
        return Err(rego_error(
            "rego",
            &source.rego,
            "missing required rule `violation`".into(),
        ));
    }
    let rule = format!("{package}.violation");
    // Prepare once (analysis and scheduling); compile errors surface here.
    if let Err(err) = prepare(&mut engine, &rule) {
        let message = format!("{err:#}");
        let module = if message.contains("libs[") {
            message
                .split_once("libs[")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(index, _)| format!("libs[{index}]"))
                .unwrap_or_else(|| "rego".into())
        } else {
            "rego".into()
        };
        let text = module
            .strip_prefix("libs[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|index| index.parse::<usize>().ok())
            .and_then(|index| source.libs.get(index))
            .unwrap_or(&source.rego);
        return Err(rego_error(&module, text, message));
    }
    // Every complete rule with several definitions was rewritten for the VM, or the rewrite
    // refused and the template runs on the interpreter.
    let program = match vm_refused {
        Some(why) => Err(format!(
            "{why}; regorus' VM does not report OPA's conflict error when definitions disagree, \
             so the interpreter runs this template"
        )),
        None => vm::compile(&vm_modules, source.version, &rule),
    };
    let reads = ReadSet::of(
        engine.get_modules(),
        &rule,
        std::iter::once(source.rego.as_str()).chain(source.libs.iter().map(String::as_str)),
    );
    Ok(Template {
        name,
        kind,
        rego_version: source.version,
        location: doc.location.clone(),
        notes,
        uses_inventory,
        rule,
        base: engine,
        with_inventory: Mutex::new(None),
        program,
        vm_checks_conflicts,
        source: doc.value.clone(),
        parameters: None,
        reads,
        cache: DecisionCache::new(decision_cache::CAPACITY),
    })
}

/// Prepares an engine (analysis, scheduling, function and rule tables) without evaluating the
/// template.
fn prepare(engine: &mut regorus::Engine, _rule: &str) -> anyhow::Result<()> {
    engine.set_input(Value::new_object());
    // A constant query prepares the modules and evaluates none of their rules.
    engine.eval_query("true".to_string(), false).map(|_| ())
}

/// Finds `module:LINE:` in a regorus message; returns the line and the message.
fn split_position(module: &str, message: &str) -> (Option<usize>, String) {
    let needle = format!("{module}:");
    let line = message.find(&needle).and_then(|at| {
        let rest = message.get(at + needle.len()..)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    (line, message.trim().to_string())
}

mod evaluate;
