//! Why a test failed (`-v`): the first expression of its body that does not hold, and the values
//! of the names that expression uses.
//!
//! regorus has no `--var-values` trace, so the explanation is computed the way a person would
//! bisect by hand: probe rules are added to a clone of the engine, in the test's own package and
//! with its imports, each holding the first *k* statements of the test body. The first probe that
//! is undefined names the failing statement; then, for each name in that statement, a probe with
//! the statements before it binds the name's value (with the statement's own `with` modifiers, so
//! a mocked input is seen as the statement sees it). The original engine is not touched.

use regorus::Engine;
use regorus::unstable::{LiteralStmt, Rule, RuleHead};

use super::discover::TestCase;
use super::runner::render;

/// The failing statement of a test and the values around it.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Line of the first statement that does not hold (None when every statement held and the
    /// rule's value itself was not `true`).
    pub line: Option<u32>,
    /// Its source text.
    pub expression: Option<String>,
    /// `name = value` for the names the statement uses, in order of appearance.
    pub values: Vec<(String, String)>,
}

const KEYWORDS: &[&str] = &[
    "as", "contains", "data", "default", "else", "every", "false", "if", "import", "in", "not",
    "null", "package", "some", "true", "with",
];

/// Explains a failed test (never fails itself: an explanation that cannot be computed is empty).
pub fn explain(engine: &Engine, test: &TestCase) -> Explanation {
    let mut explanation = Explanation {
        line: None,
        expression: None,
        values: Vec::new(),
    };
    let Some(stmts) = first_body(test) else {
        return explanation;
    };
    let texts: Vec<String> = stmts.iter().map(|s| s.span.text().to_string()).collect();
    let Some(failing) = first_failing(engine, test, &texts) else {
        return explanation;
    };
    let Some(stmt) = stmts.get(failing) else {
        return explanation;
    };
    explanation.line = Some(stmt.span.line);
    explanation.expression = texts.get(failing).cloned();
    let with_mods: Vec<String> = stmt
        .with_mods
        .iter()
        .map(|w| w.span.text().to_string())
        .collect();
    let literal = literal_text(&texts[failing], &with_mods);
    let Some(prefix) = texts.get(..failing) else {
        return explanation;
    };
    // Only names that can have a value before the failing statement: bound by an earlier
    // statement, a rule of the package, or `input`. Probing others only provokes unsafe-var
    // errors.
    let mut known = names_in(&prefix.join("\n"));
    known.extend(package_rules(engine, &test.package));
    known.push("input".to_string());
    for name in names_in(literal) {
        if !known.contains(&name) {
            continue;
        }
        if let Some(value) = probe_value(engine, test, prefix, &name, &with_mods) {
            explanation.values.push((name, value));
        }
    }
    explanation
}

/// Names of the rules defined in `package` (any of its files).
fn package_rules(engine: &Engine, package: &str) -> Vec<String> {
    let mut engine = engine.clone();
    let mut names = Vec::new();
    for module in engine.get_modules() {
        if format!("data.{}", module.package.refr.span().text()) != package {
            continue;
        }
        for rule in &module.policy {
            let Rule::Spec { head, .. } = rule.as_ref() else {
                continue;
            };
            let refr = match head {
                RuleHead::Compr { refr, .. }
                | RuleHead::Set { refr, .. }
                | RuleHead::Func { refr, .. } => refr,
            };
            names.push(refr.span().text().to_string());
        }
    }
    names
}

fn first_body(test: &TestCase) -> Option<&[LiteralStmt]> {
    let rule = test.rules.first()?;
    let Rule::Spec { bodies, .. } = rule.as_ref() else {
        return None;
    };
    Some(bodies.first()?.query.stmts.as_slice())
}

/// Index of the first statement whose prefix makes the body undefined.
fn first_failing(engine: &Engine, test: &TestCase, texts: &[String]) -> Option<usize> {
    let mut module = module_header(test);
    for k in 1..=texts.len() {
        let body = texts.get(..k)?.join(";\n");
        module.push_str(&rule_def(
            test,
            &format!("__meshguard_probe_{k}"),
            "true",
            &body,
        ));
    }
    let mut probe = engine.clone();
    probe.add_policy("<explain>".to_string(), module).ok()?;
    for k in 1..=texts.len() {
        let value = probe
            .eval_rule(format!("{}.__meshguard_probe_{k}", test.package))
            .ok()?;
        if value == regorus::Value::Undefined {
            return Some(k - 1);
        }
    }
    None
}

/// The value of `name` after the statements in `prefix` (None when it is not a bound name).
fn probe_value(
    engine: &Engine,
    test: &TestCase,
    prefix: &[String],
    name: &str,
    with_mods: &[String],
) -> Option<String> {
    let mut stmts: Vec<String> = prefix.to_vec();
    let mut last = format!("__meshguard_v := {name}");
    for w in with_mods {
        last.push(' ');
        last.push_str(w);
    }
    stmts.push(last);
    let mut module = module_header(test);
    module.push_str(&rule_def(
        test,
        "__meshguard_value",
        "__meshguard_v",
        &stmts.join(";\n"),
    ));
    let mut probe = engine.clone();
    probe.add_policy("<explain>".to_string(), module).ok()?;
    let value = probe
        .eval_rule(format!("{}.__meshguard_value", test.package))
        .ok()?;
    Some(render(&value))
}

fn module_header(test: &TestCase) -> String {
    let mut header = format!("package {}\n", test.module.package.refr.span().text());
    for import in &test.module.imports {
        header.push_str(import.span.text());
        header.push('\n');
    }
    header
}

fn rule_def(test: &TestCase, name: &str, value: &str, body: &str) -> String {
    let keyword = if test.module.rego_v1 { " if" } else { "" };
    format!("{name} = {value}{keyword} {{\n{body}\n}}\n")
}

/// The statement text without its `with` modifiers.
fn literal_text<'a>(text: &'a str, with_mods: &[String]) -> &'a str {
    match with_mods.first().and_then(|w| text.find(w.as_str())) {
        Some(at) => text[..at].trim_end(),
        None => text,
    }
}

/// Names a statement uses: identifiers that are not keywords, not attribute names after `.`,
/// not called as functions, and not inside string literals.
fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut in_string: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(quote) = in_string {
            if c == '\\' {
                i += 2;
                continue;
            }
            if c == quote {
                in_string = None;
            }
            i += 1;
            continue;
        }
        if c == '"' || c == '`' {
            in_string = Some(c);
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after_dot = start > 0 && chars[start - 1] == '.';
            let called = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(')
                || chars.get(i) == Some(&'.') && is_builtin_namespace(&word);
            if !after_dot
                && !called
                && !KEYWORDS.contains(&word.as_str())
                && word != "_"
                && !names.contains(&word)
            {
                names.push(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// `strings.`, `object.`, ... prefixes of builtin calls.
fn is_builtin_namespace(word: &str) -> bool {
    matches!(
        word,
        "strings"
            | "object"
            | "array"
            | "regex"
            | "units"
            | "json"
            | "yaml"
            | "base64"
            | "time"
            | "net"
            | "glob"
            | "semver"
            | "crypto"
            | "io"
            | "urlquery"
            | "numbers"
            | "graph"
            | "rego"
            | "opa"
            | "hex"
            | "uuid"
            | "bits"
    )
}

#[cfg(test)]
mod tests {
    use super::names_in;

    #[test]
    fn names_skip_keywords_calls_fields_and_strings() {
        assert_eq!(
            names_in(r#"count(results) == expected.total; not x in {"a b", y}"#),
            vec!["results", "expected", "x", "y"]
        );
        assert_eq!(names_in("strings.any_prefix_match(s, p)"), vec!["s", "p"]);
    }
}
