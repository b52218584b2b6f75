//! The input document against OPA-Envoy's field names: the document a policy that reads
//! everything sees (compared with the shape OPA-Envoy's docs and tests show), and the pruned
//! documents of policies that read a little, with the host calls they cost.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::*;
use crate::reads::ReadSet;

/// Facts from tables, counting what the builder asks.
#[derive(Default)]
struct Fake {
    headers: Vec<(String, String)>,
    properties: BTreeMap<String, Vec<u8>>,
    asked: Vec<String>,
}

impl Fake {
    fn request(method: &str, path: &str) -> Self {
        let mut fake = Fake::default();
        for (name, value) in [
            (":method", method),
            (":path", path),
            (":authority", "shop.example"),
            (":scheme", "https"),
            ("x-request-id", "7c0e-44"),
            ("user-agent", "curl/8.5"),
        ] {
            fake.headers.push((name.into(), value.into()));
        }
        fake.properties
            .insert("source.address".into(), b"10.1.2.3:51234".to_vec());
        fake.properties
            .insert("destination.address".into(), b"10.9.8.7:8080".to_vec());
        fake.properties
            .insert("request.protocol".into(), b"HTTP/1.1".to_vec());
        fake.properties.insert(
            "request.time".into(),
            1_700_000_000_123_000_000i64.to_le_bytes().to_vec(),
        );
        fake.properties.insert(
            "connection.uri_san_peer_certificate".into(),
            b"spiffe://cluster.local/ns/shop/sa/web".to_vec(),
        );
        fake
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl RequestFacts for Fake {
    fn header(&mut self, name: &str) -> Option<String> {
        self.asked.push(format!("header {name}"));
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        self.asked.push("headers".into());
        self.headers.clone()
    }

    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        self.asked.push(format!("property {}", path.join(".")));
        self.properties.get(&path.join(".")).cloned()
    }
}

/// Claims as the JWT filter writes them to filter state, counting reads.
struct Verified(Option<Json>, u32);

impl VerifiedClaims for Verified {
    fn payloads(&mut self) -> Option<Claims> {
        self.1 += 1;
        self.0
            .as_ref()
            .map(|json| Claims::Json(serde_json::to_vec(json).unwrap()))
    }
}

fn alice() -> Verified {
    Verified(
        Some(
            json!({"verified_jwt": {"sub": "alice", "realm_access": {"roles": ["customer"]}, "exp": 1}}),
        ),
        0,
    )
}

fn need(src: &str) -> Need {
    Need::of(&ReadSet::scan([("p.rego", src)]).unwrap())
}

fn everything() -> Need {
    need("package x\nallow if input")
}

/// The input for `facts` with Alice's verified claims, a fresh claims memo and `body`.
fn build_for_alice(
    need: &Need,
    facts: &mut dyn RequestFacts,
    body: Option<&Body>,
) -> Result<Value, InputError> {
    build(need, facts, &mut alice(), &mut ClaimsMemo::default(), body)
}

fn json(value: &Value) -> Json {
    serde_json::from_str(&value.to_json_str().unwrap()).unwrap()
}

#[test]
fn the_whole_document_has_opa_envoys_shape() {
    let mut facts = Fake::request("GET", "/api/users/alice/orders?limit=10&tag=a&tag=b")
        .header("accept", "application/json")
        .header("accept", "text/html");
    let input = build_for_alice(&everything(), &mut facts, None).unwrap();
    assert_eq!(
        json(&input),
        json!({
            "attributes": {
                "request": {
                    "http": {
                        "id": "7c0e-44",
                        "method": "GET",
                        "path": "/api/users/alice/orders?limit=10&tag=a&tag=b",
                        "host": "shop.example",
                        "scheme": "https",
                        "protocol": "HTTP/1.1",
                        "headers": {
                            ":authority": "shop.example",
                            ":method": "GET",
                            ":path": "/api/users/alice/orders?limit=10&tag=a&tag=b",
                            ":scheme": "https",
                            "accept": "application/json,text/html",
                            "user-agent": "curl/8.5",
                            "x-request-id": "7c0e-44"
                        }
                    },
                    "time": "2023-11-14T22:13:20.123000000Z"
                },
                "source": {
                    "address": {"socketAddress": {"address": "10.1.2.3", "portValue": 51234}},
                    "principal": "spiffe://cluster.local/ns/shop/sa/web"
                },
                "destination": {
                    "address": {"socketAddress": {"address": "10.9.8.7", "portValue": 8080}}
                },
                "metadataContext": {
                    "filterMetadata": {
                        "envoy.filters.http.jwt_authn": {
                            "verified_jwt": {"sub": "alice", "realm_access": {"roles": ["customer"]}, "exp": 1}
                        }
                    }
                }
            },
            "parsed_path": ["api", "users", "alice", "orders"],
            "parsed_query": {"limit": ["10"], "tag": ["a", "b"]},
            "parsed_body": null,
            "truncated_body": false,
            "version": {"encoding": "protojson", "ext_authz": "v3"}
        })
    );
}

#[test]
fn a_policy_reading_method_path_and_claims_costs_three_reads() {
    let need = need(
        r#"package envoy.authz
        claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt
        allow if {
            input.attributes.request.http.method == "GET"
            input.parsed_path[2] == claims.sub
        }"#,
    );
    let mut facts = Fake::request("GET", "/api/users/alice/orders");
    let mut claims = alice();
    let input = build(
        &need,
        &mut facts,
        &mut claims,
        &mut ClaimsMemo::default(),
        None,
    )
    .unwrap();
    assert_eq!(
        json(&input),
        json!({
            "attributes": {
                "request": {"http": {"method": "GET"}},
                "metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {
                    "verified_jwt": {"sub": "alice", "realm_access": {"roles": ["customer"]}, "exp": 1}
                }}}
            },
            "parsed_path": ["api", "users", "alice", "orders"]
        })
    );
    assert_eq!(facts.asked, ["header :method", "header :path"]);
    assert_eq!(claims.1, 1, "the claims are read once");
}

#[test]
fn only_the_claims_read_are_kept() {
    let need = need(
        r#"package x
        allow if input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt.sub == "alice"
        allow if "admin" in input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt.realm_access.roles"#,
    );
    let input = build_for_alice(&need, &mut Fake::request("GET", "/"), None).unwrap();
    assert_eq!(
        json(&input),
        json!({"attributes": {"metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {
            "verified_jwt": {"sub": "alice", "realm_access": {"roles": ["customer"]}}
        }}}}}),
        "`exp` is not read, so two tokens of one user share a cache key"
    );
}

#[test]
fn without_verified_claims_the_metadata_is_empty() {
    let need = need(
        "package x\nallow if input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt.sub",
    );
    let input = build(
        &need,
        &mut Fake::request("GET", "/"),
        &mut Verified(None, 0),
        &mut ClaimsMemo::default(),
        None,
    )
    .unwrap();
    assert_eq!(
        json(&input),
        json!({"attributes": {"metadataContext": {"filterMetadata": {}}}})
    );
}

#[test]
fn a_header_read_by_name_joins_repeated_values_as_ext_authz_does() {
    let need =
        need("package x\nallow if input.attributes.request.http.headers[\"x-tenant\"] == \"a\"");
    let mut facts = Fake::request("GET", "/")
        .header("x-tenant", "a")
        .header("x-tenant", "b");
    let input = build_for_alice(&need, &mut facts, None).unwrap();
    assert_eq!(
        json(&input),
        json!({"attributes": {"request": {"http": {"headers": {"x-tenant": "a,b"}}}}})
    );
    assert_eq!(
        facts.asked,
        ["headers"],
        "one read of the map, never the first value alone"
    );
}

#[test]
fn nothing_read_builds_an_empty_document_without_host_calls() {
    let mut facts = Fake::request("GET", "/");
    let input = build_for_alice(&need("package x\nallow := true"), &mut facts, None).unwrap();
    assert_eq!(json(&input), json!({}));
    assert!(facts.asked.is_empty());
}

#[test]
fn bodies_fill_body_and_parsed_body() {
    let need = need(
        "package x\nallow if input.parsed_body.amount < 100\nallow if input.attributes.request.http.body",
    );
    let mut facts =
        Fake::request("POST", "/api/payments").header("content-type", "application/json");
    let body = Body(br#"{"amount": 20}"#.to_vec());
    let input = build_for_alice(&need, &mut facts, Some(&body)).unwrap();
    assert_eq!(
        json(&input),
        json!({
            "attributes": {"request": {"http": {"body": "{\"amount\": 20}"}}},
            "parsed_body": {"amount": 20}
        })
    );
    // Not buffered: no body, and parsed_body is null as in OPA-Envoy. (The objects around
    // `body` are there, as they are in the whole document.)
    let empty = json!({"attributes": {"request": {"http": {}}}, "parsed_body": null});
    let input = build_for_alice(&need, &mut facts, None).unwrap();
    assert_eq!(json(&input), empty);
    // Buffered but empty: the same.
    let input = build_for_alice(&need, &mut facts, Some(&Body::default())).unwrap();
    assert_eq!(json(&input), empty);
}

#[test]
fn unreadable_paths_and_bodies_are_input_errors() {
    let path = need("package x\nallow if input.parsed_path");
    let err = build_for_alice(&path, &mut Fake::request("GET", "/a/%zz"), None).unwrap_err();
    assert!(matches!(err, InputError::Path(_)), "{err}");
    let body = need("package x\nallow if input.parsed_body");
    let mut facts = Fake::request("POST", "/").header("content-type", "application/json");
    let err = build_for_alice(&body, &mut facts, Some(&Body(b"{".to_vec()))).unwrap_err();
    assert!(matches!(err, InputError::Body(_)), "{err}");
    // A policy that does not read the path is not stopped by it.
    assert!(
        build_for_alice(
            &need("package x\nallow := true"),
            &mut Fake::request("GET", "/%zz"),
            None
        )
        .is_ok()
    );
}

#[test]
fn addresses_parse_for_v4_v6_and_pipes() {
    assert_eq!(split_address("10.0.0.1:80"), ("10.0.0.1", Some(80)));
    assert_eq!(split_address("[::1]:8443"), ("::1", Some(8443)));
    assert_eq!(
        split_address("/var/run/envoy.sock"),
        ("/var/run/envoy.sock", None)
    );
    assert_eq!(split_address("::1"), ("::1", None));
}

#[test]
fn times_are_written_as_protojson_timestamps() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(951_782_400_000_000_001),
        "2000-02-29T00:00:00.000000001Z"
    );
    assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
}

#[test]
fn claims_are_parsed_once_per_distinct_payload_and_must_be_objects() {
    let need = need(
        "package x\nallow if input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt.sub",
    );
    let mut memo = ClaimsMemo::default();
    for _ in 0..3 {
        build(
            &need,
            &mut Fake::request("GET", "/"),
            &mut alice(),
            &mut memo,
            None,
        )
        .unwrap();
    }
    assert_eq!(memo.len(), 1);
    for not_claims in [json!([1]), json!({"verified_jwt": "alice"}), json!("x")] {
        let input = build(
            &need,
            &mut Fake::request("GET", "/"),
            &mut Verified(Some(not_claims.clone()), 0),
            &mut memo,
            None,
        )
        .unwrap();
        assert_eq!(
            json(&input),
            json!({"attributes": {"metadataContext": {"filterMetadata": {}}}}),
            "{not_claims} is not trusted as claims"
        );
    }
}

#[test]
fn a_memo_given_another_need_builds_the_claims_that_need_asks_for() {
    let subs = need(
        "package x\nallow if input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt.sub",
    );
    let roles = need(
        "package x\nallow if input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt.realm_access",
    );
    let mut memo = ClaimsMemo::default();
    let mut facts = Fake::request("GET", "/");
    let claims = |input: &Value| {
        json(input)["attributes"]["metadataContext"]["filterMetadata"]
            ["envoy.filters.http.jwt_authn"]["verified_jwt"]
            .clone()
    };
    for _ in 0..2 {
        let first = build(&subs, &mut facts, &mut alice(), &mut memo, None).unwrap();
        assert_eq!(claims(&first), json!({"sub": "alice"}));
        let second = build(&roles, &mut facts, &mut alice(), &mut memo, None).unwrap();
        assert_eq!(
            claims(&second),
            json!({"realm_access": {"roles": ["customer"]}})
        );
    }
    // The same tree at another address is the same need: what was remembered is kept.
    let copy = roles.clone();
    build(&copy, &mut facts, &mut alice(), &mut memo, None).unwrap();
    assert_eq!(memo.len(), 1);
}

/// A policy reading more fields of one object than the builder scans for (the lookup falls
/// back to the map): every one of them is built, and the document equals, as a value, the same
/// document parsed from JSON (regorus' other object form), so comparisons and cache keys see
/// no difference.
#[test]
fn many_fields_of_one_object_are_all_built_and_compare_as_parsed_documents() {
    let names: Vec<String> = (0..10).map(|i| format!("x-h{i}")).collect();
    let src = names.iter().fold(String::from("package x\n"), |src, name| {
        format!("{src}allow if input.attributes.request.http.headers[\"{name}\"]\n")
    });
    let mut facts = Fake::request("GET", "/api/users/alice/orders");
    for (i, name) in names.iter().enumerate() {
        facts = facts.header(name, &i.to_string());
    }
    let input = build_for_alice(&need(&src), &mut facts, None).unwrap();
    let headers: serde_json::Map<String, Json> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), json!(i.to_string())))
        .collect();
    let expected = json!({"attributes": {"request": {"http": {"headers": headers}}}});
    assert_eq!(json(&input), expected);
    let parsed = Value::from_json_str(&expected.to_string()).unwrap();
    assert_eq!(input, parsed);
    assert_eq!(crate::cache::key_of(&input), crate::cache::key_of(&parsed));
}
