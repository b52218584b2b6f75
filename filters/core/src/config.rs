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
        let path = field_path(err.path());
        ConfigError::new(path, err.into_inner().to_string())
    })?;
    de.end()
        .map_err(|err| ConfigError::new(".", err.to_string()))?;
    Ok(value)
}

/// A member's key as a field path: the key itself, or `""` for the empty key, which would
/// otherwise name no field at all.
pub fn key_field(key: &str) -> String {
    if key.is_empty() {
        r#""""#.to_string()
    } else {
        key.to_string()
    }
}

/// A path as `limits[2].rate`, `.` for the document itself. Unlike the path's own `Display`,
/// an empty key is written `""`, so a field named `""` still gets a path an operator can read
/// (found by the `*_config` fuzz targets: `{"": 1}` was refused "at ``").
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        if !out.is_empty() && !matches!(segment, Segment::Seq { .. }) {
            out.push('.');
        }
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => out.push_str(&key_field(key)),
            Segment::Unknown => out.push('?'),
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
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
    fn an_empty_field_name_still_has_a_path() {
        // The stamp_config fuzz target's crash input, reduced.
        let err = parse_json::<Raw>(br#"{"":{"clock":1}}"#).unwrap_err();
        assert_eq!(err.field, r#""""#, "{err}");
        let err = parse_json::<Raw>(br#"{"limits":[{"name":"a","requests":1,"":2}]}"#).unwrap_err();
        assert_eq!(err.field, r#"limits[0]."""#, "{err}");
        let err = parse_json::<Raw>(br#"{"limits":[{"name":"a","requests":-1}]}"#).unwrap_err();
        assert_eq!(err.field, "limits[0].requests");
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
