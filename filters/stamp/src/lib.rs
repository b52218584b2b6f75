//! `stamp`: the smallest real filter. It sets one configured request header and continues.
//!
//! It exists for two reasons: the benchmark's "trivial wasm filter" row (the latency floor any
//! proxy-wasm filter pays in Envoy), and the first end-to-end proof that a module built by this
//! workspace runs in Envoy's V8 runtime and can change what the upstream sees.
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
use meshguard_filter_core::{ConfigError, Decision, HeaderMap, Host, HttpFilter, RootFilter};

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(StampRoot::default());

/// Raw configuration as written by an operator.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_value")]
    value: String,
}

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
        Ok(Self {
            header: raw.header,
            value: raw.value,
        })
    }
}

/// Parses and validates the JSON configuration.
pub fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::try_from(parse_json::<RawConfig>(bytes)?)
}

/// The root: holds the validated config.
#[derive(Debug, Default)]
pub struct StampRoot {
    config: Option<Rc<Config>>,
}

impl RootFilter for StampRoot {
    type Http = StampHttp;

    fn configure(&mut self, _host: &mut dyn Host, config: &[u8]) -> Result<(), ConfigError> {
        self.config = Some(Rc::new(parse_config(config)?));
        Ok(())
    }

    fn new_http(&self, _context_id: u32) -> StampHttp {
        StampHttp {
            config: self.config.clone(),
        }
    }
}

/// Per-stream filter.
#[derive(Debug)]
pub struct StampHttp {
    config: Option<Rc<Config>>,
}

impl HttpFilter for StampHttp {
    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        if let Some(config) = &self.config {
            host.set_header(HeaderMap::Request, &config.header, Some(&config.value));
        }
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use meshguard_filter_core::mock::MockHost;

    use super::*;

    #[test]
    fn stamps_the_configured_header_replacing_a_client_copy() {
        let mut root = StampRoot::default();
        let mut host = MockHost::new().with_request_header("x-tag", "spoofed");
        root.configure(&mut host, br#"{"header":"x-tag","value":"v1"}"#)
            .unwrap();
        let mut http = root.new_http(1);
        assert_eq!(http.on_request_headers(&mut host, true), Decision::Continue);
        assert_eq!(
            host.header(HeaderMap::Request, "x-tag").as_deref(),
            Some("v1")
        );
        assert_eq!(host.headers(HeaderMap::Request).len(), 1);
    }

    #[test]
    fn empty_config_uses_defaults() {
        assert_eq!(
            parse_config(b"").unwrap(),
            Config {
                header: "x-meshguard-stamp".into(),
                value: "1".into()
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
        ] {
            let err = parse_config(config.as_bytes()).unwrap_err();
            assert_eq!(err.field, field, "{config}: {err}");
        }
    }
}
