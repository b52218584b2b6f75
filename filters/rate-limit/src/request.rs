//! Request facts: which limits a request matches and the key it is counted under.
//!
//! Keys are built from untrusted input (headers, cookies, `x-forwarded-for`), so parts are
//! length-prefixed before hashing: `a|b` + `c` and `a` + `b|c` can never collide, whatever the
//! client sends. The client IP is taken from `x-forwarded-for` only as far as the configured
//! number of trusted proxies vouches for it; anything else a client writes there is ignored.

use std::cell::OnceCell;
use std::net::{IpAddr, SocketAddr};

use meshguard_filter_core::{HeaderMap, Host};

use crate::config::{HeaderCondition, KeyPart, Limit, Matcher, MissingKey, PathMatch};

/// The facts limits look at, each read from the host at most once per request and only if a
/// limit needs it (every hostcall is paid on the request path).
#[derive(Debug, Default)]
pub struct Request {
    path: OnceCell<String>,
    method: OnceCell<String>,
}

impl Request {
    /// `:path` without the query string or fragment.
    pub fn path(&self, host: &dyn Host) -> &str {
        self.path.get_or_init(|| {
            let full = host.header(HeaderMap::Request, ":path").unwrap_or_default();
            match full.split_once(['?', '#']) {
                Some((path, _)) => path.to_string(),
                None => full,
            }
        })
    }

    /// `:method`.
    pub fn method(&self, host: &dyn Host) -> &str {
        self.method.get_or_init(|| {
            host.header(HeaderMap::Request, ":method")
                .unwrap_or_default()
        })
    }
}

// === impl Matcher ===

impl Matcher {
    /// Whether every condition holds for this request.
    pub fn matches(&self, host: &dyn Host, request: &Request) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(path)) => request.path(host) == path,
            Some(PathMatch::Prefix(prefix)) => request.path(host).starts_with(prefix.as_str()),
            Some(PathMatch::Regex(regex)) => regex.is_match(request.path(host)),
        };
        if !path_ok {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == request.method(host)) {
            return false;
        }
        self.headers.iter().all(|header| {
            let value = host.header(HeaderMap::Request, &header.name);
            match &header.condition {
                HeaderCondition::Present => value.is_some(),
                HeaderCondition::Absent => value.is_none(),
                HeaderCondition::Equals(expected) => value.as_deref() == Some(expected.as_str()),
            }
        })
    }
}

// === key extraction ===

/// The key a request is counted under for `limit`, as unambiguous bytes. `None` when a part is
/// missing and the limit skips such requests.
pub fn key(limit: &Limit, host: &dyn Host, request: &Request) -> Option<Key> {
    let mut bytes = Vec::with_capacity(64);
    for part in &limit.key {
        match (part_value(part, host, request), limit.on_missing_key) {
            (Some(value), _) => {
                // Tag 1 + length + bytes: a present value never looks like a missing one.
                bytes.push(1);
                let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
                bytes.extend_from_slice(&len.to_le_bytes());
                bytes.extend_from_slice(value.as_bytes());
            }
            (None, MissingKey::Skip) => return None,
            (None, MissingKey::Shared) => bytes.push(0),
        }
    }
    Some(Key { bytes })
}

/// A request's key for one limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Length-prefixed parts (what is hashed).
    pub bytes: Vec<u8>,
}

impl Key {
    /// The parts joined by `|`, for logs only (built when a line is written, not per request).
    pub fn readable(&self) -> String {
        let mut parts = Vec::new();
        let mut rest = self.bytes.as_slice();
        while let Some((&tag, tail)) = rest.split_first() {
            if tag == 0 {
                parts.push("<missing>".to_string());
                rest = tail;
                continue;
            }
            let Some(len) = tail
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .and_then(|len| usize::try_from(len).ok())
            else {
                break;
            };
            let end = len.saturating_add(4);
            let value = tail.get(4..end).unwrap_or_default();
            parts.push(String::from_utf8_lossy(value).into_owned());
            rest = tail.get(end..).unwrap_or_default();
        }
        parts.join("|")
    }
}

fn part_value(part: &KeyPart, host: &dyn Host, request: &Request) -> Option<String> {
    match part {
        KeyPart::ClientIp { trusted_hops } => {
            client_ip(host, *trusted_hops).map(|ip| ip.to_string())
        }
        KeyPart::Header(name) => host.header(HeaderMap::Request, name),
        KeyPart::Cookie(name) => cookie(host, name),
        KeyPart::Path => Some(request.path(host).to_string()),
        KeyPart::Method => Some(request.method(host).to_string()),
        KeyPart::Constant(value) => Some(value.clone()),
    }
}

/// The client address: with `trusted_hops` = N > 0, the N-th address from the right of
/// `x-forwarded-for` (all occurrences joined in order), which is the one the outermost trusted
/// proxy appended; with N = 0, or when the header has fewer than N valid entries, the
/// connection's peer (`source.address`).
pub fn client_ip(host: &dyn Host, trusted_hops: u32) -> Option<IpAddr> {
    if trusted_hops > 0 {
        let chain: Vec<String> = host
            .headers(HeaderMap::Request)
            .into_iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
            .map(|(_, value)| value)
            .collect();
        let entries: Vec<&str> = chain
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let index = usize::try_from(trusted_hops).ok()?;
        if let Some(entry) = entries
            .len()
            .checked_sub(index)
            .and_then(|i| entries.get(i))
            && let Some(ip) = parse_ip(entry)
        {
            return Some(ip);
        }
    }
    let source = host.property(&["source", "address"])?;
    parse_ip(std::str::from_utf8(&source).ok()?)
}

/// An IP from `1.2.3.4`, `1.2.3.4:80`, `::1` or `[::1]:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// The value of cookie `name` across every `cookie` header (HTTP/2 may split them).
pub fn cookie(host: &dyn Host, name: &str) -> Option<String> {
    host.headers(HeaderMap::Request)
        .into_iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case("cookie"))
        .find_map(|(_, value)| {
            value.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
            })
        })
}
