//! The buffered request body in the input document: `input.attributes.request.http.body` and
//! `input.parsed_body`, as OPA-Envoy fills them.
//!
//! Buffering is off unless configured (`withRequestBody`, after ext_authz's
//! `with_request_body`), and even then only a policy that reads the body waits for it.
//! `parsed_body` is the JSON document for a `content-type` containing `application/json`, the
//! form for `application/x-www-form-urlencoded` (each field's values in order), and `null`
//! otherwise or for an empty body. Unlike OPA-Envoy, multipart forms are not parsed (`null`).
//!
//! A body that does not read as its content type says (JSON that does not parse or nests
//! deeper than 128 levels, a form with a bad escape, text that is not UTF-8) makes the input an
//! error, decided by `onError`, as OPA-Envoy answers such a request with an error: a policy that
//! denies on a body field must not be bypassed by a body it cannot read.

use std::collections::BTreeMap;

use regorus::Value;

use crate::url;

/// Why the body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is not UTF-8 (ext_authz sends it as a string).
    #[error("the request body is not UTF-8 text")]
    NotText,
    /// A JSON body that does not parse (or nests too deep).
    #[error("the JSON request body does not parse: {0}")]
    Json(String),
    /// A form body with a bad escape or a `;` separator (Go's `url.ParseQuery` refuses both).
    #[error("the form request body does not parse")]
    Form,
}

/// A request body buffered completely.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Body(pub Vec<u8>);

impl Body {
    /// The body as text (`input.attributes.request.http.body`).
    pub fn text(&self) -> Result<&str, BodyError> {
        std::str::from_utf8(&self.0).map_err(|_| BodyError::NotText)
    }

    /// `input.parsed_body` for a body of `content_type`.
    pub fn parsed(&self, content_type: Option<&str>) -> Result<Value, BodyError> {
        let Some(content_type) = content_type else {
            return Ok(Value::Null);
        };
        let content_type = content_type.to_ascii_lowercase();
        if self.0.is_empty() {
            return Ok(Value::Null);
        }
        if content_type.contains("application/json") {
            let text = self.text()?;
            // regorus would expand `1e999999999` into a big integer for minutes.
            meshguard_rego_compat::numbers::check_json(text)
                .map_err(|err| BodyError::Json(err.to_string()))?;
            return Value::from_json_str(text).map_err(|err| BodyError::Json(err.to_string()));
        }
        if content_type.contains("application/x-www-form-urlencoded") {
            return form(self.text()?);
        }
        Ok(Value::Null)
    }
}

fn form(text: &str) -> Result<Value, BodyError> {
    let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pair in text.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            return Err(BodyError::Form);
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = url::decode(key, true).ok_or(BodyError::Form)?;
        let value = url::decode(value, true).ok_or(BodyError::Form)?;
        fields
            .entry(key.into_owned())
            .or_default()
            .push(Value::from(value.as_ref()));
    }
    Ok(Value::from(
        fields
            .into_iter()
            .map(|(key, values)| (Value::from(key), Value::from(values)))
            .collect::<BTreeMap<_, _>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        Body(text.as_bytes().to_vec())
    }

    #[test]
    fn json_bodies_parse_for_json_content_types() {
        let parsed = body(r#"{"amount": 10, "items": ["a"]}"#)
            .parsed(Some("application/json; charset=utf-8"))
            .unwrap();
        assert_eq!(parsed["amount"], Value::from(10u64));
        assert_eq!(
            body("{}").parsed(Some("Application/JSON")).unwrap(),
            Value::new_object()
        );
        assert_eq!(
            body("").parsed(Some("application/json")).unwrap(),
            Value::Null
        );
        assert_eq!(body("{}").parsed(None).unwrap(), Value::Null);
        assert_eq!(body("{}").parsed(Some("text/plain")).unwrap(), Value::Null);
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        assert!(matches!(
            body("{").parsed(Some("application/json")),
            Err(BodyError::Json(_))
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            body(&deep).parsed(Some("application/json")),
            Err(BodyError::Json(_))
        ));
        // regorus would expand the exponent into a big integer for minutes.
        let err = body(r#"{"amount": 1e999999999}"#)
            .parsed(Some("application/json"))
            .unwrap_err();
        assert!(
            matches!(&err, BodyError::Json(why) if why.contains("exponent")),
            "{err:?}"
        );
        assert_eq!(
            Body(vec![0xff, 0xfe]).parsed(Some("application/json")),
            Err(BodyError::NotText)
        );
        assert_eq!(Body(vec![0xff]).text(), Err(BodyError::NotText));
        assert_eq!(
            body("a=%zz").parsed(Some("application/x-www-form-urlencoded")),
            Err(BodyError::Form)
        );
    }

    #[test]
    fn forms_parse_into_lists_of_values() {
        let parsed = body("a=1&b=x+y&a=2")
            .parsed(Some("application/x-www-form-urlencoded"))
            .unwrap();
        assert_eq!(
            parsed,
            Value::from_json_str(r#"{"a": ["1", "2"], "b": ["x y"]}"#).unwrap()
        );
    }
}
