//! Any Rego rule evaluated with the engine's OPA semantics, outside Gatekeeper's template model.
//!
//! Templates get the regorus divergence compensations and OPA-exact rewrites (see the crate
//! docs) before they are evaluated; [`evaluate_rule`] applies the same to any set of modules
//! and runs one rule on regorus' tree interpreter, which raises OPA's errors (a conflict between
//! complete-rule definitions included). The proxy's authorization filter, which runs the same
//! Rego on regorus' VM inside Envoy, is checked against it (`filters/host/tests/authz.rs`), so
//! the security team's policies decide the same at admission and at the proxy.

use regorus::Value;

use crate::rego_scan;
use crate::rewrite;
use crate::template::RegoVersion;

/// Evaluates `rule` (`data.envoy.authz.allow`) over `modules` (name, source) with `input` and
/// `data`. Builtin errors are undefined, as in OPA. The error is regorus' message (a parse
/// error names the module and line).
pub fn evaluate_rule(
    modules: &[(String, String)],
    version: RegoVersion,
    rule: &str,
    input: Value,
    data: Value,
) -> Result<Value, String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    engine.set_strict_builtin_errors(false);
    for (name, source) in modules {
        let (rewritten, _) = rego_scan::compensate(source);
        let (rewritten, _) = rewrite::opa_semantics(&rewritten);
        let rewritten = rewrite::deprecated_builtins(&rewritten);
        engine
            .add_policy(name.clone(), rewritten)
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
