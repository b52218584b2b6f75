//! Decisions as OPA-Envoy accepts them: a boolean, or an object.
//!
//! The object's fields, as OPA-Envoy reads them:
//!
//! | field | type | used when |
//! |---|---|---|
//! | `allowed` | boolean, required | always |
//! | `headers` | object of string or array of strings (or an array of such objects) | allowed: set on the request going upstream (replacing a client's value); denied: sent in the local reply |
//! | `response_headers_to_add` | same as `headers` | allowed: added to the response the client gets |
//! | `request_headers_to_remove` | array of strings | allowed: removed from the request going upstream |
//! | `body` | string | denied: the local reply's body |
//! | `http_status` | number, default 403 | denied: the local reply's status |
//!
//! Anything else of the wrong type (a string decision, `allowed` missing, a header value that
//! is a number, a status outside 200-599, a header name that is not a lowercase HTTP token or
//! is a pseudo-header, a value with control characters) is an invalid decision: an error,
//! decided by `onError`. Other fields (`dynamic_metadata`, `query_parameters_to_set`, ...) are
//! ignored, as Envoy's ext_authz ignores what it does not apply.

use regorus::Value;

/// Status of a denial when the decision gives none (OPA-Envoy's default).
pub const DEFAULT_DENY_STATUS: u32 = 403;

/// A decision, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Allowed: headers set on the request; denied: headers of the local reply.
    pub headers: Vec<(String, String)>,
    /// Allowed: headers added to the client's response.
    pub response_headers_to_add: Vec<(String, String)>,
    /// Allowed: headers removed from the request.
    pub request_headers_to_remove: Vec<String>,
    /// Denied: the local reply's body.
    pub body: String,
    /// Denied: the local reply's status.
    pub status: u32,
}

impl Verdict {
    /// A plain allow or deny.
    pub fn plain(allowed: bool) -> Self {
        Self {
            allowed,
            headers: Vec::new(),
            response_headers_to_add: Vec::new(),
            request_headers_to_remove: Vec::new(),
            body: String::new(),
            status: DEFAULT_DENY_STATUS,
        }
    }

    /// Reads a decision value.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(allowed) => Ok(Self::plain(*allowed)),
            Value::Object(object) => {
                let field = |name: &str| object.get(&Value::from(name));
                let allowed = match field("allowed") {
                    Some(Value::Bool(allowed)) => *allowed,
                    Some(other) => {
                        return Err(format!(
                            "`allowed` must be a boolean, got {}",
                            type_name(other)
                        ));
                    }
                    None => return Err("the decision object has no `allowed`".into()),
                };
                let mut verdict = Self::plain(allowed);
                if let Some(headers) = field("headers") {
                    verdict.headers = header_values("headers", headers)?;
                }
                if let Some(headers) = field("response_headers_to_add") {
                    verdict.response_headers_to_add =
                        header_values("response_headers_to_add", headers)?;
                }
                if let Some(names) = field("request_headers_to_remove") {
                    verdict.request_headers_to_remove = header_names(names)?;
                }
                if let Some(body) = field("body") {
                    verdict.body = match body {
                        Value::String(text) => text.to_string(),
                        other => {
                            return Err(format!(
                                "`body` must be a string, got {}",
                                type_name(other)
                            ));
                        }
                    };
                }
                if let Some(status) = field("http_status") {
                    verdict.status = status
                        .as_u64()
                        .ok()
                        .and_then(|code| u32::try_from(code).ok())
                        .filter(|code| (200..=599).contains(code))
                        .ok_or_else(|| {
                            format!(
                                "`http_status` must be a status code from 200 to 599, got {status}"
                            )
                        })?;
                }
                Ok(verdict)
            }
            Value::Undefined => Err("undefined decision".into()),
            other => Err(format!(
                "the decision must be a boolean or an object, got {}",
                type_name(other)
            )),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

fn header_values(field: &str, value: &Value) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    match value {
        Value::Object(_) => add_headers(field, value, &mut out)?,
        Value::Array(items) => {
            for item in items.iter() {
                add_headers(field, item, &mut out)?;
            }
        }
        other => {
            return Err(format!(
                "`{field}` must be an object, got {}",
                type_name(other)
            ));
        }
    }
    Ok(out)
}

fn add_headers(field: &str, value: &Value, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let Value::Object(object) = value else {
        return Err(format!(
            "`{field}` entries must be objects, got {}",
            type_name(value)
        ));
    };
    for (name, values) in object.iter() {
        let Value::String(name) = name else {
            return Err(format!("`{field}` has a name that is not a string"));
        };
        let name = header_name(field, name)?;
        let mut push = |value: &Value| match value {
            Value::String(text) if valid_value(text) => {
                out.push((name.clone(), text.to_string()));
                Ok(())
            }
            Value::String(_) => Err(format!(
                "`{field}.{name}` has a value with control characters"
            )),
            other => Err(format!(
                "`{field}.{name}` must be a string or an array of strings, got {}",
                type_name(other)
            )),
        };
        match values {
            Value::Array(items) => items.iter().try_for_each(&mut push)?,
            other => push(other)?,
        }
    }
    Ok(())
}

fn header_names(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "`request_headers_to_remove` must be an array of strings, got {}",
            type_name(value)
        ));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(name) => header_name("request_headers_to_remove", name),
            other => Err(format!(
                "`request_headers_to_remove` must hold strings, got {}",
                type_name(other)
            )),
        })
        .collect()
}

/// A header name Envoy takes from a filter: an RFC 9110 token, lowercased; no pseudo-headers
/// (`:path` and friends are not an authorization decision's to change) and not `host`.
fn header_name(field: &str, name: &str) -> Result<String, String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let lower = name.to_ascii_lowercase();
    if !token || lower == "host" {
        return Err(format!(
            "`{field}` names `{name}`, which a filter cannot set"
        ));
    }
    Ok(lower)
}

fn valid_value(value: &str) -> bool {
    !value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(json: &str) -> Result<Verdict, String> {
        Verdict::from_value(&Value::from_json_str(json).unwrap())
    }

    #[test]
    fn booleans_allow_or_deny_with_403() {
        assert_eq!(verdict("true").unwrap(), Verdict::plain(true));
        let denied = verdict("false").unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.status, 403);
    }

    #[test]
    fn objects_carry_status_headers_and_body() {
        let denied = verdict(
            r#"{"allowed": false, "http_status": 401, "body": "sign in",
                "headers": {"WWW-Authenticate": "Bearer", "x-why": ["a", "b"]}}"#,
        )
        .unwrap();
        assert_eq!(denied.status, 401);
        assert_eq!(denied.body, "sign in");
        assert_eq!(
            denied.headers,
            [
                ("www-authenticate".to_string(), "Bearer".to_string()),
                ("x-why".into(), "a".into()),
                ("x-why".into(), "b".into())
            ]
        );
        let allowed = verdict(
            r#"{"allowed": true, "headers": [{"x-user": "alice"}, {"x-tier": "gold"}],
                "response_headers_to_add": {"x-authz": "ok"},
                "request_headers_to_remove": ["authorization"],
                "dynamic_metadata": {"ignored": true}}"#,
        )
        .unwrap();
        assert!(allowed.allowed);
        assert_eq!(allowed.headers.len(), 2);
        assert_eq!(
            allowed.response_headers_to_add,
            [("x-authz".into(), "ok".into())]
        );
        assert_eq!(allowed.request_headers_to_remove, ["authorization"]);
    }

    #[test]
    fn anything_else_is_an_invalid_decision() {
        for (json, says) in [
            (r#""yes""#, "a boolean or an object"),
            ("{}", "no `allowed`"),
            (r#"{"allowed": "true"}"#, "must be a boolean"),
            (
                r#"{"allowed": false, "http_status": 99}"#,
                "from 200 to 599",
            ),
            (
                r#"{"allowed": false, "http_status": "401"}"#,
                "from 200 to 599",
            ),
            (
                r#"{"allowed": false, "body": 3}"#,
                "`body` must be a string",
            ),
            (
                r#"{"allowed": true, "headers": {"x": 1}}"#,
                "a string or an array",
            ),
            (
                r#"{"allowed": true, "headers": {":path": "/admin"}}"#,
                "cannot set",
            ),
            (
                r#"{"allowed": true, "headers": {"host": "evil"}}"#,
                "cannot set",
            ),
            (
                r#"{"allowed": true, "headers": {"x a": "1"}}"#,
                "cannot set",
            ),
            (
                r#"{"allowed": true, "headers": {"x": "a\r\nb: c"}}"#,
                "control characters",
            ),
            (
                r#"{"allowed": true, "request_headers_to_remove": "x"}"#,
                "array of strings",
            ),
        ] {
            let err = verdict(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
        assert_eq!(
            Verdict::from_value(&Value::Undefined).unwrap_err(),
            "undefined decision"
        );
    }
}
