//! `input.parsed_path` and `input.parsed_query` from the request's `:path`, as OPA-Envoy
//! computes them with Go's `net/url`, with one deliberate difference.
//!
//! OPA-Envoy parses the path with `url.Parse`, decodes it, trims every leading `/` and splits
//! on `/`; the query goes through `url.Query()`: pairs split on `&`, `+` read as a space, a pair
//! with a bad escape or a `;` dropped, values kept in order under their key.
//!
//! The difference: OPA-Envoy decodes the whole path before splitting it, so `%2F` becomes a
//! separator and `/api/users/bob%2Forders` reads as `["api", "users", "bob", "orders"]`, which
//! is not the path the upstream routes on. Here the path is split on the slashes the client
//! sent and each segment is then decoded, so that request reads as
//! `["api", "users", "bob/orders"]`. A path Go refuses (a bad `%` escape, a control character)
//! is an input error here too, and the request is decided by `onError`. Bytes that decode to
//! invalid UTF-8 become U+FFFD, which no id or role equals.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("invalid escape `{0}` in the path")]
    Escape(String),
    /// A control character (Go's `net/url` refuses them).
    #[error("control character in the path")]
    Control,
}

/// The path part of `:path`: everything before `?` or `#`.
pub fn path_part(path: &str) -> &str {
    // Bytes, not chars: both are ASCII, so the cut is a char boundary (and a byte scan is what
    // every request pays for).
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// The query part of `:path`: between `?` and `#` (empty when there is none).
pub fn query_part(path: &str) -> &str {
    let Some(start) = path.find('?') else {
        return "";
    };
    let rest = path.get(start + 1..).unwrap_or("");
    rest.split('#').next().unwrap_or("")
}

/// `input.parsed_path`: the segments after the leading slashes, each percent-decoded.
pub fn parsed_path(path: &str) -> Result<Vec<String>, PathError> {
    Ok(path_segments(path)?
        .into_iter()
        .map(Cow::into_owned)
        .collect())
}

/// [`parsed_path`] borrowing from `path` where a segment has no escape (the input builder
/// makes each segment a `Value` without an intermediate `String`).
pub fn path_segments(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    if path.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(PathError::Control);
    }
    path_part(path)
        .trim_start_matches('/')
        .split('/')
        .map(|segment| decode(segment, false).ok_or_else(|| PathError::Escape(segment.into())))
        .collect()
}

/// `input.parsed_query`: every parameter's values in order.
pub fn parsed_query(path: &str) -> BTreeMap<String, Vec<String>> {
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query_part(path).split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(key), Some(value)) = (decode(key, true), decode(value, true)) {
            query
                .entry(key.into_owned())
                .or_default()
                .push(value.into_owned());
        }
    }
    query
}

/// Percent-decodes `text` (`+` as a space in query components); `None` on a bad escape.
pub(crate) fn decode(text: &str, plus_is_space: bool) -> Option<Cow<'_, str>> {
    if !text
        .bytes()
        .any(|b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Some(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'%' => {
                let high = bytes.get(at + 1).and_then(|b| hex(*b))?;
                let low = bytes.get(at + 2).and_then(|b| hex(*b))?;
                out.push(high << 4 | low);
                at += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                at += 1;
            }
            other => {
                out.push(other);
                at += 1;
            }
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_as_opa_envoy_splits_them() {
        // The cases of OPA-Envoy's own request tests.
        for (path, expected) in [
            ("/", vec![""]),
            ("", vec![""]),
            ("/my/test/path", vec!["my", "test", "path"]),
            ("/my/test/path?a=1", vec!["my", "test", "path"]),
            ("/my/test/path/", vec!["my", "test", "path", ""]),
            ("//api//users", vec!["api", "", "users"]),
            ("/api/users/al%69ce", vec!["api", "users", "alice"]),
            ("/a+b/c#frag", vec!["a+b", "c"]),
        ] {
            assert_eq!(parsed_path(path).unwrap(), expected, "{path}");
        }
    }

    #[test]
    fn an_encoded_slash_stays_inside_its_segment() {
        assert_eq!(
            parsed_path("/api/users/bob%2Forders").unwrap(),
            ["api", "users", "bob/orders"]
        );
    }

    #[test]
    fn bad_escapes_and_control_characters_are_errors() {
        assert_eq!(
            parsed_path("/api/%zz"),
            Err(PathError::Escape("%zz".into()))
        );
        assert_eq!(parsed_path("/api/%4"), Err(PathError::Escape("%4".into())));
        assert_eq!(parsed_path("/api/\u{7f}"), Err(PathError::Control));
        assert_eq!(parsed_path("/a\tb"), Err(PathError::Control));
        assert_eq!(parsed_path("/api/%ff").unwrap(), ["api", "\u{fffd}"]);
    }

    #[test]
    fn queries_parse_as_go_parses_them() {
        let query = parsed_query("/p?a=1&b=2&a=3&c&d=&e=x+y%21&bad=%zz&semi=1;x=2&=v#f=1");
        let expected: BTreeMap<String, Vec<String>> = [
            ("", vec!["v"]),
            ("a", vec!["1", "3"]),
            ("b", vec!["2"]),
            ("c", vec![""]),
            ("d", vec![""]),
            ("e", vec!["x y!"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(query, expected);
        assert!(parsed_query("/p").is_empty());
        assert!(parsed_query("/p?").is_empty());
    }
}
