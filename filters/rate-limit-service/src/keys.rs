//! Redis keys: one per (domain, descriptor entries, unit).
//!
//! The key is built from the request's own entries, as envoyproxy/ratelimit builds its cache
//! keys, so a key-only limit (`key: remote_address`) counts every value separately. It is
//! readable for an operator (`redis-cli --scan --pattern 'meshguard:rls:*'`) and unambiguous:
//! `prefix domain|key=value|key=value#unit`, with `%`, `|`, `=`, `#` and control characters in
//! the parts percent-encoded. The unit is part of the key because a TAT is only meaningful under
//! its tolerance: after a limit moves from per-day to per-second, an old day-long TAT would
//! otherwise refuse for a day. A change of `requests_per_unit` keeps the key, and the budget
//! already used carries over.
//!
//! Entry values come from requests (header values, addresses), so their length is the client's
//! choice: a key longer than [`MAX_KEY_LEN`] is replaced by the SHA-256 of its entries.

use std::fmt::Write as _;

use meshguard_rls::Unit;
use sha2::{Digest, Sha256};

/// The longest key written as is.
pub const MAX_KEY_LEN: usize = 512;

/// The key for a descriptor of `entries` in `domain` under a limit per `unit`.
pub fn counter_key(prefix: &str, domain: &str, entries: &[(&str, &str)], unit: Unit) -> String {
    let mut body = String::new();
    for (key, value) in entries {
        body.push('|');
        escape_into(&mut body, key);
        body.push('=');
        escape_into(&mut body, value);
    }
    let mut out = String::with_capacity(prefix.len() + domain.len() + body.len() + 8);
    out.push_str(prefix);
    escape_into(&mut out, domain);
    if out.len() + body.len() + 8 > MAX_KEY_LEN {
        let digest = Sha256::digest(body.as_bytes());
        out.push_str("|sha256:");
        for byte in digest {
            let _ = write!(out, "{byte:02x}");
        }
    } else {
        out.push_str(&body);
    }
    out.push('#');
    out.push_str(unit.name());
    out
}

fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        if matches!(c, '%' | '|' | '=' | '#') || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_and_unambiguous() {
        let key = counter_key(
            "meshguard:rls:",
            "edge",
            &[("user", "alice"), ("path", "/api/orders")],
            Unit::Minute,
        );
        assert_eq!(key, "meshguard:rls:edge|user=alice|path=/api/orders#minute");
        // Separators inside parts cannot forge another descriptor.
        let a = counter_key("p:", "d", &[("a", "b|c=d")], Unit::Second);
        let b = counter_key("p:", "d", &[("a", "b"), ("c", "d")], Unit::Second);
        assert_ne!(a, b);
        assert_eq!(a, "p:d|a=b%7Cc%3Dd#second");
        assert_eq!(
            counter_key("p:", "d", &[("k", "line\nbreak%")], Unit::Hour),
            "p:d|k=line%0Abreak%25#hour"
        );
        // The unit separates the same descriptor under two limits.
        assert_ne!(
            counter_key("p:", "d", &[("k", "v")], Unit::Second),
            counter_key("p:", "d", &[("k", "v")], Unit::Day)
        );
    }

    #[test]
    fn long_values_are_hashed_to_a_bounded_key() {
        let long = "x".repeat(10_000);
        let key = counter_key("meshguard:rls:", "edge", &[("token", &long)], Unit::Minute);
        assert!(key.len() < 120, "{}", key.len());
        assert!(key.starts_with("meshguard:rls:edge|sha256:"));
        let other = counter_key(
            "meshguard:rls:",
            "edge",
            &[("token", &long[1..])],
            Unit::Minute,
        );
        assert_ne!(key, other);
    }
}
