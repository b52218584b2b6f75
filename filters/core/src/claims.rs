//! How verified JWT claims travel from the JWT filter to the filters after it on the same
//! stream (the authorization filter reads them), without ever passing through a header.
//!
//! Envoy's native `jwt_authn` puts a verified payload in dynamic metadata under its own
//! namespace, keyed by the provider's `payload_in_metadata` name; ext_authz forwards that
//! metadata and OPA-Envoy policies read it at
//! `input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].<name>`.
//! Proxy-wasm cannot write dynamic metadata, so meshguard's JWT filter writes the same object
//! (`{"<payloadInMetadata name>": <payload>, ...}`, JSON) to the stream's filter state under
//! [`FILTER_STATE`] with `proxy_set_property`. Envoy stores it as `wasm.meshguard.jwt_authn`;
//! later wasm filters of the stream read it back by the same name. Filter state is per stream
//! and is set only by filters: no client header, query parameter or cookie can reach it, so a
//! value found there was written by the JWT filter after verifying the token (or by another
//! filter the operator placed in the chain).

use serde_json::{Map, Value};

/// The filter-state name (one property-path segment) the verified payloads are written to.
pub const FILTER_STATE: &str = "meshguard.jwt_authn";

/// The metadata namespace OPA-Envoy policies find the payloads under (Envoy's jwt_authn filter).
pub const NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// Encodes verified payloads by their `payloadInMetadata` name.
pub fn encode<'a>(
    payloads: impl IntoIterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Vec<u8> {
    let object: Map<String, Value> = payloads
        .into_iter()
        .map(|(name, payload)| (name.to_string(), Value::Object(payload.clone())))
        .collect();
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

/// Decodes what [`encode`] wrote; `None` for anything else (a value that is not a JSON object
/// of objects is not trusted as claims).
pub fn decode(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes).ok()? {
        Value::Object(object) if object.values().all(Value::is_object) => Some(object),
        _ => None,
    }
}

/// One JSON object holding the members of every object in `objects` (each an encoded object, as
/// [`encode`] writes them), without decoding them: `None` for none, the object itself for one.
/// Empty objects add nothing. Members are not deduplicated: callers merge objects with distinct
/// keys (one per provider).
pub fn merge_objects(objects: &[&[u8]]) -> Option<Vec<u8>> {
    match objects {
        [] => None,
        [one] => Some(one.to_vec()),
        many => {
            let mut merged = b"{".to_vec();
            for object in many {
                let inner = object
                    .strip_prefix(b"{")
                    .and_then(|rest| rest.strip_suffix(b"}"))
                    .unwrap_or_default();
                if inner.is_empty() {
                    continue;
                }
                if merged.len() > 1 {
                    merged.push(b',');
                }
                merged.extend_from_slice(inner);
            }
            merged.push(b'}');
            Some(merged)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_payloads_by_name() {
        let payload = json!({"sub": "alice", "realm_access": {"roles": ["customer"]}});
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        let bytes = encode([("verified_jwt", &payload)]);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded["verified_jwt"]["sub"], "alice");
        assert_eq!(decoded.len(), 1);
    }

    #[test]
    fn anything_but_an_object_of_objects_is_refused() {
        for bytes in [&b"[]"[..], b"{\"a\": 1}", b"not json", b""] {
            assert_eq!(decode(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(decode(b"{}"), Some(Map::new()));
    }
}
