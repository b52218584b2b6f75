//! What a policy reads: the parts of `input` its Rego can reach, and whether its decision is a
//! pure function of them. Found once, at configure time, from regorus' own tokens.
//!
//! Why: the filter builds only the parts of the OPA-Envoy input document the policy reads
//! (each header, property or parsed query is a hostcall or real work in Envoy), and the
//! decision cache keys on exactly those parts ([`crate::cache`]).
//!
//! Soundness: every way Rego reaches `input` goes through the identifier `input` (a reference,
//! an `import input.x` alias, `with input.x as`). For each occurrence the scan keeps the longest
//! static prefix (`.field` and `["field"]` segments); whatever the Rego does below the prefix
//! (iteration, computed keys, local aliases) stays inside the value there, which the built
//! document holds whole. A bare `input` reads everything. The same rule, on hand-written
//! tokens, decides what the admission engine's decision cache keys on
//! (`meshguard-policy-engine`'s `read_set`); here the tokens are regorus' own, so strings and
//! comments are told apart exactly as the parser does.
//!
//! The scan also finds builtins a proxy must not run or cache around: `http.send` and
//! `net.lookup_ip_addr` reach the network from the middle of a request and are refused; the
//! clock, random and UUID builtins make a decision impure, so it is never cached.

use regorus::unstable::{Lexer, Source, TokenKind};

/// Builtins refused at configure time: they would block a worker on the network.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "http.send",
        "the proxy makes no network calls while it holds a request; put what the policy needs in `data` or in the request",
    ),
    (
        "net.lookup_ip_addr",
        "the proxy makes no DNS lookups while it holds a request",
    ),
];

/// Builtins whose result is not a function of their arguments: a policy calling one is never
/// cached.
const NONDETERMINISTIC: &[&str] = &["time.now_ns", "rand.intn", "uuid.rfc4122", "opa.runtime"];

/// Builtins that read a string as a number (`to_number` and the JSON readers parse JSON;
/// `units.parse*` a number before a unit). regorus expands a number's exponent digit by digit
/// inside one builtin call, which no instruction budget stops, so the strings of the input of a
/// policy calling one are bounded first ([`meshguard_rego_compat::numbers::check_text`]).
const NUMBER_READERS: &[&str] = &[
    "to_number",
    "units.parse",
    "units.parse_bytes",
    "json.unmarshal",
    "json.is_valid",
];

/// The paths under `input` a policy reads and what makes it impure, if anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadSet {
    /// Paths below `input`, none a prefix of another; one empty path means the whole input.
    pub paths: Vec<Vec<String>>,
    /// Why the decision is not a pure function of the paths read, with module and line.
    pub impure: Option<String>,
    /// The first call of a builtin that reads strings as numbers ([`NUMBER_READERS`]), with
    /// module and line.
    pub reads_numbers: Option<String>,
}

/// A builtin the proxy refuses, found in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The module (file name as configured).
    pub module: String,
    /// 1-based line.
    pub line: u32,
    /// The builtin.
    pub builtin: &'static str,
    /// Why.
    pub why: &'static str,
}

impl ReadSet {
    /// Scans modules (name, source). Sources that do not tokenize add nothing: the parser
    /// refuses them with a better message first.
    pub fn scan<'a>(
        modules: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Refused> {
        let mut paths = Vec::new();
        let mut impure = None;
        let mut reads_numbers = None;
        for (name, text) in modules {
            let Ok(source) = Source::from_contents(name.to_string(), text.to_string()) else {
                continue;
            };
            let tokens = tokens(&source);
            for (index, token) in tokens.iter().enumerate() {
                if token.kind != Kind::Ident {
                    continue;
                }
                let after_dot = index
                    .checked_sub(1)
                    .and_then(|prev| tokens.get(prev))
                    .is_some_and(|prev| prev.is_symbol("."));
                if after_dot {
                    continue;
                }
                let chain = chain(&tokens, index);
                let dotted = chain.join(".");
                if let Some((builtin, why)) = REFUSED.iter().find(|(b, _)| calls(&dotted, b)) {
                    return Err(Refused {
                        module: name.to_string(),
                        line: token.line,
                        builtin,
                        why,
                    });
                }
                if impure.is_none()
                    && let Some(builtin) = NONDETERMINISTIC.iter().find(|b| calls(&dotted, b))
                {
                    impure = Some(format!("{name}:{}: calls {builtin}", token.line));
                }
                if reads_numbers.is_none()
                    && let Some(builtin) = NUMBER_READERS.iter().find(|b| calls(&dotted, b))
                {
                    reads_numbers = Some(format!("{name}:{}: calls {builtin}", token.line));
                }
                if chain.first().is_some_and(|root| root == "input") {
                    paths.push(chain.into_iter().skip(1).collect());
                }
            }
        }
        Ok(Self {
            paths: minimal(paths),
            impure,
            reads_numbers,
        })
    }

    /// Whether the policy reads anything below `prefix` (or an ancestor of it, or the whole
    /// input).
    pub fn touches(&self, prefix: &[&str]) -> bool {
        self.paths.iter().any(|path| {
            let common = path.len().min(prefix.len());
            path.iter()
                .zip(prefix.iter())
                .take(common)
                .all(|(a, b)| a == b)
        })
    }

    /// Whether the policy reads all of `prefix` (the path itself or an ancestor).
    pub fn covers(&self, prefix: &[&str]) -> bool {
        self.paths.iter().any(|path| {
            path.len() <= prefix.len() && path.iter().zip(prefix.iter()).all(|(a, b)| a == b)
        })
    }
}

fn calls(dotted: &str, builtin: &str) -> bool {
    dotted == builtin
        || dotted
            .strip_prefix(builtin)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Symbol,
    String,
    Other,
}

#[derive(Debug)]
struct Tok {
    kind: Kind,
    text: String,
    line: u32,
}

impl Tok {
    fn is_symbol(&self, symbol: &str) -> bool {
        self.kind == Kind::Symbol && self.text == symbol
    }
}

/// Every token of a source, with string literals decoded (`None` content when a string has
/// escapes the scan does not decode: it then ends a prefix, which is always sound).
fn tokens(source: &Source) -> Vec<Tok> {
    let mut lexer = Lexer::new(source);
    let mut out = Vec::new();
    while let Ok(token) = lexer.next_token() {
        let kind = match token.0 {
            TokenKind::Eof => break,
            TokenKind::Ident => Kind::Ident,
            TokenKind::Symbol => Kind::Symbol,
            TokenKind::String => Kind::String,
            TokenKind::RawString => Kind::String,
            _ => Kind::Other,
        };
        let raw = token.1.text();
        let text = match token.0 {
            TokenKind::String => {
                serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or_default()
            }
            _ => raw.to_string(),
        };
        out.push(Tok {
            kind,
            text,
            line: token.1.line,
        });
    }
    out
}

/// The dotted chain starting at `start`: `.ident` and `["string"]` segments.
fn chain(tokens: &[Tok], start: usize) -> Vec<String> {
    let mut chain = Vec::new();
    let Some(first) = tokens.get(start) else {
        return chain;
    };
    chain.push(first.text.clone());
    let mut at = start + 1;
    loop {
        match (tokens.get(at), tokens.get(at + 1), tokens.get(at + 2)) {
            (Some(dot), Some(next), _) if dot.is_symbol(".") && next.kind == Kind::Ident => {
                chain.push(next.text.clone());
                at += 2;
            }
            (Some(open), Some(key), Some(close))
                if open.is_symbol("[") && key.kind == Kind::String && close.is_symbol("]") =>
            {
                chain.push(key.text.clone());
                at += 3;
            }
            _ => break,
        }
    }
    chain
}

/// Sorted, deduplicated, every path that extends another dropped.
fn minimal(mut paths: Vec<Vec<String>>) -> Vec<Vec<String>> {
    paths.sort();
    paths.dedup();
    let mut out: Vec<Vec<String>> = Vec::new();
    for path in paths {
        // Sorted order puts a prefix right before its extensions.
        if out.last().is_some_and(|kept| path.starts_with(kept)) {
            continue;
        }
        out.push(path);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        ReadSet::scan([("p.rego", src)])
            .unwrap()
            .paths
            .into_iter()
            .map(|p| p.join("/"))
            .collect()
    }

    #[test]
    fn keeps_the_static_prefix_of_each_reference() {
        let src = r#"package envoy.authz
            allow if {
              input.attributes.request.http.method == "GET"
              input.attributes.request.http.headers["x-user"] == "a"
              claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt
              some p in input.parsed_path
              input.parsed_query[k]
            }"#;
        assert_eq!(
            paths(src),
            [
                "attributes/metadataContext/filterMetadata/envoy.filters.http.jwt_authn/verified_jwt",
                "attributes/request/http/headers/x-user",
                "attributes/request/http/method",
                "parsed_path",
                "parsed_query",
            ]
        );
    }

    #[test]
    fn a_prefix_covers_its_extensions_and_bare_input_reads_everything() {
        assert_eq!(
            paths(
                "package x\nh := input.attributes.request.http\nallow if h.method == \"GET\"\nallow if input.attributes.request.http.path"
            ),
            ["attributes/request/http"]
        );
        assert_eq!(paths("package x\nallow if { x := input; x.a }"), [""]);
        assert_eq!(
            paths("package x\nimport input.attributes.request.http as h\nallow if h.method"),
            ["attributes/request/http"]
        );
    }

    #[test]
    fn strings_comments_and_fields_named_input_are_not_reads() {
        let src = "package x\n# input.secret\nallow if { x := \"input.y\"; y := data.input_map; z := a.input.b }";
        assert!(paths(src).is_empty());
    }

    #[test]
    fn escaped_and_raw_keys_are_read_as_rego_reads_them() {
        assert_eq!(
            paths("package x\nallow if input[\"a\\\"b\"].c\nallow if input[`raw`]"),
            ["a\"b/c", "raw"]
        );
    }

    #[test]
    fn clock_and_random_builtins_make_a_policy_impure() {
        let set = ReadSet::scan([("p.rego", "package x\n\nallow if time.now_ns() > 0")]).unwrap();
        assert_eq!(set.impure.as_deref(), Some("p.rego:3: calls time.now_ns"));
        let set = ReadSet::scan([("p.rego", "package x\nallow if rand.intn(\"x\", 3) == 1")]);
        assert!(set.unwrap().impure.is_some());
        let set = ReadSet::scan([("p.rego", "package x\nallow if my.time.now_ns")]).unwrap();
        assert!(set.impure.is_none(), "a field named like a builtin");
    }

    #[test]
    fn builtins_that_read_strings_as_numbers_are_found() {
        for (src, found) in [
            (
                "allow if units.parse_bytes(input.x) > 1",
                Some("p.rego:2: calls units.parse_bytes"),
            ),
            (
                "allow if to_number(input.x) > 1",
                Some("p.rego:2: calls to_number"),
            ),
            (
                "allow if json.unmarshal(input.x).a",
                Some("p.rego:2: calls json.unmarshal"),
            ),
            ("allow if input.x == \"1\"", None),
            ("allow if my.units.parse", None),
        ] {
            let set = ReadSet::scan([("p.rego", format!("package x\n{src}").as_str())]).unwrap();
            assert_eq!(set.reads_numbers.as_deref(), found, "{src}");
        }
    }

    #[test]
    fn network_builtins_are_refused_with_module_and_line() {
        let err = ReadSet::scan([
            ("a.rego", "package a\nallow := true"),
            ("b.rego", "package b\n\nallow if {\n  http.send({\"method\": \"get\", \"url\": \"http://x\"}).status_code == 200\n}"),
        ])
        .unwrap_err();
        assert_eq!(
            (err.module.as_str(), err.line, err.builtin),
            ("b.rego", 4, "http.send")
        );
        assert!(
            ReadSet::scan([("c.rego", "package c\nallow if net.lookup_ip_addr(\"x\")")]).is_err()
        );
        assert!(
            ReadSet::scan([("d.rego", "package d\n# http.send\nallow := \"http.send\"")]).is_ok()
        );
    }

    #[test]
    fn touches_and_covers() {
        let set = ReadSet::scan([(
            "p.rego",
            "package x\nallow if input.attributes.request.http.headers.authorization",
        )])
        .unwrap();
        assert!(set.touches(&["attributes", "request", "http", "headers"]));
        assert!(set.touches(&["attributes"]));
        assert!(!set.touches(&["parsed_body"]));
        assert!(!set.covers(&["attributes", "request", "http", "headers"]));
        assert!(set.covers(&[
            "attributes",
            "request",
            "http",
            "headers",
            "authorization",
            "x"
        ]));
    }
}
