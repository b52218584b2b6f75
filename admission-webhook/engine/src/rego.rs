//! Plain Rego modules (`meshguard policy test`, `policy eval`) read the way template Rego is
//! read: with the same rewrites for regorus' divergences from OPA (see [`crate::divergences`]),
//! in the same syntax version and with OPA's treatment of builtin errors, so a Rego unit test
//! that passes under `opa test` passes here, and a policy decides in its tests as it decides
//! inside its template.

//!
//! [`evaluate_rule`] runs one rule over any set of modules on regorus' tree interpreter, which
//! raises OPA's errors (a conflict between complete-rule definitions included). The proxy's
//! authorization filter, which runs the same Rego on regorus' VM inside Envoy, is checked against
//! it (`filters/host/tests/authz.rs`), so the security team's policies decide the same at
//! admission and at the proxy.

use regorus::{Engine, Value};

use crate::error::LoadError;
use crate::template::RegoVersion;
use crate::{rego_scan, rewrite};

/// An engine configured as template engines are: the syntax `version`, and builtin errors
/// evaluating to undefined (OPA's default, and so Gatekeeper's).
pub fn engine(version: RegoVersion) -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    engine.set_strict_builtin_errors(false);
    engine
}

/// A module's text as the engine compiles it, and a note per rewrite applied (`line N: ...`).
/// Every rewrite keeps each line where it was, so errors, coverage and test positions still
/// point at the file's lines.
///
/// # Errors
/// When the rewrites cannot apply their edits to the module (see [`rewrite::RewriteError`]).
pub fn prepare(text: &str) -> Result<(String, Vec<String>), rewrite::RewriteError> {
    rewrite::opa_compatible(text)
}

/// Said of a parse-cost refusal ([`meshguard_rego_compat::check_parse_cost`]) found only in the
/// module as the rewrites left it: they copy text, so a module within the bounds can leave them
/// with more than the bounds allow.
pub(crate) const REWRITTEN: &str = "(in the module as rewritten for regorus, which copies a \
     rule's head onto each chained body and a `with` onto each binding)";

/// Adds a module to an engine after [`prepare`]; returns the package (`data.x`) and the notes.
/// The error names the file and the line (regorus' message carries `file:line:col`).
pub fn add_module(
    engine: &mut Engine,
    source_name: &str,
    text: &str,
) -> Result<(String, Vec<String>), LoadError> {
    // Before regorus parses it: its parse time doubles per bracket level and grows with a
    // number's exponent.
    meshguard_rego_compat::check_parse_cost(text).map_err(|err| LoadError::Module {
        source_name: source_name.to_string(),
        message: format!("{source_name}:{}: {err}", err.line()),
    })?;
    // `some` declarations OPA refuses and regorus would run (divergence 11).
    if let Some(refused) = rego_scan::refused_declarations(text).into_iter().next() {
        return Err(LoadError::Module {
            source_name: source_name.to_string(),
            message: format!(
                "{source_name}:{}: {} (a compile error in OPA)",
                refused.line, refused.message
            ),
        });
    }
    let (prepared, notes) = prepare(text).map_err(|err| LoadError::Module {
        source_name: source_name.to_string(),
        message: format!("{source_name}:{}: {err}", err.line()),
    })?;
    // The rewrites copy text; what regorus parses is bounded too.
    meshguard_rego_compat::check_parse_cost(&prepared).map_err(|err| LoadError::Module {
        source_name: source_name.to_string(),
        message: format!("{source_name}:{}: {err} {REWRITTEN}", err.line()),
    })?;
    engine
        .add_policy(source_name.to_string(), prepared)
        .map(|package| (package, notes))
        .map_err(|err| LoadError::Module {
            source_name: source_name.to_string(),
            message: format!("{err:#}").trim().to_string(),
        })
}

/// Evaluates `rule` (`data.envoy.authz.allow`) over `modules` (name, source) with `input` and
/// `data`, each module [`prepare`]d. Builtin errors are undefined, as in OPA. The error is
/// regorus' message (a parse error names the module and line).
pub fn evaluate_rule(
    modules: &[(String, String)],
    version: RegoVersion,
    rule: &str,
    input: Value,
    data: Value,
) -> Result<Value, String> {
    let mut engine = engine(version);
    for (name, source) in modules {
        meshguard_rego_compat::check_parse_cost(source)
            .map_err(|err| format!("{name}:{}: {err}", err.line()))?;
        let (prepared, _) =
            prepare(source).map_err(|err| format!("{name}:{}: {err}", err.line()))?;
        meshguard_rego_compat::check_parse_cost(&prepared)
            .map_err(|err| format!("{name}:{}: {err} {REWRITTEN}", err.line()))?;
        engine
            .add_policy(name.clone(), prepared)
            .map_err(|err| format!("{err:#}"))?;
    }
    engine.add_data(data).map_err(|err| format!("{err:#}"))?;
    engine.set_input(input);
    engine
        .eval_rule(rule.to_string())
        .map_err(|err| format!("{err:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, input: &str) -> Result<Value, String> {
        evaluate_rule(
            &[("p.rego".into(), src.into())],
            RegoVersion::V1,
            "data.p.allow",
            Value::from_json_str(input).unwrap(),
            Value::new_object(),
        )
    }

    #[test]
    fn the_module_as_rewritten_is_bounded_too() {
        // Within the bounds as written; beyond them once each chained body gets a copy of the
        // head (60 copies parse for about 3 s, release build).
        let head = format!("allow = {}1{}", "[".repeat(16), "]".repeat(16));
        let src = format!(
            "package p\nimport rego.v0\n\n{head} {}\n",
            "{\n  input.x\n}".repeat(60)
        );
        assert_eq!(meshguard_rego_compat::check_parse_cost(&src), Ok(()));
        let err = eval(&src, "{}").unwrap_err();
        assert!(
            err.starts_with("p.rego:") && err.ends_with(REWRITTEN),
            "{err}"
        );
        let mut engine = crate::rego::engine(RegoVersion::V0);
        let Err(LoadError::Module { message, .. }) = add_module(&mut engine, "p.rego", &src) else {
            panic!("loaded");
        };
        assert!(message.ends_with(REWRITTEN), "{message}");
    }

    #[test]
    fn rules_are_evaluated_with_opas_semantics() {
        let src =
            "package p\nimport rego.v1\ndefault allow := false\nallow if input.role == \"admin\"";
        assert_eq!(eval(src, r#"{"role": "admin"}"#), Ok(Value::from(true)));
        assert_eq!(eval(src, "{}"), Ok(Value::from(false)));
        // Divergence 3: `not f(x)` with `x` undefined is undefined, as in OPA.
        let negated = "package p\nimport rego.v1\nallow if not startswith(input.missing, \"x\")";
        assert_eq!(eval(negated, "{}"), Ok(Value::Undefined));
    }

    #[test]
    fn conflicting_definitions_are_opas_error() {
        let src = "package p\nimport rego.v1\nallow := true if input.a\nallow := false if input.b";
        assert!(eval(src, r#"{"a": 1, "b": 1}"#).is_err());
    }
}
