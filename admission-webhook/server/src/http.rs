//! The HTTP surface: `POST /validate`, `/healthz`, `/readyz`, `/metrics`. [`router`] builds it
//! over the shared state, so tests call it without a socket; TLS and listeners live in
//! [`crate::serve`].
//!
//! `/validate` reads the body within its timeout (400 with the reason when malformed, oversized
//! or not JSON; 408 when it does not arrive in time), admits what
//! [`crate::admission::exemption`] exempts without evaluation, and otherwise takes a place among
//! the reviews in flight: with every place taken (`maxConcurrentReviews` evaluating plus
//! `maxQueuedReviews` waiting) it answers at once with the failure policy (`overloaded`), so
//! overload is answered quickly and never queues without bound. A review with a place waits for
//! an evaluation slot no longer than the evaluation deadline, is evaluated off the async runtime,
//! and answered with [`crate::admission`]'s response. Every request is logged as one JSON line
//! with its uid and counted.
//!
//! `/readyz` answers 503 until the policies are loaded, then 200 with what is enforced and what
//! is not (templates and constraints that failed to load or validate, each with its reason).
//! Those do not make the webhook unready: every replica reads the same policies, so failing
//! readiness would take all of them out of the Service at once and, under `failurePolicy: Fail`,
//! deny every request in the cluster; Gatekeeper likewise keeps serving and reports the broken
//! resource. `/metrics` answers in the format the scraper asks for ([`crate::metrics`]).

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
use crate::metrics::{
    AdmissionStatusLabels, ErrorLabels, ReasonLabels, RequestLabels, ViolationLabels,
};
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
    let (ready, text) = state.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, text).into_response()
}

async fn metrics(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let (content_type, text) = state.metrics.render_for(accept);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

fn bad_request(state: &State, reason: &'static str, message: String) -> Response {
    state
        .metrics
        .rejected
        .get_or_create(&ReasonLabels { reason })
        .inc();
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
            state
                .metrics
                .rejected
                .get_or_create(&ReasonLabels {
                    reason: "body_timeout",
                })
                .inc();
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
    let dry_run = decoded.dry_run;
    if let Some(why) = admission::exemption(&state.settings, &decoded) {
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
                    state
                        .metrics
                        .violations
                        .get_or_create(&ViolationLabels {
                            constraint_kind: violation.constraint.kind.clone(),
                            constraint_name: violation.constraint.name.clone(),
                            enforcement_action: action.as_str(),
                        })
                        .inc();
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
    state
        .metrics
        .errors
        .get_or_create(&ErrorLabels {
            reason,
            failure_policy: policy.as_str(),
        })
        .inc();
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
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            admission_status: status,
            admission_dryrun: dry,
        })
        .inc();
    state
        .metrics
        .request_duration
        .get_or_create(&AdmissionStatusLabels {
            admission_status: status,
        })
        .observe(seconds);
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
