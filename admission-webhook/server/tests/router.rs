//! The router called without a socket, with AdmissionReview JSON as the API server sends it:
//! allowed, denied with Gatekeeper's message, warned, dry-run, exempt, malformed, oversized,
//! timeout under both failure policies, v1beta1, DELETE, health, readiness and metrics.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use meshguard_admission_webhook::config::{FailurePolicy, PolicySource, Settings};
use meshguard_admission_webhook::http::router;
use meshguard_admission_webhook::state::State;
use meshguard_policy_engine::PolicySet;
use serde_json::{Value as Json, json};
use support::*;
use tower::ServiceExt;

fn settings() -> Settings {
    Settings {
        policies: PolicySource::Files(vec![testdata("policies")]),
        evaluation_timeout: Duration::from_millis(300),
        max_request_bytes: 64 * 1024,
        exempt_namespaces: vec![meshguard_policy_engine::matching::Wildcard("kube-*".into())],
        service_account: Some(
            "system:serviceaccount:meshguard-system:meshguard-admission-webhook".into(),
        ),
        ..Settings::default()
    }
}

fn state_with(settings: Settings) -> Arc<State> {
    let policies = PolicySet::load_paths(&[testdata("policies")]).unwrap();
    State::with_policies(settings, policies)
}

async fn call(state: &Arc<State>, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, body)
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/validate")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

async fn review(state: &Arc<State>, review: &Json) -> Json {
    let (status, body) = call(state, post(serde_json::to_vec(review).unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["apiVersion"], review["apiVersion"],
        "answers in the request's version"
    );
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    answer["response"].clone()
}

#[tokio::test]
async fn allowed() {
    let state = state_with(settings());
    let response = review(&state, &allowed_review()).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("warnings").is_none());
}

#[tokio::test]
async fn denied_with_gatekeepers_message() {
    let state = state_with(settings());
    let response = review(&state, &denied_review()).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
    assert_eq!(
        response["status"]["message"],
        "[deployments-need-team] you must provide labels: {\"team\"}"
    );
    let metrics = state.metrics.render();
    let requests = [("admission_status", "deny"), ("admission_dryrun", "false")];
    assert_eq!(
        count(
            &metrics,
            "gatekeeper_validation_request_count_total",
            &requests
        ),
        1
    );
    let violation = [
        ("constraint_kind", "K8sRequiredLabels"),
        ("constraint_name", "deployments-need-team"),
        ("enforcement_action", "deny"),
    ];
    assert_eq!(
        count(
            &metrics,
            "meshguard_validation_violations_total",
            &violation
        ),
        1
    );
}

#[tokio::test]
async fn several_denials_are_one_line_each() {
    let state = state_with(settings());
    let mut both = warned_review();
    both["request"]["object"]["metadata"]["labels"] = json!({"app": "cart"});
    let response = review(&state, &both).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "[deployments-need-team] you must provide labels: {\"team\"}"
    );
    assert_eq!(
        response["warnings"],
        json!(["[no-latest-tag] container <cart> uses a disallowed tag <latest>"])
    );
}

#[tokio::test]
async fn warned() {
    let state = state_with(settings());
    let response = review(&state, &warned_review()).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"],
        json!(["[no-latest-tag] container <cart> uses a disallowed tag <latest>"])
    );
}

#[tokio::test]
async fn dry_run_only_counts() {
    let state = state_with(settings());
    let response = review(&state, &dryrun_review()).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("warnings").is_none());
    assert_eq!(
        count(
            &state.metrics.render(),
            "meshguard_validation_violations_total",
            &[
                ("constraint_name", "replicas-at-most-10"),
                ("enforcement_action", "dryrun")
            ]
        ),
        1
    );
}

#[tokio::test]
async fn exempt_namespace_and_own_service_account_pass() {
    let state = state_with(settings());
    let response = review(&state, &in_namespace(denied_review(), "kube-system")).await;
    assert_eq!(response["allowed"], true);
    let mut own = denied_review();
    own["request"]["userInfo"]["username"] =
        json!("system:serviceaccount:meshguard-system:meshguard-admission-webhook");
    assert_eq!(review(&state, &own).await["allowed"], true);
    // Another service account in the same namespace is reviewed.
    let mut other = denied_review();
    other["request"]["userInfo"]["username"] =
        json!("system:serviceaccount:meshguard-system:other");
    assert_eq!(review(&state, &other).await["allowed"], false);
}

#[tokio::test]
async fn v1beta1_is_answered_in_v1beta1() {
    let state = state_with(settings());
    let response = review(&state, &v1beta1(denied_review())).await;
    assert_eq!(response["allowed"], false);
}

#[tokio::test]
async fn delete_reviews_the_old_object() {
    let state = state_with(settings());
    let mut delete = denied_review();
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["oldObject"] = delete["request"]["object"].clone();
    delete["request"]["object"] = Json::Null;
    delete["request"]["options"] = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
    let response = review(&state, &delete).await;
    assert_eq!(response["allowed"], false);
}

#[tokio::test]
async fn malformed_reviews_get_400_with_the_reason() {
    let state = state_with(settings());
    let cases: Vec<(Request<Body>, &str)> = vec![
        (post("{not json"), "not JSON"),
        (
            post(r#"{"kind":"Pod","apiVersion":"v1"}"#),
            "expected kind AdmissionReview",
        ),
        (
            post(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2"}"#),
            "unsupported apiVersion",
        ),
        (
            post(r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#),
            "no request",
        ),
        (
            post(
                r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":7}}"#,
            ),
            "malformed AdmissionReview",
        ),
        (
            Request::post("/validate")
                .header("content-type", "text/plain")
                .body(Body::from("x"))
                .unwrap(),
            "unsupported content type",
        ),
    ];
    for (request, reason) in cases {
        let (status, body) = call(&state, request).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}: {body}");
        assert!(body.contains(reason), "{reason}: {body}");
    }
    assert_eq!(
        count(
            &state.metrics.render(),
            "meshguard_validation_rejected_total",
            &[]
        ),
        6
    );
}

#[tokio::test]
async fn oversized_reviews_get_400() {
    let state = state_with(settings());
    let mut big = allowed_review();
    big["request"]["object"]["metadata"]["annotations"]["blob"] = json!("x".repeat(100 * 1024));
    let (status, body) = call(&state, post(serde_json::to_vec(&big).unwrap())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("larger than 65536 bytes"));
}

#[tokio::test]
async fn timeout_fails_closed() {
    let state = state_with(settings());
    let started = std::time::Instant::now();
    let response = review(&state, &slow_review()).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not be reviewed") && message.contains("failurePolicy Fail"),
        "{message}"
    );
    assert_eq!(
        count(
            &state.metrics.render(),
            "meshguard_validation_errors_total",
            &[("reason", "timeout"), ("failure_policy", "Fail")]
        ),
        1
    );
    assert_eq!(
        count(
            &state.metrics.render(),
            "gatekeeper_validation_request_count_total",
            &[("admission_status", "error")]
        ),
        1
    );
}

#[tokio::test]
async fn timeout_fails_open_with_a_warning() {
    let state = state_with(Settings {
        failure_policy: FailurePolicy::Ignore,
        ..settings()
    });
    let response = review(&state, &slow_review()).await;
    assert_eq!(response["allowed"], true);
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(warning.contains("failurePolicy Ignore"), "{warning}");
    assert_eq!(
        count(
            &state.metrics.render(),
            "meshguard_validation_errors_total",
            &[("failure_policy", "Ignore")]
        ),
        1
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let state = State::new(settings());
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(call(&state, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(
        call(&state, get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    state.set_policies(PolicySet::load_paths(&[testdata("policies")]).unwrap());
    state.set_ready();
    let (status, body) = call(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "ready: 4 templates and 4 constraints enforced\n"
    );
    let (status, body) = call(&state, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    let active = [("status", "active")];
    assert_eq!(
        metric(&text, "gatekeeper_constraint_templates", &active),
        4.0
    );
    let deny = [("enforcement_action", "deny"), ("status", "active")];
    assert_eq!(metric(&text, "gatekeeper_constraints", &deny), 2.0);
    assert!(
        text.contains("# TYPE gatekeeper_constraints gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn repeated_reviews_are_decided_from_the_cache_with_the_same_answer() {
    let state = state_with(settings());
    let first = review(&state, &denied_review()).await;
    let mut again = denied_review();
    again["request"]["uid"] = "another-uid".into();
    let second = review(&state, &again).await;
    assert_eq!(first["allowed"], false);
    assert_eq!(first["status"], second["status"]);
    let metrics = Request::get("/metrics").body(Body::empty()).unwrap();
    let text = String::from_utf8(call(&state, metrics).await.1).unwrap();
    let value = |name: &str| count(&text, name, &[]);
    let (hits, misses) = (
        value("meshguard_decision_cache_hits_total"),
        value("meshguard_decision_cache_misses_total"),
    );
    assert!(misses >= 1, "{text}");
    assert_eq!(
        hits, misses,
        "the second review reused every decision:\n{text}"
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let state = state_with(Settings {
        max_concurrent_reviews: 1,
        evaluation_timeout: Duration::from_millis(300),
        ..settings()
    });
    // One slot: a slow review holds it until its deadline (300 ms); a fast review sent 50 ms
    // later waits for the slot, then is evaluated within what is left of its own deadline.
    let (slow_body, fast_body) = (slow_review(), allowed_review());
    let slow = review(&state, &slow_body);
    let fast = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let response = review(&state, &fast_body).await;
        (response, started.elapsed())
    };
    let (slow, (fast, waited)) = tokio::join!(slow, fast);
    assert_eq!(slow["allowed"], false);
    assert_eq!(fast["allowed"], true, "{fast}");
    assert!(
        waited >= Duration::from_millis(150),
        "the fast review did not wait for the slot: {waited:?}"
    );
}

#[tokio::test]
async fn overload_follows_the_failure_policy() {
    for (policy, allowed) in [(FailurePolicy::Fail, false), (FailurePolicy::Ignore, true)] {
        let state = state_with(Settings {
            max_concurrent_reviews: 2,
            evaluation_timeout: Duration::from_millis(200),
            failure_policy: policy,
            ..settings()
        });
        // Every slot busy for longer than the deadline.
        let held = state
            .evaluation_slots()
            .clone()
            .acquire_many_owned(2)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let response = review(&state, &allowed_review()).await;
        drop(held);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(response["allowed"], allowed, "{policy:?}: {response}");
        let text = if allowed {
            response["warnings"][0].as_str().unwrap().to_string()
        } else {
            assert_eq!(response["status"]["code"], 500);
            response["status"]["message"].as_str().unwrap().to_string()
        };
        assert!(
            text.contains("no evaluation slot within the deadline"),
            "{text}"
        );
        assert_eq!(
            count(
                &state.metrics.render(),
                "meshguard_validation_errors_total",
                &[
                    ("reason", "overloaded"),
                    ("failure_policy", policy.as_str())
                ]
            ),
            1
        );
        assert_eq!(
            count(
                &state.metrics.render(),
                "gatekeeper_validation_request_count_total",
                &[("admission_status", "error")]
            ),
            1
        );
    }
}

#[tokio::test]
async fn namespace_objects_are_exempt_by_their_own_name() {
    // A constraint on Namespace objects themselves: every Namespace needs a team label.
    let mut docs =
        meshguard_policy_engine::document::read_file(&testdata("policies/required-labels.yaml"))
            .unwrap();
    docs.retain(|d| d.value["kind"] == "ConstraintTemplate");
    docs.push(meshguard_policy_engine::Document::inline(
        "namespaces-need-team",
        json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
               "metadata": {"name": "namespaces-need-team"},
               "spec": {"match": {"kinds": [{"apiGroups": [""], "kinds": ["Namespace"]}]},
                        "parameters": {"labels": ["team"]}}}),
    ));
    let state = State::with_policies(settings(), PolicySet::from_documents(&docs).unwrap());
    let namespace_review = |name: &str| {
        let mut review = deployment_review();
        review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Namespace"});
        review["request"]["resource"] =
            json!({"group": "", "version": "v1", "resource": "namespaces"});
        review["request"]["name"] = json!(name);
        review["request"]["operation"] = json!("UPDATE");
        review["request"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let object = json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}});
        review["request"]["object"] = object.clone();
        review["request"]["oldObject"] = object;
        review
    };
    let denied = review(&state, &namespace_review("shop")).await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(
        denied["status"]["message"],
        "[namespaces-need-team] you must provide labels: {\"team\"}"
    );
    // kube-* is exempt: the Namespace kube-system itself is not reviewed either.
    assert_eq!(
        review(&state, &namespace_review("kube-system")).await["allowed"],
        true
    );
}
