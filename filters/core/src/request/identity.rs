//! Verified claims, as a JWT stage publishes them to the stages after it.

use std::rc::Rc;

use serde_json::{Map, Value};

/// A claim path such as `sub` or `realm_access.roles`: the claim names from the payload's top.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// Parses `a.b.c` (no empty segments).
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if text.is_empty() || segments.iter().any(String::is_empty) {
            return Err(format!(
                "`{text}` is not a claim path like `sub` or `realm_access.roles`"
            ));
        }
        Ok(Self(segments))
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// One verified token: which provider accepted it and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The provider's name.
    pub provider: Rc<str>,
    /// The token's payload, as verified.
    pub claims: Rc<Map<String, Value>>,
    /// The payload as OPA-Envoy policies find it, when the provider names a
    /// `payloadInMetadata`: `{"<name>": <payload>}` as JSON ([`crate::claims::encode`]),
    /// encoded once per verified token (a cached token costs nothing). The pipeline's authz
    /// stage reads it here instead of from filter state.
    pub metadata: Option<Rc<[u8]>>,
}

impl Identity {
    /// The value at `path`, if the payload has it.
    pub fn value(&self, path: &ClaimPath) -> Option<&Value> {
        let (first, rest) = path.segments().split_first()?;
        let mut value = self.claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// The claim at `path` as text ([`claim_text`]).
    pub fn claim(&self, path: &ClaimPath) -> Option<String> {
        self.value(path).and_then(claim_text)
    }
}

/// A claim as text, the one rule for claim headers and claim keys: a string as is, a number or
/// boolean as JSON writes it, an array of those joined by `,`; objects, null, empty arrays,
/// control characters and values over 8 KiB have no text.
pub fn claim_text(value: &Value) -> Option<String> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
    let text = match value {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            if parts.is_empty() {
                return None;
            }
            parts.join(",")
        }
        other => scalar(other)?,
    };
    if text.chars().any(char::is_control) || text.len() > 8192 {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(claims: Value) -> Identity {
        Identity {
            provider: Rc::from("shop"),
            claims: Rc::new(claims.as_object().cloned().unwrap_or_default()),
            metadata: None,
        }
    }

    #[test]
    fn claim_paths_reach_nested_claims() {
        let id = identity(
            json!({"sub": "alice", "realm_access": {"roles": ["a", "b"]},
                                 "n": 7, "ok": true, "obj": {"x": 1}, "null": null}),
        );
        let claim = |path: &str| id.claim(&ClaimPath::parse(path).unwrap());
        assert_eq!(claim("sub").as_deref(), Some("alice"));
        assert_eq!(claim("realm_access.roles").as_deref(), Some("a,b"));
        assert_eq!(claim("n").as_deref(), Some("7"));
        assert_eq!(claim("ok").as_deref(), Some("true"));
        assert_eq!(claim("obj"), None);
        assert_eq!(claim("null"), None);
        assert_eq!(claim("missing"), None);
        assert_eq!(claim("sub.deeper"), None);
    }

    #[test]
    fn claim_paths_must_be_well_formed() {
        for bad in ["", ".", "a..b", "a."] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ClaimPath::parse("a.b").unwrap().to_string(), "a.b");
    }

    #[test]
    fn unprintable_or_huge_values_have_no_text() {
        assert_eq!(claim_text(&json!("a\nb")), None);
        assert_eq!(claim_text(&json!("x".repeat(9000))), None);
        assert_eq!(claim_text(&json!([])), None);
        assert_eq!(claim_text(&json!([{"a": 1}, "b"])).as_deref(), Some("b"));
    }
}
