//! Reading a cookie from a `Cookie` header and writing the pin cookie's `Set-Cookie` line.
//!
//! Cookies are untrusted input: parsing never fails, it only finds or does not find a value.
//! The pin cookie's value is a random 64-bit id in 16 hex digits; anything else in that cookie
//! is ignored and a fresh pin is issued, so a hand-made value cannot smuggle a long or odd key
//! into the hash (testers who want a version use the override instead).

use crate::config::{PinCookie, SameSite};

/// Cookie parsing is the request model's, so a cookie means the same in every filter.
pub use meshguard_filter_core::request::cookie_value;

/// A fresh pin value from 64 random bits.
pub fn pin_value(random: u64) -> String {
    format!("{random:016x}")
}

/// Whether `value` is a pin this filter could have issued.
pub fn is_pin_value(value: &str) -> bool {
    value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `Set-Cookie` value that stores `value` in the pin cookie.
pub fn set_cookie(pin: &PinCookie, value: &str) -> String {
    let mut line = format!(
        "{}={value}; Max-Age={}; Path={}",
        pin.name, pin.max_age_seconds, pin.path
    );
    if let Some(domain) = &pin.domain {
        line.push_str("; Domain=");
        line.push_str(domain);
    }
    if pin.secure {
        line.push_str("; Secure");
    }
    if pin.http_only {
        line.push_str("; HttpOnly");
    }
    line.push_str(match pin.same_site {
        SameSite::Strict => "; SameSite=Strict",
        SameSite::Lax => "; SameSite=Lax",
        SameSite::None => "; SameSite=None",
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_values_round_trip() {
        for random in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let value = pin_value(random);
            assert!(is_pin_value(&value), "{value}");
        }
        for bad in [
            "",
            "abc",
            "0123456789abcdeg",
            "0123456789abcdef0",
            "user-42",
        ] {
            assert!(!is_pin_value(bad), "{bad}");
        }
    }

    #[test]
    fn set_cookie_carries_every_configured_attribute() {
        let mut pin = PinCookie {
            name: "mesh-canary".into(),
            max_age_seconds: 600,
            path: "/".into(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
        };
        assert_eq!(
            set_cookie(&pin, "00000000000000ff"),
            "mesh-canary=00000000000000ff; Max-Age=600; Path=/; HttpOnly; SameSite=Lax"
        );
        pin.domain = Some("shop.example.com".into());
        pin.secure = true;
        pin.http_only = false;
        pin.same_site = SameSite::None;
        assert_eq!(
            set_cookie(&pin, "x"),
            "mesh-canary=x; Max-Age=600; Path=/; Domain=shop.example.com; Secure; SameSite=None"
        );
    }
}
