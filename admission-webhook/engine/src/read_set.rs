//! What part of `input` a template's decision depends on, and how: the decision cache
//! ([`crate::decision_cache`]) keys each decision on exactly that part, so reviews that differ
//! only elsewhere (the next replica of a ReplicaSet: a new name, uid and request uid) share it.
//!
//! Why: a template's `violation` is a pure function of `input` (plus `data.inventory`, which the
//! cache key carries by inventory generation) unless it calls a builtin that reads the clock, the
//! network or randomness. Real-world templates read a small part of the object, but the idioms
//! of public template libraries hide it from a plain scan of `input.` references: they bind
//! `input.review.object` to a local, pass it (or `input.review` as a whole) to helper functions,
//! reach the parameters through `object.get(input, "parameters", {})` in a library, iterate
//! containers through library rules, and put the object's name in their messages. So the read
//! set is computed on the template's parse tree ([`analysis`]): every value carries the input
//! paths it comes from through locals, rules, functions (analysed per call, with the arguments'
//! paths) and libraries, and each use says how much of a path the decision needs:
//!
//! - **value**: compared, iterated, counted, passed to a builtin: the key holds the value;
//! - **type**: only bound to a local or read with `object.get`, so only whether it is defined
//!   and its JSON type matter (`obj := input.review.object` does not read the name);
//! - **shape**: only formatted into the violation's message or details (`sprintf`, `concat`, or
//!   the head itself): whether a body succeeds depends only on the deep type signature (strings
//!   compared as "some string"), so the key holds the signature, and the values themselves are
//!   compared only when the cached decision has violations, whose messages show them.
//!
//! Anything the analysis does not model (a `with` modifier, a computed rule reference, a call it
//! cannot resolve) falls back to the static prefix of every `input` reference in the Rego text
//! ([`ReadSet::scan`]), keyed by value: coarser, and sound for the same reason as before (every
//! way Rego reaches `input` goes through the identifier `input`, and whatever it does below the
//! longest static prefix stays inside the value there).

mod analysis;

use std::collections::BTreeSet;

use regorus::Value;

use crate::rego_scan::{TokenKind, text, tokenize};

/// A path below `input` (`["review", "object", "spec"]`); empty means the whole input.
pub(crate) type Path = Vec<String>;

/// Builtins whose result is not a function of their arguments (clock, network, randomness,
/// runtime); a template calling one is never cached.
pub(crate) const NONDETERMINISTIC: &[&str] = &[
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

/// What a template's decision depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReadSet {
    /// Paths whose values the decision depends on (none a prefix of another).
    pub value: Vec<Path>,
    /// Paths of which only definedness and JSON type matter.
    pub types: Vec<Path>,
    /// Paths that only flow into the violation's output: keyed by deep type signature, compared
    /// by value only for cached decisions that have violations.
    pub shapes: Vec<Path>,
    /// Why the decision is not a pure function of `input` and `data`, if it is not.
    pub impure: Option<String>,
    /// Why the parse-tree analysis was not used (the text scan keyed everything by value).
    pub fallback: Option<String>,
    /// The paths as lookups with their keys built once (indexing a regorus value by `&str`
    /// builds a key value per segment, on every review).
    lookups: Lookups,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Lookups {
    value: Vec<Lookup>,
    types: Vec<Lookup>,
    shapes: Vec<Lookup>,
}

/// Where a path starts, and its segments as keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    /// The whole input.
    Whole,
    /// Below `input.review`.
    Review(Vec<Value>),
    /// Below `input.parameters`.
    Parameters(Vec<Value>),
    /// Below another field of `input` (always undefined).
    Other,
}

impl Lookup {
    fn of(path: &[String]) -> Self {
        let keys = |rest: &[String]| rest.iter().map(|s| Value::from(s.as_str())).collect();
        match path.split_first() {
            None => Lookup::Whole,
            Some((root, rest)) if root == "review" => Lookup::Review(keys(rest)),
            Some((root, rest)) if root == "parameters" => Lookup::Parameters(keys(rest)),
            Some(_) => Lookup::Other,
        }
    }

    /// The value at the path of `{"review": review, "parameters": parameters}` (regorus values
    /// share their trees, so this is a reference count, not a copy).
    fn at(&self, review: &Value, parameters: &Value) -> Value {
        let (mut value, keys) = match self {
            Lookup::Whole => return Value::from(vec![review.clone(), parameters.clone()]),
            Lookup::Other => return Value::Undefined,
            Lookup::Review(keys) => (review, keys),
            Lookup::Parameters(keys) => (parameters, keys),
        };
        for key in keys {
            value = &value[key];
        }
        value.clone()
    }
}

impl ReadSet {
    /// The read set of a template whose modules (as compiled, after the rewrites) are
    /// `modules`, entered at `rule` (`data.<package>.violation`); `sources` are the Rego texts
    /// for the fallback scan.
    pub fn of<'a>(
        modules: &[regorus::unstable::Ref<regorus::unstable::Module>],
        rule: &str,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let scanned = Self::scan(sources);
        match analysis::analyse(modules, rule) {
            Ok(reads) => Self {
                impure: reads.impure.or(scanned.impure),
                ..Self::minimal(reads.value, reads.types, reads.shapes)
            },
            Err(why) => Self {
                fallback: Some(why),
                ..scanned
            },
        }
    }

    /// The static prefix of every `input` reference in the texts, keyed by value; and whether a
    /// nondeterministic builtin is called.
    pub fn scan<'a>(modules: impl IntoIterator<Item = &'a str>) -> Self {
        let mut paths: Vec<Path> = Vec::new();
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
            impure,
            ..Self::minimal(
                paths.into_iter().collect(),
                BTreeSet::new(),
                BTreeSet::new(),
            )
        }
    }

    /// Drops every path another one covers: a value path covers its extensions of any kind; a
    /// shape path covers the shape and type paths below it.
    fn minimal(value: BTreeSet<Path>, types: BTreeSet<Path>, shapes: BTreeSet<Path>) -> Self {
        let value = prefixes_only(value);
        let covered_by = |set: &[Path], path: &Path| set.iter().any(|p| path.starts_with(p));
        let shapes: BTreeSet<Path> = shapes
            .into_iter()
            .filter(|p| !covered_by(&value, p))
            .collect();
        let shapes = prefixes_only(shapes);
        let types: Vec<Path> = types
            .into_iter()
            .filter(|p| !covered_by(&value, p) && !covered_by(&shapes, p))
            .collect();
        let lookups = |paths: &[Path]| paths.iter().map(|p| Lookup::of(p)).collect();
        Self {
            lookups: Lookups {
                value: lookups(&value),
                types: lookups(&types),
                shapes: lookups(&shapes),
            },
            value,
            types,
            shapes,
            impure: None,
            fallback: None,
        }
    }

    /// Whether decisions may be cached.
    pub fn cacheable(&self) -> bool {
        self.impure.is_none()
    }

    /// The cache key of one evaluation with `input = {"review": review, "parameters":
    /// parameters}`: the values at the value paths, the type tags at the type paths, the deep
    /// type signatures at the shape paths, then the inventory generation when it is read.
    pub fn key(&self, review: &Value, parameters: &Value, inventory: Option<u64>) -> Value {
        let mut parts: Vec<Value> =
            Vec::with_capacity(self.value.len() + self.types.len() + self.shapes.len() + 1);
        let lookups = &self.lookups;
        parts.extend(lookups.value.iter().map(|l| l.at(review, parameters)));
        parts.extend(
            lookups
                .types
                .iter()
                .map(|l| type_tag(&l.at(review, parameters))),
        );
        parts.extend(
            lookups
                .shapes
                .iter()
                .map(|l| signature(&l.at(review, parameters))),
        );
        if let Some(generation) = inventory {
            parts.push(Value::from(generation));
        }
        Value::from(parts)
    }

    /// The values at the shape paths (what a cached decision with violations may show).
    pub fn shown(&self, review: &Value, parameters: &Value) -> Vec<Value> {
        self.lookups
            .shapes
            .iter()
            .map(|l| l.at(review, parameters))
            .collect()
    }
}

/// Whether a value is defined, and its JSON type (a small number: keys compare fast).
fn type_tag(value: &Value) -> Value {
    Value::from(match value {
        Value::Undefined => 0u64,
        Value::Null => 1,
        Value::Bool(_) => 2,
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => 3,
        Value::Number(_) => 4,
        Value::String(_) => 5,
        Value::Array(_) => 6,
        Value::Set(_) => 7,
        Value::Object(_) => 8,
    })
}

/// The value with every string replaced by `""` and every number by `0` (or `0.5`): what the
/// definedness of the formatting builtins depends on.
fn signature(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::from(""),
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => Value::from(0u64),
        Value::Number(_) => Value::from(0.5),
        Value::Array(items) => Value::from(items.iter().map(signature).collect::<Vec<_>>()),
        Value::Set(items) => Value::from(items.iter().map(signature).collect::<BTreeSet<_>>()),
        Value::Object(fields) => Value::from(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), signature(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
        other => other.clone(),
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

/// Sorted, with every path that extends another dropped.
fn prefixes_only(paths: BTreeSet<Path>) -> Vec<Path> {
    let mut out: Vec<Path> = Vec::new();
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
mod tests;
