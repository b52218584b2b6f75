//! The configuration file as written, deserialized with source locations.
//!
//! `serde-saphyr` gives every error its line and column, and `Spanned` gives the nodes that later
//! checks may reject (a descriptor, a rate limit, a unit) theirs. `serde_path_to_error` names the
//! field of a structural error; the `Spanned` wrappers add a `value` step to that path, which
//! [`clean_path`] takes out again.

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};

use super::Located;

/// The file's root.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoot {
    pub domain: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub descriptors: Vec<Spanned<RawDescriptor>>,
}

/// One descriptor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDescriptor {
    pub key: Option<String>,
    pub value: Option<String>,
    pub rate_limit: Option<Spanned<RawRateLimit>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub descriptors: Vec<Spanned<RawDescriptor>>,
    #[serde(default)]
    pub shadow_mode: bool,
    #[serde(default)]
    pub detailed_metric: bool,
}

/// A descriptor's `rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub requests_per_unit: Option<u32>,
    pub unit: Option<Spanned<String>>,
    #[serde(default)]
    pub unlimited: bool,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub replaces: Vec<Spanned<RawReplaces>>,
}

/// One `replaces` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplaces {
    pub name: Option<String>,
}

/// A list written as `descriptors:` with nothing after it is empty, as envoyproxy/ratelimit
/// (Go's yaml) reads it.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Deserializes a file, or says where and what is wrong.
pub(super) fn parse(text: &str) -> Result<RawRoot, Located> {
    if text.trim().is_empty() {
        return Err(Located {
            line: 1,
            column: 1,
            field: String::new(),
            message: "the file is empty (expected `domain:` and `descriptors:`)".into(),
        });
    }
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut field = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            field = clean_path(err.path());
            err.into_inner()
        })
    });
    result.map_err(|err| {
        let (line, column) = err
            .location()
            .map_or((1, 1), |location| (location.line(), location.column()));
        let message = DefaultMessageFormatter.format_message(&err);
        Located {
            line,
            column,
            field,
            // Rendered text only: a control character in the file cannot break the log line.
            message: message
                .chars()
                .flat_map(|c| {
                    let escaped: Vec<char> = if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        vec![c]
                    };
                    escaped
                })
                .collect(),
        }
    })
}

/// The path as the file spells it: without the `value` step each `Spanned` node adds (after a
/// list index, and after `domain`, `rate_limit` and `unit`).
fn clean_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut previous = String::new();
    for segment in path.iter() {
        let text = match segment {
            Segment::Seq { index } => format!("[{index}]"),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => "?".to_string(),
        };
        let wrapper = text == "value"
            && (previous.starts_with('[')
                || matches!(previous.as_str(), "domain" | "rate_limit" | "unit"));
        if wrapper {
            // Transparent: a `value` right after it is the descriptor's own field.
            previous = String::from("(spanned)");
            continue;
        }
        if !out.is_empty() && !text.starts_with('[') {
            out.push('.');
        }
        out.push_str(&text);
        previous = text;
    }
    if out == "?" { String::new() } else { out }
}
