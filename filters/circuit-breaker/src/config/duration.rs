//! Durations as operators write them in Istio and Envoy configuration: `250ms`, `2s`, `1.5s`,
//! `5m`, `1h`.

use std::time::Duration;

use meshguard_filter_core::ConfigError;

/// Parses a duration such as `250ms`, `2s`, `1.5s`, `5m` or `1h` (millisecond precision, from
/// 1 ms to 24 h).
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let not_a_duration = || {
        ConfigError::new(
            ".",
            format!("`{text}` is not a duration: use a number with ms, s, m or h (`500ms`)"),
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale_ms: u128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(not_a_duration()),
    };
    // Exact decimal arithmetic: `1.1s` is 1100 ms, not 1100.0000000000002.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return Err(not_a_duration());
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().map_err(|_| not_a_duration())?;
    let divisor = 10u128.pow(fraction.len() as u32);
    let scaled = mantissa.saturating_mul(scale_ms);
    let millis = scaled / divisor;
    if !scaled.is_multiple_of(divisor) || !(1..=86_400_000).contains(&millis) {
        return Err(ConfigError::new(
            ".",
            format!("`{text}` must be a whole number of milliseconds from 1ms to 24h"),
        ));
    }
    Ok(Duration::from_millis(millis as u64))
}
