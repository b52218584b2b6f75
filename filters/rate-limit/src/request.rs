//! The key a request is counted under, from the request model's facts.
//!
//! Keys are built from untrusted input (headers, cookies), so parts are length-prefixed before
//! hashing: `a|b` + `c` and `a` + `b|c` can never collide, whatever the client sends. Every fact
//! comes through the [`Ctx`], so a header another limit (or another stage) already read costs
//! no hostcall.

use meshguard_filter_core::Ctx;
use meshguard_filter_core::request::path_only;

use crate::config::{KeyPart, Limit, MissingKey};

/// The key a request is counted under for `limit`, as unambiguous bytes. `None` when a part is
/// missing and the limit skips such requests.
pub fn key(limit: &Limit, ctx: &Ctx<'_>) -> Option<Key> {
    let mut bytes = Vec::with_capacity(64);
    for part in &limit.key {
        match (part_value(part, ctx), limit.on_missing_key) {
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

/// The value of one key part for the request (`None` when missing).
pub fn part_value(part: &KeyPart, ctx: &Ctx<'_>) -> Option<String> {
    match part {
        KeyPart::ClientIp => ctx.client_address().map(|ip| ip.to_string()),
        KeyPart::Header(name) => ctx.request_header(name).map(|value| value.to_string()),
        KeyPart::Cookie(name) => ctx.cookie(name),
        KeyPart::Claim(path) => ctx.claim(path),
        KeyPart::Path => Some(path_only(&ctx.path()).to_string()),
        KeyPart::Method => Some(ctx.method().to_string()),
        KeyPart::Constant(value) => Some(value.clone()),
    }
}
