//! Rate-limit response headers.
//!
//! A GCRA limit of `requests` per `per` with `burst` extra is a budget of
//! `q = requests + burst` cells that refills completely in `w = q * per / requests` seconds;
//! that pair is what both styles advertise, so `r` (remaining) never exceeds `q` and `q / w` is
//! the configured rate. `t` / reset is the number of seconds until the key's budget is full
//! again (0 when it is). Only enforced limits are advertised; shadow limits are invisible to
//! clients.
//!
//! - `ietf` (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy: "name";q=15;w=90` and
//!   `RateLimit: "name";r=4;t=66`, one list member per matching limit.
//! - `xRateLimit` (Envoy's `DRAFT_VERSION_03`): the most restrictive limit's
//!   `X-RateLimit-Limit: 15, 15;w=90[, other;w=..]`, `X-RateLimit-Remaining: 4`,
//!   `X-RateLimit-Reset: 66`.

use std::fmt::Write as _;

use crate::config::HeaderStyle;

/// The state of one enforced limit after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus {
    /// Limit name.
    pub name: String,
    /// `requests + burst`.
    pub quota: u32,
    /// Seconds for the whole quota to refill.
    pub window: u64,
    /// Cells left now.
    pub remaining: u32,
    /// Seconds until the budget is full again.
    pub reset: u64,
}

/// The headers to send for `statuses` in `style` (lowercase names).
pub fn render(style: HeaderStyle, statuses: &[LimitStatus]) -> Vec<(String, String)> {
    if statuses.is_empty() {
        return Vec::new();
    }
    match style {
        HeaderStyle::None => Vec::new(),
        HeaderStyle::Ietf => {
            let mut policy = String::new();
            let mut current = String::new();
            for (index, status) in statuses.iter().enumerate() {
                let sep = if index == 0 { "" } else { ", " };
                let _ = write!(
                    policy,
                    "{sep}\"{}\";q={};w={}",
                    status.name, status.quota, status.window
                );
                let _ = write!(
                    current,
                    "{sep}\"{}\";r={};t={}",
                    status.name, status.remaining, status.reset
                );
            }
            vec![
                ("ratelimit-policy".to_string(), policy),
                ("ratelimit".to_string(), current),
            ]
        }
        HeaderStyle::XRateLimit => {
            // Most restrictive: fewest cells left, then the longest wait.
            let Some(tightest) = statuses
                .iter()
                .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.reset.cmp(&a.reset)))
            else {
                return Vec::new();
            };
            let mut limit = tightest.quota.to_string();
            for status in statuses {
                let _ = write!(limit, ", {};w={}", status.quota, status.window);
            }
            vec![
                ("x-ratelimit-limit".to_string(), limit),
                (
                    "x-ratelimit-remaining".to_string(),
                    tightest.remaining.to_string(),
                ),
                ("x-ratelimit-reset".to_string(), tightest.reset.to_string()),
            ]
        }
    }
}

/// Whole seconds from `now` until `until` (ns), rounded up.
pub fn seconds_until(now: u64, until: u64) -> u64 {
    until.saturating_sub(now).div_ceil(1_000_000_000)
}
