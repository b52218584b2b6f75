//! Envoy's rate-limit service protocol, RLS v3 (`envoy.service.ratelimit.v3.RateLimitService`),
//! as the messages a caller sends and reads: what a proxy-wasm filter puts in a
//! `ShouldRateLimit` gRPC callout, and what it gets back from any RLS v3 server
//! (meshguard's rate-limit service, envoyproxy/ratelimit, Limitador).
//!
//! Why not `envoy-types` here, when the service uses it: `envoy-types` carries all of Envoy's
//! protos together with tonic's transport, which pulls tokio's networking and does not build for
//! `wasm32-wasip1` at all (measured: tokio refuses the `net` feature on wasm). The wire format is
//! still prost's, a well-kept crate; only the message declarations are ours, cut to the fields a
//! caller uses (prost skips the others when decoding). Measured on a minimal wasm32 module in the
//! workspace's size profile: these messages with encode and decode add 11 KB (29 KB to 40 KB), about
//! 1% of the rate-limit filter. `tests/differential.rs` checks every message against Envoy's own
//! generated types in both directions, so a wrong tag cannot go unnoticed.
//!
//! A gRPC callout carries the serialized message only: Envoy adds the gRPC framing.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::time::Duration as StdDuration;

pub use prost::{DecodeError, Message};

/// The gRPC service name, as a callout names it.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The one method of [`SERVICE`].
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitRequest`: a domain and the descriptors to limit on.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitRequest {
    /// The domain: which configuration of the service applies.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// The descriptors; the request is over limit if any of them is.
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<RateLimitDescriptor>,
    /// Hits this request adds to every matched limit; 0 (unset) means 1.
    #[prost(uint32, tag = "3")]
    pub hits_addend: u32,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor`: ordered key/value entries.
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitDescriptor {
    /// The entries, outermost first.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    /// A limit that replaces the service's configured one for this descriptor.
    #[prost(message, optional, tag = "2")]
    pub limit: Option<RateLimitOverride>,
    /// Hits for this descriptor only, overriding the request's `hits_addend`.
    #[prost(message, optional, tag = "3")]
    pub hits_addend: Option<UInt64Value>,
    /// Whether the hits give budget back instead of taking it.
    #[prost(bool, tag = "4")]
    pub is_negative_hits: bool,
}

/// One descriptor entry.
#[derive(Clone, PartialEq, Eq, Hash, Message)]
pub struct Entry {
    /// The key, such as `remote_address` or `PATH`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value, such as `10.0.0.1` or `/productpage`.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitDescriptor.RateLimitOverride`: a limit sent by the caller.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct RateLimitOverride {
    /// Requests per unit.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The unit (`envoy.type.v3.RateLimitUnit`, numbered as [`Unit`]).
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

/// `google.protobuf.UInt64Value`.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct UInt64Value {
    /// The value.
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `RateLimitResponse`: the overall answer and one status per descriptor, in request order.
/// prost's getters (`overall_code()`, a status's `code()`) read an unknown number as
/// [`Code::Unknown`].
#[derive(Clone, PartialEq, Message)]
pub struct RateLimitResponse {
    /// `OVER_LIMIT` if any descriptor is over its limit, else `OK`.
    #[prost(enumeration = "Code", tag = "1")]
    pub overall_code: i32,
    /// One status per request descriptor.
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
    /// Headers the caller should add to its response.
    #[prost(message, repeated, tag = "3")]
    pub response_headers_to_add: Vec<HeaderValue>,
    /// Headers the caller should add to the request it forwards.
    #[prost(message, repeated, tag = "4")]
    pub request_headers_to_add: Vec<HeaderValue>,
}

/// `RateLimitResponse.DescriptorStatus`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DescriptorStatus {
    /// This descriptor's answer.
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    /// The limit that applied (absent when none did).
    #[prost(message, optional, tag = "2")]
    pub current_limit: Option<RateLimit>,
    /// Requests left under the limit.
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    /// When the limit resets: for meshguard's service, on `OVER_LIMIT` the wait until the
    /// request would be admitted, on `OK` the time until the whole budget is back.
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<Duration>,
}

/// `RateLimitResponse.RateLimit`: a limit as the service reports it.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RateLimit {
    /// The limit's name, if configured.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Requests per unit.
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// The unit.
    #[prost(enumeration = "Unit", tag = "2")]
    pub unit: i32,
}

/// `envoy.config.core.v3.HeaderValue`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct HeaderValue {
    /// Header name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Header value.
    #[prost(string, tag = "2")]
    pub value: String,
    /// The value as bytes, used instead of `value` when set.
    #[prost(bytes = "vec", tag = "3")]
    pub raw_value: Vec<u8>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct Duration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds on top of `seconds`.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `RateLimitResponse.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    /// The service could not decide. Envoy's own filter reads an `UNKNOWN` overall code in a
    /// successful answer as `OK`, so a service that cannot decide answers with a gRPC error
    /// instead (meshguard's does); a caller should treat `UNKNOWN` as an error all the same.
    Unknown = 0,
    /// Within the limit.
    Ok = 1,
    /// Over the limit.
    OverLimit = 2,
}

/// The rate-limit unit, numbered as both `RateLimitResponse.RateLimit.Unit` and
/// `envoy.type.v3.RateLimitUnit` (the latter, used by descriptor overrides, has no week).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Unit {
    /// Not known.
    Unknown = 0,
    /// A second.
    Second = 1,
    /// A minute.
    Minute = 2,
    /// An hour.
    Hour = 3,
    /// A day.
    Day = 4,
    /// A month, counted as 30 days (as envoyproxy/ratelimit does).
    Month = 5,
    /// A year, counted as 365 days (as envoyproxy/ratelimit does).
    Year = 6,
    /// A week.
    Week = 7,
}

// === impl Unit ===

impl Unit {
    /// The unit's length in seconds (`None` for [`Unit::Unknown`]).
    pub fn seconds(self) -> Option<u64> {
        match self {
            Self::Unknown => None,
            Self::Second => Some(1),
            Self::Minute => Some(60),
            Self::Hour => Some(3_600),
            Self::Day => Some(86_400),
            Self::Week => Some(7 * 86_400),
            Self::Month => Some(30 * 86_400),
            Self::Year => Some(365 * 86_400),
        }
    }

    /// The unit named as in a rate-limit configuration (`second` ... `year`, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Second,
            Self::Minute,
            Self::Hour,
            Self::Day,
            Self::Week,
            Self::Month,
            Self::Year,
        ]
        .into_iter()
        .find(|unit| unit.name().eq_ignore_ascii_case(name))
    }

    /// The configuration name (`second`, `minute`, ...; `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

// === impl RateLimitRequest ===

impl RateLimitRequest {
    /// A request for `domain` with no descriptors yet, counting one hit.
    pub fn new(domain: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            descriptors: Vec::new(),
            hits_addend: 1,
        }
    }

    /// Adds a descriptor made of `entries` (key, value), outermost first.
    pub fn descriptor<K, V>(mut self, entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.descriptors.push(RateLimitDescriptor::new(entries));
        self
    }
}

// === impl RateLimitDescriptor ===

impl RateLimitDescriptor {
    /// A descriptor of `entries` (key, value), outermost first.
    pub fn new<K, V>(entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            entries: entries
                .into_iter()
                .map(|(key, value)| Entry {
                    key: key.into(),
                    value: value.into(),
                })
                .collect(),
            limit: None,
            hits_addend: None,
            is_negative_hits: false,
        }
    }
}

// === impl RateLimitResponse ===

impl RateLimitResponse {
    /// How long a refused caller should wait: the longest `duration_until_reset` among the
    /// descriptors that are over their limit, i.e. the time after which every exceeded limit
    /// admits again (`None` when no over-limit status carries one).
    pub fn retry_after(&self) -> Option<StdDuration> {
        self.statuses
            .iter()
            .filter(|status| status.code() == Code::OverLimit)
            .filter_map(|status| status.duration_until_reset?.to_std())
            .max()
    }
}

// === impl Duration ===

impl Duration {
    /// A protobuf duration from a std one (saturating at `i64::MAX` seconds).
    pub fn from_std(duration: StdDuration) -> Self {
        Self {
            seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
        }
    }

    /// The std duration, or `None` if negative or malformed.
    pub fn to_std(self) -> Option<StdDuration> {
        let seconds = u64::try_from(self.seconds).ok()?;
        let nanos = u32::try_from(self.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)?;
        Some(StdDuration::new(seconds, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_envoyproxy_ratelimit() {
        for (name, unit, seconds) in [
            ("second", Unit::Second, 1),
            ("MINUTE", Unit::Minute, 60),
            ("Hour", Unit::Hour, 3_600),
            ("day", Unit::Day, 86_400),
            ("week", Unit::Week, 604_800),
            ("month", Unit::Month, 2_592_000),
            ("year", Unit::Year, 31_536_000),
        ] {
            assert_eq!(Unit::from_name(name), Some(unit), "{name}");
            assert_eq!(unit.seconds(), Some(seconds), "{name}");
        }
        assert_eq!(Unit::from_name("unknown"), None);
        assert_eq!(Unit::from_name("minutes"), None);
        assert_eq!(Unit::Unknown.seconds(), None);
    }

    #[test]
    fn retry_after_is_the_longest_over_limit_wait() {
        let status = |code: Code, seconds: i64| DescriptorStatus {
            code: code as i32,
            current_limit: None,
            limit_remaining: 0,
            duration_until_reset: Some(Duration { seconds, nanos: 0 }),
        };
        let response = RateLimitResponse {
            overall_code: Code::OverLimit as i32,
            statuses: vec![
                status(Code::OverLimit, 3),
                status(Code::Ok, 60),
                status(Code::OverLimit, 7),
            ],
            ..Default::default()
        };
        assert_eq!(response.retry_after(), Some(StdDuration::from_secs(7)));
        assert_eq!(response.overall_code(), Code::OverLimit);
        let ok = RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![status(Code::Ok, 60)],
            ..Default::default()
        };
        assert_eq!(ok.retry_after(), None);
    }

    #[test]
    fn unknown_codes_read_as_unknown() {
        let response = RateLimitResponse {
            overall_code: 9,
            ..Default::default()
        };
        assert_eq!(response.overall_code(), Code::Unknown);
        assert_eq!(RateLimitResponse::default().overall_code(), Code::Unknown);
    }

    #[test]
    fn durations_convert_and_refuse_negatives() {
        let d = Duration::from_std(StdDuration::from_millis(1_500));
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        assert_eq!(d.to_std(), Some(StdDuration::from_millis(1_500)));
        assert_eq!(
            Duration {
                seconds: -1,
                nanos: 0
            }
            .to_std(),
            None
        );
        assert_eq!(
            Duration {
                seconds: 0,
                nanos: 1_000_000_000
            }
            .to_std(),
            None
        );
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        for bytes in [&[0xff_u8][..], &[0x12, 0x05, 0x0a][..], &[0x08][..]] {
            assert!(RateLimitResponse::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
