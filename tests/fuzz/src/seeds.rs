//! The seed corpus of every target, made from the inputs the repository's own tests use: the
//! JWT filter's test keys, valid tokens and attack corpus; the filter configurations shipped in
//! `istio/` and `filters/host/examples/`; the requests of the embedded host's examples and
//! suites; the `gatekeeper/` templates, constraints and samples; the Rego in `policies/`.
//!
//! `cargo xtask fuzz` writes them to `target/fuzz/seeds/<target>/` (with the `fuzz-seeds`
//! binary) before each run, so the corpus follows the tests as they change; `tests/replay.rs`
//! runs each through its target in the ordinary test suite.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meshguard_jwt_auth::testing::{self, TestKey};
use serde_json::{Value as Json, json};
use serde_yaml::Value as Yaml;

use crate::jwt::{self, NOW};
use crate::lines::{self, Exchange, Scenario};
use crate::rego::INPUT_MARKER;

/// The repository root (this crate is `tests/fuzz`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn yaml_documents(path: &Path) -> Vec<Yaml> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&read(path))
        .filter_map(|doc| Yaml::deserialize(doc).ok())
        .collect()
}

fn to_json(yaml: &Yaml) -> Json {
    serde_json::to_value(yaml).unwrap_or(Json::Null)
}

// === filter configurations ===

/// Every configuration of the filter in `istio/<dir>/` (WasmPlugin `pluginConfig`, EnvoyFilter
/// `configuration.value`) and `filters/host/examples/<dir>.config.json`, plus the JWT targets'
/// own for `jwt-auth`.
pub fn filter_configs(dir: &str) -> Vec<Vec<u8>> {
    let mut configs = Vec::new();
    if dir == "jwt-auth" {
        configs.push(jwt::fixed_keys_config().to_string().into_bytes());
        configs.push(jwt::remote_config().to_string().into_bytes());
    }
    let root = workspace_root();
    for file in files(&root.join("istio").join(dir), ".yaml") {
        for document in yaml_documents(&file) {
            collect_configs(&document, &mut configs);
        }
    }
    let example = root
        .join("filters/host/examples")
        .join(format!("{dir}.config.json"));
    if example.is_file() {
        configs.push(read(&example).into_bytes());
    }
    configs
}

fn collect_configs(value: &Yaml, out: &mut Vec<Vec<u8>>) {
    match value {
        Yaml::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("pluginConfig"), config) => {
                        out.push(to_json(config).to_string().into_bytes())
                    }
                    (Some("configuration"), Yaml::Mapping(inner)) => {
                        if let Some(text) = inner.get("value").and_then(Yaml::as_str) {
                            out.push(text.as_bytes().to_vec());
                        }
                    }
                    _ => collect_configs(value, out),
                }
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|item| collect_configs(item, out)),
        _ => {}
    }
}

/// Configurations, with variants that every parser must refuse by name: a wrong type at the
/// top, an unknown field, truncation.
fn config_seeds(dir: &str) -> Vec<Vec<u8>> {
    let mut seeds = filter_configs(dir);
    let shipped = seeds.clone();
    for config in shipped.iter().take(3) {
        seeds.push(config.get(..config.len() / 2).unwrap_or_default().to_vec());
        if let Ok(Json::Object(mut map)) = serde_json::from_slice::<Json>(config) {
            map.insert("unknownField".into(), json!(1));
            seeds.push(Json::Object(map).to_string().into_bytes());
        }
    }
    seeds.extend([
        b"".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"null".to_vec(),
    ]);
    seeds
}

/// Seeds of `stamp_config`.
pub fn stamp_configs() -> Vec<Vec<u8>> {
    let mut seeds = config_seeds("stamp");
    seeds.push(
        json!({"header": "x-a", "value": "1", "calibration": {"headerReads": ["a"], "clockReads": 2,
            "headerMapReads": 1, "sharedDataUpdates": 1, "headerWrites": ["x-b"]}})
        .to_string()
        .into_bytes(),
    );
    seeds
}

/// Seeds of `canary_config`.
pub fn canary_configs() -> Vec<Vec<u8>> {
    config_seeds("canary")
}

/// Seeds of `circuit_breaker_config`.
pub fn circuit_breaker_configs() -> Vec<Vec<u8>> {
    config_seeds("circuit-breaker")
}

/// Seeds of `rate_limit_config`.
pub fn rate_limit_configs() -> Vec<Vec<u8>> {
    config_seeds("rate-limit")
}

/// Seeds of `jwt_auth_config`.
pub fn jwt_auth_configs() -> Vec<Vec<u8>> {
    config_seeds("jwt-auth")
}

// === requests ===

/// The requests of `filters/host/examples/<dir>.*.yaml` (request files and suites): headers,
/// properties (the verified claims' filter state among them) and bodies.
fn example_requests(dir: &str) -> Vec<Exchange> {
    let mut requests = Vec::new();
    for file in files(&workspace_root().join("filters/host/examples"), ".yaml") {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        if !name.is_some_and(|name| name.starts_with(&format!("{dir}."))) {
            continue;
        }
        for document in yaml_documents(&file) {
            collect_requests(&document, &mut requests);
        }
    }
    requests
}

fn collect_requests(value: &Yaml, out: &mut Vec<Exchange>) {
    match value {
        Yaml::Mapping(map) => {
            if let Some(request) = map.get("request").and_then(Yaml::as_mapping) {
                let text = |key: &str| request.get(key).and_then(Yaml::as_str).map(str::to_string);
                let mut headers = vec![
                    (
                        ":method".to_string(),
                        text("method").unwrap_or_else(|| "GET".into()),
                    ),
                    (
                        ":path".to_string(),
                        text("path").unwrap_or_else(|| "/".into()),
                    ),
                    (":authority".to_string(), "shop.example".to_string()),
                ];
                if let Some(Yaml::Mapping(more)) = request.get("headers") {
                    for (name, value) in more {
                        if let (Some(name), Some(value)) = (name.as_str(), yaml_text(value)) {
                            headers.push((name.to_lowercase(), value));
                        }
                    }
                }
                let mut properties = Vec::new();
                if let Some(Yaml::Mapping(more)) = request.get("properties") {
                    for (name, value) in more {
                        if let (Some(name), Some(value)) = (name.as_str(), yaml_text(value)) {
                            properties.push((name.to_string(), value.into_bytes()));
                        }
                    }
                }
                let mut body = text("body").unwrap_or_default().into_bytes();
                if !body.is_empty() && !body.ends_with(b"\n") {
                    body.push(b'\n');
                }
                out.push(Exchange {
                    request: headers,
                    properties,
                    body,
                    ..Exchange::default()
                });
            }
            for value in map.values() {
                collect_requests(value, out);
            }
        }
        Yaml::Sequence(items) => items.iter().for_each(|item| collect_requests(item, out)),
        _ => {}
    }
}

fn yaml_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) => Some(text.clone()),
        Yaml::Number(number) => Some(number.to_string()),
        Yaml::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Hostile variations every request target starts from: repeated and huge headers, odd
/// addresses, invalid UTF-8, overrides without their gate.
fn hostile_headers() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![
            (":method", "GET"),
            (":path", "/api/cart"),
            (":authority", "shop.example"),
            (
                "x-forwarded-for",
                "203.0.113.9, 10.0.0.1, not-an-ip, ::1, [::1]:80",
            ),
            ("cookie", "user=alice; mg-canary=v2; =; ;;; user=bob"),
            ("cookie", "second=cookie-header"),
        ],
        vec![
            (":method", "POST"),
            (":path", "/api/orders?user=1&user=2#frag"),
            (":authority", "SHOP.EXAMPLE:8443"),
            ("x-user-id", ""),
            ("x-user-id", "bob"),
            ("authorization", "Bearer "),
            ("x-mesh-version", "v2"),
            ("x-canary-override", "v2"),
        ],
        vec![
            (":method", "OPTIONS"),
            (":path", "*"),
            ("origin", "https://evil.example"),
            ("access-control-request-method", "DELETE"),
        ],
        vec![
            (":path", "/%2e%2e/%2F/api/payments/../admin"),
            (":method", "GET"),
            ("content-type", "application/grpc"),
        ],
    ]
}

fn request_seeds(dir: &str, configs: usize) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let examples = example_requests(dir);
    for config in 0..configs.min(8) {
        let mut exchanges: Vec<Exchange> = examples
            .iter()
            .map(|example| {
                let mut exchange = example.clone();
                exchange.response = vec![(":status".into(), "200".into())];
                exchange
                    .properties
                    .push(("source.address".into(), b"10.1.2.3:45678".to_vec()));
                exchange
            })
            .collect();
        exchanges.truncate(lines::MAX_EXCHANGES);
        if !exchanges.is_empty() {
            seeds.push(lines::encode(&Scenario { config, exchanges }));
        }
        for headers in hostile_headers() {
            let mut scenario = lines::request(config, &headers);
            if let Some(exchange) = scenario.exchanges.first_mut() {
                exchange.response = vec![
                    (":status".into(), "503".into()),
                    ("grpc-status".into(), "14".into()),
                ];
                exchange.properties =
                    vec![("source.address".into(), b"[2001:db8::1]:443".to_vec())];
            }
            let mut encoded = lines::encode(&scenario);
            encoded.extend_from_slice(b"+x-huge:0123456789abcdef\n");
            seeds.push(encoded);
        }
    }
    // Failures and slow answers in a row, with the clock moving (breakers open and probe,
    // buckets refill).
    let mut burst = Vec::new();
    for step in 0..12 {
        burst.push(Exchange {
            request: vec![
                (":method".into(), "GET".into()),
                (":path".into(), "/api/payments".into()),
                (":authority".into(), "payment".into()),
                ("x-user-id".into(), "alice".into()),
            ],
            response: vec![(
                ":status".into(),
                if step < 8 { "503" } else { "200" }.into(),
            )],
            properties: Vec::new(),
            advance_ms: if step == 8 { 31_000 } else { 10 },
            body: Vec::new(),
        });
    }
    seeds.push(lines::encode(&Scenario {
        config: 0,
        exchanges: burst,
    }));
    seeds
}

/// Seeds of `stamp_request`.
pub fn stamp_requests() -> Vec<Vec<u8>> {
    request_seeds("stamp", filter_configs("stamp").len())
}

/// Seeds of `canary_request`.
pub fn canary_requests() -> Vec<Vec<u8>> {
    request_seeds("canary", filter_configs("canary").len())
}

/// Seeds of `circuit_breaker_request`.
pub fn circuit_breaker_requests() -> Vec<Vec<u8>> {
    request_seeds("circuit-breaker", filter_configs("circuit-breaker").len())
}

/// Seeds of `rate_limit_request`.
pub fn rate_limit_requests() -> Vec<Vec<u8>> {
    request_seeds("rate-limit", filter_configs("rate-limit").len())
}

/// Seeds of `jwt_auth_request`: the generic ones plus every valid and attack token on the
/// fixed-keys configuration (index 0), in each place a token can be.
pub fn jwt_auth_requests() -> Vec<Vec<u8>> {
    let mut seeds = request_seeds("jwt-auth", filter_configs("jwt-auth").len());
    let tokens = testing::valid_tokens(NOW)
        .into_iter()
        .map(|(_, token)| token);
    let attacks = testing::attack_corpus(NOW)
        .into_iter()
        .map(|attack| attack.token);
    for token in tokens.chain(attacks) {
        let bearer = format!("Bearer {token}");
        let cookie = format!("shop_session_jwt={token}");
        let query = format!("/api/cart?access_token={token}");
        for headers in [
            vec![
                (":method", "GET"),
                (":path", "/api/cart"),
                ("authorization", bearer.as_str()),
            ],
            vec![
                (":method", "GET"),
                (":path", "/api/orders"),
                ("cookie", cookie.as_str()),
                ("x-jwt-sub", "spoofed"),
            ],
            vec![(":method", "GET"), (":path", query.as_str())],
        ] {
            seeds.push(lines::encode(&lines::request(0, &headers)));
        }
    }
    seeds
}

/// Seeds of `authz_config`: the shipped configurations and the harness's own, cut and
/// extended.
pub fn authz_configs() -> Vec<Vec<u8>> {
    let mut seeds = config_seeds("authz");
    seeds.extend(authz_extra_configs());
    for bad in [
        json!({"modules": {"x.rego": "package envoy.authz\nimport rego.v1\nallow if {"}}),
        json!({"modules": {"x.rego": "package envoy.authz\nimport rego.v1\nallow if http.send({}).body"}}),
        json!({"modules": {"x.rego": "package envoy.authz\nallow = true"}, "decisionPath": "/"}),
        json!({"modules": {"x.rego": "package a\nimport rego.v1\nallow if time.now_ns() > 0"},
               "decisionPath": "a/allow", "cacheSize": 4, "maxInstructions": 0}),
        json!({"modules": {"": " "}, "data": [], "onError": "maybe", "statusOnError": 99}),
    ] {
        seeds.push(bad.to_string().into_bytes());
    }
    seeds
}

/// Configurations only the fuzz targets use (first in `authz_request`'s list): a policy that
/// reads the whole OPA-Envoy input (query, body, headers, source) and answers with object
/// decisions, and one that reads the whole input and iterates the query and headers under a small
/// instruction budget.
pub fn authz_extra_configs() -> Vec<Vec<u8>> {
    let object = "package envoy.authz\n\
        import rego.v1\n\
        default allow := {\"allowed\": false, \"http_status\": 401, \"headers\": {\"x-denied-by\": \"fuzz\"}, \"body\": \"denied\"}\n\
        allow := {\"allowed\": true, \"headers\": {\"x-user\": user}, \"request_headers_to_remove\": [\"cookie\"], \"response_headers_to_add\": {\"x-seen\": sprintf(\"%d\", [count(input.attributes.request.http.headers)])}} if {\n\
        \tuser := input.parsed_query.user[0]\n\
        \tinput.parsed_body.amount < 100\n\
        \tstartswith(input.attributes.request.http.path, \"/api/\")\n\
        \tinput.attributes.source.address.socketAddress.address != \"10.0.0.66\"\n\
        \tnot input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt.banned\n\
        }\n";
    // Reads the whole input (so it is all built) and iterates what a client controls.
    let walker = "package envoy.authz\n\
        import rego.v1\n\
        allow if {\n\
        \tinput.attributes\n\
        \tpairs := [[k, v] | some k, values in input.parsed_query; some v in values]\n\
        \tcount(pairs) < 500\n\
        \tlong := [name | some name, value in input.attributes.request.http.headers; count(value) > 8192]\n\
        \tcount(long) == 0\n\
        }\n";
    vec![
        json!({"modules": {"object.rego": object}, "withRequestBody": {"maxRequestBytes": 4096},
               "cacheSize": 0, "maxInstructions": 20000, "explain": true})
        .to_string()
        .into_bytes(),
        json!({"modules": {"walk.rego": walker}, "withRequestBody": {"maxRequestBytes": 65536},
               "cacheSize": 16, "maxInstructions": 5000, "onError": "allow", "statusOnError": 503})
        .to_string()
        .into_bytes(),
    ]
}

/// Seeds of `authz_request`: the examples' requests (with their verified claims) and the
/// hostile ones on every configuration, plus what the issue calls hostile for authz: very long
/// paths, thousands of query parameters, deep and invalid JSON bodies, invalid UTF-8.
pub fn authz_requests() -> Vec<Vec<u8>> {
    let configs = authz_extra_configs().len() + filter_configs("authz").len();
    let mut seeds = request_seeds("authz", configs);
    let claims =
        br#"{"verified_jwt": {"sub": "alice", "realm_access": {"roles": ["customer", "admin"]}}}"#;
    let many_params: String = (0..2000).map(|i| format!("user=u{i}&")).collect();
    let long_path = format!("/api/users/alice/orders/{}", "a/".repeat(20_000));
    let deep = format!("{}1{}\n", "[".repeat(5000), "]".repeat(5000));
    let post = |path: &str, content_type: &str, body: &[u8]| Exchange {
        request: vec![
            (":method".into(), "POST".into()),
            (":path".into(), path.into()),
            (":authority".into(), "shop.example".into()),
            ("content-type".into(), content_type.into()),
            ("x-user-id".into(), "alice".into()),
            ("cookie".into(), "session=1".into()),
        ],
        response: vec![(":status".into(), "200".into())],
        properties: vec![
            ("source.address".into(), b"10.1.2.3:45678".to_vec()),
            ("meshguard.jwt_authn".into(), claims.to_vec()),
        ],
        body: body.to_vec(),
        ..Exchange::default()
    };
    for config in 0..configs.min(8) {
        let exchanges = vec![
            post(
                "/api/orders?user=alice",
                "application/json",
                b"{\"amount\": 12}\n",
            ),
            post(
                "/api/orders?user=alice",
                "application/json; charset=utf-8",
                b"{\"amount\": 1e400}\n",
            ),
            post(
                &format!("/api/orders?{many_params}"),
                "application/json",
                b"{\"amount\": \n",
            ),
            post(&long_path, "application/json", deep.as_bytes()),
            post(
                "/api/orders?user=%ff%fe",
                "text/plain",
                b"\xff\xfe not json\n",
            ),
            post(
                "/api/users/alice/cart",
                "application/x-www-form-urlencoded",
                b"a=1&a=2&b\n",
            ),
        ];
        seeds.push(lines::encode(&Scenario { config, exchanges }));
    }
    seeds
}

/// Seeds of `pipeline_config`.
pub fn pipeline_configs() -> Vec<Vec<u8>> {
    config_seeds("meshguard")
}

/// Seeds of `pipeline_request`: the examples' and the hostile requests, and the JWT targets'
/// valid and attack tokens (the shipped pipeline verifies the same test key).
pub fn pipeline_requests() -> Vec<Vec<u8>> {
    let configs = filter_configs("meshguard").len();
    let mut seeds = request_seeds("meshguard", configs);
    let tokens = testing::valid_tokens(NOW)
        .into_iter()
        .map(|(_, token)| token)
        .chain(
            testing::attack_corpus(NOW)
                .into_iter()
                .map(|attack| attack.token),
        );
    for token in tokens {
        let bearer = format!("Bearer {token}");
        for config in 0..configs.min(4) {
            seeds.push(lines::encode(&lines::request(
                config,
                &[
                    (":method", "GET"),
                    (":path", "/api/products/p-1"),
                    (":authority", "shop.example"),
                    ("authorization", bearer.as_str()),
                    ("x-user-id", "spoofed"),
                ],
            )));
        }
    }
    seeds
}

// === JWT ===

/// Seeds of `jwt_token`: valid tokens (each place) and the attack corpus.
pub fn jwt_tokens() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (_, token) in testing::valid_tokens(NOW) {
        for how in 0..4u8 {
            seeds.push([vec![how], token.clone().into_bytes()].concat());
        }
    }
    for attack in testing::attack_corpus(NOW) {
        seeds.push([vec![0], attack.token.into_bytes()].concat());
    }
    seeds
}

/// Seeds of `jwt_claims`: the standard headers of each fixed key with valid claims, and the
/// claim variations the filter's tests check.
pub fn jwt_claims() -> Vec<Vec<u8>> {
    let valid = testing::valid_claims(NOW);
    let mut claim_sets = vec![valid.clone()];
    for patch in [
        json!({"exp": null}),
        json!({"aud": ["a", "commerce-web"]}),
        json!({"nbf": NOW + 5, "iat": NOW}),
        json!({"exp": "soon"}),
        json!({"email": "a@b", "realm_access": {"roles": ["admin", 7, null]}}),
        json!({"sub": "x\r\ny", "exp": NOW + 200_000}),
    ] {
        let mut claims = valid.clone();
        for (key, value) in patch.as_object().into_iter().flatten() {
            claims[key] = value.clone();
        }
        claim_sets.push(claims);
    }
    let mut seeds = Vec::new();
    for (selector, key) in [
        (0u8, TestKey::hmac()),
        (230, TestKey::ec256_a()),
        (250, TestKey::rsa_a()),
    ] {
        for (index, claims) in claim_sets.iter().enumerate() {
            if selector != 0 && index > 0 {
                continue;
            }
            let header = key.header().to_string();
            seeds.push(
                [
                    vec![selector],
                    header.into_bytes(),
                    b"\n".to_vec(),
                    claims.to_string().into_bytes(),
                ]
                .concat(),
            );
        }
    }
    for header in [
        json!({"alg": "HS256", "kid": "rsa-a"}),
        json!({"alg": "HS256", "crit": ["exp"], "kid": "hs"}),
        json!({"alg": "HS256", "kid": "hs", "kid ": "x", "b64": false}),
    ] {
        seeds.push(
            [
                vec![0],
                header.to_string().into_bytes(),
                b"\n".to_vec(),
                valid.to_string().into_bytes(),
            ]
            .concat(),
        );
    }
    seeds.push(b"\0{\"alg\":\"HS256\",\"alg\":\"none\"}\n{\"exp\":1,\"exp\":2}".to_vec());
    seeds
}

/// Seeds of `jwks`: the JWKS of every test key, and the corpus JWKS.
pub fn jwks() -> Vec<Vec<u8>> {
    let keys = [
        TestKey::rsa_a(),
        TestKey::rsa_b(),
        TestKey::ec256_a(),
        TestKey::ec384(),
        TestKey::ed25519(),
        TestKey::hmac(),
    ];
    let mut seeds: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| testing::jwks(&[key]).into_bytes())
        .collect();
    seeds.push(testing::corpus_jwks().into_bytes());
    seeds.push(
        br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-521"},{}]}"#.to_vec(),
    );
    seeds
}

/// Seeds of `jwks_remote`: a good answer, a server error, an HTML page.
pub fn jwks_remote() -> Vec<Vec<u8>> {
    let good = testing::corpus_jwks().into_bytes();
    vec![
        [vec![0, 0], good.clone()].concat(),
        [vec![0, 0], testing::jwks(&[&TestKey::rsa_b()]).into_bytes()].concat(),
        [vec![250, 0], good].concat(),
        [vec![0, 200], b"<html>login</html>".to_vec()].concat(),
    ]
}

// === admission ===

/// One sample object of a template's suite, with its case's constraint parameters.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The template's folder (`gatekeeper/<name>`).
    pub template_dir: PathBuf,
    /// The object.
    pub object: Json,
    /// `spec.parameters` of the case's constraint (`{}` when it has none).
    pub parameters: Json,
}

/// Every sample object under `gatekeeper/<name>/samples/<case>/example*.yaml`.
pub fn gatekeeper_samples() -> Vec<Sample> {
    let mut samples = Vec::new();
    for file in files(&workspace_root().join("gatekeeper"), ".yaml") {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("example") {
            continue;
        }
        let case = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let template_dir = case
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let parameters = yaml_documents(&case.join("constraint.yaml"))
            .first()
            .map(to_json)
            .and_then(|constraint| constraint.pointer("/spec/parameters").cloned())
            .unwrap_or(json!({}));
        for document in yaml_documents(&file) {
            samples.push(Sample {
                template_dir: template_dir.clone(),
                object: to_json(&document),
                parameters: parameters.clone(),
            });
        }
    }
    samples
}

/// An AdmissionReview v1 for `object`, as the API server sends it for a CREATE.
pub fn admission_review(object: &Json, uid: usize) -> Json {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("00000000-0000-0000-0000-{uid:012}"),
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": "objects"},
            "name": object.pointer("/metadata/name"),
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(json!("shop")),
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:shop:deployer", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// Seeds of `admission_review` and `policy_review`: every sample as the API server sends it,
/// and the webhook tests' own review.
pub fn admission_reviews() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = gatekeeper_samples()
        .iter()
        .enumerate()
        .map(|(uid, sample)| {
            admission_review(&sample.object, uid)
                .to_string()
                .into_bytes()
        })
        .collect();
    let webhook =
        workspace_root().join("admission-webhook/server/tests/testdata/deployment-review.json");
    seeds.push(read(&webhook).into_bytes());
    seeds
}

// === Rego ===

/// Every Rego module of the repository: `policies/**.rego` and each template's `rego` and libs.
pub fn rego_sources() -> Vec<String> {
    let root = workspace_root();
    let mut modules: BTreeSet<String> = files(&root.join("policies"), ".rego")
        .iter()
        .map(|path| read(path))
        .collect();
    for file in files(&root.join("gatekeeper"), "template.yaml") {
        for document in yaml_documents(&file) {
            let template = to_json(&document);
            for target in template
                .pointer("/spec/targets")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(rego) = target["rego"].as_str() {
                    modules.insert(rego.to_string());
                }
                for lib in target["libs"].as_array().into_iter().flatten() {
                    if let Some(lib) = lib.as_str() {
                        modules.insert(lib.to_string());
                    }
                }
            }
        }
    }
    modules.into_iter().collect()
}

/// Seeds of `rego_rewrite` and `rego_template`: the repository's Rego, plus the divergence
/// constructs the rewrites target.
pub fn rego_modules() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = rego_sources().into_iter().map(String::into_bytes).collect();
    seeds.push(
        b"package x\n\nviolation[{\"msg\": m}] {\n  a := 1\n  (a == 1)\n  not f(input.x.y)\n  m := sprintf(\"%v %v\", [a])\n} {\n  any([true])\n}\nf(x) = y { y := x }\n"
            .to_vec(),
    );
    seeds.push(
        b"package x\nr = 1 { true }\nr = 2 { input.a }\nt(\"Ki\") = 1024\nt(\"Mi\") = 1048576\n"
            .to_vec(),
    );
    seeds
}

/// Seeds of `rego_differential`: grammar bytes (mode 0) and each repository template with each
/// of its samples (mode 1).
pub fn rego_programs() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = (0u8..16)
        .map(|seed| {
            let bytes: Vec<u8> = (0..512u32)
                .map(|i| {
                    (i as u8)
                        .wrapping_mul(37)
                        .wrapping_add(seed.wrapping_mul(101))
                })
                .collect();
            [vec![0], bytes].concat()
        })
        .collect();
    for sample in gatekeeper_samples() {
        for document in yaml_documents(&sample.template_dir.join("template.yaml")) {
            let template = to_json(&document);
            let Some(rego) = template
                .pointer("/spec/targets/0/rego")
                .and_then(Json::as_str)
            else {
                continue;
            };
            let input = json!({"object": sample.object, "parameters": sample.parameters});
            seeds.push(
                [
                    vec![1],
                    rego.as_bytes().to_vec(),
                    INPUT_MARKER.as_bytes().to_vec(),
                    input.to_string().into_bytes(),
                ]
                .concat(),
            );
        }
    }
    seeds
}

// === wasm ===

/// Seeds of `wasm_host`: wasm-smith reads any bytes; these cover both shapes.
pub fn wasm_smith() -> Vec<Vec<u8>> {
    (0u8..16)
        .map(|seed| {
            (0..1024u32)
                .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
                .collect()
        })
        .collect()
}

/// Seeds of `export_trimmer`: small modules with and without the unused-exports section.
pub fn trimmer_modules() -> Vec<Vec<u8>> {
    use wasm_encoder::{
        CodeSection, CustomSection, ExportKind, ExportSection, Function, FunctionSection,
        Instruction, Module, TypeSection,
    };
    let build = |unused: Option<&str>| {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut exports = ExportSection::new();
        for name in [
            "proxy_on_request_headers",
            "proxy_on_response_body",
            "proxy_on_done",
        ] {
            exports.export(name, ExportKind::Func, 0);
        }
        module.section(&exports);
        let mut code = CodeSection::new();
        let mut body = Function::new([]);
        body.instruction(&Instruction::End);
        code.function(&body);
        module.section(&code);
        if let Some(unused) = unused {
            module.section(&CustomSection {
                name: crate::export_trimmer::SECTION.into(),
                data: unused.as_bytes().into(),
            });
        }
        module.finish()
    };
    vec![
        build(None),
        build(Some("proxy_on_response_body\nproxy_on_done\n")),
        build(Some("proxy_on_request_headers\nnot_exported\n\n")),
    ]
}
