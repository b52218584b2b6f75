//! Source rewrites that make regorus decide as OPA does (divergences 3 to 6 of
//! `meshguard-policy-engine`'s `divergences`) and that keep regorus' bytecode VM deciding as its
//! interpreter does.
//! Like [`crate::rego_scan`], every rewrite keeps each line where it was (inserted text goes on
//! the same line), so Rego errors still point at the template's lines.
//!
//! - **`not f(args)`** (divergence 3): OPA binds each call argument that is not a plain term (a
//!   variable or a scalar literal) to a fresh variable in an expression placed before the `not`,
//!   so an undefined argument makes the expression undefined; regorus negates the undefined call
//!   and gets true. Rewritten as OPA does: `not f(1, input.x)` becomes
//!   `__mg_not_1 = input.x; not f(1, __mg_not_1)`.
//! - **`sprintf` with fewer arguments than verbs** (divergence 4): OPA (Go's fmt) writes
//!   `%!v(MISSING)` for each verb without an argument; regorus returns undefined. When the format
//!   is a string literal and the arguments an array literal (how templates call it), the verbs
//!   without an argument are rewritten into the literal text `%!v(MISSING)` (`%%!v(MISSING)` in
//!   the format), which is what OPA prints.
//! - **`x := <undefined>` in the VM**: regorus 0.14.1's VM lets a local assignment of an
//!   undefined value succeed (the interpreter and OPA fail the body). Only for the VM program,
//!   each `x := expr` in a body is followed by `; x == x`, which fails when `x` is undefined and
//!   is always true otherwise.
//! - **`any`/`all`** (OPA's deprecated builtins, still used by gatekeeper-library templates) are
//!   missing from regorus: calls are redirected to Rego functions appended to the module.

use crate::rego_scan::{Token, TokenKind, ends_expression, one_line, text, tokenize};

/// An edit: replace `start..end` with `text` (an insertion when `start == end`).
pub struct Edit {
    /// First byte replaced.
    pub start: usize,
    /// Just past the last byte replaced.
    pub end: usize,
    /// The replacement.
    pub text: String,
}

/// Why a rewrite refused a module. Each is a bug of the rewrites, never of the module, but a
/// rewrite that went ahead would cut a character in two or land inside text another edit
/// replaced: a panic, or a module that silently says something else. So the module is refused
/// (a template load error, a refused filter config) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteError {
    /// An edit's range is reversed or runs past the end of the source.
    OutOfRange {
        /// 1-based line of the edit's start (of the end of the source when past it).
        line: usize,
        /// The edit's range.
        range: std::ops::Range<usize>,
    },
    /// An edit starts or ends inside a multi-byte character.
    SplitsCharacter {
        /// 1-based line of the offset.
        line: usize,
        /// The offending byte offset.
        offset: usize,
    },
    /// An edit starts inside text that another edit replaces.
    Overlap {
        /// 1-based line where the second edit starts.
        line: usize,
        /// The range of the edit applied first.
        first: std::ops::Range<usize>,
        /// The range of the edit that starts inside it.
        second: std::ops::Range<usize>,
    },
    /// The `not` rewrites, rescanning the bindings they copied, did not settle within
    /// [`MAX_PASSES`] passes or grew the module past [`MAX_GROWTH`] times its size.
    Unsettled {
        /// 1-based line of the last rewrite made.
        line: usize,
    },
}

impl RewriteError {
    /// The 1-based line of the module the error is about.
    pub fn line(&self) -> usize {
        match self {
            Self::OutOfRange { line, .. }
            | Self::SplitsCharacter { line, .. }
            | Self::Overlap { line, .. }
            | Self::Unsettled { line } => *line,
        }
    }
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the rewrites for regorus' divergences from OPA cannot rewrite this module: ")?;
        match self {
            Self::OutOfRange { range, .. } => {
                write!(f, "an edit of bytes {range:?} runs past its end")
            }
            Self::SplitsCharacter { offset, .. } => {
                write!(f, "an edit would cut the character at byte {offset} in two")
            }
            Self::Overlap { first, second, .. } => write!(
                f,
                "an edit of bytes {second:?} starts inside the text that bytes {first:?} are replaced by"
            ),
            Self::Unsettled { .. } => f.write_str(
                "the `not` rewrites nest too deeply (bindings inside bindings) to settle",
            ),
        }
    }
}

impl std::error::Error for RewriteError {}

/// The 1-based line of byte `offset` of `src`.
pub fn line_of(src: &str, offset: usize) -> usize {
    let before = src.as_bytes().get(..offset).unwrap_or(src.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Applies `edits` to `src`. Edits may come in any order; edits at the same offset apply in
/// the order given (an insertion before a replacement starting there). Refused, with nothing
/// applied, when an edit is out of range, splits a character, or starts inside the text
/// another edit replaces (it would land in the other's replacement: never what was meant).
pub fn apply(src: &str, mut edits: Vec<Edit>) -> Result<String, RewriteError> {
    edits.sort_by_key(|edit| (edit.start, edit.end));
    let added: usize = edits.iter().map(|edit| edit.text.len()).sum();
    let mut out = String::with_capacity(src.len() + added);
    // Bytes of `src` consumed so far (copied or replaced), and the range that consumed them.
    let mut done = 0usize;
    let mut previous = 0..0;
    for edit in edits {
        let range = edit.start..edit.end;
        if range.start > range.end || range.end > src.len() {
            let line = line_of(src, range.start);
            return Err(RewriteError::OutOfRange { line, range });
        }
        if let Some(&offset) = [range.start, range.end]
            .iter()
            .find(|&&offset| !src.is_char_boundary(offset))
        {
            let line = line_of(src, offset);
            return Err(RewriteError::SplitsCharacter { line, offset });
        }
        if range.start < done {
            return Err(RewriteError::Overlap {
                line: line_of(src, range.start),
                first: previous,
                second: range,
            });
        }
        out.push_str(src.get(done..range.start).unwrap_or_default());
        out.push_str(&edit.text);
        done = range.end;
        previous = range;
    }
    out.push_str(src.get(done..).unwrap_or_default());
    Ok(out)
}

/// Whether `token` is the punctuation `c`.
pub fn is_punct(token: Option<&Token>, c: char) -> bool {
    token.is_some_and(|t| t.kind == TokenKind::Punct(c))
}

/// For each token, how many delimiters are open before it.
pub fn depths(tokens: &[Token]) -> Vec<usize> {
    let mut depth = 0usize;
    tokens
        .iter()
        .map(|token| match token.kind {
            TokenKind::Punct('{' | '[' | '(') => {
                depth += 1;
                depth - 1
            }
            TokenKind::Punct('}' | ']' | ')') => {
                depth = depth.saturating_sub(1);
                depth
            }
            _ => depth,
        })
        .collect()
}

/// The index of the token closing the delimiter opened at `open`.
pub fn matching_close(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        match token.kind {
            TokenKind::Punct('{' | '[' | '(') => depth += 1,
            TokenKind::Punct('}' | ']' | ')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// The index of the last token of the body expression starting at `from`.
fn expression_end(src: &str, tokens: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut index = from;
    loop {
        let token = tokens.get(index)?;
        match token.kind {
            TokenKind::Punct('{' | '[' | '(') => depth += 1,
            TokenKind::Punct('}' | ']' | ')') if depth == 0 => return index.checked_sub(1),
            TokenKind::Punct('}' | ']' | ')') => depth -= 1,
            TokenKind::Punct(';' | '|') if depth == 0 => return index.checked_sub(1),
            _ => {}
        }
        let next = tokens.get(index + 1);
        if depth == 0
            && next.is_none_or(|n| n.line != token.line)
            && ends_expression(src, token)
            && !next.is_some_and(|n| n.kind == TokenKind::Ident && text(src, n) == "with")
        {
            return Some(index);
        }
        index += 1;
    }
}

/// Every rewrite that makes regorus read a module as OPA does, in order: the parse divergences
/// ([`crate::rego_scan::compensate`]), divergences 3 and 4, and the deprecated builtins. Template
/// Rego and plain modules (`meshguard policy test`) both go through here; returns the source and
/// one note per rewrite (`line N: ...`).
pub fn opa_compatible(src: &str) -> Result<(String, Vec<String>), RewriteError> {
    let (rewritten, mut notes) = crate::rego_scan::compensate(src);
    let (rewritten, opa_notes) = opa_semantics(&rewritten)?;
    notes.extend(opa_notes);
    Ok((deprecated_builtins(&rewritten)?, notes))
}

/// At most this many passes of [`opa_semantics`] (one per level of `not` calls nested in the
/// arguments of `not` calls; real modules need two at most).
pub const MAX_PASSES: usize = 8;

/// At most this many times its input's size (plus 4 KiB) is the output of [`opa_semantics`]
/// (`with` modifiers are copied into every binding).
pub const MAX_GROWTH: usize = 16;

/// Divergences 3 and 4 (applied for both evaluators); returns the source and notes.
///
/// A rewritten `not f(arg)` copies `arg` into a binding before the `not`, so a construct inside
/// `arg` (a `not` call in a comprehension, a `sprintf`) moves into the binding and is rewritten
/// there, by the next pass over the output: an edit of the same pass would land inside the
/// argument's replacement. Passes repeat until one finds nothing to rewrite.
pub fn opa_semantics(src: &str) -> Result<(String, Vec<String>), RewriteError> {
    let mut out = src.to_string();
    let mut notes: Vec<String> = Vec::new();
    let mut fresh = 0usize;
    let limit = src.len().saturating_mul(MAX_GROWTH).saturating_add(4096);
    for _ in 0..MAX_PASSES {
        let (edits, pass_notes) = opa_semantics_pass(&out, &mut fresh);
        let Some(last) = edits.iter().map(|edit| edit.start).max() else {
            return Ok((out, notes));
        };
        let line = line_of(&out, last);
        out = apply(&out, edits)?;
        for note in pass_notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        if out.len() > limit {
            return Err(RewriteError::Unsettled { line });
        }
    }
    let line = line_of(&out, out.len());
    Err(RewriteError::Unsettled { line })
}

/// One pass of [`opa_semantics`]: the edits and their notes. Constructs inside an argument that
/// this pass binds are left for the next pass (see [`opa_semantics`]).
fn opa_semantics_pass(src: &str, fresh: &mut usize) -> (Vec<Edit>, Vec<String>) {
    let tokens = tokenize(src);
    let depth = depths(&tokens);
    let mut edits = Vec::new();
    let mut notes = Vec::new();
    // The argument ranges this pass replaces with bindings.
    let mut bound: Vec<std::ops::Range<usize>> = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.kind != TokenKind::Ident {
            continue;
        }
        if bound.iter().any(|range| range.contains(&token.start)) {
            continue;
        }
        // Rego v1's one-expression body (`p if not f(x)`) sits at depth 0: its bindings need
        // braces of their own.
        let top = depth.get(index).copied().unwrap_or(0) == 0;
        let v1_body = top
            && index
                .checked_sub(1)
                .and_then(|i| tokens.get(i))
                .is_some_and(|prev| prev.kind == TokenKind::Ident && text(src, prev) == "if");
        if top && !v1_body {
            continue;
        }
        match text(src, token) {
            "not" => {
                let end = if v1_body {
                    match expression_end(src, &tokens, index).and_then(|e| tokens.get(e)) {
                        Some(last) => Some(last.end),
                        None => continue,
                    }
                } else {
                    None
                };
                if let Some((bindings, replaced)) = not_call(src, &tokens, index, fresh) {
                    notes.push(format!(
                        "line {}: `not` call arguments bound before the negation (as in OPA)",
                        token.line
                    ));
                    let open = if end.is_some() { "{ " } else { "" };
                    edits.push(Edit {
                        start: token.start,
                        end: token.start,
                        text: format!("{open}{bindings}"),
                    });
                    bound.extend(replaced.iter().map(|edit| edit.start..edit.end));
                    edits.extend(replaced);
                    if let Some(end) = end {
                        edits.push(Edit {
                            start: end,
                            end,
                            text: " }".into(),
                        });
                    }
                }
            }
            "sprintf" => {
                if let Some(edit) = sprintf_call(src, &tokens, index) {
                    notes.push(format!(
                        "line {}: sprintf verbs without arguments print %!v(MISSING) (as in OPA)",
                        token.line
                    ));
                    edits.push(edit);
                }
            }
            _ => {}
        }
    }
    (edits, notes)
}

/// `not name(.args)`: the bindings to insert before `not` and the argument replacements.
fn not_call(
    src: &str,
    tokens: &[Token],
    not: usize,
    fresh: &mut usize,
) -> Option<(String, Vec<Edit>)> {
    // The function name: ident (. ident)*, then `(`.
    let mut index = not + 1;
    tokens.get(index).filter(|t| t.kind == TokenKind::Ident)?;
    while is_punct(tokens.get(index + 1), '.')
        && tokens
            .get(index + 2)
            .is_some_and(|t| t.kind == TokenKind::Ident)
    {
        index += 2;
    }
    let open = index + 1;
    let open_token = tokens
        .get(open)
        .filter(|t| t.kind == TokenKind::Punct('('))?;
    if tokens.get(index)?.end != open_token.start {
        return None;
    }
    let close = matching_close(tokens, open)?;
    // Split the arguments at top-level commas.
    let mut args: Vec<(usize, usize)> = Vec::new();
    let mut start = open + 1;
    let mut depth = 0usize;
    for i in open + 1..close {
        match tokens.get(i)?.kind {
            TokenKind::Punct('{' | '[' | '(') => depth += 1,
            TokenKind::Punct('}' | ']' | ')') => depth = depth.saturating_sub(1),
            TokenKind::Punct(',') if depth == 0 => {
                args.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < close {
        args.push((start, close));
    }
    // `not f(x) with input as y`: the bindings are evaluated under the same modifiers, copied
    // onto the `not`'s line (a modifier spanning lines, copied as written, would add its line
    // breaks once per binding and move every later line).
    let modifiers = match tokens.get(close + 1) {
        Some(with) if with.kind == TokenKind::Ident && text(src, with) == "with" => {
            let last = expression_end(src, tokens, close + 1)?;
            format!(" {}", one_line(src, tokens.get(close + 1..=last)?)?)
        }
        _ => String::new(),
    };
    let mut bindings = String::new();
    let mut replaced = Vec::new();
    for (first, end) in args {
        let plain = end == first + 1
            && tokens.get(first).is_some_and(|t| {
                matches!(t.kind, TokenKind::String | TokenKind::Number)
                    || (t.kind == TokenKind::Ident && !is_punct(tokens.get(first + 1), '('))
            });
        // `-1` and similar literals are plain too.
        let negative_number = end == first + 2
            && is_punct(tokens.get(first), '-')
            && tokens
                .get(first + 1)
                .is_some_and(|t| t.kind == TokenKind::Number);
        if plain || negative_number || end <= first {
            continue;
        }
        let (from, to) = (tokens.get(first)?.start, tokens.get(end - 1)?.end);
        *fresh += 1;
        let var = format!("__mg_not_{fresh}");
        bindings.push_str(&format!("{var} = {}{modifiers}; ", src.get(from..to)?));
        replaced.push(Edit {
            start: from,
            end: to,
            text: var,
        });
    }
    (!replaced.is_empty()).then_some((bindings, replaced))
}

/// `sprintf("literal", [a, b])` with fewer elements than verbs: the format rewritten.
fn sprintf_call(src: &str, tokens: &[Token], name: usize) -> Option<Edit> {
    let open = tokens
        .get(name + 1)
        .filter(|t| t.kind == TokenKind::Punct('('))?;
    if tokens.get(name)?.end != open.start {
        return None;
    }
    let format = tokens
        .get(name + 2)
        .filter(|t| t.kind == TokenKind::String)?;
    if !is_punct(tokens.get(name + 3), ',') || !is_punct(tokens.get(name + 4), '[') {
        return None;
    }
    let close = matching_close(tokens, name + 4)?;
    if !is_punct(tokens.get(close + 1), ')') {
        return None;
    }
    let mut count = usize::from(close > name + 5);
    let mut depth = 0usize;
    for i in name + 5..close {
        match tokens.get(i)?.kind {
            TokenKind::Punct('{' | '[' | '(') => depth += 1,
            TokenKind::Punct('}' | ']' | ')') => depth = depth.saturating_sub(1),
            TokenKind::Punct(',') if depth == 0 && i + 1 < close => count += 1,
            // An array comprehension: the count is not static.
            TokenKind::Punct('|') if depth == 0 => return None,
            _ => {}
        }
    }
    let literal = text(src, format);
    let rewritten = mark_missing(literal, count)?;
    Some(Edit {
        start: format.start,
        end: format.end,
        text: rewritten,
    })
}

/// Rewrites the verbs past the `args`-th into `%%!X(MISSING)`; None when none is missing.
pub fn mark_missing(literal: &str, args: usize) -> Option<String> {
    let chars: Vec<char> = literal.chars().collect();
    let mut out = String::with_capacity(literal.len());
    let mut verbs = 0usize;
    let mut changed = false;
    let mut i = 0usize;
    while let Some(&c) = chars.get(i) {
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while chars
            .get(j)
            .is_some_and(|c| matches!(c, '-' | '+' | '#' | ' ' | '0'..='9' | '.'))
        {
            j += 1;
        }
        let Some(&verb) = chars.get(j) else {
            out.extend(chars.get(i..).unwrap_or_default());
            break;
        };
        if verb == '%' && j == i + 1 {
            out.push_str("%%");
        } else if verb.is_ascii_alphabetic() {
            if verbs >= args {
                out.push_str(&format!("%%!{verb}(MISSING)"));
                changed = true;
            } else {
                out.extend(chars.get(i..=j).unwrap_or_default());
            }
            verbs += 1;
        } else {
            out.extend(chars.get(i..=j).unwrap_or_default());
        }
        i = j + 1;
    }
    changed.then_some(out)
}

/// The VM-only guard after each local `x := expr` in a body (see the module docs).
pub fn vm_assignment_guards(src: &str) -> Result<String, RewriteError> {
    let tokens = tokenize(src);
    let depth = depths(&tokens);
    let mut edits = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let next = tokens.get(index + 1);
        let assign = token.kind == TokenKind::Punct(':')
            && next.is_some_and(|n| n.kind == TokenKind::Punct('=') && n.start == token.end);
        if !assign || depth.get(index).copied().unwrap_or(0) == 0 {
            continue;
        }
        let Some(var) = index.checked_sub(1).and_then(|i| tokens.get(i)) else {
            continue;
        };
        let name = text(src, var);
        if var.kind != TokenKind::Ident || name == "_" {
            continue;
        }
        let before = index.checked_sub(2).and_then(|i| tokens.get(i));
        let starts_expression = before.is_none_or(|b| {
            b.line != var.line || matches!(b.kind, TokenKind::Punct('{' | '[' | ';' | '|'))
        });
        if !starts_expression {
            continue;
        }
        if let Some(end) = expression_end(src, &tokens, index + 2).and_then(|e| tokens.get(e)) {
            edits.push(Edit {
                start: end.end,
                end: end.end,
                text: format!("; {name} == {name}"),
            });
        }
    }
    apply(src, edits)
}

/// OPA's deprecated `any`/`all` builtins (gatekeeper-library's allowed-repos template calls
/// `any`) are missing from regorus; calls become calls of Rego functions with OPA's definitions,
/// appended to the module.
pub fn deprecated_builtins(src: &str) -> Result<String, RewriteError> {
    let tokens = tokenize(src);
    let mut edits = Vec::new();
    let mut used = [false, false];
    for (index, token) in tokens.iter().enumerate() {
        let name = text(src, token);
        let slot = match name {
            "any" => 0,
            "all" => 1,
            _ => continue,
        };
        let call = tokens
            .get(index + 1)
            .is_some_and(|n| n.kind == TokenKind::Punct('(') && n.start == token.end);
        let field = index
            .checked_sub(1)
            .and_then(|i| tokens.get(i))
            .is_some_and(|p| p.kind == TokenKind::Punct('.') && p.end == token.start);
        if token.kind == TokenKind::Ident && call && !field {
            if let Some(flag) = used.get_mut(slot) {
                *flag = true;
            }
            edits.push(Edit {
                start: token.start,
                end: token.end,
                text: format!("__mg_{name}"),
            });
        }
    }
    let mut out = apply(src, edits)?;
    let [any_used, all_used] = used;
    if any_used {
        out.push_str("\n__mg_any(xs) = r { r = count([x | x = xs[_]; x == true]) > 0 }\n");
    }
    if all_used {
        out.push_str("\n__mg_all(xs) = r { r = count([x | x = xs[_]; x != true]) == 0 }\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
