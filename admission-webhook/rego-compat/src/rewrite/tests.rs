//! Unit tests of the rewrites (their effect on decisions is tested in `tests/divergences.rs`).

use super::*;

#[test]
fn not_call_arguments_are_bound_before_the_negation() {
    let src = "package t\np {\n  not f(1, input.missing, x, \"s\", -1)\n}\n";
    let (out, notes) = opa_semantics(src);
    assert_eq!(
        out,
        "package t\np {\n  __mg_not_1 = input.missing; not f(1, __mg_not_1, x, \"s\", -1)\n}\n"
    );
    assert_eq!(notes.len(), 1);
}

#[test]
fn nested_calls_and_dotted_names_are_bound() {
    let src = "package t\np { not lib.helpers.ok(lower(input.a), [input.b]) }\n";
    let (out, _) = opa_semantics(src);
    assert_eq!(
        out,
        "package t\np { __mg_not_1 = lower(input.a); __mg_not_2 = [input.b]; not lib.helpers.ok(__mg_not_1, __mg_not_2) }\n"
    );
}

#[test]
fn with_modifiers_apply_to_the_bindings_too() {
    // A test mocking input: the bound argument must read the mocked input, as in OPA.
    let src = "package t\ntest_p {\n  not f(input.x) with input as {\"x\": 1}\n}\n";
    let (out, _) = opa_semantics(src);
    assert_eq!(
        out,
        "package t\ntest_p {\n  __mg_not_1 = input.x with input as {\"x\": 1}; not f(__mg_not_1) with input as {\"x\": 1}\n}\n"
    );
}

#[test]
fn a_rego_v1_one_expression_body_gets_braces_for_its_bindings() {
    let src = "package t\nimport rego.v1\np if not startswith(input.a, \"x\")\nq := 1\n";
    let (out, notes) = opa_semantics(src);
    assert_eq!(
        out,
        "package t\nimport rego.v1\np if { __mg_not_1 = input.a; not startswith(__mg_not_1, \"x\") }\nq := 1\n"
    );
    assert_eq!(notes.len(), 1);
    // A `not` that is not a body's start is left alone at the top level.
    let head = "package t\nimport rego.v1\nnot_a_body := not_f(input.a)\n";
    assert_eq!(opa_semantics(head).0, head);
}

#[test]
fn plain_not_and_references_are_left_alone() {
    let src = "package t\np { not f(x, 1); not input.a; not x == 1 }\n";
    assert_eq!(opa_semantics(src).0, src);
}

#[test]
fn missing_sprintf_arguments_are_marked() {
    assert_eq!(
        mark_missing("\"%v and %d, 100%%\"", 1).as_deref(),
        Some("\"%v and %%!d(MISSING), 100%%\"")
    );
    assert_eq!(mark_missing("\"%v %v\"", 2), None);
    let src = "package t\np := msg { msg := sprintf(\"%v and %v\", [1]) }\n";
    let (out, notes) = opa_semantics(src);
    assert!(
        out.contains("sprintf(\"%v and %%!v(MISSING)\", [1])"),
        "{out}"
    );
    assert_eq!(notes.len(), 1);
    // Computed argument lists are not counted.
    let src = "package t\np := msg { msg := sprintf(\"%v %v\", [x | x := 1]) }\n";
    assert_eq!(opa_semantics(src).0, src);
}

#[test]
fn vm_guards_follow_local_assignments_on_the_same_line() {
    let src = "package t\np := 1 {\n  c := input.c\n  v := c[q]; w := {\"a\": 1,\n    \"b\": 2}\n  n := count([x | x := v[_]])\n}\n";
    let out = vm_assignment_guards(src);
    assert_eq!(
        out,
        "package t\np := 1 {\n  c := input.c; c == c\n  v := c[q]; v == v; w := {\"a\": 1,\n    \"b\": 2}; w == w\n  n := count([x | x := v[_]; x == x]); n == n\n}\n"
    );
}
