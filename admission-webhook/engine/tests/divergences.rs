//! regorus' divergences from OPA (`meshguard_policy_engine::divergences`): each stated as OPA's
//! result and checked through the engine (templates are rewritten before compiling) on both
//! evaluators, and each minimal reproducer checked against plain regorus, which must still
//! diverge (when an upgrade fixes one, its `plain_regorus_N` test fails and names the rewrite to
//! drop).

use meshguard_policy_engine::{AdmissionRequest, EvalMode, Inventory, PolicySet, document};
use serde_json::{Value as Json, json};

/// A template around `rego` (package `t`, Rego v0), one constraint with `parameters`, and the
/// messages for `object` on the given evaluator.
fn messages(rego: &str, parameters: Json, object: Json, mode: EvalMode) -> Vec<String> {
    let indented: String = rego.lines().map(|l| format!("        {l}\n")).collect();
    let yaml = format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: t}}\nspec:\n  crd: {{spec: {{names: {{kind: T}}}}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n        package t\n{indented}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: T\nmetadata: {{name: c}}\nspec:\n  parameters: {parameters}\n"
    );
    let docs = document::parse_documents("t.yaml", &yaml).unwrap();
    let set = PolicySet::from_documents(&docs)
        .unwrap_or_else(|err| panic!("{err}"))
        .with_eval_mode(mode);
    let request = AdmissionRequest::from_object(&object).unwrap();
    set.review(&request, &Inventory::new())
        .unwrap()
        .into_iter()
        .map(|v| v.message)
        .collect()
}

fn pod(image: &str) -> Json {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "app", "image": image}]}})
}

const MODES: [EvalMode; 2] = [EvalMode::Interpreter, EvalMode::Vm];

/// Divergence 3, the minimal reproducer: OPA leaves `p` and `q` undefined (an undefined
/// argument makes `not f(..)` undefined), so no violation.
#[test]
fn divergence_3_not_with_an_undefined_argument_is_undefined() {
    let rego = "f(_, _)\np { not f(1, input.missing) }\nq { not startswith(input.missing, \"x\") }\nviolation[{\"msg\": \"p\"}] { p }\nviolation[{\"msg\": \"q\"}] { q }";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("a"), mode),
            Vec::<String>::new(),
            "{mode:?}"
        );
    }
}

/// Divergence 3 nested: a `not` call inside a comprehension that is itself the argument of a
/// `not` call (the outer argument is bound first, then the inner one inside that binding; the
/// fuzzer found the two rewrites' edits overlapping). OPA: the inner `not` is undefined (its
/// argument is), so the comprehension is empty, `nonempty` is undefined and the outer `not`
/// holds: one violation.
#[test]
fn divergence_3_nested_in_the_argument_of_a_not() {
    let rego = "nonempty(xs) { count(xs) > 0 }
banned(_) = true
violation[{\"msg\": \"é: none kept\"}] {\n  not nonempty([c | c := input.review.object.spec.containers[_]; not banned(input.missing)])\n}";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("a"), mode),
            vec!["é: none kept".to_string()],
            "{mode:?}"
        );
    }
}

/// Divergence 3 under a `with` modifier that spans lines (the fuzzer found its copy into each
/// binding moving every later line): the binding reads the mocked input, as the `not` does in
/// OPA, so the image is `ok`, `allowed` holds and there is no violation; a raw string and a
/// comment in the modifier survive the copy onto one line. A line after it that does not
/// parse is named by its own number.
#[test]
fn divergence_3_under_a_with_modifier_spanning_lines() {
    let rego = "allowed(x) { x == \"ok\" }
violation[{\"msg\": \"mocked\"}] {
  not allowed(input.review.object.spec.containers[0].image) with input as {
    \"review\": {\"object\": {\"spec\": {\"containers\": [{\"image\": \"ok\"}]}}}, # a mock
    \"parameters\": `two
lines`
  }
}
violation[{\"msg\": msg}] {
  msg := sprintf(\"%v\", [input.review.object.spec.containers[0].image])
  msg == \"nginx\"
}";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("nginx"), mode),
            vec!["nginx".to_string()],
            "{mode:?}"
        );
    }
    let broken = format!("{rego}\nbroken {{ x := }}");
    let indented: String = broken.lines().map(|l| format!("        {l}\n")).collect();
    let yaml = format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: t}}\nspec:\n  crd: {{spec: {{names: {{kind: T}}}}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n        package t\n{indented}"
    );
    let docs = document::parse_documents("t.yaml", &yaml).unwrap();
    let err = PolicySet::from_documents(&docs).unwrap_err().to_string();
    // `package t` is line 1; the broken rule follows the 12 lines of `rego`.
    assert!(
        err.contains("rego line 14:") && err.contains("14 | broken { x := }"),
        "{err}"
    );
}

/// Divergence 3 in a template: an optional `exemptPrefix` parameter left out. OPA: the `not`
/// expression is undefined, so an image without the prefix is not reported by that rule; the
/// parameter given, the rule works as written.
#[test]
fn divergence_3_optional_parameter_in_a_template() {
    let rego = "violation[{\"msg\": msg}] {\n  c := input.review.object.spec.containers[_]\n  not startswith(c.image, input.parameters.exemptPrefix)\n  msg := sprintf(\"image <%v> is not exempt\", [c.image])\n}";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("nginx"), mode),
            Vec::<String>::new()
        );
        assert_eq!(
            messages(rego, json!({"exemptPrefix": "corp/"}), pod("nginx"), mode),
            vec!["image <nginx> is not exempt".to_string()]
        );
        assert!(messages(rego, json!({"exemptPrefix": "corp/"}), pod("corp/x"), mode).is_empty());
    }
}

/// Divergence 4, the minimal reproducer: OPA formats a missing argument as `%!v(MISSING)`.
#[test]
fn divergence_4_sprintf_with_missing_arguments() {
    let rego = "violation[{\"msg\": msg}] { msg := sprintf(\"%v and %v\", [1]) }";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("a"), mode),
            vec!["1 and %!v(MISSING)".to_string()]
        );
    }
}

/// Divergence 4 in a template: a message that forgot an argument still denies, with OPA's text.
#[test]
fn divergence_4_in_a_template_message() {
    let rego = "violation[{\"msg\": msg}] {\n  c := input.review.object.spec.containers[_]\n  endswith(c.image, \":latest\")\n  msg := sprintf(\"container <%v> uses image <%v> with tag %s\", [c.name, c.image])\n}";
    for mode in MODES {
        assert_eq!(
            messages(rego, json!({}), pod("nginx:latest"), mode),
            vec!["container <app> uses image <nginx:latest> with tag %!s(MISSING)".to_string()]
        );
    }
}

/// Divergence 7 with one definition (found by `rego_differential`): a complete rule whose value
/// iterates (`r = count(...containers[_].image)`) produces one value per container. OPA raises
/// `eval_conflict_error: complete rules must not produce multiple outputs` when two differ (see
/// OPA's error docs, and Regal's `top-level-iteration`), so Gatekeeper reports the error; with
/// one container, or equal values, the rule has its one value. regorus' interpreter decides as
/// OPA; its VM took one of the values. The engine checks such a rule on the VM as it checks
/// several definitions, so both evaluators decide as OPA.
#[test]
fn divergence_7_one_definition_with_several_values_is_a_conflict() {
    let rego = "r = count(input.review.object.spec.containers[_].image)\nviolation[{\"msg\": sprintf(\"%v\", [r])}] { r > 0 }";
    let two = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "a", "image": "nginx"},
                                             {"name": "b", "image": "registry.example.com/b"}]}});
    let same = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                      "spec": {"containers": [{"name": "a", "image": "nginx"},
                                              {"name": "b", "image": "nginx"}]}});
    for mode in MODES {
        let conflict = messages(rego, json!({}), two.clone(), mode);
        assert_eq!(conflict.len(), 1, "{mode:?}: {conflict:?}");
        assert!(
            conflict[0].contains("rules must not produce multiple outputs"),
            "{mode:?}: {conflict:?}"
        );
        assert_eq!(
            messages(rego, json!({}), pod("nginx"), mode),
            ["5"],
            "{mode:?}"
        );
        assert_eq!(
            messages(rego, json!({}), same.clone(), mode),
            ["5"],
            "{mode:?}"
        );
    }
}

/// Divergence 7 for a function (found by `rego_differential`, find 15): a function whose value
/// iterates gives one call one value per container. OPA raises `functions must not produce
/// multiple outputs for same inputs` when two differ; regorus' interpreter does too, and its VM
/// took one of the values. A function cannot be rewritten as a complete rule is, so the engine
/// decides such a template on the interpreter, in both modes.
#[test]
fn divergence_7_a_function_with_several_outputs_is_an_error() {
    let rego = "f(x) = count(input.review.object.spec.containers[_].image) { x > 0 }\nviolation[{\"msg\": sprintf(\"%v\", [n])}] { n := f(1) }";
    let two = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "a", "image": "nginx"},
                                             {"name": "b", "image": "registry.example.com/b"}]}});
    for mode in MODES {
        let error = messages(rego, json!({}), two.clone(), mode);
        assert_eq!(error.len(), 1, "{mode:?}: {error:?}");
        assert!(error[0].contains("multiple outputs"), "{mode:?}: {error:?}");
        assert_eq!(
            messages(rego, json!({}), pod("nginx"), mode),
            ["5"],
            "{mode:?}"
        );
    }
}

/// The VM's own divergence (found by the equivalence tests): `x := <undefined>` must fail.
#[test]
fn an_undefined_assignment_fails_the_body_on_the_vm() {
    let rego = "violation[{\"msg\": \"reached\"}] {\n  c := input.review.object.spec.containers[_]\n  p := c.readinessProbe\n  handlers := {t | p[t]}\n  count(handlers) == 0\n}";
    for mode in MODES {
        assert!(
            messages(rego, json!({}), pod("a"), mode).is_empty(),
            "{mode:?}"
        );
    }
}

/// OPA's deprecated `any` (gatekeeper-library's allowed-repos uses it) works on both evaluators.
#[test]
fn deprecated_any_is_available() {
    let rego = "violation[{\"msg\": \"bad repo\"}] {\n  c := input.review.object.spec.containers[_]\n  ok := [g | r := input.parameters.repos[_]; g := startswith(c.image, r)]\n  not any(ok)\n}";
    for mode in MODES {
        let params = json!({"repos": ["corp/"]});
        assert_eq!(
            messages(rego, params.clone(), pod("nginx"), mode),
            vec!["bad repo".to_string()]
        );
        assert!(messages(rego, params, pod("corp/x"), mode).is_empty());
    }
}

// === plain regorus still diverges ===
//
// The minimal reproducers of `meshguard_policy_engine::divergences`, run on regorus itself with
// no rewrite. Each asserts regorus' current (wrong) answer: when an upgrade fixes one, its test
// fails here, and the rewrite it names can be dropped.

use meshguard_policy_engine::regorus;

fn plain(module: &str, input: Json) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.set_strict_builtin_errors(false);
    engine.set_input(regorus::Value::from(input));
    engine
        .add_policy("t.rego".into(), module.into())
        .unwrap_or_else(|err| panic!("{err}"));
    engine
}

fn plain_rule(module: &str, input: Json, rule: &str) -> Result<regorus::Value, String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine.set_strict_builtin_errors(false);
    engine.set_input(regorus::Value::from(input));
    engine
        .add_policy("t.rego".into(), module.into())
        .map_err(|err| format!("{err:#}"))?;
    engine
        .eval_rule(format!("data.t.{rule}"))
        .map_err(|err| format!("{err:#}"))
}

/// The VM's answer for `data.t.p`, compiled as the engine compiles templates.
fn plain_vm(module: &str, input: Json) -> Result<regorus::Value, String> {
    use regorus::languages::rego::compiler::Compiler;
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    engine
        .add_policy("t.rego".into(), module.into())
        .map_err(|err| format!("{err:#}"))?;
    let compiled = engine
        .compile_with_entrypoint(&"data.t.p".into())
        .map_err(|err| format!("{err:#}"))?;
    let program = Compiler::compile_from_policy(&compiled, &["data.t.p"])
        .map_err(|err| format!("{err:#}"))?;
    let mut vm = regorus::rvm::RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(usize::MAX);
    vm.set_input(regorus::Value::from(input));
    vm.execute().map_err(|err| err.to_string())
}

const FIXED: &str =
    "regorus now decides as OPA does: drop the engine's rewrite for this divergence";

#[test]
fn plain_regorus_1_reads_a_paren_line_as_a_call() {
    let module = "package t\np {\n  input.x\n  (input.a - input.b) >= input.x\n}\n";
    let outcome = plain_rule(module, json!({"x": 1, "a": 3, "b": 1}), "p");
    let err = outcome.expect_err(FIXED);
    assert!(err.contains("could not find function"), "{err}");
}

#[test]
fn plain_regorus_2_reads_chained_bodies_as_else() {
    let module = "package t\nv[m] { input.a == 1; m := \"one\" } { input.b == 2; m := \"two\" }\n";
    let err = plain_rule(module, json!({"a": 1, "b": 2}), "v").expect_err(FIXED);
    assert!(err.contains("else"), "{err}");
}

#[test]
fn plain_regorus_3_negates_an_undefined_call() {
    let module = "package t\nf(_, _)\np { not f(1, input.missing) }\n";
    let mut engine = plain(module, json!({}));
    let p = engine.eval_rule("data.t.p".into()).unwrap();
    assert_eq!(p, regorus::Value::Bool(true), "{FIXED}");
}

#[test]
fn plain_regorus_4_sprintf_with_missing_arguments_is_undefined() {
    let module = "package t\np := sprintf(\"%v and %v\", [1])\n";
    let p = plain_rule(module, json!({}), "p").unwrap();
    assert_eq!(p, regorus::Value::Undefined, "{FIXED}");
}

#[test]
fn plain_regorus_6_vm_binds_an_undefined_value() {
    let module = "package t\np { x := input.missing; true }\n";
    let p = plain_vm(module, json!({})).unwrap();
    assert_eq!(p, regorus::Value::Bool(true), "{FIXED}");
}

#[test]
fn plain_regorus_7_vm_raises_no_conflict() {
    let module = "package t\np = x { x := input.a }\np = x { x := input.b }\n";
    let vm = plain_vm(module, json!({"a": 1, "b": 2}));
    assert!(vm.is_ok(), "{FIXED}: {vm:?}");
    let interpreter = plain_rule(module, json!({"a": 1, "b": 2}), "p");
    assert!(
        interpreter.is_err(),
        "the interpreter raises OPA's conflict error"
    );
}

#[test]
fn plain_regorus_7_vm_raises_no_conflict_for_one_iterating_definition() {
    let module = "package t\np = x { x := input.list[_] }\n";
    let vm = plain_vm(module, json!({"list": [1, 2]}));
    assert!(vm.is_ok(), "{FIXED}: {vm:?}");
    let interpreter = plain_rule(module, json!({"list": [1, 2]}), "p");
    assert!(
        interpreter.is_err(),
        "the interpreter raises OPA's conflict error"
    );
}

#[test]
fn plain_regorus_8_negates_an_undefined_key() {
    let module = "package t\nobj := {\"a\": 1}\np { not obj[input.key] }\n";
    let p = plain_rule(module, json!({}), "p").unwrap();
    assert_eq!(p, regorus::Value::Bool(true), "{FIXED}");
}

/// Found by the differential fuzz target (`rego_differential`): arithmetic on a non-number.
/// OPA evaluates `+` and `-` as builtins, so with builtin errors off (Gatekeeper's setting) the
/// expression is undefined and the rule does not hold. regorus' VM agrees; its interpreter
/// raises an error, which the engine reports as a violation carrying it (as Gatekeeper reports
/// a template's run-time error). Not compensated: the VM is the default evaluator, and a
/// rewrite would need an expression parser. This test pins both behaviours, so a regorus
/// upgrade that fixes the interpreter shows here.
#[test]
fn arithmetic_on_a_non_number_is_undefined_in_opa_and_the_vm_only() {
    let rego = "violation[{\"msg\": \"sum\"}] {\n  x := input.review.object.spec.containers + 1\n  x > 0\n}";
    assert_eq!(
        messages(rego, json!({}), pod("a"), EvalMode::Vm),
        Vec::<String>::new()
    );
    let interpreter = messages(rego, json!({}), pod("a"), EvalMode::Interpreter);
    assert_eq!(interpreter.len(), 1, "{interpreter:?}");
    assert!(
        interpreter[0].contains("expects numeric argument"),
        "{interpreter:?}"
    );
}

/// Found by the differential fuzz target (`rego_differential`), divergence 10: a `some k`
/// declaration after an iteration in the same body. OPA (and regorus' VM) report the
/// violation; regorus' interpreter declares `k` again for the iteration's second element and
/// raises `duplicated definition of local variable k`, which the engine reports as a violation
/// carrying it. Not compensated: the VM is the default evaluator. This test pins both
/// behaviours, so a regorus upgrade that fixes the interpreter shows here.
#[test]
fn a_some_declaration_after_an_iteration_decides_on_the_vm_only() {
    let rego = "violation[{\"msg\": \"m\"}] {\n  x := input.parameters.list[_]\n  some k\n  input.review.object.spec.y[k] == x\n}";
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"y": [1, 2]}});
    let params = json!({"list": [1, 2]});
    assert_eq!(
        messages(rego, params.clone(), object.clone(), EvalMode::Vm),
        vec!["m".to_string()]
    );
    let interpreter = messages(rego, params, object, EvalMode::Interpreter);
    assert_eq!(interpreter.len(), 1, "{interpreter:?}");
    assert!(
        interpreter[0].contains("duplicated definition of local variable k"),
        "{interpreter:?}"
    );
}

#[test]
fn plain_regorus_10_interpreter_declares_some_again_after_an_iteration() {
    let module = "package t\np[x] { x := input.list[_]; some k; input.y[k] == x }\n";
    let err = plain_rule(module, json!({"list": [1, 2], "y": [1, 2]}), "p").unwrap_err();
    assert!(
        err.contains("duplicated definition of local variable k"),
        "{FIXED}: {err}"
    );
}

/// Divergence 11: OPA's compiler refuses a `some` declaration repeated in one body (`var k
/// declared above`) or never used (`declared var k unused`); regorus runs both. The engine
/// refuses them when the template loads, naming the line.
#[test]
fn some_declarations_opa_refuses_do_not_load() {
    let cases = [
        (
            "violation[{\"msg\": \"m\"}] {\n  some k\n  some k\n  input.review.object.spec.y[k] == 1\n}",
            "rego line 4",
            "var k declared above",
        ),
        (
            "violation[{\"msg\": \"m\"}] {\n  some k\n  input.review.object.spec.y[_] == 1\n}",
            "rego line 3",
            "declared var k unused",
        ),
    ];
    for (rego, line, message) in cases {
        let indented: String = rego.lines().map(|l| format!("        {l}\n")).collect();
        let yaml = format!(
            "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: t}}\nspec:\n  crd: {{spec: {{names: {{kind: T}}}}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n        package t\n{indented}"
        );
        let docs = document::parse_documents("t.yaml", &yaml).unwrap();
        let err = PolicySet::from_documents(&docs).unwrap_err().to_string();
        assert!(err.contains(line) && err.contains(message), "{err}");
    }
    // regorus: the VM runs both (its interpreter raises at run time for the first).
    let twice = "package t\np { some k; some k; input.y[k] == 1 }\n";
    let unused = "package t\np { some j; true }\n";
    let input = json!({"y": [1]});
    for module in [twice, unused] {
        assert_eq!(
            plain_vm(module, input.clone()),
            Ok(regorus::Value::Bool(true)),
            "{FIXED}: {module}"
        );
    }
}
