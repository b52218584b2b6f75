//! The policy, prepared once at configure time: the Rego modules compiled into a regorus VM
//! program for the decision rule, `data` checked against it, and what the policy reads.
//!
//! Evaluation runs on regorus' bytecode VM (`rvm`), the evaluator the admission engine uses by
//! default, because it is the one with a deterministic bound: an instruction budget
//! (`maxInstructions`) that a pathological policy or input exhausts in bounded time, with no
//! clock to read. A policy the VM compiler cannot take (regorus 0.14 refuses `with` outside
//! tests) is refused at configure time with the compiler's reason and line.
//!
//! Rego is read as v1 (OPA 1.x); modules written for v0 need `import rego.v1` or a rewrite.
//! Builtin errors are undefined, as in OPA (`strict-builtin-errors` off). Before compiling,
//! each module gets the rewrites the admission engine applies (`meshguard-rego-compat`), so
//! both decide as OPA does where regorus does not: most importantly `not f(x)` with `x`
//! undefined is undefined (regorus says true, which could turn a deny into an allow), and a
//! local `x := <undefined>` fails its body in the VM as in OPA. Rewrites keep every line where
//! it was, so errors name the author's lines. A complete rule that may produce several values
//! (several definitions that may disagree, or one that iterates:
//! `role := r if { r := input.roles[_] }`) raises OPA's `eval_conflict_error` when it does,
//! and the decision is `onError`; regorus' VM alone would make it undefined or take one of the
//! values, so a rule built on it could allow. Such a rule becomes a partial set with the rule
//! its only element (the admission engine's divergence 7, `vm_rules` in rego-compat), and names
//! itself in its package's `__mg_conflicts` when the set has several; [`Policy::evaluate`]
//! checks those sets after the decision and makes a conflict [`EvalError::Conflict`]. Without
//! a conflict the VM's answer is OPA's (one value, or undefined and `default` applies). A policy
//! without such rules is compiled as written, with no check per request. Stricter than OPA in
//! one way: OPA evaluates only what the decision reads, so a conflict in a rule the decision
//! did not reach is no error there, and is one here (fail closed). Such a rule with an `else`
//! chain cannot be rewritten and is refused at configure time, naming its line. regorus has no
//! `io.jwt.*` builtins and the proxy makes no network calls: policies use the verified claims
//! the JWT stage put in the input (see [`crate::input`]), and `http.send` is refused.

use std::sync::Arc;

use meshguard_filter_core::ConfigError;
use regorus::Value;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::VmError;
use regorus::rvm::{Program, RegoVM};

use meshguard_rego_compat::vm_rules::{CONFLICT_ERROR, CONFLICTS_RULE, OnConflict, RegoVersion};

use crate::config::{Config, module_field};
use crate::explain::Explainer;
use crate::input::Need;
use crate::reads::ReadSet;

/// Why an evaluation produced no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The evaluation ran out of its instruction budget.
    #[error("the evaluation exceeded maxInstructions ({0})")]
    Limit(usize),
    /// A run-time error (a type error in strict builtins, ...).
    #[error("evaluation error: {0}")]
    Runtime(String),
    /// A complete rule produced several values (OPA's `eval_conflict_error`); holds the rule.
    #[error("{CONFLICT_ERROR}: `{0}`")]
    Conflict(String),
}

/// A policy ready to evaluate.
#[derive(Debug)]
pub struct Policy {
    program: Arc<Program>,
    data: Value,
    /// The decision rule (`data.envoy.authz.allow`).
    pub rule: String,
    /// What the policy reads of `input`.
    pub reads: ReadSet,
    /// The same, as the tree the input builder walks.
    pub need: Need,
    /// Why decisions are never cached, if they are not.
    pub uncacheable: Option<String>,
    /// Whether the policy reads the request body.
    pub reads_body: bool,
    /// The instruction budget of one evaluation.
    pub max_instructions: usize,
    /// The conflict checks to run after the decision (`data.<package>.__mg_conflicts` of each
    /// package with a complete rule that may produce several values); empty for most policies.
    pub conflict_checks: Vec<String>,
    /// Which rule decided, when `explain` is on.
    pub explainer: Option<Explainer>,
}

impl Policy {
    /// Compiles the configured modules for the decision rule. Errors name the module and line
    /// (syntax, unknown functions, refused builtins) or the field (`data`, `decisionPath`).
    pub fn prepare(config: &Config) -> Result<Self, ConfigError> {
        // Before anything parses the modules: regorus' parse time doubles per bracket level
        // and grows with a number's exponent.
        for (name, source) in &config.modules {
            meshguard_rego_compat::check_parse_cost(source).map_err(|err| {
                ConfigError::new(module_field(name), format!("{name}:{}: {err}", err.line()))
            })?;
        }
        let reads = ReadSet::scan(
            config
                .modules
                .iter()
                .map(|(name, source)| (name.as_str(), source.as_str())),
        )
        .map_err(|refused| {
            ConfigError::new(
                module_field(&refused.module),
                format!(
                    "{}:{}: `{}` is not available in the proxy: {}",
                    refused.module, refused.line, refused.builtin, refused.why
                ),
            )
        })?;
        let prepared = opa_semantics(&config.modules)?;
        let mut engine = engine(&prepared.modules)?;
        let data = Value::from(config.data.clone());
        let conflict_checks: Vec<String> = prepared
            .checked
            .iter()
            .filter_map(|source| package_of(source))
            .map(|package| format!("{package}.{CONFLICTS_RULE}"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let program = compile_entries(&mut engine, config, &config.rule, &conflict_checks)?;
        // A fresh VM with the program and data: the same checks every worker's VM will make.
        new_vm(&program, &data).map_err(|err| ConfigError::new("data", err))?;
        let need = Need::of(&reads);
        let uncacheable = uncacheable(&reads);
        let reads_body = reads.touches(&["attributes", "request", "http", "body"])
            || reads.touches(&["parsed_body"]);
        let explainer = if config.explain {
            // On the author's definitions: the conflict checks are the decision's business.
            let mut unchecked = if prepared.checked.is_empty() {
                engine
            } else {
                self::engine(&prepared.unchecked)?
            };
            Some(Explainer::prepare(
                &mut unchecked,
                &prepared.unchecked,
                config,
                &data,
            )?)
        } else {
            None
        };
        Ok(Self {
            program,
            data,
            rule: config.rule.clone(),
            reads,
            need,
            uncacheable,
            reads_body,
            max_instructions: config.max_instructions,
            conflict_checks,
            explainer,
        })
    }

    /// The first place the policy names the verified JWT payload
    /// (`input.attributes.metadataContext...`), if it does. A policy that only reads the input
    /// whole (to hand it to a function) is not counted: it may not need the claims.
    pub fn reads_claims(&self) -> Option<String> {
        self.reads
            .paths
            .iter()
            .find(|path| {
                path.len() >= 2
                    && path.first().is_some_and(|s| s == "attributes")
                    && path.get(1).is_some_and(|s| s == "metadataContext")
            })
            .map(|path| format!("input.{}", path.join(".")))
    }

    /// A VM for this policy (one per worker; reused for every evaluation).
    pub fn vm(&self) -> RegoVM {
        // Checked at configure time with the same program and data.
        new_vm(&self.program, &self.data).unwrap_or_default()
    }

    /// Evaluates the decision rule on `input` within the instruction budget (and each conflict
    /// check within its own): a complete rule with several values is OPA's conflict error.
    pub fn evaluate(&self, vm: &mut RegoVM, input: Value) -> Result<Value, EvalError> {
        let value = evaluate(vm, input, self.max_instructions, None)?;
        for check in &self.conflict_checks {
            let conflicts = run(vm, self.max_instructions, Some(check))?;
            let first = match &conflicts {
                Value::Set(rules) => rules.iter().next(),
                _ => None,
            };
            if let Some(rule) = first {
                let rule = rule
                    .as_string()
                    .map_or_else(|_| rule.to_string(), |r| r.to_string());
                return Err(EvalError::Conflict(rule));
            }
        }
        Ok(value)
    }
}

/// The modules with the rewrites that make regorus' VM decide as OPA does. A module the
/// rewrites cannot edit safely (see `RewriteError`), or with a `some` declaration OPA refuses,
/// is refused, naming its line. So is one with a complete rule that may produce several values
/// (OPA's conflict error) in a shape the conflict check cannot take (an `else` chain, a body on
/// its own line): the proxy has no interpreter to fall back on.
fn opa_semantics(modules: &[(String, String)]) -> Result<Prepared, ConfigError> {
    let mut prepared = Prepared::default();
    for (name, source) in modules {
        let (checked, unchecked) = opa_module(name, source)?;
        if let Some(unchecked) = unchecked {
            prepared.checked.push(checked.clone());
            prepared.unchecked.push((name.clone(), unchecked));
        } else {
            prepared.unchecked.push((name.clone(), checked.clone()));
        }
        prepared.modules.push((name.clone(), checked));
    }
    Ok(prepared)
}

/// The modules as the VM runs them, and what else [`opa_semantics`] found.
#[derive(Debug, Default)]
struct Prepared {
    /// Every module, rewritten.
    modules: Vec<(String, String)>,
    /// The rewritten sources that got conflict checks.
    checked: Vec<String>,
    /// Every module without the conflict checks (what `explain` renames the decision's
    /// definitions in: there they are the author's).
    unchecked: Vec<(String, String)>,
}

/// The package path (`data.envoy.authz`) a module declares.
fn package_of(source: &str) -> Option<String> {
    use meshguard_rego_compat::rego_scan::{TokenKind, text, tokenize};
    let tokens = tokenize(source);
    let at = tokens
        .iter()
        .position(|t| t.kind == TokenKind::Ident && text(source, t) == "package")?;
    let line = tokens.get(at)?.line;
    let path: String = tokens
        .iter()
        .skip(at + 1)
        .take_while(|t| t.line == line)
        .map(|t| text(source, t))
        .collect();
    (!path.is_empty()).then(|| format!("data.{path}"))
}

/// One module with the rewrites of [`opa_semantics`], and the same without the conflict checks
/// when it got some.
fn opa_module(name: &str, source: &str) -> Result<(String, Option<String>), ConfigError> {
    use meshguard_rego_compat::{rego_scan, rewrite, vm_rules};
    let refused = |err: rewrite::RewriteError| {
        ConfigError::new(module_field(name), format!("{name}:{}: {err}", err.line()))
    };
    // `some` declarations OPA refuses and regorus would run.
    if let Some(declaration) = rego_scan::refused_declarations(source).into_iter().next() {
        return Err(ConfigError::new(
            module_field(name),
            format!(
                "{name}:{}: {} (a compile error in OPA)",
                declaration.line, declaration.message
            ),
        ));
    }
    let (source, _) = rego_scan::compensate(source);
    let (semantics, _) = rewrite::opa_semantics(&source).map_err(refused)?;
    // Complete rules that may produce several values: each names itself in the package's
    // `__mg_conflicts` when it has several, which `Policy::evaluate` makes OPA's conflict error
    // (see `vm_rules`). Policies without such rules are left as they are.
    let (source, changed) =
        vm_rules::single_value_rules_with(&semantics, RegoVersion::V1, Some(OnConflict::Report))
            .map_err(refused)?
            .map_err(|why| {
                ConfigError::new(
                    module_field(name),
                    format!(
                        "{name}: {why}; OPA raises a conflict error when a rule or a function \
                 produces several values, which the proxy can check only for rules written `name = \
                 value if {{ ... }}` (give the rule or function one value, or make it a set)"
                    ),
                )
            })?;
    let guarded = rewrite::vm_assignment_guards(&source).map_err(refused)?;
    let unchecked = if changed {
        Some(rewrite::vm_assignment_guards(&semantics).map_err(refused)?)
    } else {
        None
    };
    // The rewrites copy text (a head onto each chained body, a `with` onto each binding): what
    // regorus parses is bounded too, lines kept.
    for rewritten in std::iter::once(&guarded).chain(unchecked.as_ref()) {
        meshguard_rego_compat::check_parse_cost(rewritten).map_err(|err| {
            ConfigError::new(
                module_field(name),
                format!(
                    "{name}:{}: {err} (in the module as rewritten for regorus, which copies \
                     a rule's head onto each chained body and a `with` onto each binding)",
                    err.line()
                ),
            )
        })?;
    }
    Ok((guarded, unchecked))
}

/// An engine holding `modules` (Rego v1, builtin errors undefined as in OPA).
pub(crate) fn engine(modules: &[(String, String)]) -> Result<regorus::Engine, ConfigError> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine.set_strict_builtin_errors(false);
    for (name, source) in modules {
        engine
            .add_policy(name.clone(), source.clone())
            .map_err(|err| ConfigError::new(module_field(name), format!("{err:#}")))?;
    }
    Ok(engine)
}

/// Compiles `engine`'s modules into a VM program with entry points `rule` (and `more`).
pub(crate) fn compile_entries(
    engine: &mut regorus::Engine,
    config: &Config,
    rule: &str,
    more: &[String],
) -> Result<Arc<Program>, ConfigError> {
    let located = |err: String| {
        let field = config
            .modules
            .iter()
            .find(|(name, _)| err.contains(&format!("{name}:")))
            .map_or_else(|| "modules".to_string(), |(name, _)| module_field(name));
        ConfigError::new(field, err)
    };
    let compiled = engine
        .compile_with_entrypoint(&rule.into())
        .map_err(|err| format!("{err:#}"))
        .map_err(|err| {
            if err.contains("not a valid rule path") || err.contains("not found") {
                ConfigError::new(
                    "decisionPath",
                    format!(
                        "no rule `{rule}` in the modules (`{}`): {err}",
                        config.decision_path
                    ),
                )
            } else {
                located(err)
            }
        })?;
    let entries: Vec<&str> = std::iter::once(rule)
        .chain(more.iter().map(String::as_str))
        .collect();
    Compiler::compile_from_policy(&compiled, &entries).map_err(|err| located(format!("{err:#}")))
}

/// A VM loaded with `program` and `data`.
pub(crate) fn new_vm(program: &Arc<Program>, data: &Value) -> Result<RegoVM, String> {
    let mut vm = RegoVM::new();
    vm.load_program(program.clone());
    vm.set_strict_builtin_errors(false);
    vm.set_data(data.clone())
        .map_err(|err| format!("`data` conflicts with the policy: {err}"))?;
    Ok(vm)
}

/// Runs the main entry point (or `entry`) on `input` within `max_instructions`.
pub(crate) fn evaluate(
    vm: &mut RegoVM,
    input: Value,
    max_instructions: usize,
    entry: Option<&str>,
) -> Result<Value, EvalError> {
    vm.set_input(input);
    run(vm, max_instructions, entry)
}

/// Runs the main entry point (or `entry`) on the VM's input within `max_instructions`.
fn run(vm: &mut RegoVM, max_instructions: usize, entry: Option<&str>) -> Result<Value, EvalError> {
    vm.set_max_instructions(max_instructions);
    let result = match entry {
        None => vm.execute(),
        Some(name) => vm.execute_entry_point_by_name(name),
    };
    result.map_err(|err| match err {
        VmError::InstructionLimitExceeded { .. } => EvalError::Limit(max_instructions),
        other => EvalError::Runtime(other.to_string()),
    })
}

/// Why decisions of a policy with these reads can never be reused, if they cannot.
fn uncacheable(reads: &ReadSet) -> Option<String> {
    if let Some(impure) = &reads.impure {
        return Some(impure.clone());
    }
    for (path, why) in [
        (
            &["attributes", "request", "time"][..],
            "it reads input.attributes.request.time",
        ),
        (
            &["attributes", "request", "http", "id"][..],
            "it reads input.attributes.request.http.id",
        ),
        (
            &["attributes", "request", "http", "headers", "x-request-id"][..],
            "it reads every request header, x-request-id included (read the headers it needs by name)",
        ),
    ] {
        if reads.covers(path) {
            return Some(why.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests;
