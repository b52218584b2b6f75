//! Configuration errors that name the field, and the JSON parsing helper every filter uses.
//!
//! Filters parse raw serde structs (`deny_unknown_fields`) with [`parse_json`] and convert them
//! into validated domain types; both steps report the failing field as a path like
//! `limits[2].rate.requests`.

use serde::de::DeserializeOwned;

/// Invalid configuration: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration at `{field}`: {message}")]
pub struct ConfigError {
    /// Path of the offending field (`.` for the document itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field path with `parent` (for errors raised by nested validation).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field == "." || self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Parses JSON configuration into a raw config type, naming the field on error. Empty
/// configuration is read as `{}` so filters with all-default config need none.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        ConfigError::new(path, err.into_inner().to_string())
    })?;
    de.end()
        .map_err(|err| ConfigError::new(".", err.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Raw {
        limits: Vec<Limit>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Limit {
        name: String,
        requests: u32,
    }

    #[test]
    fn names_the_nested_field() {
        let err = parse_json::<Raw>(
            br#"{"limits":[{"name":"a","requests":1},{"name":"b","requests":-1}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "limits[1].requests");
        assert!(err.message.contains("invalid value"), "{err}");
    }

    #[test]
    fn names_unknown_fields() {
        let err =
            parse_json::<Raw>(br#"{"limits":[{"name":"a","requests":1,"extra":2}]}"#).unwrap_err();
        assert_eq!(err.field, "limits[0].extra");
        assert!(err.message.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn rejects_trailing_garbage() {
        assert!(parse_json::<Raw>(br#"{"limits":[]} x"#).is_err());
    }

    #[test]
    fn within_prefixes_paths() {
        assert_eq!(
            ConfigError::new("rate", "zero").within("limits[0]").field,
            "limits[0].rate"
        );
        assert_eq!(
            ConfigError::new("[1]", "bad").within("versions").field,
            "versions[1]"
        );
        assert_eq!(
            ConfigError::new(".", "bad").within("services").field,
            "services"
        );
    }
}
