use serde_json::json;

use super::*;
use crate::config::parse_config;

fn prepare(modules: serde_json::Value, extra: serde_json::Value) -> Result<Policy, ConfigError> {
    let mut config = json!({"modules": modules});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    Policy::prepare(&parse_config(config.to_string().as_bytes())?)
}

fn eval(policy: &Policy, input: serde_json::Value) -> Result<Value, EvalError> {
    policy.evaluate(&mut policy.vm(), Value::from(input))
}

const RBAC: &str = r#"package envoy.authz
import rego.v1

default allow := false

allow if input.attributes.request.http.method == "GET"
"#;

#[test]
fn a_policy_compiles_and_decides() {
    let policy = prepare(json!({"p.rego": RBAC}), json!({})).unwrap();
    let get = json!({"attributes": {"request": {"http": {"method": "GET"}}}});
    assert_eq!(eval(&policy, get).unwrap(), Value::from(true));
    assert_eq!(eval(&policy, json!({})).unwrap(), Value::from(false));
    assert_eq!(policy.rule, "data.envoy.authz.allow");
    assert!(policy.uncacheable.is_none());
    assert!(!policy.reads_body);
}

#[test]
fn syntax_errors_name_the_module_and_line() {
    let err = prepare(
        json!({"a.rego": RBAC, "b.rego": "package envoy.lib\nimport rego.v1\n\nx if {\n  input.a ==\n}\n"}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.field, r#"modules["b.rego"]"#);
    assert!(err.message.contains("b.rego:"), "{err}");
}

#[test]
fn v0_syntax_is_refused_as_opa_1_refuses_it() {
    let err = prepare(
        json!({"p.rego": "package envoy.authz\nallow { true }"}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.field, r#"modules["p.rego"]"#, "{err}");
}

#[test]
fn some_declarations_opa_refuses_are_refused_at_configure_time() {
    // OPA: `declared var k unused`; regorus would run it.
    let err = prepare(
        json!({"p.rego": "package envoy.authz\nimport rego.v1\n\nallow if {\n  some k\n  input.a\n}\n"}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.field, r#"modules["p.rego"]"#, "{err}");
    assert!(
        err.message.contains("p.rego:5: declared var k unused"),
        "{err}"
    );
}

#[test]
fn unknown_functions_are_refused_at_configure_time() {
    // regorus has no io.jwt.* builtins: policies read the verified claims instead.
    let err = prepare(
        json!({"p.rego": "package envoy.authz\nimport rego.v1\n\nallow if {\n  [_, payload, _] := io.jwt.decode(input.token)\n  payload.sub\n}\n"}),
        json!({}),
    )
    .unwrap_err();
    assert!(err.message.contains("p.rego:5"), "{err}");
}

#[test]
fn http_send_is_refused_with_its_line() {
    let err = prepare(
        json!({"p.rego": "package envoy.authz\nimport rego.v1\n\nallow if {\n  http.send({\"method\": \"GET\", \"url\": \"http://opa\"}).body.allow\n}\n"}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.field, r#"modules["p.rego"]"#);
    assert!(
        err.message
            .contains("p.rego:5: `http.send` is not available in the proxy"),
        "{err}"
    );
}

#[test]
fn brackets_nested_too_deep_for_the_parser_are_refused_before_it_runs() {
    // regorus' parse time doubles per bracket level: 24 levels would hold configure for
    // minutes. Refused at once, naming the module and line.
    let deep = format!(
        "package envoy.authz\nimport rego.v1\n\nallow if {}true{}\n",
        "[".repeat(24),
        "]".repeat(24)
    );
    let started = std::time::Instant::now();
    let err = prepare(json!({"p.rego": deep}), json!({})).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(err.field, r#"modules["p.rego"]"#);
    assert!(
        err.message.contains("p.rego:4: brackets nest 21 deep"),
        "{err}"
    );
}

#[test]
fn the_module_as_rewritten_is_bounded_too() {
    // Within the bounds as written (a head costing 2^16 parses), beyond them once the chained
    // bodies each get a copy of the head: 60 copies parse for about 3 s (release build).
    let head = format!("allow = {}1{}", "[".repeat(16), "]".repeat(16));
    let source = format!(
        "package envoy.authz\nimport rego.v0\n\n{head} {}\n",
        "{\n  input.x\n}".repeat(60)
    );
    assert_eq!(meshguard_rego_compat::check_parse_cost(&source), Ok(()));
    let started = std::time::Instant::now();
    let err = prepare(json!({"p.rego": source}), json!({})).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(err.field, r#"modules["p.rego"]"#);
    assert!(
        err.message.contains("brackets nest")
            && err
                .message
                .contains("in the module as rewritten for regorus"),
        "{err}"
    );
}

#[test]
fn a_number_with_a_huge_exponent_is_refused_before_the_parser_expands_it() {
    // Found by the authz_config fuzz target: regorus read this literal for minutes.
    let source = "package envoy.authz\n\nallow if input.n < 0e000000000000000000000000204906761\n";
    let started = std::time::Instant::now();
    let err = prepare(json!({"p.rego": source}), json!({})).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(err.field, r#"modules["p.rego"]"#);
    assert!(
        err.message
            .contains("p.rego:3: the number `0e000000000000000000000000204906761`"),
        "{err}"
    );
    let fine = source.replace("204906761", "30");
    assert!(prepare(json!({"p.rego": fine}), json!({})).is_ok());
}

#[test]
fn a_missing_decision_rule_names_the_decision_path() {
    let err = prepare(
        json!({"p.rego": RBAC}),
        json!({"decisionPath": "envoy/authz/decision"}),
    )
    .unwrap_err();
    assert_eq!(err.field, "decisionPath", "{err}");
}

#[test]
fn data_is_available_and_conflicts_are_refused() {
    let policy = prepare(
        json!({"p.rego": "package envoy.authz\nimport rego.v1\nallow if input.user in data.admins"}),
        json!({"data": {"admins": ["ops"]}}),
    )
    .unwrap();
    assert_eq!(
        eval(&policy, json!({"user": "ops"})).unwrap(),
        Value::from(true)
    );
    let err = prepare(
        json!({"p.rego": RBAC}),
        json!({"data": {"envoy": {"authz": {"allow": 1}}}}),
    )
    .unwrap_err();
    assert_eq!(err.field, "data", "{err}");
}

#[test]
fn the_instruction_budget_bounds_an_evaluation() {
    let spin = "package envoy.authz\nimport rego.v1\nallow if count([x | some x in numbers.range(1, 1000000); x % 7 == 0]) > 0";
    let policy = prepare(json!({"p.rego": spin}), json!({"maxInstructions": 10000})).unwrap();
    assert_eq!(eval(&policy, json!({})), Err(EvalError::Limit(10000)));
    // The same VM decides the next request.
    let mut vm = policy.vm();
    assert!(policy.evaluate(&mut vm, Value::from(json!({}))).is_err());
    let small = prepare(json!({"p.rego": RBAC}), json!({"maxInstructions": 10000})).unwrap();
    let mut vm = small.vm();
    for _ in 0..3 {
        assert_eq!(
            small.evaluate(&mut vm, Value::from(json!({}))).unwrap(),
            Value::from(false)
        );
    }
}

#[test]
fn per_request_reads_turn_the_cache_off() {
    for (src, why) in [
        ("allow if input.attributes.request.time", "request.time"),
        (
            "allow if input.attributes.request.http.id",
            "request.http.id",
        ),
        (
            "allow if count(input.attributes.request.http.headers) > 1",
            "every request header",
        ),
        ("allow if input.attributes", "request.time"),
    ] {
        let policy = prepare(
            json!({"p.rego": format!("package envoy.authz\nimport rego.v1\n{src}")}),
            json!({}),
        )
        .unwrap();
        let reason = policy.uncacheable.unwrap_or_default();
        assert!(reason.contains(why), "{src}: {reason}");
    }
    let by_name = prepare(
        json!({"p.rego": "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.headers[\"x-tenant\"] == \"a\""}),
        json!({}),
    )
    .unwrap();
    assert!(by_name.uncacheable.is_none());
}

#[test]
fn the_clock_is_refused_by_the_module_and_never_cached_natively() {
    // The module is built without regorus' `time` feature (1 MB of time zones), so the proxy
    // refuses the policy at configure time, naming the line. A native build with the feature
    // (the workspace tests, where the admission engine enables every builtin) accepts it and
    // must never cache its decisions.
    let src = "package envoy.authz\nimport rego.v1\n\nallow if time.now_ns() > 0";
    match prepare(json!({"p.rego": src}), json!({})) {
        Err(err) => assert!(
            err.message.contains("p.rego:4") && err.message.contains("time.now_ns"),
            "{err}"
        ),
        Ok(policy) => assert_eq!(
            policy.uncacheable.as_deref(),
            Some("p.rego:4: calls time.now_ns")
        ),
    }
}

#[test]
fn reading_the_body_is_found() {
    for (src, reads) in [
        ("allow if input.parsed_body.amount < 10", true),
        ("allow if input.attributes.request.http.body", true),
        ("allow if input.attributes.request.http", true),
        ("allow if input", true),
        ("allow if input.attributes.request.http.method", false),
    ] {
        let policy = prepare(
            json!({"p.rego": format!("package envoy.authz\nimport rego.v1\n{src}")}),
            json!({}),
        )
        .unwrap();
        assert_eq!(policy.reads_body, reads, "{src}");
    }
}

#[test]
fn conflicting_definitions_of_the_decision_rule_are_an_error() {
    // OPA raises a conflict error (for the decision: `onError`); regorus' VM would make the rule
    // undefined. With the conflict check both are the same error.
    let conflict =
        "package envoy.authz\nimport rego.v1\nallow = true if input.a\nallow = false if input.b";
    let policy = prepare(json!({"p.rego": conflict}), json!({})).unwrap();
    assert_eq!(eval(&policy, json!({"a": 1})).unwrap(), Value::from(true));
    assert_eq!(eval(&policy, json!({"b": 1})).unwrap(), Value::from(false));
    assert_eq!(
        eval(&policy, json!({"a": 1, "b": 1})),
        Err(EvalError::Conflict("allow".into()))
    );
}

#[test]
fn runtime_errors_are_errors_not_decisions() {
    let divide = "package envoy.authz\nimport rego.v1\nallow if 1 / input.zero > 0";
    let policy = prepare(json!({"p.rego": divide}), json!({})).unwrap();
    let result = eval(&policy, json!({"zero": 0}));
    assert!(
        matches!(result, Err(EvalError::Runtime(_)) | Ok(Value::Undefined)),
        "{result:?}"
    );
}

#[test]
fn not_of_an_undefined_argument_is_undefined_as_in_opa() {
    // regorus alone says `not startswith(undefined, "x")` is true, which would allow here.
    let src = "package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if not startswith(input.attributes.request.http.headers[\"x-tier\"], \"free\")";
    let policy = prepare(json!({"p.rego": src}), json!({})).unwrap();
    assert_eq!(eval(&policy, json!({})).unwrap(), Value::from(false));
    let free = json!({"attributes": {"request": {"http": {"headers": {"x-tier": "free"}}}}});
    assert_eq!(eval(&policy, free).unwrap(), Value::from(false));
    let gold = json!({"attributes": {"request": {"http": {"headers": {"x-tier": "gold"}}}}});
    assert_eq!(eval(&policy, gold).unwrap(), Value::from(true));
}

#[test]
fn a_local_assignment_of_undefined_fails_its_body_as_in_opa() {
    let src = "package envoy.authz\nimport rego.v1\ndefault allow := false\nallow if {\n  user := input.user\n  user != \"mallory\"\n}";
    let policy = prepare(json!({"p.rego": src}), json!({})).unwrap();
    assert_eq!(eval(&policy, json!({})).unwrap(), Value::from(false));
    assert_eq!(
        eval(&policy, json!({"user": "alice"})).unwrap(),
        Value::from(true)
    );
    assert_eq!(
        eval(&policy, json!({"user": "mallory"})).unwrap(),
        Value::from(false)
    );
}

/// Complete rules that may produce several values, in the shapes OPA raises
/// `eval_conflict_error` for, and `(input, OPA's decision)`: a value, or `None` for the
/// conflict error (`onError`).
const CONFLICT_CASES: &[ConflictCase] = &[
    (
        "several definitions",
        "role = \"admin\" if input.a\nrole = \"user\" if input.b\nallow if role == \"admin\"",
        &[
            (r#"{"a": 1}"#, Some(true)),
            (r#"{"b": 1}"#, Some(false)),
            (r#"{"a": 1, "b": 1}"#, None),
            (r#"{}"#, Some(false)),
        ],
    ),
    (
        "one definition iterating",
        "role := r if { r := input.roles[_] }\nallow if role == \"admin\"",
        &[
            (r#"{"roles": ["user", "admin"]}"#, None),
            (r#"{"roles": ["admin", "user"]}"#, None),
            (r#"{"roles": ["admin", "admin"]}"#, Some(true)),
            (r#"{"roles": ["user"]}"#, Some(false)),
            (r#"{"roles": []}"#, Some(false)),
        ],
    ),
    (
        "object-valued",
        "grant := {\"role\": r, \"scope\": \"orders\"} if { some r in input.roles }\n\
         allow if grant.role == \"admin\"",
        &[
            (r#"{"roles": ["admin", "user"]}"#, None),
            (r#"{"roles": ["admin", "admin"]}"#, Some(true)),
            (r#"{"roles": ["user"]}"#, Some(false)),
        ],
    ),
    (
        "with default",
        "default role := \"guest\"\nrole := r if { r := input.roles[_] }\nallow if role == \"guest\"",
        &[
            (r#"{"roles": []}"#, Some(true)),
            (r#"{"roles": ["guest", "guest"]}"#, Some(true)),
            (r#"{"roles": ["guest", "admin"]}"#, None),
            (r#"{"roles": ["admin"]}"#, Some(false)),
        ],
    ),
    (
        "decision with else",
        "role := r if { r := input.roles[_] }\nallow if { role == \"admin\" } else := false",
        &[
            (r#"{"roles": ["user", "admin"]}"#, None),
            (r#"{"roles": ["admin"]}"#, Some(true)),
            (r#"{"roles": ["user", "user"]}"#, Some(false)),
        ],
    ),
    (
        // OPA evaluates only what the query needs, so it would allow here; the proxy checks
        // every rule that may conflict after each decision, so it fails closed instead.
        "a conflict the decision does not read (stricter than OPA)",
        "role := r if { r := input.roles[_] }\nallow if input.ok",
        &[
            (r#"{"roles": ["user", "admin"], "ok": true}"#, None),
            (r#"{"roles": ["admin"], "ok": true}"#, Some(true)),
        ],
    ),
];

/// A shape's name, its rules, and its inputs with OPA's decision (`None`: the conflict error).
type ConflictCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, Option<bool>)],
);

/// The Rego module of a [`CONFLICT_CASES`] policy.
fn conflict_module(rules: &str) -> String {
    format!("package envoy.authz\nimport rego.v1\n\ndefault allow := false\n\n{rules}\n")
}

#[test]
fn rules_producing_several_values_decide_as_opa() {
    // OPA raises eval_conflict_error (complete rules must not produce multiple outputs), so the
    // decision is `onError`; regorus' VM alone took one of the values (`allow` held for
    // ["user", "admin"] and not for ["admin", "user"]). The conflict check makes it the error.
    for (shape, rules, cases) in CONFLICT_CASES {
        let policy = prepare(json!({"p.rego": conflict_module(rules)}), json!({})).unwrap();
        for (input, expected) in *cases {
            let input: serde_json::Value = serde_json::from_str(input).unwrap();
            let got = eval(&policy, input.clone());
            match expected {
                Some(allow) => assert_eq!(got, Ok(Value::from(*allow)), "{shape}: {input}"),
                None => assert!(
                    matches!(&got, Err(EvalError::Conflict(_))),
                    "{shape}: {input}: {got:?}"
                ),
            }
        }
    }
}

#[test]
fn a_rule_whose_conflict_cannot_be_checked_is_refused_with_its_line() {
    // An `else` chain on a rule that iterates: the proxy has no interpreter to fall back on.
    let src = "package envoy.authz\nimport rego.v1\n\nrole := r if { r := input.roles[_] } else := \"none\"\nallow if role == \"admin\"\n";
    let err = prepare(json!({"p.rego": src}), json!({})).unwrap_err();
    assert!(err.to_string().contains("p.rego"), "{err}");
    assert!(err.to_string().contains("line 4"), "{err}");
    assert!(err.to_string().contains("conflict"), "{err}");
}

#[test]
fn a_function_that_may_give_one_call_several_values_is_refused_with_its_line() {
    // Issue 20's find 15 in the proxy: OPA raises an error for the call with two roles, which
    // regorus' VM would not (it takes one of them), and the proxy has no interpreter.
    let src = "package envoy.authz\nimport rego.v1\n\nfirst_role(x) := r if { r := x.roles[_] }\nallow if first_role(input) == \"admin\"\n";
    let err = prepare(json!({"p.rego": src}), json!({})).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("p.rego"), "{message}");
    assert!(message.contains("`first_role` on line 4"), "{message}");
    assert!(message.contains("several values for one call"), "{message}");
    // With the values collected, it is taken.
    let collected = "package envoy.authz\nimport rego.v1\n\nroles(x) := {r | r := x.roles[_]}\nallow if \"admin\" in roles(input)\n";
    assert!(prepare(json!({"p.rego": collected}), json!({})).is_ok());
}

#[test]
fn policies_without_such_rules_are_compiled_as_written() {
    // No rewrite, so no extra rule per request: several `allow if` definitions give one value.
    let edge = include_str!("../../../../policies/envoy-authz/edge.rego");
    let rbac = include_str!("../../../../policies/envoy-authz/rbac.rego");
    for src in [RBAC, edge, rbac] {
        let (out, changed) = meshguard_rego_compat::vm_rules::single_value_rules_with(
            src,
            RegoVersion::V1,
            Some(OnConflict::Report),
        )
        .unwrap()
        .unwrap();
        assert!(!changed, "{src}");
        assert_eq!(out, src);
    }
    for (name, src) in [("p.rego", RBAC), ("rbac.rego", rbac)] {
        let policy = prepare(json!({ name: src }), json!({})).unwrap();
        assert!(policy.conflict_checks.is_empty(), "{name}");
    }
    // A second definition of `order_owner` (the path with an order id) would be one: OPA
    // raises the conflict error only if both held, which the text does not show.
    let two = rbac.replace(
        "order_owner := user if {",
        "order_owner := user if [\"api\", \"users\", user, \"orders\", _] = input.parsed_path\norder_owner := user if {",
    );
    let policy = prepare(json!({"rbac.rego": two}), json!({})).unwrap();
    assert_eq!(policy.conflict_checks, ["data.envoy.authz.__mg_conflicts"]);
}
