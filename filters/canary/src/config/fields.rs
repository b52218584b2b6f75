//! Validators for single fields: each returns the normalized value or a message, and the
//! caller attaches the field path.

use meshguard_filter_core::ConfigError;

use crate::hash::BUCKETS;

pub(super) fn at(field: &str) -> impl Fn(String) -> ConfigError + '_ {
    move |message| ConfigError::new(field, message)
}

/// RFC 9110 `tchar`: what header and cookie names may contain.
pub(super) fn tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

pub(super) fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("`{name}` is not an HTTP header name"));
    }
    Ok(name.to_ascii_lowercase())
}

pub(super) fn header_value(value: &str) -> Result<String, String> {
    if value.bytes().any(|b| b.is_ascii_control()) {
        return Err("control characters are not allowed".to_string());
    }
    Ok(value.to_string())
}

pub(super) fn cookie_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("`{name}` is not a cookie name"));
    }
    Ok(name.to_string())
}

pub(super) fn cookie_attribute_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b';' && byte != b','
}

/// Service and version names travel in a header value and in stat names: letters, digits,
/// `-` and `_`, at most 63 characters.
pub(super) fn identifier(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!(
            "`{name}` must be 1 to 63 letters, digits, `-` or `_`"
        ));
    }
    Ok(name.to_string())
}

/// A percentage with at most two decimals, as a share of the ring.
pub(super) fn weight(percent: f64) -> Result<u32, String> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not a percentage between 0 and 100"));
    }
    let scaled = percent * f64::from(BUCKETS) / 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(format!(
            "{percent} has more than two decimals (the ring has {BUCKETS} buckets)"
        ));
    }
    // 0 <= rounded <= BUCKETS, so the cast is exact.
    Ok(rounded as u32)
}
