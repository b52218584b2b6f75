//! `failureWhen`: which responses count as failures of the protected service.
//!
//! Three independent signals, as an Envoy operator knows them: HTTP statuses (`503`, `5xx`,
//! `500-504`), Envoy response flags (`UT`, `UF`, `URX`... the same short codes as in access logs,
//! read through the `response.flags` property, which is how resets and timeouts become visible
//! to a filter), and gRPC statuses (`UNAVAILABLE` or `14`). Each list defaults independently when
//! left out; an empty list switches that signal off.

use meshguard_filter_core::ConfigError;

/// A status code or a number-like entry, as written in JSON.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum RawCode {
    /// `503`.
    Number(u64),
    /// `"5xx"`, `"503"`, `"500-504"`, `"UNAVAILABLE"`.
    Text(String),
}

/// Raw `failureWhen`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawFailureWhen {
    statuses: Option<Vec<RawCode>>,
    response_flags: Option<Vec<String>>,
    grpc_statuses: Option<Vec<RawCode>>,
}

/// An inclusive range of HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest status in the range.
    pub from: u16,
    /// Highest status in the range.
    pub to: u16,
}

impl StatusRange {
    /// Whether `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }
}

/// Validated `failureWhen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureWhen {
    /// Statuses that are failures.
    pub statuses: Vec<StatusRange>,
    /// Envoy response flags (legacy bitmask of `response.flags`) that are failures.
    pub response_flags: u64,
    /// gRPC status codes that are failures, as a bitmask (bit n = code n).
    pub grpc_statuses: u32,
}

impl Default for FailureWhen {
    fn default() -> Self {
        Self {
            statuses: vec![StatusRange { from: 500, to: 599 }],
            response_flags: DEFAULT_FAILURE_FLAGS,
            grpc_statuses: DEFAULT_GRPC_FAILURES,
        }
    }
}

impl FailureWhen {
    /// Whether `status` is a failure status.
    pub fn status_fails(&self, status: u16) -> bool {
        self.statuses.iter().any(|range| range.contains(status))
    }

    /// Whether any of `flags` (the `response.flags` bitmask) is a failure flag.
    pub fn flags_fail(&self, flags: u64) -> bool {
        self.response_flags & flags != 0
    }

    /// Whether gRPC status `code` is a failure.
    pub fn grpc_fails(&self, code: u32) -> bool {
        code < 32 && self.grpc_statuses & (1 << code) != 0
    }
}

impl TryFrom<RawFailureWhen> for FailureWhen {
    type Error = ConfigError;

    fn try_from(raw: RawFailureWhen) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let statuses = match raw.statuses {
            None => defaults.statuses,
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(index, code)| {
                    parse_status(code).map_err(|err| err.within(&format!("statuses[{index}]")))
                })
                .collect::<Result<_, _>>()?,
        };
        let response_flags = match raw.response_flags {
            None => defaults.response_flags,
            Some(list) => {
                let mut mask = 0;
                for (index, name) in list.iter().enumerate() {
                    mask |= parse_flag(name)
                        .map_err(|err| err.within(&format!("responseFlags[{index}]")))?;
                }
                mask
            }
        };
        let grpc_statuses = match raw.grpc_statuses {
            None => defaults.grpc_statuses,
            Some(list) => {
                let mut mask = 0;
                for (index, code) in list.iter().enumerate() {
                    mask |= 1
                        << parse_grpc(code)
                            .map_err(|err| err.within(&format!("grpcStatuses[{index}]")))?;
                }
                mask
            }
        };
        Ok(Self {
            statuses,
            response_flags,
            grpc_statuses,
        })
    }
}

fn parse_status(code: &RawCode) -> Result<StatusRange, ConfigError> {
    let single = |value: u64| -> Result<u16, ConfigError> {
        u16::try_from(value)
            .ok()
            .filter(|status| (100..=599).contains(status))
            .ok_or_else(|| {
                ConfigError::new(".", format!("{value} is not an HTTP status (100-599)"))
            })
    };
    match code {
        RawCode::Number(value) => single(*value).map(|status| StatusRange {
            from: status,
            to: status,
        }),
        RawCode::Text(text) => {
            let text = text.trim();
            let lower = text.to_ascii_lowercase();
            if let Some(class) = lower.strip_suffix("xx")
                && let Ok(digit @ 1..=5) = class.parse::<u16>()
            {
                return Ok(StatusRange {
                    from: digit * 100,
                    to: digit * 100 + 99,
                });
            }
            let number = |part: &str| {
                part.trim().parse::<u64>().map_err(|_| {
                    ConfigError::new(
                        ".",
                        format!(
                            "`{text}` is not a status: use a code (503), a class (5xx) or a \
                             range (500-504)"
                        ),
                    )
                })
            };
            match text.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (single(number(from)?)?, single(number(to)?)?);
                    if from > to {
                        return Err(ConfigError::new(
                            ".",
                            format!("range `{text}` is empty (its start is above its end)"),
                        ));
                    }
                    Ok(StatusRange { from, to })
                }
                None => single(number(text)?).map(|status| StatusRange {
                    from: status,
                    to: status,
                }),
            }
        }
    }
}

/// Envoy's response flags: short code, long name, and bit in the legacy `response.flags`
/// bitmask (`StreamInfo::legacyResponseFlags()`, the value the `response.flags` property has).
pub const RESPONSE_FLAGS: &[(&str, &str, u32)] = &[
    ("LH", "FailedLocalHealthCheck", 0),
    ("UH", "NoHealthyUpstream", 1),
    ("UT", "UpstreamRequestTimeout", 2),
    ("LR", "LocalReset", 3),
    ("UR", "UpstreamRemoteReset", 4),
    ("UF", "UpstreamConnectionFailure", 5),
    ("UC", "UpstreamConnectionTermination", 6),
    ("UO", "UpstreamOverflow", 7),
    ("NR", "NoRouteFound", 8),
    ("DI", "DelayInjected", 9),
    ("FI", "FaultInjected", 10),
    ("RL", "RateLimited", 11),
    ("UAEX", "UnauthorizedExternalService", 12),
    ("RLSE", "RateLimitServiceError", 13),
    ("DC", "DownstreamConnectionTermination", 14),
    ("URX", "UpstreamRetryLimitExceeded", 15),
    ("SI", "StreamIdleTimeout", 16),
    ("IH", "InvalidEnvoyRequestHeaders", 17),
    ("DPE", "DownstreamProtocolError", 18),
    ("UMSDR", "UpstreamMaxStreamDurationReached", 19),
    ("RFCF", "ResponseFromCacheFilter", 20),
    ("NFCF", "NoFilterConfigFound", 21),
    ("DT", "DurationTimeout", 22),
    ("UPE", "UpstreamProtocolError", 23),
    ("NC", "NoClusterFound", 24),
    ("OM", "OverloadManager", 25),
    ("DF", "DnsResolutionFailed", 26),
    ("DO", "DropOverLoad", 27),
    ("DR", "DownstreamRemoteReset", 28),
];

/// Flags that say the upstream (or the way to it) failed: the default failure flags. Local
/// resets and timeouts included: UH, UT, LR, UR, UF, UC, UO, URX, UMSDR, UPE.
pub const DEFAULT_FAILURE_FLAGS: u64 = (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 15)
    | (1 << 19)
    | (1 << 23);

/// Flags that only Envoy's way to the upstream sets (never a filter's local decision): a local
/// reply carrying one of these is about the upstream, so its status is judged like an upstream
/// answer. UH, UT, LR, UR, UF, UC, UO, URX, SI, UMSDR, UPE, DF.
pub const UPSTREAM_FLAGS: u64 = DEFAULT_FAILURE_FLAGS | (1 << 16) | (1 << 26);

fn parse_flag(name: &str) -> Result<u64, ConfigError> {
    RESPONSE_FLAGS
        .iter()
        .find(|(short, long, _)| {
            short.eq_ignore_ascii_case(name.trim()) || long.eq_ignore_ascii_case(name.trim())
        })
        .map(|(_, _, bit)| 1u64 << bit)
        .ok_or_else(|| {
            ConfigError::new(
                ".",
                format!(
                    "`{name}` is not an Envoy response flag (use the access-log short codes, \
                     such as UT, UF, URX, UC, UH, LR, UR, UO)"
                ),
            )
        })
}

/// gRPC status codes by name.
pub const GRPC_CODES: &[(&str, u32)] = &[
    ("OK", 0),
    ("CANCELLED", 1),
    ("UNKNOWN", 2),
    ("INVALID_ARGUMENT", 3),
    ("DEADLINE_EXCEEDED", 4),
    ("NOT_FOUND", 5),
    ("ALREADY_EXISTS", 6),
    ("PERMISSION_DENIED", 7),
    ("RESOURCE_EXHAUSTED", 8),
    ("FAILED_PRECONDITION", 9),
    ("ABORTED", 10),
    ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12),
    ("INTERNAL", 13),
    ("UNAVAILABLE", 14),
    ("DATA_LOSS", 15),
    ("UNAUTHENTICATED", 16),
];

/// Default gRPC failures: UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS (the
/// statuses that speak of the server, not of the request).
pub const DEFAULT_GRPC_FAILURES: u32 = (1 << 2) | (1 << 4) | (1 << 13) | (1 << 14) | (1 << 15);

fn parse_grpc(code: &RawCode) -> Result<u32, ConfigError> {
    let value = match code {
        RawCode::Number(value) => u32::try_from(*value).unwrap_or(u32::MAX),
        RawCode::Text(text) => {
            let text = text.trim();
            match text.parse::<u32>() {
                Ok(value) => value,
                Err(_) => GRPC_CODES
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(text))
                    .map(|(_, value)| *value)
                    .ok_or_else(|| {
                        ConfigError::new(
                            ".",
                            format!(
                                "`{text}` is not a gRPC status (use a name such as UNAVAILABLE \
                                 or a code 1-16)"
                            ),
                        )
                    })?,
            }
        }
    };
    match value {
        0 => Err(ConfigError::new(".", "gRPC status OK cannot be a failure")),
        1..=16 => Ok(value),
        _ => Err(ConfigError::new(
            ".",
            format!("{value} is not a gRPC status code (1-16)"),
        )),
    }
}
