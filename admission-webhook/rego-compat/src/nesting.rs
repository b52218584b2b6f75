//! A bound on the parsing work a module's brackets cause, checked before regorus parses it.
//!
//! Why: regorus 0.14's parser reads a `[` or `{` by trying a comprehension first: it parses the
//! first element and, when no `|` follows it, parses the bracket again as an array, set or
//! object. So a bracket's first element (up to the first `,` or `|` at its level, or to its
//! end when it has none) is parsed twice, and a text that is the first element of `k` nested
//! brackets is parsed `2^k` times. Measured on one module, release build: 12 nested `[` parse
//! in about 10 ms, 16 in 0.1 s, 18 in 0.5 s, and every two more levels multiply that by four.
//! The `authz_config` fuzz target found a 788-byte configuration (21 nested `[`) that held the
//! filter's `on_configure` for over 20 seconds; a ConstraintTemplate would hold the webhook the
//! same way. The doubling applies to everything inside, not only to brackets: ten nested `[`
//! around an array of 4,000 numbers parse in 1.3 s (each number is read 2^9 times), and sixteen
//! around 1,000 in 18 s, though their brackets alone cost little. Unclosed brackets double too:
//! each attempt reads on to the first parse error (the `rego_differential` hang: `obj[[[[…`
//! with 73 `[` never closed, in a 4 KB template). OPA's parser is linear, so nothing else
//! bounds it.
//!
//! The check sums, over the module's tokens outside strings and comments, `2^k` for each token
//! that is the first element of `k` open brackets (the parser's work, in token parses), and
//! refuses a module above [`MAX_WORK`], naming the line of the token that crossed it. It errs
//! on the side of the parser: a rule body `{ … }` has no `,` at its level, so its text counts
//! twice, although regorus parses a body once; and all the text after an unclosed bracket
//! counts, although regorus stops at the first parse error (so a module with some 17 unclosed
//! brackets or more is refused here rather than by regorus' parse error). Parentheses do not
//! backtrack and do not double (a `,` inside them ends no bracket's first element). The budget
//! is far above real Rego: the costliest file in the repository, a test whose `with input as`
//! reviews nest deepest (`policies/capabilities/src_test.rego`), costs 15,980, about 1/262 of
//! it (a test in the crate's root pins it within 1/16), while a single nest of 21 brackets exceeds it.

use crate::rego_scan::{Token, TokenKind, Tokens};

/// The most token parses a module may cause (about a second of parsing at worst: 4 million
/// tokens parsed once, or a single nest of 20 brackets).
pub const MAX_WORK: u64 = 1 << 22;

/// A module whose brackets would cost the parser too much. Its message leaves out the line, so
/// callers write `<module>:<line>: <message>` as regorus' own errors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line of the token that crossed the budget.
    pub line: usize,
    /// How many open brackets hold that token in their first element (it is parsed `2^depth`
    /// times).
    pub depth: u32,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "brackets nest {} deep here, and regorus parses the first element of each twice \
             (a comprehension, then a literal); the module's brackets would cost the parser \
             more than {MAX_WORK} token parses: flatten the literal or comprehension, close \
             its brackets, or move the data to `data`",
            self.depth
        )
    }
}

impl std::error::Error for TooDeep {}

/// The parse work of `text`'s tokens (see the module docs).
pub fn work(text: &str) -> u64 {
    let mut walk = Walk::default();
    for token in Tokens::new(text) {
        let _ = walk.step(&token);
    }
    walk.work
}

/// `Ok` when `text` is within [`MAX_WORK`].
pub fn check(text: &str) -> Result<(), TooDeep> {
    let mut walk = Walk::default();
    Tokens::new(text).try_for_each(|token| walk.step(&token))
}

/// What is open at a point of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A `[` or `{`; true while the text is in its first element.
    Bracket(bool),
    /// A `(`.
    Paren,
}

/// The work of a module's tokens so far, summed one token at a time (so one pass over the
/// tokens serves every bound of [`crate::check_parse_cost`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Walk {
    work: u64,
    open: Vec<Open>,
    /// How many of `open` are brackets still in their first element.
    doubling: u32,
}

impl Walk {
    /// Adds `token`'s work; Err at the first token whose work crosses [`MAX_WORK`].
    pub(crate) fn step(&mut self, token: &Token) -> Result<(), TooDeep> {
        let TokenKind::Punct(c) = token.kind else {
            return self.count(token);
        };
        match c {
            // A bracket is parsed as part of what holds it; its text, with its first element's
            // text doubled, is inside it.
            '[' | '{' | '(' => {
                let counted = self.count(token);
                if c == '(' {
                    self.open.push(Open::Paren);
                } else {
                    self.open.push(Open::Bracket(true));
                    self.doubling += 1;
                }
                counted
            }
            ']' | '}' | ')' => {
                if self.open.pop() == Some(Open::Bracket(true)) {
                    self.doubling -= 1;
                }
                self.count(token)
            }
            ',' | '|' => {
                if let Some(top @ Open::Bracket(true)) = self.open.last_mut() {
                    *top = Open::Bracket(false);
                    self.doubling -= 1;
                }
                self.count(token)
            }
            _ => self.count(token),
        }
    }

    fn count(&mut self, token: &Token) -> Result<(), TooDeep> {
        let before = self.work;
        let parses = 1u64.checked_shl(self.doubling).unwrap_or(u64::MAX);
        self.work = self.work.saturating_add(parses);
        if self.work > MAX_WORK && before <= MAX_WORK {
            return Err(TooDeep {
                line: token.line,
                depth: self.doubling,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "package p\n\nx := {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    #[test]
    fn each_level_doubles_the_work_of_its_first_element() {
        // `package p x := ` is five tokens; then the opening brackets (1 + 2 + 4), the `1`
        // inside three first elements (8), and the closing brackets (4 + 2 + 1).
        assert_eq!(work(&nested(3)), 5 + 7 + 8 + 7);
        assert_eq!(work(&nested(10)), 5 + 3 * (1 << 10) - 2);
        // The elements after the first are parsed once per attempt of the brackets around.
        assert_eq!(
            work("x := [[1, 2, 3]]"),
            3 + 1 + 2 + 4 + (2 + 2 + 2 + 2) + 2 + 1
        );
        assert_eq!(
            work("x := {\"a\": {\"b\": [1]}}"),
            3 + 1 + (2 + 2) + 2 + (4 + 4) + 4 + 8 + 4 + 2 + 1,
            "objects, sets and arrays all count, an object's first value in its first element"
        );
    }

    #[test]
    fn the_text_inside_counts_not_only_the_brackets() {
        // Found by reducing the `rego_differential` hang: ten brackets (1,023 bracket parses, a
        // thousandth of the old budget of 2^20 bracket parses) around 4,000 numbers parse in
        // 1 s, each number 2^9 times; fifty brackets never closed, before a rule, for minutes.
        let elements = "1,\n".repeat(4_000);
        let array = format!(
            "package p\n\nx := {}{elements}1{}\n",
            "[".repeat(10),
            "]".repeat(10)
        );
        assert!(work(&array) > 8_000 * (1 << 9), "{}", work(&array));
        assert!(work(&array) < MAX_WORK, "within the budget: about a second");
        let array = format!(
            "package p\n\nx := {}{}1{}\n",
            "[".repeat(12),
            elements.repeat(2),
            "]".repeat(12)
        );
        assert_eq!(
            check(&array),
            Err(TooDeep {
                line: 1025,
                depth: 11
            })
        );
        let unclosed = format!(
            "package p\n\nf(obj) = x {{\n  x := obj{}y\n}}\n\ng(a) {{\n  a == 1\n}}\n",
            "[".repeat(50)
        );
        let err = check(&unclosed).unwrap_err();
        assert_eq!(err, TooDeep { line: 4, depth: 21 });
        assert!(
            err.to_string().starts_with("brackets nest 21 deep here"),
            "{err}"
        );
    }

    #[test]
    fn commas_in_parentheses_and_comprehension_bodies_end_no_first_element() {
        // `f(1, …)` inside a bracket: the `,` is the call's, the bracket's first element goes on.
        assert_eq!(
            work("x := [f(1, [2])]"),
            3 + 1 + (2 + 2 + 2 + 2 + 2 + 4 + 2 + 2) + 1
        );
        // A comprehension's body follows its `|`: parsed once per attempt of what holds it.
        assert_eq!(
            work("x := [y | y := [1]]"),
            3 + 1 + 2 + 1 + (1 + 1 + 1 + 1 + 2 + 1) + 1
        );
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = "package p\n# [[[[[[[[\nx := \"[[[[{{{{\"\ny := `[[[[`\n";
        assert_eq!(work(text), 10, "ten tokens, none inside a bracket");
    }

    #[test]
    fn a_deep_nest_is_refused_at_the_token_that_crosses_the_budget() {
        assert_eq!(check(&nested(20)), Ok(()), "3 * 2^20 parses is within");
        let err = check(&nested(21)).unwrap_err();
        assert_eq!(err, TooDeep { line: 3, depth: 21 });
        assert!(
            err.to_string().starts_with("brackets nest 21 deep here"),
            "{err}"
        );
        // Many moderate nests add up.
        let many = format!(
            "package p\n{}",
            "x contains [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]\n".repeat(50)
        );
        assert!(check(&many).is_err());
        assert!(
            check(&"x := [".repeat(10_000)).is_err(),
            "unclosed brackets count too"
        );
    }
}
