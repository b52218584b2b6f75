//! A small Rego tokenizer for the checks and rewrites Gatekeeper's framework applies to template
//! Rego before compiling it, and for two compensations of regorus divergences (1 and 2 of
//! `meshguard-policy-engine`'s `divergences`):
//!
//! - **data references**: a template and its libs may only read `data.lib.*` (their libs) and
//!   `data.inventory` (synced objects); Gatekeeper rejects any other `data` reference at load time.
//! - **chained rule bodies** (`head { a } { b }`, OPA: one head, two bodies OR-ed): regorus reads
//!   the second body as `else`. Rewritten into `head { a } head { b }`, equivalent in OPA.
//! - **a body line starting with `(`** after a complete expression: OPA ends the expression at
//!   the newline, regorus reads a call. Rewritten by inserting `;` before the `(`.
//!
//! - **`some` declarations OPA refuses** (declared twice in a body, or never used): regorus runs
//!   them; [`refused_declarations`] finds them so the module is refused as OPA refuses it.
//!
//! Rewrites keep every line where it was, so Rego errors still point at the right line.

/// A token of Rego source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Byte offset of its first byte in the source.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
    /// 1-based line.
    pub line: usize,
}

/// The kinds of [`Token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A name (keywords included).
    Ident,
    /// A string or raw string literal, quotes included.
    String,
    /// A number literal.
    Number,
    /// Any other character (operators are split into single characters).
    Punct(char),
}

/// Tokenizes Rego; comments and whitespace are dropped, newlines are not tokens (tokens carry
/// their line).
pub fn tokenize(src: &str) -> Vec<Token> {
    Tokens::new(src).collect()
}

/// The tokens of Rego source, one at a time: [`tokenize`] without the vector, for the checks
/// that look at each token once ([`crate::check_parse_cost`], [`crate::numbers::check_json`]).
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    src: &'a str,
    at: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    /// The tokens of `src`, from its start.
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            at: 0,
            line: 1,
        }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let bytes = self.src.as_bytes();
        let mut i = self.at;
        // The token's kind, first byte and line; it ends at `i`.
        let (kind, start, line) = loop {
            let &b = bytes.get(i)?;
            let (start, line) = (i, self.line);
            match b {
                b'\n' => {
                    self.line += 1;
                    i += 1;
                }
                b' ' | b'\t' | b'\r' => i += 1,
                b'#' => i = skip_to(bytes, i, [b'\n']),
                b'"' => {
                    i = string_end(bytes, i);
                    break (TokenKind::String, start, line);
                }
                b'`' => {
                    i = skip_to(bytes, i + 1, [b'`'])
                        .saturating_add(1)
                        .min(bytes.len());
                    let raw = bytes.get(start..i).unwrap_or_default();
                    self.line += raw.iter().filter(|&&c| c == b'\n').count();
                    break (TokenKind::String, start, line);
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    i = skip_while(bytes, i, |c| c.is_ascii_alphanumeric() || c == b'_');
                    break (TokenKind::Ident, start, line);
                }
                b'0'..=b'9' => {
                    i = skip_while(bytes, i, |c| c.is_ascii_alphanumeric() || c == b'.');
                    break (TokenKind::Number, start, line);
                }
                c @ 0..=0x7f => {
                    i += 1;
                    break (TokenKind::Punct(char::from(c)), start, line);
                }
                _ => {
                    let ch = self
                        .src
                        .get(i..)
                        .and_then(|s| s.chars().next())
                        .unwrap_or(' ');
                    i += ch.len_utf8();
                    break (TokenKind::Punct(ch), start, line);
                }
            }
        };
        self.at = i;
        Some(Token {
            kind,
            start,
            end: i,
            line,
        })
    }
}

/// The index of the first byte from `at` on that `keep` does not hold for, or the end.
fn skip_while(bytes: &[u8], at: usize, keep: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&c| !keep(c)))
        .map_or(bytes.len(), |found| at + found)
}

/// The end of the double-quoted string that starts at `start` (just past its closing quote). An
/// unterminated string ends at its line's end: the line break is left to count the line (an
/// escape does not swallow it either). Shared with [`crate::numbers::check_json`], whose
/// strings are Rego's.
pub(crate) fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => return i + 1,
            b'\\' if bytes.get(i + 1) != Some(&b'\n') => i += 2,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index of the first byte from `at` on that is one of `stops`, or the end. Eight bytes at
/// a time while none is among them (comments and strings are most of a module, and all but the
/// punctuation of a JSON body, which [`crate::numbers::check_json`] reads at request time).
fn skip_to<const N: usize>(bytes: &[u8], at: usize, stops: [u8; N]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // Whether a byte of `word` is `byte`: nonzero exactly when `word ^ byte…` has a zero byte.
    let holds = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let mut i = at;
    while let Some(chunk) = bytes
        .get(i..i + 8)
        .and_then(|chunk| <[u8; 8]>::try_from(chunk).ok())
    {
        let word = u64::from_le_bytes(chunk);
        if stops.iter().any(|&stop| holds(word, stop)) {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|c| stops.iter().any(|stop| stop == c)))
        .map_or(bytes.len(), |found| i + found)
}

/// The source text of `token`.
pub fn text<'a>(src: &'a str, token: &Token) -> &'a str {
    src.get(token.start..token.end).unwrap_or("")
}

/// Whether a [`TokenKind::String`] token's text is a whole literal (the tokenizer ends an
/// unterminated string at its line's end, or a raw string at the end of the source).
pub fn is_terminated_string(text: &str) -> bool {
    if let Some(raw) = text.strip_prefix('`') {
        return raw.ends_with('`');
    }
    let mut chars = text.chars().skip(1);
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return chars.next().is_none(),
            _ => {}
        }
    }
    false
}

/// The source text of the consecutive `tokens` of `src` on one line, for a rewrite that copies
/// it elsewhere (a `with` modifier into each binding, a rule head before a chained body): a
/// copy must add no line, or every later line moves and errors name the wrong line. Comments
/// and line breaks between tokens become one space (whitespace in OPA's grammar, and a comment
/// copied onto one line would comment out the rest of it); other whitespace is kept as written.
/// A raw string spanning lines becomes the double-quoted string of the same value. None
/// when a string in `tokens` is unterminated: the module does not parse, and a copy onto one
/// line would pair its quote with another.
pub fn one_line(src: &str, tokens: &[Token]) -> Option<String> {
    let mut out = String::new();
    let mut previous: Option<&Token> = None;
    for token in tokens {
        if let Some(previous) = previous {
            let gap = src.get(previous.end..token.start).unwrap_or(" ");
            if gap.contains(['\n', '#']) {
                out.push(' ');
            } else {
                out.push_str(gap);
            }
        }
        let literal = text(src, token);
        if token.kind == TokenKind::String {
            if !is_terminated_string(literal) {
                return None;
            }
            if literal.starts_with('`') && literal.contains('\n') {
                out.push_str(&quoted(literal.trim_matches('`')));
                previous = Some(token);
                continue;
            }
        }
        out.push_str(literal);
        previous = Some(token);
    }
    Some(out)
}

/// `value` as a Rego (JSON) double-quoted string literal, on one line.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A reference to `data` found in Rego source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRef {
    /// 1-based line.
    pub line: usize,
    /// The first path segment after `data` (`lib`, `inventory`), or None for bare `data` or a
    /// computed segment.
    pub root: Option<String>,
}

/// Every `data` reference in the source (not counting `x.data` field accesses and strings).
pub fn data_refs(src: &str) -> Vec<DataRef> {
    let tokens = tokenize(src);
    let mut refs = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Ident || text(src, token) != "data" {
            continue;
        }
        let prev = index.checked_sub(1).and_then(|p| tokens.get(p));
        if prev.is_some_and(|p| p.kind == TokenKind::Punct('.') && p.end == token.start) {
            continue;
        }
        let next = tokens.get(index + 1);
        let after = tokens.get(index + 2);
        let root = match (next.map(|t| t.kind), after) {
            (Some(TokenKind::Punct('.')), Some(seg)) if seg.kind == TokenKind::Ident => {
                Some(text(src, seg).to_string())
            }
            (Some(TokenKind::Punct('[')), Some(seg)) if seg.kind == TokenKind::String => Some(
                text(src, seg)
                    .trim_matches(|c| c == '"' || c == '`')
                    .to_string(),
            ),
            _ => None,
        };
        refs.push(DataRef {
            line: token.line,
            root,
        });
    }
    refs
}

/// A `some` declaration that OPA's compiler refuses and regorus accepts (it then decides, where
/// OPA gives no decision at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDeclaration {
    /// 1-based line of the declaration.
    pub line: usize,
    /// OPA's message: `var x declared above` (declared twice in one body), `declared var x
    /// unused` (declared and never used).
    pub message: String,
}

/// The `some x` declarations OPA refuses at compile time (`v1/ast/compile.go`,
/// `rewriteDeclaredVar` and `checkUnusedDeclaredVars`) and regorus accepts: `x` declared twice
/// in the same body or comprehension, and `x` declared and named nowhere else in the module
/// (a conservative reading of "unused": a name used anywhere else is let through). `some x in
/// xs` is an iteration, not a declaration, and is not checked.
pub fn refused_declarations(src: &str) -> Vec<RefusedDeclaration> {
    let tokens = tokenize(src);
    let is_field = |index: usize| {
        index
            .checked_sub(1)
            .and_then(|prev| tokens.get(prev))
            .zip(tokens.get(index))
            .is_some_and(|(prev, token)| {
                prev.kind == TokenKind::Punct('.') && prev.end == token.start
            })
    };
    // The innermost open delimiter around each token (its body or comprehension), and how often
    // each name occurs as a variable.
    let mut open: Vec<usize> = Vec::new();
    let mut scope_of = Vec::with_capacity(tokens.len());
    let mut occurrences: std::collections::HashMap<&str, usize> = Default::default();
    for (index, token) in tokens.iter().enumerate() {
        scope_of.push(open.last().copied());
        match token.kind {
            TokenKind::Punct('{' | '[' | '(') => open.push(index),
            TokenKind::Punct('}' | ']' | ')') => {
                open.pop();
            }
            TokenKind::Ident if !is_field(index) => {
                *occurrences.entry(text(src, token)).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut declared: Vec<(Option<usize>, &str)> = Vec::new();
    let mut refused = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Ident || text(src, token) != "some" || is_field(index) {
            continue;
        }
        let mut names = Vec::new();
        let mut at = index + 1;
        while let Some(name) = tokens.get(at).filter(|t| t.kind == TokenKind::Ident) {
            names.push(name);
            at += 1;
            if tokens
                .get(at)
                .is_some_and(|t| t.kind == TokenKind::Punct(','))
            {
                at += 1;
            } else {
                break;
            }
        }
        // A declaration ends its expression; anything else (`some x in xs`, a parse error) is
        // not one.
        let Some(last) = names.last() else { continue };
        let ends = tokens.get(at).is_none_or(|next| {
            next.line != last.line || matches!(next.kind, TokenKind::Punct(';' | '}' | ']'))
        });
        if !ends {
            continue;
        }
        let scope = scope_of.get(index).copied().flatten();
        for name in names {
            let var = text(src, name);
            if var == "_" {
                continue;
            }
            if declared.contains(&(scope, var)) {
                refused.push(RefusedDeclaration {
                    line: name.line,
                    message: format!("var {var} declared above"),
                });
            } else {
                declared.push((scope, var));
                if occurrences.get(var).copied().unwrap_or(0) <= 1 {
                    refused.push(RefusedDeclaration {
                        line: name.line,
                        message: format!("declared var {var} unused"),
                    });
                }
            }
        }
    }
    refused
}

/// Whether a token ends an expression (so a following `(` on a new line starts a new one in OPA).
pub fn ends_expression(src: &str, token: &Token) -> bool {
    match token.kind {
        TokenKind::Ident => !matches!(
            text(src, token),
            "if" | "contains"
                | "else"
                | "not"
                | "some"
                | "every"
                | "in"
                | "with"
                | "as"
                | "default"
                | "import"
                | "package"
        ),
        TokenKind::String | TokenKind::Number => true,
        TokenKind::Punct(c) => matches!(c, ')' | ']' | '}'),
    }
}

/// Rewrites the two regorus parse divergences described in the module docs; returns the new
/// source (unchanged when nothing applies) and one note per rewrite (`line N: ...`).
pub fn compensate(src: &str) -> (String, Vec<String>) {
    let tokens = tokenize(src);
    // (byte offset, text to insert), applied back to front.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut notes = Vec::new();
    // Open delimiters; for `{` at top level, whether it opens a rule body (not a value literal).
    let mut stack: Vec<(char, bool)> = Vec::new();
    let mut last_top_close_was_body = false;
    // The indexes of the current top-level statement's first token and of its first body `{`.
    let mut statement_start: Option<usize> = None;
    let mut first_body: Option<usize> = None;
    let mut statement_has_else = false;
    let mut prev: Option<&Token> = None;
    for (index, token) in tokens.iter().enumerate() {
        let new_line = prev.is_some_and(|p| p.line != token.line);
        if stack.is_empty() {
            let continues = prev.is_some_and(|p| {
                matches!(p.kind, TokenKind::Punct('=' | ':' | ',' | '|'))
                    || (p.kind == TokenKind::Ident
                        && matches!(text(src, p), "if" | "contains" | "else" | "default"))
            });
            let chained_body = token.kind == TokenKind::Punct('{')
                && last_top_close_was_body
                && prev.is_some_and(|p| p.kind == TokenKind::Punct('}'));
            let else_keyword = token.kind == TokenKind::Ident && text(src, token) == "else";
            if chained_body {
                // The head is copied onto the line of the second body: as written, its strings
                // and raw strings kept whole, a comment in it dropped (see `one_line`).
                if let (Some(start), Some(body)) = (statement_start, first_body)
                    && !statement_has_else
                    && let Some(head) = tokens.get(start..body).and_then(|head| one_line(src, head))
                {
                    inserts.push((token.start, format!("{head} ")));
                    notes.push(format!(
                            "line {}: chained rule body `{{ ... }} {{ ... }}` split into two rules with the head `{head}`",
                            token.line
                        ));
                }
            } else if else_keyword {
                statement_has_else = true;
            } else if (new_line && !continues) || statement_start.is_none() {
                statement_start = Some(index);
                first_body = None;
                statement_has_else = false;
            }
        }
        if new_line
            && token.kind == TokenKind::Punct('(')
            && matches!(stack.last(), Some(('{' | '[', _)))
            && prev.is_some_and(|p| ends_expression(src, p))
        {
            inserts.push((token.start, "; ".to_string()));
            notes.push(format!(
                "line {}: a line starting with `(` ends the previous expression (as in OPA)",
                token.line
            ));
        }
        match token.kind {
            TokenKind::Punct(c @ ('{' | '[' | '(')) => {
                // A body follows a complete head (`p`, `p[x]`, `f(x)`, `= value`, `if`,
                // `else`); after an operator (`= {1} | {2} {`) or `=` a `{` opens a value.
                let is_body = c == '{'
                    && stack.is_empty()
                    && prev.is_some_and(|p| {
                        ends_expression(src, p)
                            || (p.kind == TokenKind::Ident && matches!(text(src, p), "if" | "else"))
                    });
                if is_body && first_body.is_none() {
                    first_body = Some(index);
                }
                stack.push((c, is_body));
            }
            TokenKind::Punct('}' | ']' | ')') => {
                if let Some((_, is_body)) = stack.pop()
                    && stack.is_empty()
                {
                    last_top_close_was_body = is_body;
                }
            }
            _ => {}
        }
        prev = Some(token);
    }
    if inserts.is_empty() {
        return (src.to_string(), notes);
    }
    let mut out = src.to_string();
    inserts.sort_by_key(|(offset, _)| std::cmp::Reverse(*offset));
    for (offset, text) in inserts {
        out.insert_str(offset, &text);
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_refs_are_found_outside_strings_and_fields() {
        let src = "package x\n# data.comment\nv { data.inventory.a; input.data.b; \"data.s\"\n data[\"lib\"].y; data }";
        let refs = data_refs(src);
        assert_eq!(
            refs,
            vec![
                DataRef {
                    line: 3,
                    root: Some("inventory".into())
                },
                DataRef {
                    line: 4,
                    root: Some("lib".into())
                },
                DataRef {
                    line: 4,
                    root: None
                },
            ]
        );
    }

    #[test]
    fn an_unterminated_string_ends_at_its_line() {
        let src = "p { \"a\n  x \"b\\\n  y\n}";
        let lines: Vec<(usize, &str)> = tokenize(src)
            .iter()
            .map(|token| (token.line, text(src, token)))
            .collect();
        assert_eq!(
            lines,
            [
                (1, "p"),
                (1, "{"),
                (1, "\"a"),
                (2, "x"),
                (2, "\"b\\"),
                (3, "y"),
                (4, "}")
            ]
        );
    }

    #[test]
    fn long_comments_and_strings_are_skipped_whole() {
        // Comments are skipped eight bytes at a time: a line break at every offset of the last
        // word, and a comment running to the end of the source.
        for pad in 0..17 {
            let src = format!(
                "a # {}[[\nb \"{}\\\"[\" c\n# {}",
                "x".repeat(pad),
                "y".repeat(pad),
                "z".repeat(pad)
            );
            let tokens: Vec<(usize, &str)> = tokenize(&src)
                .iter()
                .map(|token| (token.line, text(&src, token)))
                .collect();
            let string = format!("\"{}\\\"[\"", "y".repeat(pad));
            assert_eq!(
                tokens,
                [(1, "a"), (2, "b"), (2, string.as_str()), (2, "c")],
                "{src:?}"
            );
        }
    }

    #[test]
    fn raw_strings_span_lines_and_an_unterminated_one_ends_the_source() {
        let src = "a `x\n[\n` b\nc `y\nz";
        let tokens: Vec<(TokenKind, usize, &str)> = tokenize(src)
            .iter()
            .map(|token| (token.kind, token.line, text(src, token)))
            .collect();
        assert_eq!(
            tokens,
            [
                (TokenKind::Ident, 1, "a"),
                (TokenKind::String, 1, "`x\n[\n`"),
                (TokenKind::Ident, 3, "b"),
                (TokenKind::Ident, 4, "c"),
                (TokenKind::String, 4, "`y\nz"),
            ]
        );
    }

    #[test]
    fn declarations_opa_refuses_are_found() {
        let src = "package t\np {\n  some i\n  some i\n  input.a[i]\n}\nq {\n  some j, k\n  input.b[j]\n}\n";
        let refused: Vec<(usize, String)> = refused_declarations(src)
            .into_iter()
            .map(|r| (r.line, r.message))
            .collect();
        assert_eq!(
            refused,
            [
                (4, "var i declared above".to_string()),
                (8, "declared var k unused".to_string())
            ]
        );
        // Iterations, comprehensions' own scopes, wildcards and a name used anywhere else (here in
        // another rule: conservative) are let through.
        let ok = "package t\np {\n  some x in input.a\n  some y\n  input.b[y]\n  n := [y | some y; input.c[y]]\n  some _\n}\nq { some z; true }\nr { z := 1; z > 0 }\n";
        assert_eq!(refused_declarations(ok), []);
    }

    #[test]
    fn chained_bodies_are_split() {
        let src = "package t\nv[m] { input.a == 1; m := \"one\" } { input.b == 2; m := \"two\" }\n";
        let (out, notes) = compensate(src);
        assert_eq!(
            out,
            "package t\nv[m] { input.a == 1; m := \"one\" } v[m] { input.b == 2; m := \"two\" }\n"
        );
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn multi_line_chained_bodies_keep_lines() {
        let src = "package t\nf(x) = y {\n  x == 1\n  y := 1\n} {\n  x == 2\n  y := 2\n}\n";
        let (out, _) = compensate(src);
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(out.contains("} f(x) = y {"), "{out}");
    }

    #[test]
    fn a_chained_body_gets_its_head_as_written_on_one_line() {
        // Copied as written (the old copy joined whitespace-separated words: a string with two
        // spaces lost one, silently changing the value), strings whole, a comment dropped (on
        // one line it would comment out the second body) and a raw string spanning lines
        // quoted on one line (its line break would move every later line).
        let src = "package t\np = {\n  \"k\": \"a  b\", # why\n  \"r\": `x\ny`\n} { input.x } { input.y }\nq { true }\n";
        let (out, notes) = compensate(src);
        assert_eq!(
            out,
            "package t\np = {\n  \"k\": \"a  b\", # why\n  \"r\": `x\ny`\n} { input.x } p = { \"k\": \"a  b\", \"r\": \"x\\ny\" } { input.y }\nq { true }\n"
        );
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn strings_are_terminated_or_not() {
        for (literal, whole) in [
            ("\"a\"", true),
            ("\"a\\\"\"", true),
            ("\"\"", true),
            ("``", true),
            ("`a\nb`", true),
            ("\"", false),
            ("\"a", false),
            ("\"a\\\"", false),
            ("\"a\\", false),
            ("`a", false),
        ] {
            assert_eq!(is_terminated_string(literal), whole, "{literal}");
        }
    }

    #[test]
    fn value_literals_are_not_bodies() {
        let src = "package t\np = {\"a\": 1} { input.x }\nq := {1, 2}\n";
        assert_eq!(compensate(src).0, src);
        // Found by `rego_differential`: a set after an operator was read as the body, so the
        // real body looked chained and got a copy of the head (the module no longer parsed).
        let src =
            "package t\nr = {1} | {2} { input.x }\ns = input.y * {-1.5, \"#\"} {\n  input.z\n}\n";
        assert_eq!(compensate(src), (src.to_string(), vec![]));
    }

    #[test]
    fn else_chains_are_left_alone() {
        let src = "package t\np = 1 { input.a } else = 2 { input.b }\n";
        assert_eq!(compensate(src).0, src);
    }

    #[test]
    fn paren_lines_end_the_previous_expression() {
        let src = "package t\np {\n  input.x\n  (input.a - input.b) >= input.x\n}\n";
        let (out, notes) = compensate(src);
        assert!(out.contains("  input.x\n  ; (input.a"), "{out}");
        assert_eq!(notes.len(), 1);
        // Inside call arguments and after an operator nothing changes.
        let src = "package t\np {\n  x := f(1,\n  (2))\n  y := 1 +\n  (2)\n}\n";
        assert_eq!(compensate(src).0, src);
    }
}
