use serde_json::{Value as Json, json};

use super::*;
use crate::input::{Claims, NoClaims};

/// Facts of a request with a method and a path (and nothing else).
struct Request(&'static str, String);

impl RequestFacts for Request {
    fn header(&mut self, name: &str) -> Option<String> {
        match name {
            ":method" => Some(self.0.to_string()),
            ":path" => Some(self.1.clone()),
            _ => None,
        }
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        vec![
            (":method".into(), self.0.into()),
            (":path".into(), self.1.clone()),
        ]
    }

    fn property(&mut self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }
}

struct User(&'static str, &'static [&'static str]);

impl VerifiedClaims for User {
    fn payloads(&mut self) -> Option<Claims> {
        let payload = json!({"verified_jwt": {"sub": self.0, "realm_access": {"roles": self.1}}});
        Some(Claims::Json(serde_json::to_vec(&payload).unwrap()))
    }
}

const POLICY: &str = r#"package envoy.authz
import rego.v1

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

allow if {
    input.attributes.request.http.method == "GET"
    input.parsed_path == ["api", "users", claims.sub, "orders"]
}

allow := {"allowed": false, "http_status": 402, "body": "pay first", "headers": {"x-why": "unpaid"}} if {
    input.parsed_path == ["api", "premium"]
}

allow := {"allowed": true, "headers": {"x-user": claims.sub}, "response_headers_to_add": {"x-authz": "ok"}, "request_headers_to_remove": ["x-debug"]} if {
    input.parsed_path == ["api", "profile"]
}
"#;

fn authorizer(extra: Json) -> Authorizer {
    let mut config = json!({"modules": {"policy.rego": POLICY}});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    Authorizer::new(prepare(config.to_string().as_bytes()).unwrap())
}

fn decide(
    authorizer: &mut Authorizer,
    method: &'static str,
    path: &str,
    user: &mut User,
) -> Decided {
    authorizer.decide(&mut Request(method, path.to_string()), user, None)
}

fn status(decided: &Decided) -> u32 {
    match &decided.action {
        Action::Allow(_) => 200,
        Action::Deny(response) => response.status,
    }
}

#[test]
fn boolean_and_object_decisions() {
    let mut authz = authorizer(json!({}));
    let alice = &mut User("alice", &["customer"]);
    assert_eq!(
        status(&decide(&mut authz, "GET", "/api/users/alice/orders", alice)),
        200
    );
    let other = decide(&mut authz, "GET", "/api/users/bob/orders", alice);
    assert_eq!(status(&other), 403);
    assert!(other.error.is_none(), "the policy decided");

    let premium = decide(&mut authz, "GET", "/api/premium", alice);
    let Action::Deny(response) = &premium.action else {
        panic!("{premium:?}")
    };
    assert_eq!(response.status, 402);
    assert_eq!(response.body, b"pay first");
    assert_eq!(
        response.headers,
        [("x-why".to_string(), "unpaid".to_string())]
    );

    let profile = decide(&mut authz, "GET", "/api/profile", alice);
    let Action::Allow(verdict) = &profile.action else {
        panic!("{profile:?}")
    };
    assert_eq!(
        verdict.headers,
        [("x-user".to_string(), "alice".to_string())]
    );
    assert_eq!(
        verdict.response_headers_to_add,
        [("x-authz".to_string(), "ok".to_string())]
    );
    assert_eq!(verdict.request_headers_to_remove, ["x-debug"]);
}

#[test]
fn no_verified_claims_means_no_owner() {
    let mut authz = authorizer(json!({}));
    let decided = authz.decide(
        &mut Request("GET", "/api/users/alice/orders".into()),
        &mut NoClaims,
        None,
    );
    assert_eq!(status(&decided), 403);
}

#[test]
fn the_cache_answers_repeated_inputs_and_tells_apart_different_ones() {
    let mut authz = authorizer(json!({}));
    let alice = &mut User("alice", &["customer"]);
    let bob = &mut User("bob", &["customer"]);
    let first = decide(&mut authz, "GET", "/api/users/alice/orders", alice);
    assert_eq!(first.cache_hit, Some(false));
    let again = decide(&mut authz, "GET", "/api/users/alice/orders", alice);
    assert_eq!((again.cache_hit, status(&again)), (Some(true), 200));
    let bob_on_alice = decide(&mut authz, "GET", "/api/users/alice/orders", bob);
    assert_eq!(
        (bob_on_alice.cache_hit, status(&bob_on_alice)),
        (Some(false), 403)
    );
    let post = decide(&mut authz, "POST", "/api/users/alice/orders", alice);
    assert_eq!((post.cache_hit, status(&post)), (Some(false), 403));
    assert_eq!(authz.cached(), 3);

    let mut off = authorizer(json!({"cacheSize": 0}));
    for _ in 0..2 {
        let decided = decide(&mut off, "GET", "/api/users/alice/orders", alice);
        assert_eq!((decided.cache_hit, status(&decided)), (None, 200));
    }
}

#[test]
fn errors_follow_on_error() {
    let spin = r#"package envoy.authz
import rego.v1
allow if count([x | some x in numbers.range(1, 100000); x > input.n]) > 0
"#;
    for (on_error, status_on_error, expected) in
        [("deny", 403, 403), ("deny", 503, 503), ("allow", 403, 200)]
    {
        let config = json!({"modules": {"p.rego": spin}, "maxInstructions": 5000,
                            "onError": on_error, "statusOnError": status_on_error});
        let mut authz = Authorizer::new(prepare(config.to_string().as_bytes()).unwrap());
        let decided = authz.decide(&mut Request("GET", "/".into()), &mut NoClaims, None);
        assert_eq!(status(&decided), expected, "{on_error}");
        assert_eq!(
            decided.error.as_ref().map(|(kind, _)| *kind),
            Some(ErrorKind::Limit)
        );
    }
}

#[test]
fn undefined_and_invalid_decisions_are_errors() {
    for (src, kind) in [
        ("allow if input.nothing", ErrorKind::Undefined),
        ("allow := \"yes\"", ErrorKind::InvalidDecision),
        (
            "allow := {\"allowed\": true, \"headers\": {\":path\": \"/admin\"}}",
            ErrorKind::InvalidDecision,
        ),
    ] {
        let config =
            json!({"modules": {"p.rego": format!("package envoy.authz\nimport rego.v1\n{src}")}});
        let mut authz = Authorizer::new(prepare(config.to_string().as_bytes()).unwrap());
        let decided = authz.decide(&mut Request("GET", "/".into()), &mut NoClaims, None);
        assert_eq!(status(&decided), 403, "{src}");
        assert_eq!(decided.error.as_ref().map(|(k, _)| *k), Some(kind), "{src}");
    }
}

#[test]
fn an_unparsable_path_is_an_input_error_for_policies_that_read_it() {
    let mut authz = authorizer(json!({}));
    let decided = decide(
        &mut authz,
        "GET",
        "/api/users/%zz/orders",
        &mut User("alice", &[]),
    );
    assert_eq!(
        decided.error.as_ref().map(|(k, _)| *k),
        Some(ErrorKind::Input)
    );
    assert_eq!(status(&decided), 403);
}

#[test]
fn strings_a_policy_reads_as_numbers_are_bounded_before_regorus_expands_them() {
    // `units.parse` of the last path segment: `/api/quota/1e999999999` would hold the worker
    // for minutes inside one builtin call, past maxInstructions.
    for (builtin, src) in [
        (
            "units.parse",
            "allow if units.parse(input.parsed_path[2]) < 1000000",
        ),
        (
            "to_number",
            "allow if to_number(input.parsed_path[2]) < 1000000",
        ),
    ] {
        let config =
            json!({"modules": {"p.rego": format!("package envoy.authz\nimport rego.v1\n{src}")}});
        let mut authz = Authorizer::new(prepare(config.to_string().as_bytes()).unwrap());
        let small = authz.decide(
            &mut Request("GET", "/api/quota/512".into()),
            &mut NoClaims,
            None,
        );
        assert_eq!(status(&small), 200, "{builtin}");
        let huge = authz.decide(
            &mut Request("GET", "/api/quota/1e999999999".into()),
            &mut NoClaims,
            None,
        );
        assert_eq!(status(&huge), 403, "{builtin}");
        let (kind, reason) = huge.error.clone().unwrap();
        assert_eq!(kind, ErrorKind::Input, "{builtin}");
        assert!(
            reason.contains("input.parsed_path.2: the number `1e999999999`"),
            "{reason}"
        );
    }
    // A policy calling none of them reads its strings as strings: nothing is checked.
    let plain = "allow if input.parsed_path[2] == \"1e999999999\"";
    let config =
        json!({"modules": {"p.rego": format!("package envoy.authz\nimport rego.v1\n{plain}")}});
    let mut authz = Authorizer::new(prepare(config.to_string().as_bytes()).unwrap());
    let decided = authz.decide(
        &mut Request("GET", "/api/quota/1e999999999".into()),
        &mut NoClaims,
        None,
    );
    assert_eq!(status(&decided), 200);
}

#[test]
fn explain_names_the_definition_that_decided() {
    let mut authz = authorizer(json!({"explain": true}));
    let alice = &mut User("alice", &["customer"]);
    let allowed = decide(&mut authz, "GET", "/api/users/alice/orders", alice);
    assert_eq!(allowed.explained.as_deref(), Some("policy.rego:8"));
    let premium = decide(&mut authz, "GET", "/api/premium", alice);
    assert_eq!(premium.explained.as_deref(), Some("policy.rego:13"));
    let denied = decide(&mut authz, "GET", "/api/users/bob/orders", alice);
    assert_eq!(
        denied.explained.as_deref(),
        Some("the default rule at policy.rego:4")
    );
    let cached = decide(&mut authz, "GET", "/api/users/alice/orders", alice);
    assert_eq!(
        (cached.cache_hit, cached.explained.as_deref()),
        (Some(true), Some("policy.rego:8"))
    );
    assert!(
        decide(&mut authorizer(json!({})), "GET", "/", alice)
            .explained
            .is_none()
    );
}

#[test]
fn bodies_are_waited_for_only_when_buffering_is_on_and_the_policy_reads_them() {
    let reads_body = r#"package envoy.authz
import rego.v1
allow if input.parsed_body.amount < 100
"#;
    let config = |extra: Json| {
        let mut config = json!({"modules": {"p.rego": reads_body}});
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        prepare(config.to_string().as_bytes()).unwrap()
    };
    assert!(config(json!({"withRequestBody": {"maxRequestBytes": 100}})).waits_for_body());
    assert!(!config(json!({})).waits_for_body());
    let no_body = prepare(
        json!({"modules": {"p.rego": POLICY}, "withRequestBody": {"maxRequestBytes": 100}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(!no_body.waits_for_body());
}

#[test]
fn a_conflict_is_an_evaluation_error_and_never_cached() {
    // OPA's eval_conflict_error for `role` with two roles: `onError` (deny) and the evaluation
    // stat, every time; one role decides, and that decision is cached as before.
    let policy = r#"package envoy.authz
import rego.v1

default allow := false

claims := input.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].verified_jwt

role := r if { r := claims.realm_access.roles[_] }

allow if role == "admin"
"#;
    let config = json!({"modules": {"policy.rego": policy}});
    let mut authz = Authorizer::new(prepare(config.to_string().as_bytes()).unwrap());
    for _ in 0..2 {
        let both = decide(
            &mut authz,
            "GET",
            "/",
            &mut User("alice", &["user", "admin"]),
        );
        assert_eq!(status(&both), 403);
        let (kind, reason) = both.error.as_ref().unwrap();
        assert_eq!(*kind, ErrorKind::Evaluation);
        assert!(reason.contains("eval_conflict_error"), "{reason}");
        assert!(reason.contains("`role`"), "{reason}");
        assert_ne!(both.cache_hit, Some(true));
    }
    let admin = decide(&mut authz, "GET", "/", &mut User("alice", &["admin"]));
    assert_eq!((status(&admin), admin.cache_hit), (200, Some(false)));
    let again = decide(&mut authz, "GET", "/", &mut User("alice", &["admin"]));
    assert_eq!((status(&again), again.cache_hit), (200, Some(true)));
}
