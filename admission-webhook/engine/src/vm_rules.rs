//! The VM-only rewrites of complete rules and lookup-table functions live in
//! `meshguard-rego-compat` ([`meshguard_rego_compat::vm_rules`], shared with the proxy's
//! authorization filter); this module reads their conflict marker from the VM's results and
//! checks, on regorus' interpreter, that the rewritten modules decide as the originals.

pub(crate) use meshguard_rego_compat::vm_rules::{
    CONFLICT_MARKER, single_value_rules, table_functions,
};

/// Whether a `violation` result from the VM holds the conflict marker.
pub(crate) fn reports_conflict(results: &regorus::Value) -> bool {
    let marker = regorus::Value::from(CONFLICT_MARKER);
    match results {
        regorus::Value::Set(set) => set.iter().any(|entry| entry["msg"] == marker),
        regorus::Value::Array(array) => array.iter().any(|entry| entry["msg"] == marker),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::RegoVersion;

    /// Both rewrites decide as the original module on the interpreter.
    #[test]
    fn rewritten_modules_decide_as_the_originals() {
        let src = "package x\nns = n { n := input.a }\nns = n { not input.a; n := input.b }\nm(\"k\") = 1000\nm(\"M\") = 1000000\nm(\"\") = 1\nviolation[{\"msg\": sprintf(\"%v %v\", [ns, m(input.s)])}] { ns }\n";
        let (single, _) = single_value_rules(src, RegoVersion::V0, true)
            .unwrap()
            .unwrap();
        let (both, _) = table_functions(&single, RegoVersion::V0).unwrap();
        let eval = |module: &str, input: &str| {
            let mut engine = regorus::Engine::new();
            engine.set_rego_v0(true);
            engine.add_policy("t.rego".into(), module.into()).unwrap();
            engine.set_input(regorus::Value::from_json_str(input).unwrap());
            engine
                .eval_rule("data.x.violation".into())
                .map(|v| v.to_string())
        };
        for input in [
            r#"{"a": "one", "s": "k"}"#,
            r#"{"b": "two", "s": "M"}"#,
            r#"{"a": "one", "s": "Q"}"#,
            r#"{"s": ""}"#,
            r#"{"a": "one", "s": 5}"#,
        ] {
            assert_eq!(
                eval(src, input).unwrap(),
                eval(&both, input).unwrap(),
                "{input}"
            );
        }
        // Found by `rego_differential`: definitions whose value is `false`. Looking the value up
        // as `__mg_defs_ns[__mg_value]` made the body's expression false (the element's value),
        // so `ns` was undefined; it is now bound by iterating the set.
        let falsy = "package x\nc = false { input.a }\nc = false { input.a }\nviolation[{\"msg\": \"v\"}] { x := c; x == false }\n";
        let (rewritten, _) = single_value_rules(falsy, RegoVersion::V0, true)
            .unwrap()
            .unwrap();
        let input = r#"{"a": true}"#;
        assert_eq!(
            eval(falsy, input).unwrap(),
            eval(&rewritten, input).unwrap()
        );
        assert!(eval(&rewritten, input).unwrap().contains("\"v\""));
        // Conflicting definitions: the original is an error; the rewrite reports the marker.
        let conflict = "package x\nns = 1 { input.a }\nns = 2 { input.b }\nviolation[{\"msg\": \"v\"}] { ns }\n";
        let (rewritten, _) = single_value_rules(conflict, RegoVersion::V0, true)
            .unwrap()
            .unwrap();
        let input = r#"{"a": true, "b": true}"#;
        assert!(eval(conflict, input).is_err());
        assert!(eval(&rewritten, input).unwrap().contains(CONFLICT_MARKER));
    }
}
