//! Rewrites of complete rules and lookup-table functions for regorus' bytecode VM, shared by the
//! admission engine (`meshguard-policy-engine`, on the VM's copy of a template) and the proxy's
//! authorization filter (`meshguard-authz`, which runs only the VM). Like the other rewrites,
//! they keep every line of the module where it was; new rules go at the end of the module.
//!
//! - **Complete rules with several definitions** (`ns = x { a }` and `ns = y { b }`): OPA raises a
//!   conflict error (`eval_conflict_error: complete rules must not produce multiple outputs`)
//!   when two definitions give different values; regorus' VM does not. The definitions become
//!   one partial set (`__mg_defs_ns[x] { a }`, `__mg_defs_ns[y] { b }`) and `ns` is its only
//!   element when it has exactly one. When the set has more than one element the conflict is
//!   reported as [`OnConflict`] says: the engine's marker violation ([`CONFLICT_MARKER`], on
//!   which it evaluates the template on the interpreter, which reports OPA's conflict exactly),
//!   or the filter's set rule [`CONFLICTS_RULE`], naming the rules in conflict, which the filter
//!   evaluates after the decision and turns into OPA's error (`eval_conflict_error`; regorus'
//!   VM treats any error in a rule body but a resource limit as the body failing, so the
//!   conflict cannot be an error raised where the rule is evaluated). Without a conflict the VM's
//!   answer is OPA's: one value, or undefined (and `default` still applies). A rule with one
//!   definition conflicts with itself when it iterates to two values
//!   (`r = count(input.xs[_])`), so a single definition that may iterate is rewritten the same
//!   way (`may_produce_several_values`; the repository's templates and proxy policies have
//!   none).
//! - **Lookup-table functions** (`mem_multiple("Ki") = 1024000`, fourteen clauses, as in the
//!   gatekeeper-library's container-limits templates): each call tries every clause in the VM.
//!   A function whose every clause maps one distinct string literal to a scalar literal becomes
//!   one lookup in an object rule, which the VM evaluates once per evaluation. Undefined for any
//!   other argument, as before.

use std::collections::{BTreeMap, BTreeSet};

use crate::rego_scan::{Token, TokenKind, text, tokenize};
use crate::rewrite::{self, Edit, RewriteError, depths, is_punct, matching_close};

/// Which Rego syntax a module is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegoVersion {
    /// Rego v0 (Gatekeeper's default).
    V0,
    /// Rego v1 (OPA 1.x; `code[engine: Rego].source.version: "v1"` in a template).
    V1,
}

/// How a rewritten rule reports conflicting values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// A `violation` holding [`CONFLICT_MARKER`] (the admission engine, which then decides on
    /// the interpreter).
    Marker,
    /// The rule's name in the package's set rule [`CONFLICTS_RULE`] (the proxy, which has no
    /// interpreter: it makes a conflict the decision's error, as OPA's).
    Report,
}

/// The `msg` of the violation the VM's program reports when a rewritten rule has conflicting
/// definitions ([`OnConflict::Marker`]); the engine then uses the interpreter's decision.
pub const CONFLICT_MARKER: &str = "__meshguard_vm_rule_conflict__";

/// The set rule, in each rewritten module's package, that holds the names of the rules in
/// conflict ([`OnConflict::Report`]).
pub const CONFLICTS_RULE: &str = "__mg_conflicts";

/// OPA's message for a complete rule with several values.
pub const CONFLICT_ERROR: &str =
    "eval_conflict_error: complete rules must not produce multiple outputs";

/// [`rewrite::apply`], then `appended` on lines of its own at the end.
fn apply(src: &str, edits: Vec<Edit>, appended: &str) -> Result<String, RewriteError> {
    let mut out = rewrite::apply(src, edits)?;
    if !appended.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(appended);
    }
    Ok(out)
}

fn is_ident(src: &str, token: Option<&Token>, name: &str) -> bool {
    token.is_some_and(|t| t.kind == TokenKind::Ident && text(src, t) == name)
}

/// Indices of tokens that start a rule at the top level: an identifier at depth 0 that begins
/// its line (keywords excluded).
fn rule_starts<'a>(
    src: &'a str,
    tokens: &'a [Token],
    depth: &'a [usize],
) -> impl Iterator<Item = usize> + 'a {
    tokens.iter().enumerate().filter_map(move |(index, token)| {
        let prev = index.checked_sub(1).and_then(|i| tokens.get(i));
        let starts_line = prev.is_none_or(|p| p.line != token.line);
        let top = depth.get(index).copied() == Some(0);
        let keyword = matches!(text(src, token), "package" | "import" | "default");
        (token.kind == TokenKind::Ident && starts_line && top && !keyword).then_some(index)
    })
}

/// The value of one definition of a complete rule, `tokens` (its head, body and any `else`
/// chain), when it is a scalar literal however often its body holds: `true` for a boolean rule
/// (`p { ... }`, `p if ...`), the literal of `name = "v" { ... }` or `name := 3`. None with an
/// `else` chain or any other value.
fn constant_value<'a>(src: &'a str, tokens: &[Token]) -> Option<&'a str> {
    if tokens.iter().any(|t| is_ident(src, Some(t), "else")) {
        return None;
    }
    match tokens.get(1) {
        Some(next) if next.kind == TokenKind::Punct('{') || is_ident(src, Some(next), "if") => {
            Some("true")
        }
        _ => {
            // `name = v {`, `name := v {`, `name = v` alone: v is the token before the body.
            let value_at = if is_punct(tokens.get(1), ':') { 3 } else { 2 };
            let value = tokens.get(value_at);
            let scalar = value.is_some_and(|v| {
                matches!(v.kind, TokenKind::Number | TokenKind::String)
                    || matches!(text(src, v), "true" | "false" | "null")
            });
            let ends = tokens.get(value_at + 1).is_none_or(|after| {
                is_punct(Some(after), '{')
                    || is_ident(src, Some(after), "if")
                    || value.is_some_and(|v| v.line != after.line)
            });
            value.filter(|_| scalar && ends).map(|v| text(src, v))
        }
    }
}

/// Whether the one definition of a complete rule, `tokens` (its head, body and any `else`
/// chain), may produce more than one value: OPA raises `eval_conflict_error: complete rules
/// must not produce multiple outputs` when it does with two distinct values (`r = x { x :=
/// input.list[_] }`, `r = count(input.xs[_])`), and regorus' VM instead takes one of them
/// (divergence 7). A boolean rule (`p { ... }`) or one whose value is a scalar literal, without
/// `else`, has one value however often its body holds. Otherwise it may vary only by iterating
/// outside a comprehension (which is closed): a reference indexed by anything but a string or
/// number literal (`xs[_]`, `xs[i]`, read conservatively: `i` may be bound), `some`, `in`,
/// `every` or `walk`. Conservative: a false "may" only costs the VM a set and a count.
///
/// `bound`: names bound before the definition's body runs (a function's arguments), so that an
/// index that is one of them (`obj[key]`) looks a value up rather than iterating.
fn may_produce_several_values(src: &str, tokens: &[Token], bound: &[&str]) -> bool {
    if constant_value(src, tokens).is_some() {
        return false;
    }
    let assigned = assignments(src, tokens);
    let outer = bound;
    // Locals assigned with `:=` hold one value once assigned (an assignment that iterates is
    // caught where it iterates).
    let mut bound = outer.to_vec();
    bound.extend(assigned.keys().copied());
    // A head value that is a variable assigned once from values that do not vary (`tag` in
    // `f(image) = tag { …; tag := parts[1]; tag == input.tags[_] }`) has one value however
    // often the body holds: iterations elsewhere in the body only filter. Not with `else`
    // (another value), nor with `some` (which may declare a local that shadows a rule's name).
    let plain = !tokens
        .iter()
        .any(|t| is_ident(src, Some(t), "else") || is_ident(src, Some(t), "some"));
    if plain
        && let Some(value) = head_variable(src, tokens)
        && single_valued(src, value, &assigned, outer, 8)
    {
        return false;
    }
    iterates(src, tokens, &bound)
}

/// The head's value when it is one variable: `name = v {`, `name := v if`, `f(x) = v {`
/// (`tokens` start with the rule's name or the function's closing parenthesis).
fn head_variable<'a>(src: &'a str, tokens: &[Token]) -> Option<&'a str> {
    let at = if is_punct(tokens.get(1), ':') { 3 } else { 2 };
    let assigns = is_punct(tokens.get(at - 1), '=');
    let value = tokens.get(at).filter(|t| t.kind == TokenKind::Ident)?;
    let body = tokens.get(at + 1);
    (assigns && (is_punct(body, '{') || is_ident(src, body, "if"))).then(|| text(src, value))
}

/// Whether `:=` (the two characters adjacent) follows the token at `index`.
fn assigns_after(tokens: &[Token], index: usize) -> bool {
    let (colon, eq) = (tokens.get(index + 1), tokens.get(index + 2));
    is_punct(colon, ':')
        && is_punct(eq, '=')
        && colon
            .zip(eq)
            .is_some_and(|(colon, eq)| colon.end == eq.start)
}

/// Each name assigned with `:=` in `tokens` (a definition), with the tokens of its expression,
/// or None when it is assigned more than once. An expression ends at `;`, at the end of what
/// holds it, or at a line break after a value.
fn assignments<'a, 't>(
    src: &'a str,
    tokens: &'t [Token],
) -> BTreeMap<&'a str, Option<&'t [Token]>> {
    let mut out: BTreeMap<&str, Option<&[Token]>> = BTreeMap::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Ident || !assigns_after(tokens, index) {
            continue;
        }
        let first = index + 3;
        let mut depth = 0usize;
        let mut end = first;
        while let Some(at) = tokens.get(end) {
            // A line that starts with an operator may go on with the expression (read so, it
            // only makes the expression longer, which errs on the side of "may vary"); so does
            // one after an operator or an opening delimiter.
            let before = end.checked_sub(1).and_then(|before| tokens.get(before));
            let continues = is_operator(Some(at))
                || is_operator(before)
                || before.is_some_and(|before| {
                    before.line == at.line
                        || matches!(before.kind, TokenKind::Punct(',' | '(' | '[' | '{'))
                });
            if end > first && depth == 0 && !continues {
                break;
            }
            match at.kind {
                TokenKind::Punct('{' | '[' | '(') => depth += 1,
                TokenKind::Punct('}' | ']' | ')') => match depth.checked_sub(1) {
                    Some(less) => depth = less,
                    None => break,
                },
                TokenKind::Punct(';') if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        let expression = tokens.get(first..end).filter(|e| !e.is_empty());
        let name = text(src, token);
        match out.get(name) {
            None => {
                out.insert(name, expression);
            }
            Some(_) => {
                out.insert(name, None);
            }
        }
    }
    out
}

/// Whether `token` is an operator's character (or a reference's `.`).
fn is_operator(token: Option<&Token>) -> bool {
    token.is_some_and(|t| {
        matches!(
            t.kind,
            TokenKind::Punct('+' | '-' | '*' | '/' | '%' | '&' | '|' | '<' | '>' | '=' | '!' | '.')
        )
    })
}

/// Whether `name` holds one value in its definition: it is `bound` (an argument, a rule of the
/// module, `input`, `data`), or assigned once from an expression that does not iterate and
/// whose variables hold one value each (`depth` limits the chain of assignments followed).
fn single_valued(
    src: &str,
    name: &str,
    assigned: &BTreeMap<&str, Option<&[Token]>>,
    bound: &[&str],
    depth: usize,
) -> bool {
    // A local first: it may shadow a rule's name.
    let expression = match assigned.get(name) {
        Some(Some(expression)) => *expression,
        Some(None) => return false,
        None => return bound.contains(&name) || matches!(name, "input" | "data"),
    };
    if depth == 0 {
        return false;
    }
    let mut known = bound.to_vec();
    known.extend(assigned.keys().copied());
    !iterates(src, expression, &known)
        && expression.iter().enumerate().all(|(at, token)| {
            if token.kind != TokenKind::Ident {
                return true;
            }
            let before = at.checked_sub(1).and_then(|b| expression.get(b));
            let after = expression.get(at + 1);
            // A field (`.name`), a function called (`f(`, `object.get(`), a keyword or a
            // literal name: no variable.
            let field = is_punct(before, '.');
            let called = is_punct(after, '(')
                || (is_punct(after, '.') && is_punct(expression.get(at + 3), '('));
            let word = text(src, token);
            let keyword = matches!(
                word,
                "true" | "false" | "null" | "not" | "in" | "some" | "every" | "with" | "as"
            );
            field || called || keyword || single_valued(src, word, assigned, bound, depth - 1)
        })
}

/// Whether `tokens` iterate outside a comprehension: a reference indexed by what
/// [`is_lookup`] does not take, `some`, `in`, `every` or `walk`.
fn iterates(src: &str, tokens: &[Token], bound: &[&str]) -> bool {
    // The delimiters that open a comprehension (a `|` at their own level).
    let mut comprehension = vec![false; tokens.len()];
    let mut open: Vec<usize> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        match token.kind {
            TokenKind::Punct('{' | '[' | '(') => open.push(index),
            TokenKind::Punct('}' | ']' | ')') => {
                open.pop();
            }
            TokenKind::Punct('|') => {
                if let Some(flag) = open.last().and_then(|&at| comprehension.get_mut(at)) {
                    *flag = true;
                }
            }
            _ => {}
        }
    }
    let mut open: Vec<usize> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let closed = open
            .iter()
            .any(|&at| comprehension.get(at).copied().unwrap_or(false));
        let iterates = match token.kind {
            TokenKind::Punct('[') => {
                let indexes = index
                    .checked_sub(1)
                    .and_then(|i| tokens.get(i))
                    .is_some_and(|prev| {
                        prev.end == token.start
                            && matches!(prev.kind, TokenKind::Ident | TokenKind::Punct(']' | ')'))
                    });
                indexes && !is_lookup(src, tokens, index, bound)
            }
            TokenKind::Ident => matches!(text(src, token), "some" | "in" | "every" | "walk"),
            _ => false,
        };
        if iterates && !closed {
            return true;
        }
        match token.kind {
            TokenKind::Punct('{' | '[' | '(') => open.push(index),
            TokenKind::Punct('}' | ']' | ')') => {
                open.pop();
            }
            _ => {}
        }
    }
    false
}

/// Why the function defined at `index` (its tokens `definition`, up to the next rule) cannot
/// run on regorus' VM as in OPA, if it cannot: a definition whose value or body iterates may
/// give one call several values. OPA raises `functions must not produce multiple outputs for
/// same inputs` when two differ, as regorus' interpreter does; the VM takes one of them
/// (divergence 7 for functions, found by `rego_differential`: `f(x) = count(input.xs[_].image)`
/// with two images). Unlike a complete rule, a function has no value to collect into a set once
/// per evaluation, so it is not rewritten: the engine runs such a template on the interpreter,
/// and the proxy refuses the policy. The function's arguments are bound, so an index that names
/// one (`obj[key]`) is a lookup. None for anything that is not a function.
fn function_with_several_values(
    src: &str,
    tokens: &[Token],
    index: usize,
    definition: &[Token],
    rules: &[&str],
) -> Option<String> {
    let name = tokens.get(index)?;
    if !is_punct(tokens.get(index + 1), '(') {
        return None;
    }
    let close = matching_close(tokens, index + 1)?;
    let mut bound: Vec<&str> = tokens
        .get(index + 2..close)
        .unwrap_or_default()
        .iter()
        .filter(|t| t.kind == TokenKind::Ident)
        .map(|t| text(src, t))
        .collect();
    bound.extend_from_slice(rules);
    // From the closing parenthesis on, the definition reads as a complete rule's does, with the
    // parenthesis in the name's place: `) = value { body }`, `) := value if …`, `) { body }`.
    let head_and_body = definition.get(close.checked_sub(index)?..)?;
    may_produce_several_values(src, head_and_body, &bound).then(|| {
        format!(
            "the function `{}` on line {} may produce several values for one call (its value \
             or body iterates outside a comprehension): OPA raises `functions must not produce \
             multiple outputs for same inputs` when two differ, and regorus' VM takes one of \
             them; collect the values in a comprehension and return one",
            text(src, name),
            name.line
        )
    })
}

/// Whether the index opened by the `[` at `open` looks one value up: every name in it is
/// `bound`, `input` or `data`, a field after `.`, the root of a reference (`x.y`) or a function
/// called (`count(xs) - 1`), beside literals, brackets, operators and calls (an inner index is
/// checked where it opens). A name alone that is none of these (`_`, a variable not yet bound)
/// may iterate.
fn is_lookup(src: &str, tokens: &[Token], open: usize, bound: &[&str]) -> bool {
    let Some(close) = matching_close(tokens, open) else {
        return false;
    };
    let key = tokens.get(open + 1..close).unwrap_or_default();
    !key.is_empty()
        && key.iter().enumerate().all(|(at, token)| match token.kind {
            TokenKind::String | TokenKind::Number => true,
            TokenKind::Punct('.' | '[' | ']' | '(' | ')' | ',' | '+' | '-' | '*' | '/' | '%') => {
                true
            }
            TokenKind::Ident => {
                let field = at
                    .checked_sub(1)
                    .and_then(|before| key.get(before))
                    .is_some_and(|before| before.kind == TokenKind::Punct('.'));
                let root_or_call = matches!(
                    key.get(at + 1).map(|after| after.kind),
                    Some(TokenKind::Punct('.' | '('))
                );
                let name = text(src, token);
                field || root_or_call || matches!(name, "input" | "data") || bound.contains(&name)
            }
            TokenKind::Punct(_) => false,
        })
}

/// One definition of a complete rule: the head's span to replace and its value text.
struct Definition {
    head_start: usize,
    head_end: usize,
    value: String,
    has_body: bool,
}

/// Reads the definition starting at `index` (`name = value {`, `name {`, `name if {`,
/// `name = value` alone on its lines; `name := value` too when `only`: the only definition, as
/// the engine reads templates, or any in the proxy's OPA 1.x policies); Err says why it cannot
/// be rewritten.
/// `braceless`: the definition's tokens up to the next rule, when a body written `if expr`
/// without braces may be taken (it may when no `else` follows it).
fn definition(
    src: &str,
    tokens: &[Token],
    index: usize,
    only: bool,
    braceless: Option<&[Token]>,
) -> Result<Definition, String> {
    let name = tokens.get(index).ok_or("no token")?;
    let next = tokens.get(index + 1);
    let assigned = only && assigns_after(tokens, index);
    let (value, value_end, body_at) = if is_punct(next, '{') || is_ident(src, next, "if") {
        ("true".to_string(), name.end, index + 1)
    } else if assigned || (is_punct(next, '=') && !is_punct(tokens.get(index + 2), '=')) {
        let first = if assigned { index + 3 } else { index + 2 };
        // The head is replaced by `__mg_defs_name[value]` on the name's line: a value that
        // starts on a later line (after a comment or a line break) would take the line breaks
        // before it away, and every later line would move.
        if tokens
            .get(first)
            .is_some_and(|value| value.line != name.line)
        {
            return Err(format!(
                "the value of `{}` on line {} starts on a later line",
                text(src, name),
                name.line
            ));
        }
        let mut depth = 0usize;
        let mut at = first;
        loop {
            let token = tokens.get(at).ok_or("the rule's value runs to the end")?;
            match token.kind {
                TokenKind::Punct('{' | '[' | '(') => depth += 1,
                TokenKind::Punct('}' | ']' | ')') => {
                    depth = depth.checked_sub(1).ok_or("unbalanced value")?;
                }
                _ => {}
            }
            let following = tokens.get(at + 1);
            if depth == 0
                && (is_punct(following, '{')
                    || is_ident(src, following, "if")
                    || following.is_none_or(|f| f.line != token.line))
            {
                break;
            }
            at += 1;
        }
        let (start, end) = (
            tokens.get(first).ok_or("empty value")?.start,
            tokens.get(at).ok_or("empty value")?.end,
        );
        (src.get(start..end).unwrap_or("").to_string(), end, at + 1)
    } else {
        return Err(format!(
            "the definition of `{}` on line {} is not `name = value {{ ... }}`",
            text(src, name),
            name.line
        ));
    };
    let head_line = body_at
        .checked_sub(1)
        .and_then(|at| tokens.get(at))
        .map(|t| t.line);
    let has_body = match tokens.get(body_at) {
        Some(t) if t.kind == TokenKind::Punct('{') && Some(t.line) == head_line => true,
        Some(t) if is_ident(src, Some(t), "if") => {
            if !is_punct(tokens.get(body_at + 1), '{') {
                let no_else = braceless
                    .is_some_and(|rest| !rest.iter().any(|t| is_ident(src, Some(t), "else")));
                if no_else {
                    // The body runs to the end of the definition and stays as it is.
                    return Ok(Definition {
                        head_start: name.start,
                        head_end: value_end,
                        value,
                        has_body: true,
                    });
                }
                return Err(format!("`if` without braces on line {}", t.line));
            }
            true
        }
        Some(t) if Some(t.line) == head_line => {
            return Err(format!("unexpected text after the head on line {}", t.line));
        }
        Some(t) if t.kind == TokenKind::Punct('{') => {
            return Err(format!("a body on its own line ({})", t.line));
        }
        _ => false,
    };
    if has_body {
        let open = if is_ident(src, tokens.get(body_at), "if") {
            body_at + 1
        } else {
            body_at
        };
        let close = matching_close(tokens, open).ok_or("unclosed body")?;
        if is_ident(src, tokens.get(close + 1), "else") {
            return Err(format!("an `else` chain on line {}", name.line));
        }
    }
    Ok(Definition {
        head_start: name.start,
        head_end: value_end,
        value,
        has_body,
    })
}

/// A rewrite's outcome: the new source and whether anything changed, or why the module's
/// complete rules cannot be rewritten.
pub type Rewritten = Result<(String, bool), String>;

/// Rewrites every complete rule of the module that has several definitions, or one that may
/// produce several values, reporting conflicts with [`OnConflict::Marker`] (see the module
/// docs). Returns the new source and whether anything changed; the inner Err names what cannot
/// be rewritten (the engine then runs the template on the interpreter), the outer one edits
/// that cannot be applied (the template is refused: see [`RewriteError`]). `main_module`:
/// rules of other modules (libs) cannot report the marker, so any such rule is an inner Err.
pub fn single_value_rules(
    src: &str,
    version: RegoVersion,
    main_module: bool,
) -> Result<Rewritten, RewriteError> {
    let on_conflict = if main_module {
        Some(OnConflict::Marker)
    } else {
        None
    };
    single_value_rules_with(src, version, on_conflict)
}

/// [`single_value_rules`] with the conflict reported as `on_conflict` says (`None`: the module
/// cannot report one, so a rule to rewrite is an inner Err).
pub fn single_value_rules_with(
    src: &str,
    version: RegoVersion,
    on_conflict: Option<OnConflict>,
) -> Result<Rewritten, RewriteError> {
    match single_value_edits(src, version, on_conflict) {
        Ok((edits, appended)) => {
            let changed = !edits.is_empty();
            Ok(Ok((apply(src, edits, &appended)?, changed)))
        }
        Err(why) => Ok(Err(why)),
    }
}

/// The edits of [`single_value_rules`] and the rules to append; Err says why the module's
/// complete rules cannot be rewritten.
fn single_value_edits(
    src: &str,
    version: RegoVersion,
    on_conflict: Option<OnConflict>,
) -> Result<(Vec<Edit>, String), String> {
    let tokens = tokenize(src);
    let depth = depths(&tokens);
    let starts: Vec<usize> = rule_starts(src, &tokens, &depth).collect();
    let mut complete: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &index in &starts {
        let next = tokens.get(index + 1);
        let assigned = is_punct(next, ':') && is_punct(tokens.get(index + 2), '=');
        let head = is_punct(next, '=') || is_punct(next, '{') || is_ident(src, next, "if");
        if (head || assigned)
            && let Some(name) = tokens.get(index)
        {
            complete.entry(text(src, name)).or_default().push(index);
        }
    }
    let mut edits = Vec::new();
    let mut appended = String::new();
    // The tokens of the definition starting at `index`: up to the next rule.
    let definition_tokens = |index: usize| {
        let end = starts
            .iter()
            .find(|&&start| start > index)
            .copied()
            .unwrap_or(tokens.len());
        tokens.get(index..end).unwrap_or_default()
    };
    // The module's rules: a rule named in a body is one value (a complete rule's, or a whole
    // set or object).
    let rules: Vec<&str> = starts
        .iter()
        .filter_map(|&index| tokens.get(index))
        .map(|token| text(src, token))
        .collect();
    for &index in &starts {
        if let Some(why) =
            function_with_several_values(src, &tokens, index, definition_tokens(index), &rules)
        {
            return Err(why);
        }
    }
    for (name, definitions) in &complete {
        if let [only] = definitions.as_slice() {
            // One definition: rewritten only when it may produce several values.
            if !may_produce_several_values(src, definition_tokens(*only), &rules) {
                continue;
            }
        } else if on_conflict == Some(OnConflict::Report) {
            // Definitions that all give the same literal (`allow if ...` several times) cannot
            // conflict: the proxy leaves them alone, so such a policy costs nothing more. (The
            // engine rewrites them too, which its VM-equivalence tests pin.)
            let values: BTreeSet<Option<&str>> = definitions
                .iter()
                .map(|&index| constant_value(src, definition_tokens(index)))
                .collect();
            if values.len() == 1 && values.iter().all(Option::is_some) {
                continue;
            }
        }
        let Some(on_conflict) = on_conflict else {
            let what = match definitions.len() {
                1 => "a definition that may produce several values",
                _ => "several definitions",
            };
            return Err(format!("the complete rule `{name}` has {what} in a lib"));
        };
        let defs = format!("__mg_defs_{name}");
        for &index in definitions {
            // The proxy's form takes `if expr` bodies too (the engine's VM-equivalence tests
            // pin its shapes).
            let braceless = (on_conflict == OnConflict::Report).then(|| definition_tokens(index));
            // `name := v` defined more than once: OPA 1.x takes it, like `=`; the engine's
            // templates are read as OPA 0.x refused it.
            let assigned_ok = definitions.len() == 1 || on_conflict == OnConflict::Report;
            let def = definition(src, &tokens, index, assigned_ok, braceless)
                .map_err(|why| format!("the complete rule `{name}`: {why}"))?;
            let head = match (version, def.has_body) {
                (RegoVersion::V0, true) => format!("{defs}[{}]", def.value),
                (RegoVersion::V0, false) => format!("{defs}[{}] {{ true }}", def.value),
                (RegoVersion::V1, _) => format!("{defs} contains {}", def.value),
            };
            edits.push(Edit {
                start: def.head_start,
                end: def.head_end,
                text: head,
            });
        }
        let when = if version == RegoVersion::V1 {
            " if"
        } else {
            ""
        };
        appended.push_str(&format!(
            "{name} = __mg_value{when} {{ __mg_value = {defs}[_]; count({defs}) == 1 }}\n"
        ));
        let conflict = match (on_conflict, version) {
            (OnConflict::Marker, RegoVersion::V0) => {
                format!("violation[{{\"msg\": \"{CONFLICT_MARKER}\"}}]")
            }
            (OnConflict::Marker, RegoVersion::V1) => {
                format!("violation contains {{\"msg\": \"{CONFLICT_MARKER}\"}}")
            }
            (OnConflict::Report, RegoVersion::V0) => format!("{CONFLICTS_RULE}[\"{name}\"]"),
            (OnConflict::Report, RegoVersion::V1) => {
                format!("{CONFLICTS_RULE} contains \"{name}\"")
            }
        };
        appended.push_str(&format!("{conflict}{when} {{ count({defs}) > 1 }}\n"));
    }
    Ok((edits, appended))
}

/// One clause of a lookup-table function: its first token, key literal, value literal and the
/// byte where it ends.
type Clause = (usize, String, String, usize);

/// Rewrites lookup-table functions (see the module docs); returns the new source and the names
/// of the functions rewritten.
pub fn table_functions(
    src: &str,
    version: RegoVersion,
) -> Result<(String, Vec<String>), RewriteError> {
    let tokens = tokenize(src);
    let depth = depths(&tokens);
    // name -> [(start index, key, value text, end byte)], or None once a clause does not fit.
    let mut clauses: BTreeMap<&str, Option<Vec<Clause>>> = BTreeMap::new();
    let mut defaults: BTreeSet<&str> = BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        if is_ident(src, Some(token), "default")
            && let Some(next) = tokens.get(index + 1)
        {
            defaults.insert(text(src, next));
        }
    }
    for index in rule_starts(src, &tokens, &depth) {
        let Some(first) = tokens.get(index) else {
            continue;
        };
        let name = text(src, first);
        if !is_punct(tokens.get(index + 1), '(') {
            if clauses.contains_key(name) {
                clauses.insert(name, None);
            }
            continue;
        }
        let line = first.line;
        let fits = (|| {
            let key = tokens
                .get(index + 2)
                .filter(|t| t.kind == TokenKind::String)?;
            let key = text(src, key);
            if key.contains('\\') || !key.starts_with('"') {
                return None;
            }
            if !(is_punct(tokens.get(index + 3), ')')
                && is_punct(tokens.get(index + 4), '=')
                && !is_punct(tokens.get(index + 5), '='))
            {
                return None;
            }
            let value = tokens.get(index + 5)?;
            let scalar = matches!(value.kind, TokenKind::Number | TokenKind::String)
                || matches!(text(src, value), "true" | "false" | "null");
            let alone = tokens.get(index + 6).is_none_or(|t| t.line != line);
            (scalar && alone && value.line == line).then(|| {
                (
                    index,
                    key.to_string(),
                    text(src, value).to_string(),
                    value.end,
                )
            })
        })();
        let entry = clauses.entry(name).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), fits) {
            (Some(list), Some(clause)) => list.push(clause),
            _ => *entry = None,
        }
    }
    let mut edits = Vec::new();
    let mut appended = String::new();
    let mut rewritten = Vec::new();
    for (name, list) in clauses {
        let Some(list) = list else { continue };
        let keys: BTreeSet<&str> = list.iter().map(|(_, key, _, _)| key.as_str()).collect();
        if list.len() < 3 || keys.len() != list.len() || defaults.contains(name) {
            continue;
        }
        let table = format!("__mg_table_{name}");
        for (position, (index, _, _, end)) in list.iter().enumerate() {
            let text = if position == 0 {
                match version {
                    RegoVersion::V0 => {
                        format!("{name}(__mg_key) = __mg_out {{ __mg_out := {table}[__mg_key] }}")
                    }
                    RegoVersion::V1 => format!(
                        "{name}(__mg_key) := __mg_out if {{ __mg_out := {table}[__mg_key] }}"
                    ),
                }
            } else {
                String::new()
            };
            if let Some(first) = tokens.get(*index) {
                edits.push(Edit {
                    start: first.start,
                    end: *end,
                    text,
                });
            }
        }
        let entries: Vec<String> = list
            .iter()
            .map(|(_, key, value, _)| format!("{key}: {value}"))
            .collect();
        let assign = if version == RegoVersion::V1 {
            ":="
        } else {
            "="
        };
        appended.push_str(&format!("{table} {assign} {{{}}}\n", entries.join(", ")));
        rewritten.push(name.to_string());
    }
    Ok((apply(src, edits, &appended)?, rewritten))
}

#[cfg(test)]
mod tests;
