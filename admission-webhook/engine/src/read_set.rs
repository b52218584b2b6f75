//! What part of `input` a template can read, found by scanning its Rego (main module and libs),
//! and whether its decision is a pure function of that part.
//!
//! Why: a template's `violation` is a pure function of `input` (plus `data.inventory`, which the
//! cache key carries by inventory generation) unless it calls a builtin that reads the clock, the
//! network or randomness. Most templates read a small part of `input`: `input.parameters` and
//! `input.review.object.spec` or `.metadata.labels`. Two reviews that agree on that part get the
//! same decision. A ReplicaSet scaling up sends N Pod reviews that differ only in name, uid and
//! request uid; a re-applied Deployment sends the same spec again; an audit sweep meets many
//! identical replicas. Keying a decision cache on the part a template reads
//! ([`crate::decision_cache`]) lets all of them skip evaluation, soundly: the key holds every
//! value the Rego can reach.
//!
//! Soundness argument: every way Rego reaches `input` goes through the identifier `input` (a
//! reference, an `import input.x` alias, or `with input as`). For each occurrence the scan keeps the
//! longest static prefix (`.field` or `["field"]` segments); whatever the Rego does after the
//! prefix (iteration, computed keys, aliases) stays inside the value at the prefix, which the key
//! holds whole. A bare `input` reads everything.

use crate::rego_scan::{TokenKind, text, tokenize};

/// Builtins whose result is not a function of their arguments (clock, network, randomness,
/// runtime); a template calling one is never cached.
const NONDETERMINISTIC: &[&str] = &[
    "time.now_ns",
    "http.send",
    "rand.intn",
    "uuid.rfc4122",
    "uuid.parse",
    "opa.runtime",
    "net.lookup_ip_addr",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
];

/// The static paths under `input` a template's Rego reads, and whether its decision depends on
/// anything else (then it must not be cached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadSet {
    /// Paths below `input`, none a prefix of another; `[]` means the whole input.
    pub paths: Vec<Vec<String>>,
    /// Why the decision is not a pure function of `input` and `data`, if it is not.
    pub impure: Option<String>,
}

impl ReadSet {
    /// Scans the Rego modules of one template.
    pub fn of<'a>(modules: impl IntoIterator<Item = &'a str>) -> Self {
        let mut paths: Vec<Vec<String>> = Vec::new();
        let mut impure = None;
        for src in modules {
            let tokens = tokenize(src);
            for (index, token) in tokens.iter().enumerate() {
                if token.kind != TokenKind::Ident {
                    continue;
                }
                let prev = index.checked_sub(1).and_then(|p| tokens.get(p));
                if prev.is_some_and(|p| p.kind == TokenKind::Punct('.')) {
                    continue;
                }
                // The dotted chain starting here (`time.now_ns`, `input.review.object`).
                let mut chain = vec![text(src, token).to_string()];
                let mut at = index + 1;
                while let (Some(dot), Some(next)) = (tokens.get(at), tokens.get(at + 1)) {
                    if dot.kind == TokenKind::Punct('.') && next.kind == TokenKind::Ident {
                        chain.push(text(src, next).to_string());
                        at += 2;
                        continue;
                    }
                    if chain.first().is_some_and(|root| root == "input")
                        && dot.kind == TokenKind::Punct('[')
                        && next.kind == TokenKind::String
                        && tokens
                            .get(at + 2)
                            .is_some_and(|close| close.kind == TokenKind::Punct(']'))
                        && let Some(field) = plain_string(text(src, next))
                    {
                        chain.push(field);
                        at += 3;
                        continue;
                    }
                    break;
                }
                let dotted = chain.join(".");
                if impure.is_none()
                    && let Some(builtin) = NONDETERMINISTIC
                        .iter()
                        .find(|name| dotted == **name || dotted.starts_with(&format!("{name}.")))
                {
                    impure = Some(format!("calls {builtin} (line {})", token.line));
                }
                if chain.first().is_some_and(|root| root == "input") {
                    paths.push(chain.split_off(1));
                }
            }
        }
        Self {
            paths: minimal(paths),
            impure,
        }
    }

    /// Whether decisions may be cached.
    pub fn cacheable(&self) -> bool {
        self.impure.is_none()
    }
}

/// The text of a string literal without escapes, or None.
fn plain_string(literal: &str) -> Option<String> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .or_else(|| {
            literal
                .strip_prefix('`')
                .and_then(|rest| rest.strip_suffix('`'))
        })?;
    (!inner.contains('\\')).then(|| inner.to_string())
}

/// Sorted, deduplicated, with every path that extends another dropped.
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
        ReadSet::of([src])
            .paths
            .into_iter()
            .map(|p| p.join("."))
            .collect()
    }

    #[test]
    fn keeps_the_static_prefix_of_each_reference() {
        let src = r#"
            package x
            violation[{"msg": m}] {
              c := input.review.object.spec.containers[_]
              input.parameters.labels[l]
              input["review"]["object"].metadata.labels[k]
              m := sprintf("%v", [input.review.object.metadata.name])
            }
        "#;
        assert_eq!(
            paths(src),
            [
                "parameters.labels",
                "review.object.metadata.labels",
                "review.object.metadata.name",
                "review.object.spec.containers",
            ]
        );
    }

    #[test]
    fn a_prefix_covers_its_extensions() {
        let src = "package x\nobj := input.review.object\nviolation[{\"msg\": \"x\"}] { input.review.object.spec.x }";
        assert_eq!(paths(src), ["review.object"]);
    }

    #[test]
    fn computed_segments_end_the_prefix() {
        assert_eq!(
            paths("package x\nv { input.review[k].x; input.parameters[\"a\\\"b\"] }"),
            ["parameters", "review"]
        );
    }

    #[test]
    fn bare_input_aliases_and_with_read_everything() {
        assert_eq!(paths("package x\nv { x := input; x.a }"), [""]);
        assert_eq!(
            paths("package x\nimport input.review.object as o\nv { o.spec }"),
            ["review.object"]
        );
        assert_eq!(paths("package x\nv { f with input as {} }"), [""]);
    }

    #[test]
    fn strings_comments_and_fields_named_input_are_not_reads() {
        let src = "package x\n# input.secret\nv { x := \"input.y\"; y := data.input_map; z := a.input.b }";
        assert!(paths(src).is_empty());
        assert!(paths("package x\ninput_containers[c] { c := 1 }").is_empty());
    }

    #[test]
    fn nondeterministic_builtins_make_a_template_impure() {
        let set = ReadSet::of(["package x\nv { time.now_ns() > 0 }"]);
        assert_eq!(set.impure.as_deref(), Some("calls time.now_ns (line 2)"));
        assert!(!set.cacheable());
        assert!(
            ReadSet::of(["package x\nv { http.send({}) }"])
                .impure
                .is_some()
        );
        assert!(ReadSet::of(["package x\nv { time.parse_rfc3339_ns(\"x\") }"]).cacheable());
        assert!(ReadSet::of(["package x\nv { my.time.now_ns }"]).cacheable());
    }
}
