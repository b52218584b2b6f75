//! `stamp`: the smallest real filter. It sets one configured request header and continues.
//!
//! It exists for two reasons: the benchmark's "trivial wasm filter" row (the latency floor any
//! proxy-wasm filter pays in Envoy), and the first end-to-end proof that a module built by this
//! workspace runs in Envoy's V8 runtime and can change what the upstream sees.
//!
//! Its optional `calibration` block makes it also read request headers, the clock or the whole
//! header map, update shared data, or set more headers before stamping: `cargo xtask bench
//! --calibrate` runs such rows beside the floor to measure what each kind of hostcall costs in
//! Envoy, the unit every filter's figure is made of.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::rc::Rc;

use meshguard_filter_core::config::parse_json;
use meshguard_filter_core::{
    ConfigError, Ctx, Decision, Env, Filter, HeaderMap, Host, HttpFilter, Root, StreamCallbacks,
};

/// Raw configuration as written by an operator.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_value")]
    value: String,
    #[serde(default)]
    calibration: Calibration,
}

/// Extra hostcalls per request, for the benchmark's calibration rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Calibration {
    /// Request headers to read, one hostcall each (present or absent).
    #[serde(default)]
    pub header_reads: Vec<String>,
    /// Clock reads.
    #[serde(default)]
    pub clock_reads: u32,
    /// Reads of the whole request header map.
    #[serde(default)]
    pub header_map_reads: u32,
    /// Shared-data updates: a read and a compare-and-swap write of a 16-byte value, as the rate
    /// limiter and the circuit breaker make per request.
    #[serde(default)]
    pub shared_data_updates: u32,
    /// Request headers to set (value `1`), one hostcall each, as the JWT filter sets claim
    /// headers. Envoy re-selects the route once after any number of writes, and the stamp's own
    /// header already makes it do so, so these rows price the calls alone.
    #[serde(default)]
    pub header_writes: Vec<String>,
}

/// The shared-data key calibration updates.
const CALIBRATION_KEY: &str = "meshguard.stamp.calibration";

/// At most this many calls of each kind: calibration measures a few, not a loop.
const MAX_CALIBRATION_CALLS: usize = 16;

fn default_header() -> String {
    "x-meshguard-stamp".to_string()
}

fn default_value() -> String {
    "1".to_string()
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Lowercase header name to set.
    pub header: String,
    /// Value to set.
    pub value: String,
    /// Extra hostcalls made before the header is set.
    pub calibration: Calibration,
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let valid_name = !raw.header.is_empty()
            && raw
                .header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::new(
                "header",
                format!("`{}` is not a lowercase HTTP header name", raw.header),
            ));
        }
        if raw.value.bytes().any(|b| b.is_ascii_control()) {
            return Err(ConfigError::new(
                "value",
                "control characters are not allowed",
            ));
        }
        let calibration = raw.calibration;
        for (field, count) in [
            ("calibration.headerReads", calibration.header_reads.len()),
            ("calibration.clockReads", calibration.clock_reads as usize),
            (
                "calibration.headerMapReads",
                calibration.header_map_reads as usize,
            ),
            (
                "calibration.sharedDataUpdates",
                calibration.shared_data_updates as usize,
            ),
            ("calibration.headerWrites", calibration.header_writes.len()),
        ] {
            if count > MAX_CALIBRATION_CALLS {
                return Err(ConfigError::new(
                    field,
                    format!("{count} calls; at most {MAX_CALIBRATION_CALLS}"),
                ));
            }
        }
        Ok(Self {
            header: raw.header,
            value: raw.value,
            calibration,
        })
    }
}

/// Parses and validates the JSON configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

/// The stamp filter.
#[derive(Debug)]
pub struct Stamp;

impl Filter for Stamp {
    type Root = StampRoot;
    const NAME: &'static str = "stamp";

    fn configure(
        _host: &mut dyn Host,
        _env: &Env,
        config: &[u8],
    ) -> Result<StampRoot, ConfigError> {
        Ok(StampRoot {
            config: Rc::new(parse_config(config)?),
        })
    }
}

/// The root: holds the validated config.
#[derive(Debug)]
pub struct StampRoot {
    config: Rc<Config>,
}

impl Root for StampRoot {
    type Http = StampHttp;

    fn new_http(&self, _context_id: u32) -> StampHttp {
        StampHttp {
            config: Rc::clone(&self.config),
        }
    }
}

/// Per-stream filter.
#[derive(Debug)]
pub struct StampHttp {
    config: Rc<Config>,
}

impl HttpFilter for StampHttp {
    /// Request headers only: the floor pays for no callback it does not use.
    const CALLBACKS: StreamCallbacks = StreamCallbacks::REQUEST_ONLY;

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        let config = &self.config;
        // Calibration prices hostcalls, so it goes past the request model's caches.
        let host = ctx.uncached();
        let calibration = &config.calibration;
        for name in &calibration.header_reads {
            let _ = host.header(HeaderMap::Request, name);
        }
        for _ in 0..calibration.clock_reads {
            let _ = host.now();
        }
        for _ in 0..calibration.header_map_reads {
            let _ = host.headers(HeaderMap::Request);
        }
        for _ in 0..calibration.shared_data_updates {
            let cas = host.shared_get(CALIBRATION_KEY).map(|(_, cas)| cas);
            let _ = host.shared_set(CALIBRATION_KEY, &[0; 16], cas);
        }
        for name in &calibration.header_writes {
            host.set_header(HeaderMap::Request, name, Some("1"));
        }
        ctx.set_header(HeaderMap::Request, &config.header, Some(&config.value));
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use meshguard_filter_core::Stream;
    use meshguard_filter_core::mock::MockHost;

    use super::*;

    fn stream(host: &mut MockHost, config: &[u8]) -> Stream<StampHttp> {
        let root = Stamp::configure(host, &Env::single("stamp"), config).unwrap();
        Stream::new(root.new_http(1))
    }

    #[test]
    fn stamps_the_configured_header_replacing_a_client_copy() {
        let mut host = MockHost::new().with_request_header("x-tag", "spoofed");
        let mut http = stream(&mut host, br#"{"header":"x-tag","value":"v1"}"#);
        assert_eq!(http.on_request_headers(&mut host, true), Decision::Continue);
        assert_eq!(
            host.header(HeaderMap::Request, "x-tag").as_deref(),
            Some("v1")
        );
        assert_eq!(host.headers(HeaderMap::Request).len(), 1);
    }

    #[test]
    fn calibration_makes_exactly_the_configured_calls() {
        let mut host = MockHost::new().with_request_header("x-user-id", "u1");
        let mut http = stream(
            &mut host,
            br#"{"calibration":{"headerReads":["x-user-id","x-user-id"],"clockReads":3,"headerMapReads":1,"sharedDataUpdates":2,"headerWrites":["x-a","x-b"]}}"#,
        );
        host.reset_hostcalls();
        http.on_request_headers(&mut host, true);
        let counts = host.hostcall_counts();
        assert_eq!(counts.get("header"), Some(&2));
        assert_eq!(counts.get("now"), Some(&3));
        assert_eq!(counts.get("headers"), Some(&1));
        assert_eq!(counts.get("shared_get"), Some(&2));
        assert_eq!(counts.get("shared_set"), Some(&2));
        assert_eq!(counts.get("set_header"), Some(&3));
        assert_eq!(host.hostcalls(), 13);
        assert_eq!(host.header(HeaderMap::Request, "x-b").as_deref(), Some("1"));
    }

    #[test]
    fn empty_config_uses_defaults() {
        assert_eq!(
            parse_config(b"").unwrap(),
            Config {
                header: "x-meshguard-stamp".into(),
                value: "1".into(),
                calibration: Calibration::default(),
            }
        );
    }

    #[test]
    fn bad_config_names_the_field() {
        for (config, field) in [
            (r#"{"header":"X Bad"}"#, "header"),
            (r#"{"header":"x","value":"a\nb"}"#, "value"),
            (r#"{"headr":"x"}"#, "headr"),
            (r#"{"header":7}"#, "header"),
            (
                r#"{"calibration":{"clockReads":17}}"#,
                "calibration.clockReads",
            ),
            (
                &format!(
                    r#"{{"calibration":{{"headerWrites":{:?}}}}}"#,
                    vec!["x-w"; 17]
                ),
                "calibration.headerWrites",
            ),
            (
                r#"{"calibration":{"headerRead":["a"]}}"#,
                "calibration.headerRead",
            ),
        ] {
            let err = parse_config(config.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{config}: {err}");
        }
    }
}
