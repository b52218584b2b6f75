//! The HTTP face for Kubernetes and Prometheus: `/healthz` (the process serves), `/readyz` (ready
//! for traffic: configuration loaded and not draining) and `/metrics` (OpenMetrics text).
//!
//! Readiness does not follow Redis. When Redis is down every replica answers `UNKNOWN` at once,
//! which callers resolve by their failure mode in microseconds and count; withdrawing every
//! replica instead would turn the same outage into connection failures, and stall rollouts
//! while it lasts. Redis's state is the `meshguard_rls_redis_up` gauge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the HTTP endpoints report on.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once SIGTERM arrives: /readyz fails from then on.
    pub draining: AtomicBool,
}

/// The router (`fn router` so tests call it without a socket).
pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz).with_state(health))
        .route("/metrics", get(metrics_text).with_state(metrics))
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
