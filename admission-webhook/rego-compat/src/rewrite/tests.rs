//! Unit tests of the rewrites (their effect on decisions is tested in `tests/divergences.rs`).

use super::*;

#[test]
fn not_call_arguments_are_bound_before_the_negation() {
    let src = "package t\np {\n  not f(1, input.missing, x, \"s\", -1)\n}\n";
    let (out, notes) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\np {\n  __mg_not_1 = input.missing; not f(1, __mg_not_1, x, \"s\", -1)\n}\n"
    );
    assert_eq!(notes.len(), 1);
}

#[test]
fn nested_calls_and_dotted_names_are_bound() {
    let src = "package t\np { not lib.helpers.ok(lower(input.a), [input.b]) }\n";
    let (out, _) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\np { __mg_not_1 = lower(input.a); __mg_not_2 = [input.b]; not lib.helpers.ok(__mg_not_1, __mg_not_2) }\n"
    );
}

#[test]
fn with_modifiers_apply_to_the_bindings_too() {
    // A test mocking input: the bound argument must read the mocked input, as in OPA.
    let src = "package t\ntest_p {\n  not f(input.x) with input as {\"x\": 1}\n}\n";
    let (out, _) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\ntest_p {\n  __mg_not_1 = input.x with input as {\"x\": 1}; not f(__mg_not_1) with input as {\"x\": 1}\n}\n"
    );
}

#[test]
fn a_rego_v1_one_expression_body_gets_braces_for_its_bindings() {
    let src = "package t\nimport rego.v1\np if not startswith(input.a, \"x\")\nq := 1\n";
    let (out, notes) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\nimport rego.v1\np if { __mg_not_1 = input.a; not startswith(__mg_not_1, \"x\") }\nq := 1\n"
    );
    assert_eq!(notes.len(), 1);
    // A `not` that is not a body's start is left alone at the top level.
    let head = "package t\nimport rego.v1\nnot_a_body := not_f(input.a)\n";
    assert_eq!(opa_semantics(head).unwrap().0, head);
}

#[test]
fn plain_not_and_references_are_left_alone() {
    let src = "package t\np { not f(x, 1); not input.a; not x == 1 }\n";
    assert_eq!(opa_semantics(src).unwrap().0, src);
}

#[test]
fn missing_sprintf_arguments_are_marked() {
    assert_eq!(
        mark_missing("\"%v and %d, 100%%\"", 1).as_deref(),
        Some("\"%v and %%!d(MISSING), 100%%\"")
    );
    assert_eq!(mark_missing("\"%v %v\"", 2), None);
    let src = "package t\np := msg { msg := sprintf(\"%v and %v\", [1]) }\n";
    let (out, notes) = opa_semantics(src).unwrap();
    assert!(
        out.contains("sprintf(\"%v and %%!v(MISSING)\", [1])"),
        "{out}"
    );
    assert_eq!(notes.len(), 1);
    // Computed argument lists are not counted.
    let src = "package t\np := msg { msg := sprintf(\"%v %v\", [x | x := 1]) }\n";
    assert_eq!(opa_semantics(src).unwrap().0, src);
}

#[test]
fn vm_guards_follow_local_assignments_on_the_same_line() {
    let src = "package t\np := 1 {\n  c := input.c\n  v := c[q]; w := {\"a\": 1,\n    \"b\": 2}\n  n := count([x | x := v[_]])\n}\n";
    let out = vm_assignment_guards(src).unwrap();
    assert_eq!(
        out,
        "package t\np := 1 {\n  c := input.c; c == c\n  v := c[q]; v == v; w := {\"a\": 1,\n    \"b\": 2}; w == w\n  n := count([x | x := v[_]; x == x]); n == n\n}\n"
    );
}

fn edit(start: usize, end: usize, text: &str) -> Edit {
    Edit {
        start,
        end,
        text: text.into(),
    }
}

#[test]
fn edits_apply_in_any_order_and_insertions_keep_theirs() {
    let edits = vec![
        edit(4, 5, "E"),
        edit(0, 0, "<"),
        edit(2, 2, "1"),
        edit(2, 2, "2"),
        edit(2, 3, "C"),
        edit(5, 5, ">"),
    ];
    assert_eq!(apply("abcde", edits).unwrap(), "<ab12CdE>");
}

#[test]
fn edits_that_overlap_or_split_a_character_are_refused() {
    // An insertion inside a replaced range, and two replacements sharing bytes.
    let err = apply("ab\ncdef", vec![edit(3, 6, "X"), edit(4, 4, "y")]).unwrap_err();
    assert_eq!(
        err,
        RewriteError::Overlap {
            line: 2,
            first: 3..6,
            second: 4..4
        }
    );
    assert!(apply("abcdef", vec![edit(1, 3, "X"), edit(2, 5, "Y")]).is_err());
    // "é" is two bytes: neither end of an edit may fall between them.
    let err = apply("aé", vec![edit(0, 2, "")]).unwrap_err();
    assert_eq!(err, RewriteError::SplitsCharacter { line: 1, offset: 2 });
    assert!(apply("aé", vec![edit(2, 2, "x")]).is_err());
    assert!(matches!(
        apply("ab", vec![edit(1, 3, "")]),
        Err(RewriteError::OutOfRange { .. })
    ));
    assert!(matches!(
        apply("ab", vec![edit(2, 1, "")]),
        Err(RewriteError::OutOfRange { .. })
    ));
    assert!(
        err.to_string().contains("cut the character at byte 2"),
        "{err}"
    );
}

#[test]
fn a_not_call_inside_a_bound_argument_is_rewritten_in_its_binding() {
    // The fuzzer's crash: the inner `not` lies in the argument the outer rewrite replaces by a
    // variable; editing it in the same pass landed inside that replacement (inside an "é").
    let src = "package t\np { not f([x | not g(input.x.y); x := \"éééééééééééé\"]) }\n";
    let (out, notes) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\np { __mg_not_1 = [x | __mg_not_2 = input.x.y; not g(__mg_not_2); x := \"éééééééééééé\"]; not f(__mg_not_1) }\n"
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    // A `sprintf` in a bound argument is marked in the binding.
    let src = "package t\np { not f(sprintf(\"%v %v\", [input.a])) }\n";
    let (out, _) = opa_semantics(src).unwrap();
    assert_eq!(
        out,
        "package t\np { __mg_not_1 = sprintf(\"%v %%!v(MISSING)\", [input.a]); not f(__mg_not_1) }\n"
    );
}

#[test]
fn a_multi_line_argument_keeps_every_later_line_in_place() {
    let src = "package t\np {\n  not f([x |\n    x := input.a[_]\n  ])\n  input.b == 1\n}\n";
    let (out, _) = opa_semantics(src).unwrap();
    assert_eq!(out.lines().count(), src.lines().count());
    assert_eq!(out.lines().nth(5), Some("  input.b == 1"), "{out}");
}

#[test]
fn unbalanced_text_never_panics_and_keeps_its_lines() {
    // The fuzzer's crash input, reduced: a `not` call whose parenthesis closes lines later,
    // around other `not` calls, with multi-byte characters after them.
    let src = "package x\nv {\n  not f(i (a == 1)\n  not f(input.x.y)\n  m\u{fffd}\u{fffd}\u{fffd}= 1)1\n  not f(input.x.y)\n}\n";
    let (out, _) = opa_semantics(src).unwrap();
    assert_eq!(
        out.matches('\n').count(),
        src.matches('\n').count(),
        "{out}"
    );
}

#[test]
fn nesting_without_end_is_refused() {
    // Each level of `with` copies its modifier into every binding: deep enough, the passes
    // stop instead of growing the module without bound.
    let mut src = String::from("input.z");
    for _ in 0..12 {
        src = format!("[y | not f(input.a, input.b) with input as {src}]");
    }
    let src = format!("package t\np {{ x := {src} }}\n");
    let err = opa_semantics(&src).unwrap_err();
    assert_eq!(err, RewriteError::Unsettled { line: 2 });
    // Two levels settle.
    let two = "package t\np { not f([y | not g(input.a) with input as {}]) }\n";
    assert!(opa_semantics(two).is_ok());
}

#[test]
fn a_with_modifier_spanning_lines_is_copied_onto_the_not_line() {
    // The fuzzer's crash, reduced: each binding copied the modifier as written, line breaks
    // included, so every line after it moved (by two per binding here); and its comment, copied
    // onto one line, would have commented out the rest of that line.
    let src = "package t\ntest_p {\n  not f(input.x, input.y) with input as {\n    \"x\": 1, # the mock\n    \"y\": `a\n\"b\"`\n  }\n  input.z\n}\n";
    let (out, notes) = opa_semantics(src).unwrap();
    let modifier = r#"with input as { "x": 1, "y": "a\n\"b\"" }"#;
    assert_eq!(
        out,
        format!(
            "package t\ntest_p {{\n  __mg_not_1 = input.x {modifier}; __mg_not_2 = input.y {modifier}; not f(__mg_not_1, __mg_not_2) with input as {{\n    \"x\": 1, # the mock\n    \"y\": `a\n\"b\"`\n  }}\n  input.z\n}}\n"
        )
    );
    assert_eq!(notes.len(), 1);
    assert_eq!(out.matches('\n').count(), src.matches('\n').count());
}

#[test]
fn a_with_modifier_with_an_unterminated_string_is_not_copied() {
    // The module does not parse (in OPA or regorus), so it is left as it is: copied onto one
    // line, the quote would pair with one on a later line.
    let src = "package t\np {\n  not f(input.x) with input as g(\"a)\n  x := \"b\"\n}\n";
    assert_eq!(opa_semantics(src).unwrap().0, src);
}
