//! The `authz` stage in the pipeline: decided on the claims the `jwtAuth` stage verified in
//! the same pass (never filter state, never a header), before anything is counted; requests
//! held for their body run the later stages and commit once the body is in.

use std::time::Duration;

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Decision, Env, Filter, LocalResponse, Root, Stream};
use meshguard_jwt_auth::testing::{TestKey, jwks};
use serde_json::{Value, json};

use super::{Gateway, ISSUER, PLUGIN, token};
use crate::Pipeline;

/// A path's third segment must be the verified `sub`; `/public/...` needs no token.
const OWNER: &str = r#"package envoy.authz
import rego.v1

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

default allow := false

allow if input.parsed_path[1] == claims.sub
"#;

/// `jwtAuth` as the tests' section, with the payload in metadata as OPA-Envoy policies read it.
fn jwt() -> Value {
    json!({
        "providers": [{"name": "shop", "issuer": ISSUER, "jwks": jwks(&[&TestKey::rsa_a()]),
                       "payloadInMetadata": "verified_jwt"}],
        "rules": [{"match": {"prefix": "/public"}},
                  {"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    })
}

fn authz(policy: &str) -> Value {
    json!({"modules": {"owner.rego": policy}, "cacheSize": 0})
}

fn limit() -> Value {
    json!({"limits": [{"name": "all", "key": [{"constant": "all"}],
                       "rate": {"requests": 1000, "per": "minute"}}]})
}

#[test]
fn the_jwt_stages_claims_decide() {
    let mut gateway = Gateway::new(&json!({"jwtAuth": jwt(), "authz": authz(OWNER)}));
    assert_eq!(
        gateway.as_user("alice", "/api/alice/orders", 200).status(),
        200
    );
    assert_eq!(
        gateway.as_user("alice", "/api/bob/orders", 200).status(),
        403
    );
    assert_eq!(
        gateway.as_user("bob", "/api/bob/orders/7", 200).status(),
        200
    );
    // No token on a public path: the JWT stage lets it on, the policy has no claims.
    assert_eq!(gateway.send("/public/alice", &[], 200).status(), 403);
    assert_eq!(gateway.metric("meshguard.authz.edge.allowed"), 2);
    assert_eq!(gateway.metric("meshguard.authz.edge.denied.policy"), 2);
}

#[test]
fn claims_come_from_the_request_model_not_filter_state_or_headers() {
    let mut gateway = Gateway::new(&json!({"jwtAuth": jwt(), "authz": authz(OWNER)}));
    // What a JWT module earlier in the chain would have left: the pipeline never reads it.
    gateway.host.properties.insert(
        "meshguard.jwt_authn".into(),
        json!({"verified_jwt": {"sub": "bob"}})
            .to_string()
            .into_bytes(),
    );
    let forged = [
        ("x-jwt-sub", "bob"),
        ("x-jwt-payload", "eyJzdWIiOiJib2IifQ"),
    ];
    assert_eq!(gateway.send("/public/bob", &forged, 200).status(), 403);
    let bearer = format!("Bearer {}", token("alice"));
    gateway.host.reset_hostcalls();
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(forged);
    let sent = gateway.send("/api/alice/orders", &headers, 200);
    assert_eq!(sent.status(), 200);
    // The JWT stage writes the payload to filter state (for wasm filters after the module);
    // the authz stage reads no property for the claims: one write, no read of it.
    assert_eq!(gateway.host.hostcall_counts().get("property"), None);
    assert_eq!(
        gateway.send("/api/bob/orders", &headers, 200).status(),
        403,
        "alice's token with bob's headers is alice"
    );
}

#[test]
fn a_request_authz_denies_is_never_counted_by_the_limiter() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt(), "authz": authz(OWNER), "rateLimit": limit(),
    }));
    for _ in 0..3 {
        assert_eq!(
            gateway.as_user("alice", "/api/bob/orders", 200).status(),
            403
        );
    }
    assert_eq!(
        gateway.as_user("alice", "/api/alice/orders", 200).status(),
        200
    );
    assert_eq!(gateway.metric("meshguard.rate_limit.edge.all.allowed"), 1);
    assert_eq!(gateway.metric("meshguard.authz.edge.denied.policy"), 3);
}

#[test]
fn object_decisions_change_headers_for_later_stages_and_the_response() {
    let policy = r#"package envoy.authz
import rego.v1
claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt
default allow := {"allowed": false, "http_status": 401, "body": "sign in"}
allow := {"allowed": true, "headers": {"x-user": claims.sub},
          "response_headers_to_add": {"x-authz": "rego"}} if claims.sub
"#;
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt(), "authz": authz(policy),
        "rateLimit": {"limits": [{"name": "per-user", "key": [{"header": "x-user"}],
                                  "rate": {"requests": 1, "per": "minute"}}]},
    }));
    let sent = gateway.as_user("alice", "/api/x", 200);
    assert_eq!(sent.upstream("x-user"), Some("alice"));
    assert!(
        sent.response
            .iter()
            .any(|(k, v)| k == "x-authz" && v == "rego")
    );
    // The limiter keys on the header authz wrote: alice's second request is over her budget.
    assert_eq!(gateway.as_user("alice", "/api/x", 200).status(), 429);
    let Decision::Respond(LocalResponse { status, body, .. }) =
        gateway.send("/public/x", &[], 200).decision
    else {
        panic!("denied")
    };
    assert_eq!((status, body.as_slice()), (401, &b"sign in"[..]));
}

fn refused(config: &Value) -> meshguard_filter_core::ConfigError {
    Pipeline::configure(
        &mut MockHost::new(),
        &Env::single(PLUGIN),
        config.to_string().as_bytes(),
    )
    .expect_err("refused")
}

#[test]
fn configuration_errors_name_the_path_from_the_top() {
    let err = refused(&json!({"authz": {"modules": {
        "x.rego": "package envoy.authz\nimport rego.v1\nallow if {"}}}));
    assert_eq!(err.field, r#"authz.modules["x.rego"]"#, "{err}");
    assert!(err.message.contains("x.rego:3"), "{err}");
    let err = refused(&json!({"authz": {"modules": {"p.rego": "package p"}, "cacheSize": -1}}));
    assert_eq!(err.field, "authz.cacheSize", "{err}");
    let err = refused(
        &json!({"authz": {"modules": {"p.rego": "package p\nimport rego.v1\nallow if http.send({})"}}}),
    );
    assert!(
        err.field.starts_with("authz.modules") && err.message.contains("http.send"),
        "{err}"
    );
    // The verified payload needs a JWT stage before authz in the same module.
    let err = refused(&json!({"authz": authz(OWNER), "rateLimit": limit()}));
    assert_eq!(err.field, "authz.modules", "{err}");
    assert!(err.message.contains("jwtAuth"), "{err}");
    // A policy on the request alone needs none.
    let paths = "package envoy.authz\nimport rego.v1\nallow if input.attributes.request.http.method == \"GET\"\n";
    let root = Pipeline::configure(
        &mut MockHost::new(),
        &Env::single(PLUGIN),
        json!({"authz": authz(paths)}).to_string().as_bytes(),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(root.stage_names(), ["authz"]);
}

// === body holding ===

const AMOUNT: &str = r#"package envoy.authz
import rego.v1
default allow := false
allow if input.parsed_body.amount < 100
"#;

/// A POST of `body` in `chunks` through `gateway`: the decision of each callback.
fn post(gateway: &mut Gateway, body: &[u8], chunks: usize) -> Vec<Decision> {
    let bearer = format!("Bearer {}", token("alice"));
    gateway.host.request_headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/api/alice/payments".into()),
        (":authority".into(), "shop.example".into()),
        ("authorization".into(), bearer),
        ("content-type".into(), "application/json".into()),
    ];
    gateway.host.request_body.clear();
    let mut stream = Stream::new(gateway.root.new_http(1));
    let mut decisions = vec![stream.on_request_headers(&mut gateway.host, false)];
    let size = body.len().div_ceil(chunks.max(1)).max(1);
    let parts: Vec<&[u8]> = body.chunks(size).collect();
    for (n, part) in parts.iter().enumerate() {
        if matches!(decisions.last(), Some(Decision::Respond(_))) {
            break;
        }
        gateway.host.request_body.extend_from_slice(part);
        let total = gateway.host.request_body.len();
        decisions.push(stream.on_request_body(&mut gateway.host, total, n + 1 == parts.len()));
    }
    decisions
}

fn buffering() -> Value {
    json!({
        "jwtAuth": jwt(),
        "authz": {"modules": {"amount.rego": AMOUNT}, "withRequestBody": {"maxRequestBytes": 64}},
        "rateLimit": limit(),
    })
}

#[test]
fn a_held_request_runs_the_later_stages_and_commits_once_its_body_is_in() {
    let mut gateway = Gateway::new(&buffering());
    let decisions = post(&mut gateway, br#"{"amount": 42, "note": "ok"}"#, 3);
    assert_eq!(
        decisions,
        [
            Decision::Pause,
            Decision::Pause,
            Decision::Pause,
            Decision::Continue
        ]
    );
    // The limiter committed exactly once, in the body's last callback.
    assert_eq!(gateway.metric("meshguard.rate_limit.edge.all.allowed"), 1);
    let decisions = post(&mut gateway, br#"{"amount": 420}"#, 2);
    assert!(
        matches!(
            decisions.last(),
            Some(Decision::Respond(LocalResponse { status: 403, .. }))
        ),
        "{decisions:?}"
    );
    // Over the bound: 413, and nothing counted by the limiter either.
    let decisions = post(
        &mut gateway,
        format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(80)).as_bytes(),
        2,
    );
    assert!(
        matches!(
            decisions.last(),
            Some(Decision::Respond(LocalResponse { status: 413, .. }))
        ),
        "{decisions:?}"
    );
    assert_eq!(gateway.metric("meshguard.rate_limit.edge.all.allowed"), 1);
    // The stages flush their counts once a second.
    gateway.host.advance(Duration::from_secs(2));
    assert_eq!(gateway.metric("meshguard.authz.edge.allowed"), 1);
    assert_eq!(gateway.metric("meshguard.authz.edge.denied.policy"), 1);
    assert_eq!(
        gateway.metric("meshguard.authz.edge.denied.body_too_large"),
        1
    );
}

#[test]
fn without_body_buffering_a_body_passes_with_no_hostcall() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt(), "authz": authz(OWNER), "rateLimit": limit(),
    }));
    let bearer = format!("Bearer {}", token("alice"));
    gateway.host.request_headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/api/alice/payments".into()),
        ("authorization".into(), bearer),
    ];
    gateway.host.request_body = b"{}".to_vec();
    let mut stream = Stream::new(gateway.root.new_http(1));
    assert_eq!(
        stream.on_request_headers(&mut gateway.host, false),
        Decision::Continue,
        "decided and committed at the headers"
    );
    assert_eq!(gateway.metric("meshguard.rate_limit.edge.all.allowed"), 1);
    gateway.host.reset_hostcalls();
    assert_eq!(
        stream.on_request_body(&mut gateway.host, 2, true),
        Decision::Continue
    );
    assert_eq!(gateway.host.hostcalls(), 0);
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.all.allowed"),
        1,
        "not twice"
    );
}

/// A stage that waits for a callout before letting the request on (as the JWT stage does while
/// it fetches a remote JWKS); it reads no bodies.
struct Callout;
struct CalloutRoot;
struct CalloutHttp;

impl Filter for Callout {
    type Root = CalloutRoot;
    const NAME: &'static str = "callout";
    fn configure(
        _: &mut dyn meshguard_filter_core::Host,
        _: &Env,
        _: &[u8],
    ) -> Result<CalloutRoot, meshguard_filter_core::ConfigError> {
        Ok(CalloutRoot)
    }
}

impl Root for CalloutRoot {
    type Http = CalloutHttp;
    fn new_http(&self, _: u32) -> CalloutHttp {
        CalloutHttp
    }
}

impl meshguard_filter_core::HttpFilter for CalloutHttp {
    const CALLBACKS: meshguard_filter_core::StreamCallbacks =
        meshguard_filter_core::StreamCallbacks::REQUEST_ONLY;

    fn on_request_headers(
        &mut self,
        ctx: &mut meshguard_filter_core::Ctx<'_>,
        _: bool,
    ) -> Decision {
        use meshguard_filter_core::Host;
        ctx.dispatch(&meshguard_filter_core::HttpCall {
            cluster: "keys".into(),
            headers: vec![(":path".into(), "/jwks".into())],
            body: None,
            timeout: Duration::from_secs(1),
        });
        Decision::Pause
    }
}

#[test]
fn a_body_that_came_in_during_an_earlier_stages_callout_reaches_authz() {
    use crate::stage::StageDef;
    const STAGES: &[StageDef] = &[
        StageDef::of::<Callout>("callout"),
        StageDef::of::<meshguard_authz::AuthzStage>("authz"),
    ];
    let config = json!({"callout": {},
        "authz": {"modules": {"amount.rego": AMOUNT}, "withRequestBody": {"maxRequestBytes": 64}}});
    for (body, status) in [
        (&br#"{"amount": 5}"#[..], 200),
        (br#"{"amount": 500}"#, 403),
    ] {
        let mut host = MockHost::new();
        let root =
            crate::PipelineRoot::new(&mut host, PLUGIN, STAGES, config.to_string().as_bytes())
                .unwrap_or_else(|err| panic!("{err}"));
        host.request_headers = vec![
            (":method".into(), "POST".into()),
            (":path".into(), "/api/payments".into()),
            ("content-type".into(), "application/json".into()),
        ];
        let mut stream = Stream::new(root.new_http(1));
        assert_eq!(stream.on_request_headers(&mut host, false), Decision::Pause);
        // The whole body arrives while the callout is out: it stays buffered.
        host.request_body = body.to_vec();
        assert_eq!(
            stream.on_request_body(&mut host, body.len(), true),
            Decision::Pause
        );
        let token = host.calls[0].0;
        let answer = Some(meshguard_filter_core::CallResponse {
            headers: vec![(":status".into(), "200".into())],
            body: Vec::new(),
        });
        let decided = stream.on_call_response(&mut host, token, answer);
        let got = match decided {
            Decision::Continue => 200,
            Decision::Respond(LocalResponse { status, .. }) => status,
            Decision::Pause => panic!("the request would wait for a body already in"),
        };
        assert_eq!(got, status, "{}", String::from_utf8_lossy(body));
    }
}

/// The authz stage's hostcalls on the benchmark's request (a customer reading their own
/// orders, RBAC policy, cache off): none of its own. The method, the path and the verified
/// claims it reads come from the request model (the JWT stage's one header-map read) and the
/// JWT stage's identities; its counts are batched for the tick.
#[test]
fn the_rbac_stage_makes_no_hostcall_of_its_own() {
    let rbac = std::fs::read_to_string(
        meshguard_testkit::paths::workspace_root().join("policies/envoy-authz/rbac.rego"),
    )
    .unwrap();
    let jwt = jwt();
    let steady = |config: &Value| {
        let mut gateway = Gateway::new(config);
        let bearer = format!(
            "Bearer {}",
            TestKey::rsa_a().token(&json!({
                "iss": ISSUER, "sub": "user-000042", "iat": super::NOW - 5,
                "exp": super::NOW + 600, "realm_access": {"roles": ["customer"]}
            }))
        );
        let headers = [("authorization", bearer.as_str())];
        assert_eq!(
            gateway
                .send("/api/users/user-000042/orders", &headers, 200)
                .status(),
            200
        );
        gateway.host.reset_hostcalls();
        let sent = gateway.send("/api/users/user-000042/orders", &headers, 200);
        assert_eq!(sent.status(), 200);
        gateway.host.hostcall_counts()
    };
    let without = steady(&json!({"jwtAuth": jwt}));
    let with = steady(&json!({
        "jwtAuth": jwt,
        "authz": {"modules": {"rbac.rego": rbac}, "cacheSize": 0},
    }));
    assert_eq!(with, without);
}
