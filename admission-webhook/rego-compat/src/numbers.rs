//! A bound on number exponents, checked before regorus reads a Rego module or a JSON document.
//!
//! Why: regorus 0.14 reads a number with an exponent (`5e3`, `0.1E+20`) as an exact integer
//! where it can, multiplying the digits by `10^exponent` as a big integer. The cost grows
//! faster than the exponent: `0e2049067` takes 0.16 s, and `0e204906761` ran for minutes
//! (release build). Fuzzing found both ends of it: the `authz_config` target held a filter's
//! `on_configure` with a Rego literal `0e000000000000000000000000204906761`, and
//! `policy_review` held the webhook's AdmissionReview decoding for 87 s with an object field
//! `5121…1E111111111`. The same decoding reads the proxy's buffered JSON bodies
//! (`input.parsed_body`) and the verified JWT payload, so one request could stall an Envoy
//! worker. OPA keeps such numbers unexpanded, so nothing else bounds them.
//!
//! A number whose exponent exceeds [`MAX_EXPONENT`] in magnitude is refused. The bound is far
//! past anything real: float64, the widest number Kubernetes accepts in an object, ends at
//! `1.8e308`, and a JWT's claims are JSON numbers of the same range.

use crate::rego_scan::{self, Token, TokenKind, Tokens};

/// The largest exponent magnitude read (`1e1000` costs regorus microseconds).
pub const MAX_EXPONENT: u64 = 1000;

/// A number literal whose exponent is over [`MAX_EXPONENT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugeNumber {
    /// 1-based line of the literal.
    pub line: usize,
    /// The literal, cut to 40 characters.
    pub literal: String,
}

impl std::fmt::Display for HugeNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the number `{}` has an exponent beyond ±{MAX_EXPONENT}, which regorus would expand \
             digit by digit: write it without the exponent or within float64's range",
            self.literal
        )
    }
}

impl std::error::Error for HugeNumber {}

/// Checks every number literal of a Rego module (outside strings and comments).
pub fn check_rego(text: &str) -> Result<(), HugeNumber> {
    let mut literals = Literals::default();
    Tokens::new(text).try_for_each(|token| literals.step(text, &token))
}

/// Checks every number of a JSON document (outside strings). Not a validator: text that is not
/// JSON is left to the parser, which refuses it. Its own loop rather than [`Tokens`]: it runs on
/// every JSON body and JWT payload at request time, and skipping all but strings and numbers
/// costs a fifth less than tokenizing; strings end where the tokenizer ends them
/// (`rego_scan::string_end`: JSON's strings are Rego's) and numbers are checked alike.
pub fn check_json(text: &str) -> Result<(), HugeNumber> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'"' => i = rego_scan::string_end(bytes, i),
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
                check_literal(text.get(start..i).unwrap_or_default(), line)?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks a string value that a policy may hand to a number-reading builtin. Strings in an
/// input document are not numbers, but regorus' builtins read them as numbers where a policy
/// asks: `to_number` and `json.unmarshal` parse them as JSON, and `units.parse` /
/// `units.parse_bytes` take a number before a unit suffix (`512Mi`). The `policy_review` fuzz
/// target held the engine for minutes with a container's memory limit
/// `"5121…1E111111111Mi"`, which a container-limits policy parses with `units.parse`.
///
/// Refused: a string that is, once trimmed and unquoted, a number (sign, digits, an optional
/// point, an exponent) with at most three letters after it, and an exponent over the bound;
/// and a JSON document (`{…}`, `[…]`) with such a number. Any other string passes: an image
/// digest's `4e1234` is inside a longer word, which no builtin reads as a number.
pub fn check_text(text: &str) -> Result<(), HugeNumber> {
    let trimmed = text.trim();
    if trimmed.starts_with(['{', '[']) {
        return check_json(trimmed);
    }
    let unquoted = trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(trimmed);
    let number_end = unquoted
        .bytes()
        .rposition(|c| c.is_ascii_digit())
        .map_or(0, |at| at + 1);
    let (number, suffix) = unquoted.split_at(number_end);
    if suffix.len() <= 3 && suffix.bytes().all(|c| c.is_ascii_alphabetic()) && is_number(number) {
        return check_literal(number, 1);
    }
    Ok(())
}

/// A string of a document that [`check_text`] refuses, and where it is.
#[cfg(feature = "value")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringNumber {
    /// The keys and indices from the document's root, joined with `.`.
    pub path: String,
    /// The number.
    pub number: HugeNumber,
}

#[cfg(feature = "value")]
impl std::fmt::Display for StringNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.number)
    }
}

#[cfg(feature = "value")]
impl std::error::Error for StringNumber {}

/// [`check_text`] on every string of a document, keys included: the AdmissionRequest under
/// review, or the authz filter's input document.
#[cfg(feature = "value")]
pub fn check_strings(value: &regorus::Value) -> Result<(), StringNumber> {
    use regorus::Value;
    fn walk(value: &Value, path: &mut Vec<String>) -> Result<(), StringNumber> {
        let mut below = |segment: String, key: Option<&Value>, item: &Value| {
            path.push(segment);
            let checked = key
                .map_or(Ok(()), |key| walk(key, path))
                .and_then(|()| walk(item, path));
            path.pop();
            checked
        };
        match value {
            Value::String(text) => check_text(text).map_err(|number| StringNumber {
                path: path.join("."),
                number,
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(index, item)| below(index.to_string(), None, item)),
            Value::Set(items) => items.iter().try_for_each(|item| walk(item, path)),
            Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
                let name = key.as_string().map(|k| k.to_string()).unwrap_or_default();
                below(name, Some(key), item)
            }),
            _ => Ok(()),
        }
    }
    walk(value, &mut Vec::new())
}

/// Whether `text` has a number's shape: `[+-]digits[.digits][(e|E)[+-]digits]`, a point
/// with digits on either side.
fn is_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == bytes.len()
}

/// The number literals among a module's tokens, checked one token at a time (so one pass over
/// the tokens serves every bound of [`crate::check_parse_cost`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Literals {
    /// A number ending in `e`/`E` whose exponent may follow: the tokenizer splits a signed
    /// exponent (`1e+300`: `1e`, `+`, `300`), and regorus reads one number.
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    start: usize,
    end: usize,
    line: usize,
    /// Whether the sign has been seen (`end` is then past it).
    signed: bool,
}

impl Literals {
    /// Checks the number `token` ends, if any; `text` is the source of the tokens.
    #[inline]
    pub(crate) fn step(&mut self, text: &str, token: &Token) -> Result<(), HugeNumber> {
        if token.kind != TokenKind::Number && self.pending.is_none() {
            return Ok(());
        }
        if let Some(pending) = self.pending.take()
            && token.start == pending.end
        {
            match token.kind {
                TokenKind::Punct('+' | '-') if !pending.signed => {
                    self.pending = Some(Pending {
                        end: token.end,
                        signed: true,
                        ..pending
                    });
                    return Ok(());
                }
                TokenKind::Number if pending.signed => {
                    let literal = text.get(pending.start..token.end).unwrap_or_default();
                    return check_literal(literal, pending.line);
                }
                // `1e` alone has no exponent to check.
                _ => {}
            }
        }
        if token.kind != TokenKind::Number {
            return Ok(());
        }
        let literal = text.get(token.start..token.end).unwrap_or_default();
        if literal.ends_with(['e', 'E']) {
            self.pending = Some(Pending {
                start: token.start,
                end: token.end,
                line: token.line,
                signed: false,
            });
            return Ok(());
        }
        check_literal(literal, token.line)
    }
}

/// `literal` is a number's text (`-12.5e+300`); only its exponent is looked at.
fn check_literal(literal: &str, line: usize) -> Result<(), HugeNumber> {
    let Some(at) = literal.bytes().position(|c| matches!(c, b'e' | b'E')) else {
        return Ok(());
    };
    let exponent = literal.get(at + 1..).unwrap_or_default();
    let digits = exponent.trim_start_matches(['+', '-']).replace('_', "");
    let digits = digits.trim_start_matches('0');
    let all_digits = !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit());
    let huge = all_digits
        && (digits.len() > 19
            || digits
                .parse::<u64>()
                .is_ok_and(|value| value > MAX_EXPONENT));
    if huge {
        return Err(HugeNumber {
            line,
            literal: literal.chars().take(40).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_up_to_the_bound_pass() {
        assert_eq!(
            check_rego("package p\nx := 1e308\ny := 2.5E-1000\nz := 1e+1000\n"),
            Ok(())
        );
        assert_eq!(
            check_json(r#"{"a": [1e308, -2.5E-1000, 0.1e+1000, 12, -3.5]}"#),
            Ok(())
        );
    }

    #[test]
    fn a_huge_exponent_is_refused_with_its_line() {
        let err =
            check_rego("package p\n\nx := 0e000000000000000000000000204906761\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.to_string()
                .contains("`0e000000000000000000000000204906761`"),
            "{err}"
        );
        assert!(check_rego("package p\nx := 1e1001\n").is_err());
        assert!(
            check_rego("package p\nx := 1e+1001\n").is_err(),
            "a signed exponent"
        );
        assert!(check_rego("package p\nx := 2.5E-204906761 + 1\n").is_err());
        assert_eq!(
            check_rego("package p\nx := 1e + 1001\n"),
            Ok(()),
            "not one literal"
        );
        assert!(
            check_rego("package p\nx := 1E-99999999999999999999999\n").is_err(),
            "past u64"
        );
        let err = check_json("{\n\"a\": {\"b\": 5121111111E111111111}}").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(check_json("[-1e+1001]").is_err());
    }

    #[test]
    fn json_strings_end_as_the_tokenizer_ends_them() {
        // Escaped quotes and backslashes stay inside, and lines are counted.
        assert_eq!(check_json(r#"{"a\"1e99999\\": "\\\"1e99999"}"#), Ok(()));
        let err = check_json("{\"a\": \"b\",\n \"c\": 2e+5000}").unwrap_err();
        assert_eq!((err.line, err.literal.as_str()), (2, "2e+5000"));
        // A raw line break ends a string as in Rego: the JSON parser refuses the document there
        // (a control character in a string), before any number after it.
        assert_eq!(check_json("\"unterminated 1e99999"), Ok(()));
    }

    #[test]
    fn strings_and_comments_are_not_numbers() {
        assert_eq!(
            check_rego("package p\n# 1e99999\nx := \"1e99999\"\ny := `1e99999`\n"),
            Ok(())
        );
        assert_eq!(check_json(r#"{"1e99999": "1e99999 \" 1e99999"}"#), Ok(()));
        assert_eq!(
            check_rego("package p\nx := e99999\n"),
            Ok(()),
            "a name, not a number"
        );
    }

    #[test]
    fn strings_that_builtins_read_as_numbers_are_bounded() {
        for refused in [
            "5121111111111111111E111111111Mi",
            "1e1001",
            " -2.5E+99999 ",
            "\"1e5000Ki\"",
            ".5e5000",
            "7e20000m",
            r#"{"limits": {"memory": 1e99999}}"#,
            "[1, 2e4000]",
        ] {
            assert!(check_text(refused).is_err(), "{refused:?} passed");
        }
        for passed in [
            "512Mi",
            "2500m",
            "1e308",
            "1.5E-1000Gi",
            "sha256:4e12345",
            "4e12345abcd",
            "registry.example.com/cart@sha256:0e99999",
            "v1e99999",
            "1e99999 and more",
            "1e",
            "e99999",
            "",
            r#"{"a": "1e99999"}"#,
        ] {
            assert_eq!(check_text(passed), Ok(()), "{passed:?} refused");
        }
    }

    #[cfg(feature = "value")]
    #[test]
    fn every_string_of_a_document_is_checked_and_named_by_its_path() {
        let value = |json: &str| regorus::Value::from_json_str(json).unwrap();
        let review = value(
            r#"{"object": {"containers": [{"limits": {"memory": "512Mi"}},
            {"limits": {"memory": "1e99999Mi"}}]}}"#,
        );
        let err = check_strings(&review).unwrap_err();
        assert_eq!(err.path, "object.containers.1.limits.memory");
        assert!(
            err.to_string()
                .starts_with("object.containers.1.limits.memory: the number")
        );
        let key = value(r#"{"labels": {"2e5000": "x"}}"#);
        assert_eq!(check_strings(&key).unwrap_err().path, "labels.2e5000");
        let fine = value(r#"{"image": "cart@sha256:4e12345", "cpu": "2500m", "n": 1e300}"#);
        assert_eq!(check_strings(&fine), Ok(()));
    }
}
