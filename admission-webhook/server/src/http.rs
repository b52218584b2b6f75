//! The HTTP surface: `POST /validate`, `/healthz`, `/readyz`, `/metrics`. [`router`] builds it
//! over the shared state, so tests call it without a socket; TLS and listeners live in
//! [`crate::serve`].
//!
//! `/validate` reads the body within its timeout (400 with the reason when malformed, oversized
//! or not JSON; 408 when it does not arrive in time), admits exempt namespaces and the webhook's
//! own service account without evaluation, and otherwise takes a place among the reviews in
//! flight: with every place taken (`maxConcurrentReviews` evaluating plus `maxQueuedReviews`
//! waiting) it answers at once with the failure policy (`overloaded`), so overload is answered
//! quickly and never queues without bound. A review with a place waits for an evaluation slot no
//! longer than the evaluation deadline, is evaluated off the async runtime, and answered with
//! [`crate::admission`]'s response. Every request is logged as one JSON line with its uid and
//! counted.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use meshguard_policy_engine::{ReviewError, ReviewOptions};

use crate::admission::{self, Decoded, Verdict};
use crate::state::State;

/// The webhook's routes over shared state.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "policies not loaded yet").into_response()
    }
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    // The engine counts cache use per template; publish the current totals.
    let cache = state.policies().cache_stats();
    let metrics = &state.metrics;
    metrics.set(
        "meshguard_decision_cache_hits_total",
        &[],
        cache.hits as f64,
    );
    metrics.set(
        "meshguard_decision_cache_misses_total",
        &[],
        cache.misses as f64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn bad_request(state: &State, reason: &str, message: String) -> Response {
    state.metrics.inc(
        "meshguard_validation_rejected_total",
        &[("reason", reason)],
        1,
    );
    tracing::warn!(reason, message = %message, "rejected admission review");
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn json(review: &AdmissionReview<DynamicObject>) -> Response {
    match serde_json::to_vec(review) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn validate(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.to_str().unwrap_or("");
        if !content_type.starts_with("application/json") {
            return bad_request(
                &state,
                "content_type",
                format!("unsupported content type {content_type:?} (expected application/json)"),
            );
        }
    }
    let limit = state.settings.max_request_bytes;
    let body_timeout = state.settings.body_timeout;
    let bytes = match tokio::time::timeout(body_timeout, to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) if is_length_limit(&err) => {
            return bad_request(
                &state,
                "oversized",
                format!("the request body is larger than {limit} bytes"),
            );
        }
        Ok(Err(err)) => {
            return bad_request(
                &state,
                "body",
                format!("reading the request body failed: {err}"),
            );
        }
        Err(_) => {
            state.metrics.inc(
                "meshguard_validation_rejected_total",
                &[("reason", "body_timeout")],
                1,
            );
            tracing::warn!(
                timeout_ms = body_timeout.as_millis() as u64,
                "request body timed out"
            );
            return (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                format!("the request body did not arrive within {body_timeout:?}"),
            )
                .into_response();
        }
    };
    let decoded = match admission::decode(&bytes) {
        Ok(decoded) => Arc::new(decoded),
        Err(reason) => return bad_request(&state, "malformed", reason),
    };
    let request = &decoded.request;
    let dry_run = request.value()["dryRun"] == meshguard_policy_engine::regorus::Value::Bool(true);
    // As Gatekeeper's exclusion: a Namespace object is judged by its own name.
    let kind = &decoded.kube.kind;
    let namespace = if kind.group.is_empty() && kind.kind == "Namespace" {
        decoded.kube.name.as_str()
    } else {
        request.namespace()
    };
    let exempt = if state.settings.is_exempt_namespace(namespace) {
        Some("exempt namespace")
    } else if state
        .settings
        .service_account
        .as_deref()
        .is_some_and(|sa| sa == request.user())
    {
        Some("own service account")
    } else {
        None
    };
    if let Some(why) = exempt {
        finish(&state, &decoded, started, "allow", dry_run, why, &[]);
        return json(&admission::respond_exempt(&decoded));
    }

    // A place among the reviews in flight, or the failure policy at once.
    let Ok(_in_flight) = state.admitted.clone().try_acquire_owned() else {
        let settings = &state.settings;
        let message = format!(
            "the webhook is overloaded ({} reviews evaluating and {} waiting)",
            settings.max_concurrent_reviews, settings.max_queued_reviews
        );
        return failure(&state, &decoded, started, dry_run, "overloaded", &message);
    };
    let deadline = state.settings.evaluation_timeout;
    let outcome = match tokio::time::timeout(deadline, state.limiter.clone().acquire_owned()).await
    {
        Err(_) => Err((
            "overloaded",
            "no evaluation slot within the deadline".to_string(),
        )),
        Ok(Err(_)) => Err(("internal", "the evaluation limiter is closed".to_string())),
        Ok(Ok(permit)) => {
            let remaining = deadline.saturating_sub(started.elapsed());
            let task_state = state.clone();
            let task_decoded = decoded.clone();
            let task = tokio::task::spawn_blocking(move || {
                let options = ReviewOptions {
                    deadline: remaining,
                    ..ReviewOptions::default()
                };
                let result = task_state.policies().review_with(
                    &task_decoded.request,
                    &task_state.inventory(),
                    &options,
                );
                drop(permit);
                result
            });
            // The engine stops itself at the deadline; the margin covers a stuck builtin.
            let margin = remaining + deadline / 2;
            match tokio::time::timeout(margin, task).await {
                Ok(Ok(Ok(violations))) => Ok(violations),
                Ok(Ok(Err(ReviewError::Timeout { limit, .. }))) => {
                    Err(("timeout", format!("policy evaluation exceeded {limit:?}")))
                }
                Ok(Ok(Err(other))) => Err(("internal", other.to_string())),
                Ok(Err(join)) => Err(("internal", format!("evaluation task failed: {join}"))),
                Err(_) => Err((
                    "timeout",
                    format!("policy evaluation exceeded {deadline:?}"),
                )),
            }
        }
    };
    match outcome {
        Ok(violations) => {
            let verdict = Verdict::of(&violations);
            for violation in &violations {
                for action in &violation.actions {
                    state.metrics.inc(
                        "meshguard_validation_violations_total",
                        &[
                            ("constraint_kind", &violation.constraint.kind),
                            ("constraint_name", &violation.constraint.name),
                            ("enforcement_action", action.as_str()),
                        ],
                        1,
                    );
                }
            }
            let lines: Vec<String> = violations
                .iter()
                .map(|v| {
                    let actions: Vec<&str> = v.actions.iter().map(|a| a.as_str()).collect();
                    format!("{} {}", actions.join(","), v.gatekeeper_line())
                })
                .collect();
            finish(
                &state,
                &decoded,
                started,
                verdict.status(),
                dry_run,
                "evaluated",
                &lines,
            );
            json(&admission::respond(&decoded, &verdict))
        }
        Err((reason, message)) => failure(&state, &decoded, started, dry_run, reason, &message),
    }
}

/// The failure policy's answer to a review that could not be completed, counted and logged.
fn failure(
    state: &State,
    decoded: &Decoded,
    started: Instant,
    dry_run: bool,
    reason: &'static str,
    message: &str,
) -> Response {
    let policy = state.settings.failure_policy;
    state.metrics.inc(
        "meshguard_validation_errors_total",
        &[("reason", reason), ("failure_policy", policy.as_str())],
        1,
    );
    tracing::error!(uid = %decoded.kube.uid, reason, error = %message, failure_policy = policy.as_str(), "review failed");
    // Gatekeeper counts a review that could not be completed as `error`, whatever the failure
    // policy then answers.
    finish(state, decoded, started, "error", dry_run, reason, &[]);
    json(&admission::respond_failure(decoded, policy, message))
}

/// Whether reading the body failed on the size limit (rather than the connection).
fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

fn finish(
    state: &State,
    decoded: &Decoded,
    started: Instant,
    status: &'static str,
    dry_run: bool,
    how: &str,
    violations: &[String],
) {
    let seconds = started.elapsed().as_secs_f64();
    let dry = if dry_run { "true" } else { "false" };
    state.metrics.inc(
        "gatekeeper_validation_request_count",
        &[("admission_status", status), ("admission_dryrun", dry)],
        1,
    );
    state.metrics.observe(
        "gatekeeper_validation_request_duration_seconds",
        &[("admission_status", status)],
        seconds,
    );
    let request = &decoded.request;
    let object = request.object();
    tracing::info!(
        uid = %decoded.kube.uid,
        operation = request.operation(),
        kind = object.map(|o| o.kind.as_str()).unwrap_or(""),
        namespace = request.namespace(),
        name = object.map(|o| o.name.as_str()).unwrap_or(""),
        user = %request.user(),
        admission_status = status,
        how,
        violations = ?violations,
        duration_ms = seconds * 1000.0,
        "admission review"
    );
}
