use super::*;

fn lines(src: &str) -> usize {
    src.lines().count()
}

#[test]
fn several_definitions_become_one_set_and_a_single_value_rule() {
    let src = "package x\nns = n {\n  n := input.a\n}\nns = n { not input.a; n := input.b }\nviolation[{\"msg\": ns}] { ns }\n";
    let (out, changed) = single_value_rules(src, RegoVersion::V0, true)
        .unwrap()
        .unwrap();
    assert!(changed);
    let body: Vec<&str> = out.lines().collect();
    assert_eq!(body[1], "__mg_defs_ns[n] {");
    assert_eq!(body[4], "__mg_defs_ns[n] { not input.a; n := input.b }");
    assert_eq!(
        body[5], "violation[{\"msg\": ns}] { ns }",
        "other rules keep their lines"
    );
    assert!(
        out.contains("ns = __mg_value { __mg_value = __mg_defs_ns[_]; count(__mg_defs_ns) == 1 }")
    );
    assert!(out.contains(&format!(
        "violation[{{\"msg\": \"{CONFLICT_MARKER}\"}}] {{ count(__mg_defs_ns) > 1 }}"
    )));
    assert_eq!(lines(&out), lines(src) + 2);
}

#[test]
fn literal_values_bodiless_and_boolean_definitions() {
    let src = "package x\nprobes = [\"a\",\n  \"b\"] { not input.p }\nprobes = input.p\nflag { input.x }\nflag if { input.y }\n";
    let (out, _) = single_value_rules(src, RegoVersion::V0, true)
        .unwrap()
        .unwrap();
    assert!(
        out.contains("__mg_defs_probes[[\"a\",\n  \"b\"]] { not input.p }"),
        "{out}"
    );
    assert!(out.contains("__mg_defs_probes[input.p] { true }"), "{out}");
    assert!(out.contains("__mg_defs_flag[true] { input.x }"), "{out}");
    assert!(out.contains("__mg_defs_flag[true] if { input.y }"), "{out}");
    let (v1, _) = single_value_rules(
        "package x\nns = n if { n := input.a }\nns = \"d\" if { not input.a }\n",
        RegoVersion::V1,
        true,
    )
    .unwrap()
    .unwrap();
    assert!(
        v1.contains("__mg_defs_ns contains n if { n := input.a }"),
        "{v1}"
    );
    assert!(v1.contains("ns = __mg_value if {"), "{v1}");
    assert!(v1.contains("violation contains {\"msg\""), "{v1}");
}

#[test]
fn single_definitions_functions_and_partial_rules_are_left_alone() {
    let src = "package x\ndefault ns = \"a\"\nns = n { n := input.a }\nf(x) = 1 { x }\nf(x) = 2 { not x }\np[x] { x := 1 }\np[x] { x := 2 }\n";
    let (out, changed) = single_value_rules(src, RegoVersion::V0, true)
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert_eq!(out, src);
}

#[test]
fn a_single_definition_that_may_produce_several_values_is_checked_too() {
    // The fuzzer's find: one definition iterating (in its value or its body) has a conflict of
    // its own in OPA, which the VM did not raise. Rewritten as several definitions are.
    let src = "package x\nr = count(input.xs[_])\ns = x { x := input.ys[i] }\nt := input.zs[_] { true }\nu = x { some x in input.us }\n";
    let (out, changed) = single_value_rules(src, RegoVersion::V0, true)
        .unwrap()
        .unwrap();
    assert!(changed);
    let body: Vec<&str> = out.lines().collect();
    assert_eq!(body[1], "__mg_defs_r[count(input.xs[_])] { true }");
    assert_eq!(body[2], "__mg_defs_s[x] { x := input.ys[i] }");
    assert_eq!(body[3], "__mg_defs_t[input.zs[_]] { true }");
    assert_eq!(body[4], "__mg_defs_u[x] { some x in input.us }");
    for name in ["r", "s", "t", "u"] {
        assert!(
            out.contains(&format!(
                "{name} = __mg_value {{ __mg_value = __mg_defs_{name}[_]; count(__mg_defs_{name}) == 1 }}"
            )),
            "{out}"
        );
    }
    // An `else` chain cannot be rewritten: the template runs on the interpreter.
    let else_chain = "package x\nv = 1 { input.a } else = x { x := input.vs[_] }\n";
    let err = single_value_rules(else_chain, RegoVersion::V0, true)
        .unwrap()
        .unwrap_err();
    assert!(err.contains("`v`") && err.contains("else"), "{err}");
    // In a lib it cannot be checked either.
    let lib = "package lib.x\nr = count(input.xs[_])\n";
    let err = single_value_rules(lib, RegoVersion::V0, false)
        .unwrap()
        .unwrap_err();
    assert!(err.contains("may produce several values"), "{err}");
}

#[test]
fn a_function_that_may_give_one_call_several_values_cannot_run_on_the_vm() {
    // The fuzzer's find 15 (`rego_differential`): `f2(v7) = count(…containers[_].image)` gave
    // OPA's error on the interpreter and one of the values on the VM. Functions are not
    // rewritten: the engine runs the template on the interpreter, the proxy refuses it.
    let several = [
        (
            "value iterates",
            "f2(v7) = count(input.review.object.spec.containers[_].image) { v7 }",
        ),
        ("body iterates", "f(x) = y { y := x.items[_] }"),
        ("unbound index", "f(x) = y { y := x[i] }"),
        ("`some … in`", "f(xs) := y if { some y in xs }"),
        (
            "the value assigned from an iterated local",
            "f(vs) = msg { v := vs[_]; msg := sprintf(\"%v\", [v]) }",
        ),
        (
            "a local that shadows a rule and iterates",
            "r := 1\nf(x) = r { r := input.rs[_] }",
        ),
        (
            "a local that `some` declares over a rule's name",
            "r := 1\nf(x) = v { some r in x; v := r }",
        ),
        (
            "several definitions, the second iterating (named on its line, 3)",
            "f(1) = 1\nf(x) = y { y := input.ys[_] }",
        ),
    ];
    for (what, function) in several {
        let line = format!("line {}", 1 + function.lines().count());
        let src = format!("package x\n{function}\nviolation[{{\"msg\": \"m\"}}] {{ f(1) }}\n");
        for on_conflict in [Some(OnConflict::Marker), Some(OnConflict::Report), None] {
            let why = single_value_rules_with(&src, RegoVersion::V1, on_conflict)
                .unwrap()
                .unwrap_err();
            assert!(
                why.contains("may produce several values for one call") && why.contains(&line),
                "{what}: {why}"
            );
        }
    }
    let one = [
        ("boolean", "f(x) { x.items[_] == 1 }"),
        ("literal value", "f(x) = true { x.items[_] }"),
        (
            "an argument as the index",
            "f(obj, key) = v { v := obj[key] }",
        ),
        ("a literal index", "f(x) = v { v := x[\"a\"][0] }"),
        (
            "iteration inside a comprehension",
            "f(x) = n { n := count([i | x[i]]) }",
        ),
        ("an argument pattern", "f([a, b]) = v { v := a[b] }"),
        (
            "a lookup table",
            "f(\"Ki\") = 1024\nf(\"Mi\") = 1048576\nf(\"Gi\") = 1073741824",
        ),
        ("not a function: a partial set", "p[x] { x := input.xs[_] }"),
        (
            "the value assigned once, an iteration that only filters",
            "f(obj) = service { key := label; service := obj.labels[key]; service == input.services[_] }\nlabel := \"app\"",
        ),
        (
            "the value built from arguments and single locals",
            "g(c, vs) = msg { is_array(vs); v := vs[_]; v > 1; msg := sprintf(\"%v %v\", [c.name, vs]) }",
        ),
        (
            "a computed index",
            "h(image) = tag { parts := split(image, \":\"); tag := parts[count(parts) - 1] }",
        ),
    ];
    for (what, function) in one {
        let src = format!("package x\n{function}\n");
        let (out, changed) =
            single_value_rules_with(&src, RegoVersion::V0, Some(OnConflict::Marker))
                .unwrap()
                .unwrap_or_else(|why| panic!("{what}: {why}"));
        assert!(!changed, "{what}: {out}");
    }
}

#[test]
fn a_single_definition_with_one_value_is_left_alone() {
    let src = "package x\n\
        p { input.xs[_] == 1 }\n\
        q = 1 { input.xs[_] }\n\
        q2 := \"a\" if { input.xs[i] }\n\
        n = count([x | x := input.xs[_]])\n\
        m = {k: v | some k; v := input.o[k]}\n\
        o = input.obj[\"k\"].list[0] { input.a }\n\
        w = f(input.a)[\"b\"]\n\
        ns = n { n := input.a }\n";
    let (out, changed) = single_value_rules(src, RegoVersion::V0, true)
        .unwrap()
        .unwrap();
    assert!(!changed, "{out}");
    assert_eq!(out, src);
}

#[test]
fn what_cannot_be_rewritten_is_refused_with_the_reason() {
    let else_chain = "package x\nns = 1 { input.a } else = 2 { true }\nns = 3 { input.b }\n";
    let err = single_value_rules(else_chain, RegoVersion::V0, true)
        .unwrap()
        .unwrap_err();
    assert!(err.contains("else"), "{err}");
    let colon = "package x\nns := 1 { input.a }\nns := 2 { input.b }\n";
    assert!(
        single_value_rules(colon, RegoVersion::V0, true)
            .unwrap()
            .is_err()
    );
    // Found by `rego_rewrite`: a value after a comment (or a line break) starts on a later
    // line; replacing the head by `__mg_defs_ns[value]` took the line break away.
    let later = "package x\nns = # the value follows\n  1 { input.a }\nns = 2 { input.b }\n";
    let err = single_value_rules(later, RegoVersion::V0, true)
        .unwrap()
        .unwrap_err();
    assert!(err.contains("starts on a later line"), "{err}");
    let lib = "package lib.x\nns = 1 { input.a }\nns = 2 { input.b }\n";
    assert!(
        single_value_rules(lib, RegoVersion::V0, false)
            .unwrap()
            .is_err()
    );
}

#[test]
fn lookup_tables_become_one_object() {
    let src = "package x\nm(\"k\") = 1000\nm(\"M\") = 1000000\nm(\"\") = 1\nv { m(\"k\") }\n";
    let (out, names) = table_functions(src, RegoVersion::V0).unwrap();
    assert_eq!(names, ["m"]);
    let body: Vec<&str> = out.lines().collect();
    assert_eq!(
        body[1],
        "m(__mg_key) = __mg_out { __mg_out := __mg_table_m[__mg_key] }"
    );
    assert_eq!((body[2], body[3]), ("", ""), "lines are kept");
    assert_eq!(body[4], "v { m(\"k\") }");
    assert!(
        out.contains("__mg_table_m = {\"k\": 1000, \"M\": 1000000, \"\": 1}"),
        "{out}"
    );
}

#[test]
fn functions_that_are_not_pure_tables_are_left_alone() {
    for src in [
        // A clause with a body.
        "package x\nm(\"a\") = 1\nm(\"b\") = 2\nm(\"c\") = 3 { input.x }\n",
        // A repeated key (OPA reports a conflict when the values differ).
        "package x\nm(\"a\") = 1\nm(\"b\") = 2\nm(\"a\") = 3\n",
        // A non-literal argument.
        "package x\nm(\"a\") = 1\nm(\"b\") = 2\nm(x) = 3\n",
        // Too small to matter.
        "package x\nm(\"a\") = 1\nm(\"b\") = 2\n",
        // A default.
        "package x\ndefault m(_) = 0\nm(\"a\") = 1\nm(\"b\") = 2\nm(\"c\") = 3\n",
    ] {
        let (out, names) = table_functions(src, RegoVersion::V0).unwrap();
        assert!(names.is_empty(), "{src}");
        assert_eq!(out, src);
    }
}

#[test]
fn the_proxy_form_names_the_rule_in_a_set() {
    // The proxy's form: no marker violation; the rule's name in `__mg_conflicts`.
    let src = "package x\nrole := r if { r := input.roles[_] }\nallow if role == \"admin\"\n";
    let (out, changed) = single_value_rules_with(src, RegoVersion::V1, Some(OnConflict::Report))
        .unwrap()
        .unwrap();
    assert!(changed);
    let body: Vec<&str> = out.lines().collect();
    assert_eq!(
        body[1],
        "__mg_defs_role contains r if { r := input.roles[_] }"
    );
    assert_eq!(
        body[2], "allow if role == \"admin\"",
        "other rules keep their lines"
    );
    assert!(out.contains(
        "role = __mg_value if { __mg_value = __mg_defs_role[_]; count(__mg_defs_role) == 1 }"
    ));
    assert!(out.contains("__mg_conflicts contains \"role\" if { count(__mg_defs_role) > 1 }"));
    assert!(!out.contains("violation"), "{out}");
    assert_eq!(lines(&out), lines(src) + 2);
    // A module without such rules is left as it is.
    let plain = "package x\ndefault allow := false\nallow if input.a == 1\nallow if input.b\n";
    let (same, changed) = single_value_rules_with(plain, RegoVersion::V1, Some(OnConflict::Report))
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert_eq!(same, plain);
    // `None`: the module cannot report a conflict.
    assert!(
        single_value_rules_with(src, RegoVersion::V1, None)
            .unwrap()
            .is_err()
    );
}

#[test]
fn the_proxy_form_takes_braceless_bodies_and_assignments_and_skips_equal_literals() {
    // `if expr` bodies and `:=` definitions, as the proxy's policies write them.
    let src = "package x\nowner := u if [\"users\", u] = input.path\nowner := u if [\"users\", u, _] = input.path\n";
    let (out, changed) = single_value_rules_with(src, RegoVersion::V1, Some(OnConflict::Report))
        .unwrap()
        .unwrap();
    assert!(changed);
    let body: Vec<&str> = out.lines().collect();
    assert_eq!(
        body[1],
        "__mg_defs_owner contains u if [\"users\", u] = input.path"
    );
    assert_eq!(
        body[2],
        "__mg_defs_owner contains u if [\"users\", u, _] = input.path"
    );
    // The engine's form keeps refusing them (its VM-equivalence tests pin its shapes).
    assert!(
        single_value_rules(src, RegoVersion::V1, true)
            .unwrap()
            .is_err()
    );
    // An `else` after a braceless body is still refused.
    let chained = "package x\nr := 1 if input.a else := 2\nr := 3 if input.b\n";
    assert!(
        single_value_rules_with(chained, RegoVersion::V1, Some(OnConflict::Report))
            .unwrap()
            .is_err()
    );
    // Definitions that all give the same literal cannot conflict.
    let same = "package x\nlevel := \"high\" if input.a\nlevel := \"high\" if { input.b }\nok if input.c\nok if { input.d }\n";
    let (out, changed) = single_value_rules_with(same, RegoVersion::V1, Some(OnConflict::Report))
        .unwrap()
        .unwrap();
    assert!(!changed);
    assert_eq!(out, same);
}
