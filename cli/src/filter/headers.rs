//! Headers as operators write them in request files and suites: a YAML map, order kept, a
//! list value repeating the header, numbers and booleans read as text.

use std::fmt;

use serde::de::{MapAccess, Visitor};

/// Headers written as a YAML map, order kept (a list value repeats the header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values (a list repeats the header)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                #[derive(serde::Deserialize)]
                #[serde(untagged)]
                enum Value {
                    One(Scalar),
                    Many(Vec<Scalar>),
                }
                let mut headers = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    let name = name.to_ascii_lowercase();
                    match value {
                        Value::One(v) => headers.push((name, v.0)),
                        Value::Many(vs) => {
                            headers.extend(vs.into_iter().map(|v| (name.clone(), v.0)))
                        }
                    }
                }
                Ok(Headers(headers))
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// A YAML scalar read as text (`200`, `true` and `"x"` all become strings).
struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Scalar(match Raw::deserialize(deserializer)? {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
            Raw::B(b) => b.to_string(),
        }))
    }
}
