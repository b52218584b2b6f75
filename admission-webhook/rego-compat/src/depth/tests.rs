use super::*;

/// `x := <expr>` in a package, the expression on line 3.
fn module(expr: &str) -> String {
    format!("package p\n\nx := {expr}\n")
}

/// A run of `n` unary minus, one a line (regorus takes a line break after an operator).
fn unary(n: usize) -> String {
    module(&format!("{}1", "-\n".repeat(n)))
}

/// `1 op 1 op …` with `n` operators, one a line.
fn chain(op: &str, n: usize) -> String {
    module(&format!("1{}", format!(" {op}\n 1").repeat(n)))
}

#[test]
fn each_shape_is_bounded_at_its_own_cost() {
    // Each case: the module, its depth, and whether it passes.
    let per_unary = (MAX_DEPTH / UNARY) as usize;
    let per_operator = (MAX_DEPTH / OPERATOR) as usize;
    let nest = |n: usize| module(&format!("{}1{}", "(".repeat(n), ")".repeat(n)));
    let cases: [(&str, String, u32); 8] = [
        ("unary run at the bound", unary(per_unary), MAX_DEPTH),
        (
            "binary `-` at the bound",
            chain("-", per_operator),
            MAX_DEPTH,
        ),
        ("`&` at the bound", chain("&", per_operator), MAX_DEPTH),
        ("`<=` at the bound", chain("<=", per_operator), MAX_DEPTH),
        ("`==` counts once", chain("==", 10), 10),
        ("`!=` counts once", chain("!=", 10), 10),
        ("parentheses", nest(10), 10 * NESTED),
        (
            "a reference's dots and indexes (an index is parsed as an expression of its own)",
            module("input.a.b[0][\"c\"].d"),
            4 * OPERATOR + 2 * NESTED,
        ),
    ];
    for (what, text, depth) in &cases {
        assert_eq!(deepest(text), *depth, "{what}");
        assert_eq!(check(text), Ok(()), "{what}");
    }
    for (what, text) in [
        ("unary run", unary(per_unary + 1)),
        ("binary `-`", chain("-", per_operator + 1)),
        ("`&`", chain("&", per_operator + 1)),
        ("`<=`", chain("<=", per_operator + 1)),
        ("`|`", chain("|", per_operator + 1)),
        ("parentheses", nest(per_unary + 1)),
    ] {
        let err = check(&text).unwrap_err();
        assert!(err.depth > MAX_DEPTH, "{what}: {err:?}");
        assert!(
            err.line >= 3,
            "{what}: names the line that crossed: {err:?}"
        );
    }
}

#[test]
fn the_depths_of_brackets_and_the_expression_around_them_add_up() {
    // 31 unary minus inside a parenthesis, then the operators that make the bound plus one
    // after it: the parenthesis may be the deepest leaf of the chain's tree.
    let inner = format!("({}1)", "- ".repeat(31));
    let inner_depth = NESTED + 31 * UNARY;
    let after = (MAX_DEPTH + 1 - inner_depth) as usize;
    let text = module(&format!("{inner}{}", " - 1".repeat(after)));
    let err = check(&text).unwrap_err();
    assert_eq!(err.depth, MAX_DEPTH + 1);
    // One operator fewer, before the parenthesis: it is counted where it opens.
    let text = module(&format!("{}{inner}", "1 - ".repeat(after - 1)));
    assert_eq!(deepest(&text), MAX_DEPTH);
    assert_eq!(check(&text), Ok(()));
    // Nested brackets each hold some: the sum counts.
    let level = "[- - - - - - - - - - ";
    let levels = (MAX_DEPTH / (NESTED + 10 * UNARY)) as usize;
    let text = module(&format!("{}1{}", level.repeat(levels), "]".repeat(levels)));
    assert_eq!(deepest(&text), levels as u32 * (NESTED + 10 * UNARY));
    assert_eq!(check(&text), Ok(()));
    let deeper = levels + 1;
    assert!(
        check(&module(&format!(
            "{}1{}",
            level.repeat(deeper),
            "]".repeat(deeper)
        )))
        .is_err()
    );
}

#[test]
fn expressions_end_at_separators_and_at_line_breaks_after_a_value() {
    // A body of 600 comparisons, one a line, or `;`-separated, or an array of 600 elements.
    let lines = format!("allow {{\n{}}}\n", "  input.a == 1\n".repeat(600));
    assert_eq!(deepest(&lines), NESTED + 2);
    let semis = format!("allow {{ {} }}\n", "input.a == 1; ".repeat(600));
    assert_eq!(deepest(&semis), NESTED + 2);
    let array = module(&format!("[{}1]", "-1, ".repeat(600)));
    assert_eq!(deepest(&array), NESTED + UNARY);
    // A line that starts with an operator goes on with the expression before it.
    let continued = module(&format!("1{}", "\n - 1".repeat(600)));
    assert_eq!(deepest(&continued), 600);
    assert!(check(&continued).is_err());
    // So does one after a keyword: `x in` then a line break.
    let keyword = module(&format!("1{}", " in\n - ".repeat(100)));
    assert_eq!(deepest(&keyword), 100 * (OPERATOR + UNARY));
}

#[test]
fn a_minus_after_a_keyword_or_an_opener_is_unary() {
    assert_eq!(deepest(&module("-1")), UNARY);
    assert_eq!(deepest(&module("1 - 1")), OPERATOR);
    assert_eq!(deepest(&module("[1, -1]")), NESTED + UNARY);
    assert_eq!(deepest(&module("1 in - 1")), OPERATOR + UNARY);
    // The call's parenthesis closed, then a binary and a unary minus.
    assert_eq!(deepest(&module("f(x) - -1")), NESTED + OPERATOR + UNARY);
}

#[test]
fn minus_signs_in_strings_and_comments_do_not_count() {
    let text = format!(
        "package p\n# {}\nx := \"{}\"\ny := `{}`\n",
        "- ".repeat(1_000),
        "- ".repeat(1_000),
        "-\n".repeat(1_000)
    );
    assert_eq!(check(&text), Ok(()));
    assert_eq!(deepest(&text), 0);
}

#[test]
fn unbalanced_closers_start_afresh() {
    let text = format!("package p\n]]]]\n{}", unary(10));
    assert_eq!(deepest(&text), 10 * UNARY);
}

#[test]
fn the_message_names_the_cost_and_the_way_out() {
    // `x := -` on line 3, then one `-` a line: the one that crosses is on line 3 + 96.
    let err = check(&unary(97)).unwrap_err();
    assert_eq!(
        err,
        DeepExpression {
            line: 99,
            depth: 97 * UNARY
        }
    );
    let message = err.to_string();
    assert!(
        message.starts_with("this expression is 194 deep here"),
        "{message}"
    );
    assert!(message.contains("split the expression"), "{message}");
}
