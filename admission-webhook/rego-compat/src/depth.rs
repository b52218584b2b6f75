//! A bound on how deep a module's expressions recurse in regorus, checked before regorus parses
//! the module.
//!
//! Why: regorus 0.14 guards its parser's recursion where an expression opens a new one
//! (`parse_expr`: parentheses, brackets and calls, at most 32 deep), but a unary minus is not
//! guarded. `parse_unary_expr` reads its operand through the whole chain of precedence levels
//! again (`parse_in_expr`, comparisons, `|`, `&`, `+`/`-`, `*`/`/`, references), so each `-` of
//! a run costs some ten stack frames. Binary operators parse in a loop, but into a left-deep
//! tree (`((a - b) - c) - …`) that the interpreter, the VM's compiler and the tree's drop walk
//! recursively, one level per operator. An expression may go on after an operator at the end of
//! a line, so neither is limited by regorus' 1,024 columns a line. Measured on a thread with a
//! 2 MiB stack (as tokio's and the test harness' threads have): in a release build, some 500
//! `-` in a row overflow the stack in the parser, and some 5,000 `-`, `&` or `<=` in one
//! expression overflow it at evaluation; in a debug build (larger frames), some 200 `-`, and
//! 384 operators (in the VM's compiler; 256 pass). A stack overflow is not an error that anything can catch: the
//! webhook's or the CLI's process dies with SIGSEGV, and in the proxy the wasm VM traps. The
//! `authz_config` fuzz target found it (find 14: a 9 KB configuration with long runs of `-`,
//! `<=` and `&`).
//!
//! The check walks the tokens with a stack of open brackets and parentheses, and sums, for the
//! expression that holds each token, an upper bound on its tree's depth in rough units of a
//! debug build's stack (some 6 KB each): [`UNARY`] for a `-` that starts an operand, [`NESTED`] for each open bracket or
//! parenthesis around it, [`OPERATOR`] for each binary operator, `.` or index of a reference and
//! `in` before it in its expression, and, for a bracket closed earlier in its expression, that
//! bracket's own depth. An expression ends at `;`, `,` or a line break after a value when the
//! next line does not start with an operator. A module whose depth crosses [`MAX_DEPTH`] is
//! refused, naming the line. The budget is far above real Rego (the repository's deepest
//! expression, in a test whose `with input as` documents nest deepest, is 24, an eighth of it;
//! a test pins the repository within a quarter) and below the stack: a module at
//! the bound, in each shape, parses, evaluates and compiles for the VM on a 2 MiB thread in a
//! debug build (`tests/stack.rs`), and in the authz filter's wasm module (the host's tests).

use crate::rego_scan::{Token, TokenKind, Tokens, text};

/// The most depth an expression may have (see the module docs): 96 unary minus, or 192 binary
/// operators, in one expression.
pub const MAX_DEPTH: u32 = 192;

/// The depth a unary minus adds: the parser's whole chain of precedence levels, again.
pub const UNARY: u32 = 2;

/// The depth an open bracket or parenthesis adds: the same chain, from `parse_expr`.
pub const NESTED: u32 = 2;

/// The depth a binary operator, a reference's `.` or `[` or `in` adds: one level of the tree.
pub const OPERATOR: u32 = 1;

/// An expression that would recurse too deep in regorus. Its message leaves out the line, so
/// callers write `<module>:<line>: <message>` as regorus' own errors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepExpression {
    /// 1-based line of the token that crossed the bound.
    pub line: usize,
    /// The expression's depth there.
    pub depth: u32,
}

impl std::fmt::Display for DeepExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this expression is {} deep here (a unary `-` counts {UNARY}, a bracket or \
             parenthesis {NESTED}, an operator {OPERATOR}), more than {MAX_DEPTH}: regorus \
             recurses once per level and would overflow its stack; split the expression into \
             assignments of their own",
            self.depth
        )
    }
}

impl std::error::Error for DeepExpression {}

/// The greatest depth of `text`'s expressions (see the module docs).
pub fn deepest(text: &str) -> u32 {
    let mut walk = Walk::default();
    for token in Tokens::new(text) {
        let _ = walk.step(text, &token);
    }
    walk.deepest
}

/// `Ok` when every expression of `text` is within [`MAX_DEPTH`].
pub fn check(text: &str) -> Result<(), DeepExpression> {
    let mut walk = Walk::default();
    Tokens::new(text).try_for_each(|token| walk.step(text, &token))
}

/// The expression being read inside one bracket (or at the top level).
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    /// Unary minus and operators of the current expression so far.
    operators: u32,
    /// The depth of the deepest bracket closed in the current expression.
    inner: u32,
    /// The deepest expression inside this bracket, the current one included once it ends.
    deepest: u32,
}

impl Level {
    fn current(&self) -> u32 {
        self.operators.saturating_add(self.inner)
    }

    fn end_expression(&mut self) {
        self.deepest = self.deepest.max(self.current());
        self.operators = 0;
        self.inner = 0;
    }
}

/// The previous token, as far as the walk needs it.
#[derive(Debug, Clone, Copy)]
struct Previous {
    line: usize,
    end: usize,
    /// It ends a value (a name that is no keyword, a literal, a closing bracket): a `-` after
    /// it is binary, and a line break after it may end the expression.
    value: bool,
    /// It is `=` or `!` (so a `=` right after it makes `==` or `!=`).
    equals_or_bang: bool,
}

/// The depth of a module's expressions so far, one token at a time (so one pass over the tokens
/// serves every bound of [`crate::check_parse_cost`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Walk {
    top: Level,
    /// The levels that hold `top`, outermost first.
    outer: Vec<Level>,
    /// Σ over `outer` of each level's current depth plus [`NESTED`]: what holds `top`.
    held: u32,
    previous: Option<Previous>,
    /// The greatest depth seen.
    deepest: u32,
}

/// Keywords after which a `-` starts an operand, and after which a line break does not end the
/// expression.
const KEYWORDS: [&str; 12] = [
    "not", "in", "some", "every", "with", "as", "if", "else", "contains", "default", "package",
    "import",
];

impl Walk {
    /// Adds `token` (of `text`); Err at the first token whose expression crosses [`MAX_DEPTH`].
    pub(crate) fn step(&mut self, text_of: &str, token: &Token) -> Result<(), DeepExpression> {
        let word = (token.kind == TokenKind::Ident).then(|| text(text_of, token));
        let after_value = self.previous.is_some_and(|p| p.value);
        let continues = matches!(
            token.kind,
            TokenKind::Punct(
                '+' | '-' | '*' | '/' | '%' | '&' | '|' | '<' | '>' | '=' | '!' | '.' | '['
            )
        ) || word == Some("in");
        if after_value && !continues && self.previous.is_some_and(|p| p.line < token.line) {
            self.top.end_expression();
        }
        let adjacent = self.previous.is_some_and(|p| p.end == token.start);
        let result = match token.kind {
            TokenKind::Punct(c @ ('(' | '[' | '{')) => {
                // An index (`x[i]`) is one more level of the reference's tree as well.
                let index = if c == '[' && after_value && adjacent {
                    self.add(token, OPERATOR)
                } else {
                    Ok(())
                };
                self.held = self
                    .held
                    .saturating_add(self.top.current())
                    .saturating_add(NESTED);
                self.outer.push(std::mem::take(&mut self.top));
                index.and_then(|()| self.add(token, 0))
            }
            TokenKind::Punct(')' | ']' | '}') => {
                self.top.end_expression();
                let closed = self.top.deepest.saturating_add(NESTED);
                match self.outer.pop() {
                    Some(level) => {
                        self.top = level;
                        self.held = self
                            .held
                            .saturating_sub(self.top.current().saturating_add(NESTED));
                    }
                    // A closer without an opener: regorus refuses the module; start afresh.
                    None => self.top = Level::default(),
                }
                self.top.inner = self.top.inner.max(closed);
                self.add(token, 0)
            }
            TokenKind::Punct(';' | ',') => {
                self.top.end_expression();
                Ok(())
            }
            TokenKind::Punct('-') if !after_value => self.add(token, UNARY),
            TokenKind::Punct('+' | '-' | '*' | '/' | '%' | '&' | '|' | '<' | '>' | '.') => {
                self.add(token, OPERATOR)
            }
            TokenKind::Punct('=')
                if adjacent && self.previous.is_some_and(|p| p.equals_or_bang) =>
            {
                self.add(token, OPERATOR)
            }
            TokenKind::Ident if word == Some("in") => self.add(token, OPERATOR),
            _ => Ok(()),
        };
        let value = match token.kind {
            TokenKind::Ident => !word.is_some_and(|w| KEYWORDS.contains(&w)),
            TokenKind::Number | TokenKind::String => true,
            TokenKind::Punct(c) => matches!(c, ')' | ']' | '}'),
        };
        self.previous = Some(Previous {
            line: token.line,
            end: token.end,
            value,
            equals_or_bang: matches!(token.kind, TokenKind::Punct('=' | '!')),
        });
        result
    }

    /// Adds `depth` to the current expression; Err when its depth crosses [`MAX_DEPTH`].
    fn add(&mut self, token: &Token, depth: u32) -> Result<(), DeepExpression> {
        self.top.operators = self.top.operators.saturating_add(depth);
        let now = self.held.saturating_add(self.top.current());
        let before = self.deepest;
        self.deepest = self.deepest.max(now);
        if now > MAX_DEPTH && before <= MAX_DEPTH {
            return Err(DeepExpression {
                line: token.line,
                depth: now,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
