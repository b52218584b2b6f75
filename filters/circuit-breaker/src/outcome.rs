//! Classifying a finished (or finishing) call: failed, slow, not a call at all, or not known
//! until the gRPC trailers arrive.
//!
//! The facts come from the host (status, `response.code_details`, `response.flags`, gRPC status,
//! latency); this module only judges them against `failureWhen` and `slowCall`, so every rule is
//! unit-tested without a host.

use std::time::Duration;

use crate::config::{Breaker, UPSTREAM_FLAGS};
use crate::machine::Outcome;

/// `response.code_details` of an answer that came from the upstream.
pub const VIA_UPSTREAM: &str = "via_upstream";

/// What the host knows when the response headers pass the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    /// `:status`.
    pub status: Option<u16>,
    /// `response.code_details` (`via_upstream`, `upstream_reset_before_response_started{..}`...).
    pub code_details: Option<String>,
    /// `response.flags` (legacy bitmask); `None` when not read or unavailable.
    pub flags: Option<u64>,
    /// Whether the response is gRPC (`content-type: application/grpc...`).
    pub grpc: bool,
    /// `grpc-status` from the headers (trailers-only responses).
    pub grpc_status: Option<u32>,
}

/// The judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Record this outcome.
    Record(Outcome),
    /// Not an answer of the protected service (a later filter's local reply, a client that went
    /// away): record nothing and give back any half-open permit.
    Ignore,
    /// A gRPC response whose status arrives in the trailers: decide at stream end.
    AwaitTrailers,
}

/// Whether the response's origin (`response.code_details`, `response.flags`) must be read to
/// judge it. Not for the common case, a closed-state call answered with a status below 400
/// that is not a failure status: Envoy never answers an upstream failure (reset, timeout,
/// refused connection, overflow) with such a status, so it is a success whoever produced it.
/// Probes are always checked, so that only a real upstream answer can close a breaker.
pub fn needs_origin(breaker: &Breaker, status: Option<u16>, probe: bool) -> bool {
    match status {
        Some(status) if (100..400).contains(&status) => {
            probe || breaker.failure.status_fails(status)
        }
        _ => true,
    }
}

/// Whether the response's origin needs `response.flags` to be judged: anything not marked as
/// coming from the upstream.
pub fn needs_flags(code_details: Option<&str>) -> bool {
    code_details != Some(VIA_UPSTREAM)
}

fn slow(breaker: &Breaker, latency: Duration) -> bool {
    breaker
        .slow_call
        .is_some_and(|slow| latency >= slow.duration)
}

/// Judges a call at its response headers.
pub fn at_headers(breaker: &Breaker, facts: &ResponseFacts, latency: Duration) -> Verdict {
    let failure = &breaker.failure;
    let flags = facts.flags.unwrap_or(0);
    let slow = slow(breaker, latency);
    if failure.flags_fail(flags) {
        return Verdict::Record(Outcome { failed: true, slow });
    }
    let local_reply = facts
        .code_details
        .as_deref()
        .is_some_and(|details| details != VIA_UPSTREAM);
    if local_reply && flags & UPSTREAM_FLAGS == 0 {
        // Answered by a filter (auth, rate limit...) before the request reached the upstream.
        return Verdict::Ignore;
    }
    let Some(status) = facts.status else {
        return Verdict::Ignore;
    };
    if failure.status_fails(status) {
        return Verdict::Record(Outcome { failed: true, slow });
    }
    if facts.grpc && failure.grpc_statuses != 0 {
        match facts.grpc_status {
            Some(code) => {
                return Verdict::Record(Outcome {
                    failed: failure.grpc_fails(code),
                    slow,
                });
            }
            None => return Verdict::AwaitTrailers,
        }
    }
    Verdict::Record(Outcome {
        failed: false,
        slow,
    })
}

/// Judges a gRPC call at stream end from the status in its trailers (`response.grpc_status`)
/// and the flags (a reset after the headers leaves no status).
pub fn at_trailers(
    breaker: &Breaker,
    grpc_status: Option<u32>,
    flags: u64,
    latency: Duration,
) -> Verdict {
    let slow = slow(breaker, latency);
    let failed = breaker.failure.flags_fail(flags)
        || grpc_status.is_some_and(|code| breaker.failure.grpc_fails(code));
    Verdict::Record(Outcome { failed, slow })
}

/// Judges a call that ended without response headers reaching the filter (a reset or timeout
/// with no local reply, or a client that went away): a failure if the flags say the upstream
/// failed, otherwise not a call.
pub fn at_stream_end(breaker: &Breaker, flags: u64, latency: Duration) -> Verdict {
    if breaker.failure.flags_fail(flags) {
        Verdict::Record(Outcome {
            failed: true,
            slow: slow(breaker, latency),
        })
    } else {
        Verdict::Ignore
    }
}

/// Reads a gRPC status header value.
pub fn parse_grpc_status(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// Whether a `content-type` is gRPC.
pub fn is_grpc(content_type: &str) -> bool {
    content_type
        .get(..16)
        .is_some_and(|head| head.eq_ignore_ascii_case("application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    const UT: u64 = 1 << 2;
    const UF: u64 = 1 << 5;
    const RL: u64 = 1 << 11;
    const DC: u64 = 1 << 14;

    fn breaker(extra: &str) -> Breaker {
        let json = format!(r#"{{"breakers":[{{"name":"b"{extra}}}]}}"#);
        parse_config(json.as_bytes()).unwrap().breakers.remove(0)
    }

    fn upstream(status: u16) -> ResponseFacts {
        ResponseFacts {
            status: Some(status),
            code_details: Some(VIA_UPSTREAM.into()),
            ..ResponseFacts::default()
        }
    }

    fn failed(failed: bool, slow: bool) -> Verdict {
        Verdict::Record(Outcome { failed, slow })
    }

    #[test]
    fn statuses_by_default_5xx_fail() {
        let b = breaker("");
        let ms = Duration::from_millis(5);
        for (status, expected) in [(200, false), (404, false), (429, false), (500, true)] {
            assert_eq!(
                at_headers(&b, &upstream(status), ms),
                failed(expected, false),
                "{status}"
            );
        }
        let b = breaker(r#","failureWhen":{"statuses":[429,"502-504"]}"#);
        for (status, expected) in [(429, true), (500, false), (503, true), (505, false)] {
            assert_eq!(
                at_headers(&b, &upstream(status), ms),
                failed(expected, false),
                "{status}"
            );
        }
    }

    #[test]
    fn envoy_timeouts_and_resets_fail_through_flags_even_without_a_failing_status() {
        let b = breaker(r#","failureWhen":{"statuses":[]}"#);
        let timeout = ResponseFacts {
            status: Some(504),
            code_details: Some("upstream_response_timeout".into()),
            flags: Some(UT),
            ..ResponseFacts::default()
        };
        assert_eq!(
            at_headers(&b, &timeout, Duration::ZERO),
            failed(true, false)
        );
        let refused = ResponseFacts {
            flags: Some(UF),
            ..timeout
        };
        assert_eq!(
            at_headers(&b, &refused, Duration::ZERO),
            failed(true, false)
        );
    }

    #[test]
    fn a_later_filters_local_reply_is_not_a_call() {
        let b = breaker(r#","failureWhen":{"statuses":["4xx","5xx"]}"#);
        let limited = ResponseFacts {
            status: Some(429),
            code_details: Some("local_rate_limited".into()),
            flags: Some(RL),
            ..ResponseFacts::default()
        };
        assert_eq!(at_headers(&b, &limited, Duration::ZERO), Verdict::Ignore);
        let denied = ResponseFacts {
            status: Some(401),
            code_details: Some("jwt_authn_access_denied".into()),
            flags: Some(0),
            ..ResponseFacts::default()
        };
        assert_eq!(at_headers(&b, &denied, Duration::ZERO), Verdict::Ignore);
    }

    #[test]
    fn a_local_reply_about_the_upstream_is_judged_by_status_when_its_flag_is_not_listed() {
        // URX not in the list, but the 503 Envoy answered after the retries is a 5xx.
        let b = breaker(r#","failureWhen":{"responseFlags":["UT"]}"#);
        let exhausted = ResponseFacts {
            status: Some(503),
            code_details: Some("upstream_reset_before_response_started{overflow}".into()),
            flags: Some(1 << 15),
            ..ResponseFacts::default()
        };
        assert_eq!(
            at_headers(&b, &exhausted, Duration::ZERO),
            failed(true, false)
        );
    }

    #[test]
    fn without_code_details_the_status_decides() {
        let b = breaker("");
        let facts = ResponseFacts {
            status: Some(502),
            ..ResponseFacts::default()
        };
        assert_eq!(at_headers(&b, &facts, Duration::ZERO), failed(true, false));
        assert_eq!(
            at_headers(&b, &ResponseFacts::default(), Duration::ZERO),
            Verdict::Ignore
        );
    }

    #[test]
    fn slow_calls_are_marked_only_when_configured() {
        let b = breaker(r#","slowCall":{"duration":"200ms"}"#);
        assert_eq!(
            at_headers(&b, &upstream(200), Duration::from_millis(199)),
            failed(false, false)
        );
        assert_eq!(
            at_headers(&b, &upstream(200), Duration::from_millis(200)),
            failed(false, true)
        );
        assert_eq!(
            at_headers(&b, &upstream(503), Duration::from_secs(1)),
            failed(true, true)
        );
        let plain = breaker("");
        assert_eq!(
            at_headers(&plain, &upstream(200), Duration::from_secs(100)),
            failed(false, false)
        );
    }

    #[test]
    fn grpc_status_in_headers_or_trailers() {
        let b = breaker("");
        let trailers_only = ResponseFacts {
            grpc: true,
            grpc_status: Some(14),
            ..upstream(200)
        };
        assert_eq!(
            at_headers(&b, &trailers_only, Duration::ZERO),
            failed(true, false)
        );
        let not_found = ResponseFacts {
            grpc_status: Some(5),
            ..trailers_only.clone()
        };
        assert_eq!(
            at_headers(&b, &not_found, Duration::ZERO),
            failed(false, false)
        );
        let streaming = ResponseFacts {
            grpc_status: None,
            ..trailers_only
        };
        assert_eq!(
            at_headers(&b, &streaming, Duration::ZERO),
            Verdict::AwaitTrailers
        );
        assert_eq!(
            at_trailers(&b, Some(4), 0, Duration::ZERO),
            failed(true, false)
        );
        assert_eq!(
            at_trailers(&b, Some(0), 0, Duration::ZERO),
            failed(false, false)
        );
        assert_eq!(
            at_trailers(&b, None, 1 << 4, Duration::ZERO),
            failed(true, false)
        );
        // gRPC judging switched off: the HTTP status decides at once.
        let http_only = breaker(r#","failureWhen":{"grpcStatuses":[]}"#);
        let streaming = ResponseFacts {
            grpc: true,
            ..upstream(200)
        };
        assert_eq!(
            at_headers(&http_only, &streaming, Duration::ZERO),
            failed(false, false)
        );
    }

    #[test]
    fn stream_end_without_headers() {
        let b = breaker("");
        assert_eq!(
            at_stream_end(&b, 1 << 4, Duration::ZERO),
            failed(true, false)
        );
        // The client went away: not the service's fault.
        assert_eq!(at_stream_end(&b, DC, Duration::ZERO), Verdict::Ignore);
        assert_eq!(at_stream_end(&b, 0, Duration::ZERO), Verdict::Ignore);
    }

    #[test]
    fn helpers() {
        assert!(is_grpc("application/grpc+proto"));
        assert!(is_grpc("Application/GRPC"));
        assert!(!is_grpc("application/json"));
        assert!(!is_grpc("app"));
        assert_eq!(parse_grpc_status(" 14"), Some(14));
        assert_eq!(parse_grpc_status("x"), None);
        let b = breaker(r#","failureWhen":{"statuses":["5xx",302]}"#);
        assert!(!needs_origin(&b, Some(200), false));
        assert!(!needs_origin(&b, Some(304), false));
        assert!(
            needs_origin(&b, Some(200), true),
            "probes are always checked"
        );
        assert!(
            needs_origin(&b, Some(302), false),
            "a configured failure status"
        );
        assert!(needs_origin(&b, Some(404), false));
        assert!(needs_origin(&b, Some(503), false));
        assert!(needs_origin(&b, None, false));
        assert!(needs_flags(None));
        assert!(needs_flags(Some("response_timeout")));
        assert!(!needs_flags(Some(VIA_UPSTREAM)));
    }
}
