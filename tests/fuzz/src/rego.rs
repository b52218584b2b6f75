//! The Rego the engine rewrites before regorus sees it: the scanner and rewrites on arbitrary
//! text, whole templates through the engine's load path, and the differential check that the
//! rewrites never change what a policy decides where they have nothing to compensate.
//!
//! The rewrites (see `meshguard_policy_engine`'s divergence table) are a hand-written tokenizer
//! and text edits. A bug there does not crash: it silently changes a decision. So
//! `rego_differential` evaluates each program three ways and compares:
//!
//! - **raw**: regorus' interpreter on the program as written (no rewrite at all);
//! - **interpreter**: the engine's template path on the rewritten program;
//! - **VM**: the engine's template path on regorus' VM (rewritten again for the VM).
//!
//! The interpreter and the VM must always agree (the VM rewrites exist to make them agree).
//! Raw must agree with both whenever the program uses no construct the rewrites target: then
//! every rewrite must leave its meaning alone. Programs come from a small grammar over the
//! fuzz input ([`generate`], which knows when it writes a targeted construct), or are the
//! repository's own templates, mutated, with their samples as input; for those the rewriter's
//! own notes say whether anything was compensated.

pub mod generate;

use std::time::Duration;

use meshguard_policy_engine::fuzzing::{self, Rewritten};
use meshguard_policy_engine::regorus::{self, Value};
use meshguard_policy_engine::{
    AdmissionRequest, Document, EvalMode, Inventory, PolicySet, RegoVersion, ReviewError,
    ReviewOptions,
};
use serde_json::{Value as Json, json};

/// Target `rego_rewrite`: arbitrary text through every scan and rewrite, as main module and as
/// a lib, in both Rego versions.
pub fn rewrite(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let _ = fuzzing::token_count(&src);
    let variants = [
        (RegoVersion::V0, true),
        (RegoVersion::V0, false),
        (RegoVersion::V1, true),
        (RegoVersion::V1, false),
    ];
    // A refusal (edits that cannot apply: the template does not load) is an answer; a panic or
    // a wrong rewrite is not.
    if let Ok(each) = fuzzing::rewrite_each(&src, &variants) {
        for rewritten in &each {
            check_rewrite(&src, rewritten);
        }
    }
}

/// What holds for any rewrite of any text.
///
/// # Panics
/// When a rewrite changed text it has no note for, or moved a line.
pub fn check_rewrite(src: &str, rewritten: &Rewritten) {
    let calls_deprecated = src.contains("any") || src.contains("all");
    if rewritten.notes.is_empty() && !calls_deprecated {
        assert_eq!(
            rewritten.interpreter, src,
            "the interpreter's module changed without a note"
        );
    }
    // Rewrites keep every line where it was (errors name the right line); only the definitions
    // of `any`/`all` are appended after the module.
    let lines = |text: &str| text.matches('\n').count();
    if !calls_deprecated {
        assert_eq!(
            lines(&rewritten.interpreter),
            lines(src),
            "a rewrite moved lines: {:?}",
            rewritten.notes
        );
    }
    if let Ok(vm) = &rewritten.vm {
        assert!(
            vm.starts_with(src) || lines(vm) >= lines(src),
            "the VM's module lost lines"
        );
    }
}

/// Target `rego_template`: Rego text as the main module of a ConstraintTemplate, loaded the way
/// the webhook loads one (scan, rewrites, compile for the interpreter and the VM).
pub fn template(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let _ = policy_set(&src, &json!({}));
}

/// The main module's package, and the template and constraint kind the harness uses.
const KIND: &str = "FuzzTemplate";

/// A policy set of one template with `rego` and one constraint with `parameters`.
pub fn policy_set(rego: &str, parameters: &Json) -> Result<PolicySet, String> {
    let template = json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {"name": KIND.to_lowercase()},
        "spec": {
            "crd": {"spec": {"names": {"kind": KIND}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}]
        }
    });
    let constraint = json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": KIND,
        "metadata": {"name": "fuzz"},
        "spec": {"parameters": parameters}
    });
    PolicySet::from_documents(&[
        Document::inline("template", template),
        Document::inline("constraint", constraint),
    ])
    .map_err(|err| err.to_string())
}

/// A decision: the `msg`s of `violation`, sorted, or that evaluation failed.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The messages (and details, as JSON text) of every violation.
    Violations(Vec<(String, String)>),
    /// The program did not compile or evaluation raised this error.
    Error(String),
    /// Evaluation ran out of time (nothing to compare).
    Timeout,
}

impl PartialEq for Outcome {
    /// Errors are alike whatever their wording (the evaluators word them differently).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Violations(a), Self::Violations(b)) => a == b,
            (Self::Error(_), Self::Error(_)) | (Self::Timeout, Self::Timeout) => true,
            _ => false,
        }
    }
}

impl Outcome {
    /// A known regorus divergence (10 in the engine's divergence table): regorus' interpreter
    /// raises `duplicated definition of local variable x` when a `some x` declaration follows
    /// an iteration in the same body (it declares `x` again for the iteration's next element),
    /// where OPA and regorus' VM decide. Recognised only when `rego` does declare `x` with
    /// `some` once in a body: a real redeclaration, which OPA refuses, the engine refuses at
    /// load (divergence 11), so it never gets here.
    fn is_interpreter_some_redeclaration(&self, rego: &str) -> bool {
        const PREFIX: &str = "duplicated definition of local variable ";
        let message = match self {
            Self::Error(message) => message.as_str(),
            Self::Violations(violations) => match violations.as_slice() {
                [(message, _)] => message.as_str(),
                _ => return false,
            },
            Self::Timeout => return false,
        };
        let Some((_, rest)) = message.split_once(PREFIX) else {
            return false;
        };
        let var: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        !var.is_empty()
            && rego.match_indices("some ").any(|(at, _)| {
                let declared = rego.get(at + 5..).unwrap_or_default();
                let declared = declared.split(['\n', ';', '}']).next().unwrap_or_default();
                !declared.contains(" in ") && declared.split(',').any(|name| name.trim() == var)
            })
    }

    /// A known regorus divergence, not one of the rewrites' (see the engine's divergence
    /// table): regorus' interpreter raises an error for arithmetic on a non-number (`[] + 1`,
    /// `{1} - []`) where OPA and regorus' VM make the expression undefined.
    fn is_interpreter_arithmetic_error(&self) -> bool {
        matches!(self, Self::Error(message)
            if message.contains("expects numeric argument") || message.contains("expects set argument"))
    }
}

/// Evaluation time allowed per evaluator (generated programs are tiny).
const DEADLINE: Duration = Duration::from_secs(2);

/// The engine's template path: `Error` when the template does not load or a violation carries
/// a run-time error.
pub fn via_template(
    rego: &str,
    request: &AdmissionRequest,
    parameters: &Json,
    mode: EvalMode,
) -> Outcome {
    match policy_set(rego, parameters) {
        Ok(policies) => review(&policies, request, mode),
        Err(err) => Outcome::Error(err),
    }
}

/// Reviews `request` with a loaded set on the evaluator `mode`. A loaded template carries both
/// the interpreter's engine and the VM's program, so one load serves both evaluators.
pub fn review(policies: &PolicySet, request: &AdmissionRequest, mode: EvalMode) -> Outcome {
    let policies = policies
        .clone()
        .with_eval_mode(mode)
        .with_decision_cache(false);
    let options = ReviewOptions {
        deadline: DEADLINE,
        ..ReviewOptions::default()
    };
    match policies.review_with(request, &Inventory::new(), &options) {
        Ok(violations) => {
            let mut out = Vec::new();
            for violation in violations {
                if is_error_message(&violation.message) {
                    // A run-time error, turned into a violation as Gatekeeper does.
                    return Outcome::Error(violation.message);
                }
                out.push((violation.message, violation.details.to_string()));
            }
            out.sort();
            Outcome::Violations(out)
        }
        Err(ReviewError::Timeout { .. }) => Outcome::Timeout,
        Err(err) => Outcome::Error(err.to_string()),
    }
}

/// Whether a violation's message is a regorus error (`\n--> rego:L:C ... error: ...`) that the
/// engine turned into a violation, rather than a `msg` the Rego produced.
fn is_error_message(message: &str) -> bool {
    message.contains("\n--> ") || message.contains("\nerror: ")
}

/// regorus' interpreter on the program exactly as written, configured as the engine configures
/// its own (Rego v0, builtin errors undefined).
pub fn raw(rego: &str, request: &AdmissionRequest, parameters: &Json) -> Outcome {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.set_strict_builtin_errors(false);
    let package = match engine.add_policy("rego".to_string(), rego.to_string()) {
        Ok(package) => package,
        Err(err) => return Outcome::Error(err.to_string()),
    };
    let mut input = Value::new_object();
    if let Ok(map) = input.as_object_mut() {
        map.insert(Value::from("review"), request.value().clone());
        map.insert(Value::from("parameters"), Value::from(parameters.clone()));
    }
    engine.set_input(input);
    let results = match engine.eval_rule(format!("{package}.violation")) {
        Ok(results) => results,
        Err(err) => return Outcome::Error(err.to_string()),
    };
    let mut out = Vec::new();
    if let Ok(set) = results.as_set() {
        for result in set.iter() {
            let message = match result["msg"].as_string() {
                Ok(message) => message.to_string(),
                Err(_) => continue,
            };
            let details = match &result["details"] {
                Value::Undefined => "{}".to_string(),
                details => serde_json::to_string(details).unwrap_or_default(),
            };
            out.push((message, details));
        }
    }
    out.sort();
    Outcome::Violations(out)
}

/// Target `rego_differential`: `<mode byte>` then either grammar bytes (even mode) or
/// `<Rego>\n#--input--\n<request JSON>` (odd mode: a repository template with a sample).
pub fn differential(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let program = generate::program(rest);
        let Ok(request) = AdmissionRequest::from_object(&program.object) else {
            return;
        };
        compare(
            &program.rego,
            &request,
            &program.parameters,
            !program.targeted,
        );
    } else {
        let text = String::from_utf8_lossy(rest);
        let (rego, input) = text.split_once(INPUT_MARKER).unwrap_or((&text, ""));
        let Ok(input) = serde_json::from_str::<Json>(input) else {
            return;
        };
        let Ok(request) = AdmissionRequest::from_object(&input["object"]) else {
            return;
        };
        let rewritten = fuzzing::rewrite(rego, RegoVersion::V0, true);
        let untouched = rewritten.is_ok_and(|rewritten| rewritten.notes.is_empty())
            && !rego.contains("any")
            && !rego.contains("all");
        compare(rego, &request, &input["parameters"], untouched);
    }
}

/// Whether the engine refused the module (its load error `err`) for a rule of Gatekeeper's (a
/// `data` reference other than `data.lib` and `data.inventory`, no `violation` rule) or of
/// OPA's compiler (a `some` declaration repeated or unused: divergence 11) that raw regorus
/// does not have. All are template errors, whatever the constraint's parameters.
fn refused_by_gatekeeper(err: &str) -> bool {
    err.contains("disallowed reference")
        || err.contains("missing required rule")
        || err.contains("(a compile error in OPA)")
}

/// Separates a module from its input in `rego_differential`'s odd mode.
pub const INPUT_MARKER: &str = "\n#--input--\n";

/// Evaluates three ways and checks the agreements described in the module docs.
///
/// # Panics
/// When the evaluators disagree where they must not.
pub fn compare(rego: &str, request: &AdmissionRequest, parameters: &Json, untouched: bool) {
    // Loaded once for both evaluators (loading compiles the interpreter's engine and the VM's
    // program alike).
    let loaded = policy_set(rego, parameters);
    let outcome = |mode| match &loaded {
        Ok(policies) => review(policies, request, mode),
        Err(err) => Outcome::Error(err.clone()),
    };
    let interpreter = outcome(EvalMode::Interpreter);
    if interpreter == Outcome::Timeout {
        return;
    }
    let vm = outcome(EvalMode::Vm);
    if interpreter.is_interpreter_some_redeclaration(rego) && !matches!(vm, Outcome::Error(_)) {
        // The interpreter's own bug (raw regorus is the interpreter too): only the VM decides.
        return;
    }
    if vm != Outcome::Timeout && !interpreter.is_interpreter_arithmetic_error() {
        assert_eq!(
            vm, interpreter,
            "the VM and the interpreter disagree on:\n{rego}"
        );
    }
    // The engine refuses a module regorus would parse for seconds or more, before regorus sees
    // it; the raw evaluator has no such bound, and would hold the target as long as regorus
    // takes (the `rego_differential` hang: 70 unclosed `[` in a 4 KB template, refused by the
    // engine in microseconds, ran for minutes in raw regorus). No decision to compare.
    if meshguard_rego_compat::check_parse_cost(rego).is_err() {
        assert!(
            matches!(interpreter, Outcome::Error(_)),
            "the engine loaded a module over the parse-cost bounds:\n{rego}"
        );
        return;
    }
    if untouched {
        let raw = raw(rego, request, parameters);
        if matches!(interpreter, Outcome::Error(_))
            && !matches!(raw, Outcome::Error(_))
            && loaded.as_ref().is_err_and(|err| refused_by_gatekeeper(err))
        {
            return;
        }
        assert_eq!(
            interpreter, raw,
            "the rewrites changed the decision of a program they have nothing to compensate in:\n{rego}"
        );
    }
}
