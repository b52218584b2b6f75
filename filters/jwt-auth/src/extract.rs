//! Finding a provider's token in the request (header with a value prefix, query parameter,
//! cookie) and taking it out again when the provider does not forward it.

use meshguard_filter_core::{HeaderMap, Host};

use crate::config::{Location, Provider};
use crate::request::Request;

/// A token found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The token text.
    pub token: String,
    /// Index of the location in the provider's list.
    pub location: usize,
}

/// The first token in the provider's locations, in order. A location holding a value that does
/// not start with its prefix, or nothing after it, holds no token.
pub fn find(request: &Request, provider: &Provider) -> Option<Found> {
    for (index, location) in provider.locations.iter().enumerate() {
        let token = match location {
            Location::Header { name, prefix } => request
                .header(name)
                .and_then(|value| strip_prefix(value, prefix).map(str::to_string)),
            Location::Param(name) => query_param(request.path(), name),
            Location::Cookie(name) => request
                .header("cookie")
                .and_then(|cookies| cookie(cookies, name)),
        };
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Some(Found {
                token,
                location: index,
            });
        }
    }
    None
}

/// The value after `prefix` (compared ignoring ASCII case: auth schemes are case-insensitive),
/// trimmed.
fn strip_prefix<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.as_bytes().get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    value.get(prefix.len()..).map(str::trim)
}

fn query(path: &str) -> Option<&str> {
    path.split_once('?').map(|(_, query)| query)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (byte, hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(path: &str, name: &str) -> Option<String> {
    query(path)?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn cookie(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Takes the token out of the request. Returns the new `:path` when a query parameter was
/// removed from `path` (the caller writes it).
pub fn remove(
    host: &mut dyn Host,
    request: &Request,
    provider: &Provider,
    found: &Found,
    path: &str,
) -> Option<String> {
    match provider.locations.get(found.location)? {
        Location::Header { name, .. } => {
            host.set_header(HeaderMap::Request, name, None);
            None
        }
        Location::Param(name) => {
            let (base, query) = path.split_once('?')?;
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
                    percent_decode(key) != *name
                })
                .collect();
            Some(if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            })
        }
        Location::Cookie(name) => {
            let header = request.header("cookie")?;
            let kept: Vec<&str> = header
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    pair.split_once('=')
                        .is_none_or(|(key, _)| key.trim() != name)
                })
                .collect();
            let value = kept.join("; ");
            host.set_header(
                HeaderMap::Request,
                "cookie",
                (!value.is_empty()).then_some(value.as_str()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_ignoring_case_and_need_a_value() {
        assert_eq!(strip_prefix("Bearer abc", "Bearer "), Some("abc"));
        assert_eq!(strip_prefix("bearer abc ", "Bearer "), Some("abc"));
        assert_eq!(strip_prefix("Basic abc", "Bearer "), None);
        assert_eq!(strip_prefix("Bear", "Bearer "), None);
        assert_eq!(strip_prefix("ü", "Bearer "), None);
        assert_eq!(strip_prefix("abc", ""), Some("abc"));
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("/a?x=1&access_token=t.o.k", "access_token").as_deref(),
            Some("t.o.k")
        );
        assert_eq!(
            query_param("/a?access%5Ftoken=a%2Eb", "access_token").as_deref(),
            Some("a.b")
        );
        assert_eq!(query_param("/a?x=1", "access_token"), None);
        assert_eq!(query_param("/a", "access_token"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "theme=dark; session-jwt=\"a.b.c\"; other=1";
        assert_eq!(cookie(header, "session-jwt").as_deref(), Some("a.b.c"));
        assert_eq!(cookie(header, "session"), None);
        assert_eq!(cookie("garbage", "session"), None);
    }
}
