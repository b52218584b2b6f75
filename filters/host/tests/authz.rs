//! The authz module in the wasmtime host: the commerce RBAC policy (`policies/envoy-authz/`)
//! decided by the built module, object decisions, hostile requests decided or refused within
//! the evaluation bound without the VM dying, and a differential against the admission engine
//! (the same policy and input evaluated natively give the same decision).

use meshguard_authz::body::Body;
use meshguard_authz::decision::Verdict;
use meshguard_authz::input::{self, Claims, ClaimsMemo, RequestFacts, VerifiedClaims};
use meshguard_authz::prepare;
use meshguard_policy_engine::rego::evaluate_rule;
use meshguard_policy_engine::{RegoVersion, regorus};
use meshguard_testkit::paths::{filter_module, workspace_root};
use meshguard_wasm_host::{Plugin, PluginOptions, Request, WasmModule};
use serde_json::{Value, json};

/// Where the JWT filter leaves the verified payloads.
const CLAIMS: &str = "meshguard.jwt_authn";

fn module() -> WasmModule {
    WasmModule::from_file(filter_module("meshguard_authz").expect("the authz module is built"))
        .unwrap()
}

fn rbac_modules() -> Value {
    let dir = workspace_root().join("policies/envoy-authz");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    json!({"rbac.rego": read("rbac.rego")})
}

fn start(config: Value, options: PluginOptions) -> Plugin {
    let options = PluginOptions {
        configuration: config.to_string().into_bytes(),
        ..options
    };
    Plugin::start(&module(), options.named("authz")).unwrap_or_else(|err| panic!("{err}"))
}

fn rbac(options: PluginOptions) -> Plugin {
    start(json!({"modules": rbac_modules()}), options)
}

fn payload(sub: &str, roles: &[&str]) -> String {
    json!({"verified_jwt": {"sub": sub, "realm_access": {"roles": roles}, "exp": 4_102_444_800u64}})
        .to_string()
}

fn request(method: &str, path: &str, user: Option<(&str, &[&str])>) -> Request {
    let request = Request::new(method, path);
    match user {
        Some((sub, roles)) => request.property(CLAIMS, payload(sub, roles)),
        None => request,
    }
}

fn metric(plugin: &Plugin, suffix: &str) -> i64 {
    plugin
        .metrics()
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, metric)| metric.value)
        .sum()
}

/// Method, path, the caller (sub and roles, or anonymous), the expected status.
type Row = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static [&'static str])>,
    u16,
);

/// The table both the module test and the differential decide.
fn table() -> Vec<Row> {
    const CUSTOMER: &[&str] = &["customer"];
    const SUPPORT: &[&str] = &["support"];
    const ADMIN: &[&str] = &["admin"];
    vec![
        (
            "GET",
            "/api/users/alice/orders",
            Some(("alice", CUSTOMER)),
            200,
        ),
        (
            "GET",
            "/api/users/alice/orders/o-17?expand=items",
            Some(("alice", CUSTOMER)),
            200,
        ),
        (
            "GET",
            "/api/users/alice/cart",
            Some(("alice", CUSTOMER)),
            200,
        ),
        (
            "GET",
            "/api/users/bob/orders",
            Some(("alice", CUSTOMER)),
            403,
        ),
        ("GET", "/api/users/bob/cart", Some(("alice", CUSTOMER)), 403),
        (
            "POST",
            "/api/users/alice/orders",
            Some(("alice", CUSTOMER)),
            403,
        ),
        (
            "GET",
            "/api/users/bob/orders/o-9",
            Some(("sam", SUPPORT)),
            200,
        ),
        (
            "DELETE",
            "/api/users/bob/orders/o-9",
            Some(("sam", SUPPORT)),
            403,
        ),
        ("GET", "/api/users/bob/cart", Some(("sam", SUPPORT)), 403),
        (
            "POST",
            "/api/payments/p-1/refund",
            Some(("root", ADMIN)),
            200,
        ),
        (
            "POST",
            "/api/payments/p-1/refund",
            Some(("alice", CUSTOMER)),
            403,
        ),
        ("GET", "/api/users/alice/orders", None, 403),
        ("GET", "/api/products", Some(("root", ADMIN)), 403),
        (
            "GET",
            "/api/users/al%69ce/orders",
            Some(("alice", CUSTOMER)),
            200,
        ),
        (
            "GET",
            "/api/users/alice%2Forders",
            Some(("alice", CUSTOMER)),
            403,
        ),
    ]
}

#[test]
fn the_rbac_policy_decides_per_role_and_path() {
    let mut plugin = rbac(PluginOptions::default().workers(2));
    for (method, path, user, status) in table() {
        let outcome = plugin.send(request(method, path, user)).unwrap();
        assert_eq!(
            outcome.status(),
            Some(status),
            "{method} {path} as {user:?}"
        );
        assert_eq!(outcome.forwarded(), status == 200, "{method} {path}");
    }
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
    plugin.advance(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "meshguard.authz.authz.allowed"), 6);
    assert_eq!(metric(&plugin, "meshguard.authz.authz.denied.policy"), 9);
}

/// The pipeline built with the Rego engine (`meshguard_with_authz`) with `jwtAuth` and `authz`
/// sections: the JWT stage verifies a real token and its claims decide the same table in the
/// same pass (no filter state read).
#[test]
fn the_pipeline_decides_on_the_jwt_stages_claims() {
    use meshguard_jwt_auth::testing::{TestKey, jwks};
    let config = json!({
        "jwtAuth": {
            "providers": [{"name": "shop", "issuer": "https://id.shop.example",
                           "jwks": jwks(&[&TestKey::rsa_a()]), "payloadInMetadata": "verified_jwt"}],
            "rules": [{"match": {"prefix": "/"},
                       "requires": {"anyOf": [{"provider": "shop"}, {"allowMissing": true}]}}]
        },
        "authz": {"modules": rbac_modules()}
    });
    let module = WasmModule::from_file(
        filter_module("meshguard_with_authz").expect("the pipeline is built"),
    )
    .unwrap();
    let options = PluginOptions {
        configuration: config.to_string().into_bytes(),
        ..PluginOptions::default().workers(2)
    };
    let mut plugin =
        Plugin::start(&module, options.named("edge")).unwrap_or_else(|err| panic!("{err}"));
    let now = plugin
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (method, path, user, status) in table() {
        let mut request = Request::new(method, path);
        if let Some((sub, roles)) = user {
            let token = TestKey::rsa_a().token(&json!({
                "iss": "https://id.shop.example", "sub": sub, "iat": now - 10, "exp": now + 600,
                "realm_access": {"roles": roles}}));
            request = request.header("authorization", format!("Bearer {token}"));
        }
        // Filter state as a JWT module earlier in the chain would leave it: not a claim here.
        let request = request.property(CLAIMS, payload("ada", &["admin", "support"]));
        let outcome = plugin.send(request).unwrap();
        assert_eq!(
            outcome.status(),
            Some(status),
            "{method} {path} as {user:?}"
        );
        assert_eq!(outcome.forwarded(), status == 200, "{method} {path}");
    }
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
    plugin.advance(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "meshguard.authz.edge.allowed"), 6);
    assert_eq!(metric(&plugin, "meshguard.authz.edge.denied.policy"), 9);
}

/// `meshguard.wasm` is built without the Rego engine: the same configuration is refused at
/// configure time, naming the section and the module to use instead.
#[test]
fn the_pipeline_without_the_rego_engine_refuses_an_authz_section() {
    let module =
        WasmModule::from_file(filter_module("meshguard").expect("the pipeline is built")).unwrap();
    let config = json!({"authz": {"modules": rbac_modules()}});
    let err = Plugin::start(&module, PluginOptions::new(config.to_string()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authz")
            && err.contains("no Rego engine")
            && err.contains("meshguard_with_authz.wasm"),
        "{err}"
    );
}

#[test]
fn a_client_sent_claim_header_is_not_a_claim() {
    let mut plugin = rbac(PluginOptions::default());
    let forged = Request::get("/api/users/alice/orders")
        .header("x-jwt-sub", "alice")
        .header("x-jwt-roles", "customer")
        .header("x-jwt-payload", "eyJzdWIiOiJhbGljZSJ9");
    assert_eq!(plugin.send(forged).unwrap().status(), Some(403));
}

#[test]
fn object_decisions_set_status_headers_and_body() {
    let policy = r#"package envoy.authz
import rego.v1

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

default allow := {"allowed": false, "http_status": 401, "body": "{\"error\": \"sign in\"}",
                  "headers": {"www-authenticate": "Bearer realm=\"shop\"", "content-type": "application/json"}}

allow := {"allowed": true, "headers": {"x-user": claims.sub}, "request_headers_to_remove": ["x-debug"],
          "response_headers_to_add": {"x-authz": "rego"}} if claims.sub
"#;
    let mut plugin = start(
        json!({"modules": {"p.rego": policy}}),
        PluginOptions::default(),
    );
    let denied = plugin.send(Request::get("/api/orders")).unwrap();
    assert_eq!(denied.status(), Some(401));
    assert_eq!(denied.body_text(), r#"{"error": "sign in"}"#);
    assert_eq!(
        denied.response_header("www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );
    let allowed = plugin
        .send(
            request("GET", "/api/orders", Some(("alice", &[])))
                .header("x-user", "mallory")
                .header("x-debug", "1"),
        )
        .unwrap();
    assert_eq!(allowed.status(), Some(200));
    assert_eq!(allowed.upstream_header("x-user"), Some("alice"));
    assert_eq!(allowed.upstream_header("x-debug"), None);
    assert_eq!(allowed.response_header("x-authz"), Some("rego"));
}

#[test]
fn a_policy_error_denies_and_is_counted() {
    let policy = "package envoy.authz\nimport rego.v1\nallow := {\"allowed\": \"yes\"}";
    let mut plugin = start(
        json!({"modules": {"p.rego": policy}}),
        PluginOptions::default(),
    );
    assert_eq!(plugin.send(Request::get("/")).unwrap().status(), Some(403));
    plugin.advance(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "error.invalid_decision"), 1);
    assert_eq!(metric(&plugin, "denied.error"), 1);
}

#[test]
fn configuration_errors_name_module_and_line() {
    for (config, expected) in [
        (
            json!({"modules": {"p.rego": "package envoy.authz\nimport rego.v1\n\nallow if {\n  http.send({}).status_code == 200\n}"}}),
            "p.rego:5: `http.send` is not available",
        ),
        (
            json!({"modules": {"p.rego": "package envoy.authz\nimport rego.v1\n\nallow if time.now_ns() > 0"}}),
            "p.rego:4",
        ),
        (
            json!({"modules": {"p.rego": "package envoy.authz\nimport rego.v1\nallow if io.jwt.decode(input.t)"}}),
            "p.rego:3",
        ),
        (
            json!({"modules": {"p.rego": "package envoy.authz\nallow if {"}}),
            "p.rego",
        ),
        (
            json!({"modules": {"p.rego": "package envoy.authz\nallow := true"}, "decisionPath": "envoy/authz/deny"}),
            "decisionPath",
        ),
    ] {
        let options = PluginOptions::new(config.to_string());
        let err = Plugin::start(&module(), options).unwrap_err().to_string();
        assert!(err.contains(expected), "{config}: {err}");
    }
}

/// The depth bound (`meshguard-rego-compat`'s `depth`, issue 20's find 14) in the module: a
/// policy whose expressions reach the bound configures and decides within the module's own
/// stack (a trap there would kill the VM), and one beyond it is refused, naming its line.
#[test]
fn expressions_at_the_depth_bound_run_in_the_modules_stack_and_deeper_are_refused() {
    use meshguard_rego_compat::depth::{MAX_DEPTH, NESTED, OPERATOR, UNARY};
    let policy = |expr: String| {
        format!(
            "package envoy.authz\nimport rego.v1\n\nx := {expr}\n\ndefault allow := false\n\nallow if x < 1000000\n"
        )
    };
    let shapes = |budget: u32| {
        let operators = (budget / OPERATOR) as usize;
        let around = ((budget - 12 * (NESTED + 3 * UNARY)) / OPERATOR) as usize;
        [
            format!("{}1", "-\n".repeat((budget / UNARY) as usize)),
            format!("1{}", " -\n 1".repeat(operators)),
            format!("1{}", " *\n 1".repeat(operators)),
            format!(
                "{}1{}{}",
                "(- - - ".repeat(12),
                ")".repeat(12),
                " +\n 1".repeat(around)
            ),
        ]
    };
    for (shape, expr) in shapes(MAX_DEPTH).into_iter().enumerate() {
        let config = json!({"modules": {"p.rego": policy(expr)}});
        match Plugin::start(
            &module(),
            PluginOptions::new(config.to_string()).named("authz"),
        ) {
            Ok(mut plugin) => {
                let outcome = plugin.send(request("GET", "/", None)).unwrap();
                assert!(outcome.status().is_some(), "shape {shape}");
                assert!(
                    plugin.vm_failures().is_empty(),
                    "shape {shape}: {:?}",
                    plugin.vm_failures()
                );
            }
            // regorus parses the module, then may refuse it with an error of its own (a unary
            // minus on an expression; more registers than its VM has for a long chain): a
            // configuration error at `modules`, not a trap, and not the bound's.
            Err(err) => {
                let err = err.to_string();
                assert!(
                    err.contains("invalid configuration at `modules") && !err.contains("deep here"),
                    "shape {shape}: {err}"
                );
            }
        }
    }
    for expr in shapes(8 * MAX_DEPTH) {
        let config = json!({"modules": {"p.rego": policy(expr)}});
        let err = Plugin::start(&module(), PluginOptions::new(config.to_string()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.rego:") && err.contains("deep here"),
            "{err}"
        );
    }
}

// === hostile requests ===

/// A policy that walks every part of the request it can reach, the path quadratically.
const GREEDY: &str = r#"package envoy.authz
import rego.v1

default allow := false

allow if {
    count([1 | some p in input.parsed_path; some q in input.parsed_path; p == q]) > 0
    count([k | some k, _ in input.parsed_query]) >= 0
    count(input.attributes.request.http.headers) > 0
    not contains(input.attributes.request.http.path, "forbidden")
}
"#;

#[test]
fn hostile_requests_are_decided_or_refused_within_the_bound() {
    let mut plugin = start(
        json!({"modules": {"p.rego": GREEDY}, "maxInstructions": 200000}),
        PluginOptions::default(),
    );
    let long_path = format!("/{}", "segment/".repeat(8_000));
    let many_params = format!(
        "/search?{}",
        (0..5_000)
            .map(|i| format!("p{i}=v{i}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    let mut hostile = vec![
        Request::get(long_path),
        Request::get(many_params),
        Request::get(format!("/{}", "%zz".repeat(1000))),
    ];
    for i in 0..300 {
        hostile.push(Request::get("/").header(format!("x-h{i}"), "v".repeat(100)));
    }
    for request in hostile {
        let path: String = request.path.chars().take(40).collect();
        let outcome = plugin.send(request).unwrap();
        assert!(
            matches!(outcome.status(), Some(200 | 403)),
            "{path}: {:?}",
            outcome.status()
        );
    }
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
    // The worker still decides ordinary requests.
    assert_eq!(
        plugin.send(Request::get("/ok")).unwrap().status(),
        Some(200)
    );
    assert_eq!(
        plugin.send(Request::get("/forbidden")).unwrap().status(),
        Some(403)
    );
    plugin.advance(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(
        metric(&plugin, "error.limit"),
        1,
        "the long path runs out of instructions"
    );
    assert_eq!(metric(&plugin, "error.input"), 1, "a path of bad escapes");
}

#[test]
fn deep_and_oversized_json_bodies_are_refused_with_buffering_on() {
    let policy = "package envoy.authz\nimport rego.v1\nallow if input.parsed_body.amount < 100";
    let config =
        json!({"modules": {"p.rego": policy}, "withRequestBody": {"maxRequestBytes": 65536}});
    let options = PluginOptions::default().allow_on_headers_stop_iteration(true);
    let mut plugin = start(config, options);
    let json_post = |body: Vec<u8>| {
        Request::post("/api/payments", body.clone())
            .header("content-type", "application/json")
            .body_chunks(body.chunks(4096).map(<[u8]>::to_vec).collect())
    };
    let ok = plugin
        .send(json_post(br#"{"amount": 20}"#.to_vec()))
        .unwrap();
    assert_eq!(
        ok.status(),
        Some(200),
        "{:?} {:?}",
        plugin.logs(),
        plugin.vm_failures()
    );
    assert!(
        ok.body_text().contains("amount"),
        "the body still reaches the upstream"
    );
    assert_eq!(
        plugin
            .send(json_post(br#"{"amount": 200}"#.to_vec()))
            .unwrap()
            .status(),
        Some(403)
    );
    let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes();
    assert_eq!(plugin.send(json_post(deep)).unwrap().status(), Some(403));
    let wide = format!(
        "{{{}\"amount\": 1}}",
        (0..3000)
            .map(|i| format!("\"k{i}\": [{i}],"))
            .collect::<String>()
    );
    assert_eq!(
        plugin.send(json_post(wide.into_bytes())).unwrap().status(),
        Some(200)
    );
    let huge = vec![b' '; 200_000];
    let too_large = plugin.send(json_post(huge)).unwrap();
    assert_eq!(too_large.status(), Some(413));
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
    plugin.advance(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(metric(&plugin, "error.input"), 1, "the deep body");
    assert_eq!(metric(&plugin, "denied.body_too_large"), 1);
}

// === the differential against the admission engine ===

/// A request as the differential sends it to both sides.
struct Case {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    user: Option<(&'static str, &'static [&'static str])>,
    body: Option<&'static str>,
}

impl Case {
    fn new(
        method: &'static str,
        path: &'static str,
        user: Option<(&'static str, &'static [&'static str])>,
    ) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            user,
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self.header("content-type", "application/json")
    }

    fn to_host(&self) -> Request {
        let mut request = request(self.method, self.path, self.user);
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = self.body {
            request = request.body(body.as_bytes().to_vec());
        }
        request
    }
}

impl RequestFacts for Case {
    fn header(&mut self, name: &str) -> Option<String> {
        match name {
            ":method" => Some(self.method.to_string()),
            ":path" => Some(self.path.to_string()),
            _ => self
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string()),
        }
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        [(":method", self.method), (":path", self.path)]
            .into_iter()
            .chain(self.headers.iter().copied())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn property(&mut self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

impl VerifiedClaims for Case {
    fn payloads(&mut self) -> Option<Claims> {
        let (sub, roles) = self.user?;
        Some(Claims::Json(payload(sub, roles).into_bytes()))
    }
}

/// Sends every case through the built module and evaluates the same policy on the same input
/// document natively with the admission engine; the decisions must agree.
fn differential(config: Value, cases: Vec<Case>) {
    let options = PluginOptions::default().allow_on_headers_stop_iteration(true);
    let mut plugin = start(config.clone(), options);
    let prepared = prepare(config.to_string().as_bytes()).unwrap();
    let modules: Vec<(String, String)> = config["modules"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, source)| (name.clone(), source.as_str().unwrap().to_string()))
        .collect();
    let data = regorus::Value::from(config.get("data").cloned().unwrap_or(json!({})));
    for mut case in cases {
        let outcome = plugin.send(case.to_host()).unwrap();
        let body = case.body.map(|text| Body(text.as_bytes().to_vec()));
        let input = {
            let mut claims = Case::new(case.method, case.path, case.user);
            input::build(
                &prepared.policy.need,
                &mut case,
                &mut claims,
                &mut ClaimsMemo::default(),
                body.as_ref(),
            )
            .unwrap()
        };
        let engine = evaluate_rule(
            &modules,
            RegoVersion::V1,
            &prepared.policy.rule,
            input.clone(),
            data.clone(),
        );
        let expected = match engine.as_ref().map(Verdict::from_value) {
            Ok(Ok(verdict)) if verdict.allowed => 200,
            Ok(Ok(verdict)) => u16::try_from(verdict.status).unwrap(),
            // An error, an undefined or an invalid decision: onError (deny, 403).
            _ => 403,
        };
        assert_eq!(
            outcome.status(),
            Some(expected),
            "{} {}: input {} -> engine {engine:?}; VM failures {:?}",
            case.method,
            case.path,
            input.to_json_str().unwrap_or_default(),
            plugin.vm_failures()
        );
    }
    assert!(plugin.vm_failures().is_empty());
}

#[test]
fn the_module_decides_as_the_admission_engine_does() {
    const CUSTOMER: &[&str] = &["customer"];
    // The RBAC policy on the whole table.
    differential(
        json!({"modules": rbac_modules()}),
        table()
            .into_iter()
            .map(|(method, path, user, _)| Case::new(method, path, user))
            .collect(),
    );
    // The edge policy (two modules, another decision path).
    let dir = workspace_root().join("policies/envoy-authz");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    differential(
        json!({"modules": {"edge.rego": read("edge.rego"), "rbac.rego": read("rbac.rego")},
               "decisionPath": "envoy/edge/allow"}),
        vec![
            Case::new("GET", "/api/products/p-1", None),
            Case::new("POST", "/api/products", Some(("alice", CUSTOMER))),
            Case::new("GET", "/healthz", None),
            Case::new("GET", "/api/users/alice/cart", Some(("alice", CUSTOMER))),
            Case::new("GET", "/api/users/bob/cart", Some(("alice", CUSTOMER))),
        ],
    );
    // OPA's Envoy tutorial, ported to claims, with a buffered body.
    let tutorial =
        std::fs::read_to_string(workspace_root().join("policies/envoy-tutorial/policy.rego"))
            .unwrap();
    let guest = Some(("YWxpY2U", &["guest"][..]));
    let config = json!({"modules": {"policy.rego": tutorial}, "decisionPath": "envoy/tutorial/authz/allow",
                        "withRequestBody": {"maxRequestBytes": 4096}});
    differential(
        config,
        vec![
            Case::new("GET", "/people", guest),
            Case::new("GET", "/people/1", guest),
            Case::new("POST", "/people", guest).body(r#"{"firstname": "Charlie"}"#),
        ],
    );
    // Where regorus alone would differ from OPA: `not f(undefined)` and `x := undefined`.
    let divergences = r#"package envoy.authz
import rego.v1

default allow := false

allow if not startswith(input.attributes.request.http.headers["x-tier"], "free")

allow := {"allowed": false, "http_status": 402} if {
    tier := input.attributes.request.http.headers["x-plan"]
    tier != "paid"
}
"#;
    differential(
        json!({"modules": {"p.rego": divergences}}),
        vec![
            Case::new("GET", "/", None),
            Case::new("GET", "/", None).header("x-tier", "free"),
            Case::new("GET", "/", None).header("x-tier", "gold"),
            Case::new("GET", "/", None)
                .header("x-plan", "trial")
                .header("x-tier", "free"),
        ],
    );
    // Complete rules with several values: OPA's conflict error (the engine's interpreter
    // reports it; the module checks it after the decision), so `onError`; one value decides.
    let roles = "claims := input.attributes.metadataContext.filterMetadata[\"envoy.filters.http.jwt_authn\"].verified_jwt\nroles := claims.realm_access.roles\n";
    for rules in [
        // Several definitions.
        "role = \"admin\" if \"admin\" in roles\nrole = \"user\" if \"user\" in roles\nallow if role == \"admin\"",
        // One definition iterating.
        "role := r if { r := roles[_] }\nallow if role == \"admin\"",
        // Object-valued.
        "grant := {\"role\": r} if { some r in roles }\nallow if grant.role == \"admin\"",
        // With `default`.
        "default role := \"admin\"\nrole := r if { r := roles[_] }\nallow if role == \"admin\"",
        // The decision with `else`.
        "role := r if { r := roles[_] }\nallow if { role == \"admin\" } else := false",
    ] {
        let module = format!(
            "package envoy.authz\nimport rego.v1\n\ndefault allow := false\n\n{roles}{rules}\n"
        );
        differential(
            json!({"modules": {"p.rego": module}}),
            vec![
                Case::new("GET", "/", Some(("alice", &["user", "admin"]))),
                Case::new("GET", "/", Some(("alice", &["admin", "user"]))),
                Case::new("GET", "/", Some(("alice", &["admin", "admin"]))),
                Case::new("GET", "/", Some(("alice", &["admin"]))),
                Case::new("GET", "/", Some(("alice", &["user"]))),
                Case::new("GET", "/", Some(("alice", &[]))),
            ],
        );
    }
}
