//! `/metrics` as a scraper reads it: the exposition parsed with a Prometheus text parser
//! (`prometheus-parse`, independent of the crate that writes it), every Gatekeeper family with
//! its type, OpenMetrics on request, and counters that never go down, across policy reloads too.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use meshguard_admission_webhook::audit::audit_state;
use meshguard_admission_webhook::config::{PolicySource, Settings};
use meshguard_admission_webhook::files;
use meshguard_admission_webhook::http::router;
use meshguard_admission_webhook::state::State;
use support::*;
use tower::ServiceExt;

async fn scrape(state: &Arc<State>, accept: Option<&str>) -> (String, String) {
    let mut request = Request::get("/metrics");
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (content_type, String::from_utf8(body.to_vec()).unwrap())
}

async fn post(state: &Arc<State>, review: &serde_json::Value) {
    let request = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(review).unwrap()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn state() -> Arc<State> {
    let dir = testdata("policies");
    let state = State::new(Settings {
        policies: PolicySource::Files(vec![dir.clone()]),
        ..Settings::default()
    });
    files::load(&state, &[dir]).unwrap();
    state
}

/// Every family and its type, as the parser read them.
fn families(text: &str) -> BTreeMap<String, String> {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    scrape
        .samples
        .iter()
        .map(|sample| {
            let kind = match &sample.value {
                prometheus_parse::Value::Counter(_) => "counter",
                prometheus_parse::Value::Gauge(_) => "gauge",
                prometheus_parse::Value::Histogram(_) => "histogram",
                prometheus_parse::Value::Summary(_) => "summary",
                prometheus_parse::Value::Untyped(_) => "untyped",
            };
            (sample.metric.clone(), kind.to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_exposition_parses_with_gatekeepers_families_and_types() {
    let state = state();
    post(&state, &denied_review()).await;
    post(&state, &allowed_review()).await;
    audit_state(&state);
    let (content_type, text) = scrape(&state, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let found = families(&text);
    for (family, kind) in [
        ("gatekeeper_validation_request_count_total", "counter"),
        (
            "gatekeeper_validation_request_duration_seconds",
            "histogram",
        ),
        ("gatekeeper_constraint_templates", "gauge"),
        ("gatekeeper_constraints", "gauge"),
        ("gatekeeper_violations", "gauge"),
        ("gatekeeper_audit_duration_seconds", "histogram"),
        ("gatekeeper_audit_last_run_time", "gauge"),
        ("meshguard_validation_violations_total", "counter"),
        ("meshguard_decision_cache_hits_total", "counter"),
        ("meshguard_decision_cache_misses_total", "counter"),
    ] {
        assert_eq!(
            found.get(family).map(String::as_str),
            Some(kind),
            "{family} in:\n{text}"
        );
    }
    let labels = [("admission_status", "deny"), ("admission_dryrun", "false")];
    assert_eq!(
        count(&text, "gatekeeper_validation_request_count_total", &labels),
        1
    );
    // HELP and TYPE name each family once; no sample repeats a label set.
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line
            .rsplit_once(' ')
            .map(|(series, _)| series)
            .unwrap_or(line);
        assert!(
            seen.insert(series.to_string()),
            "{series} twice in:\n{text}"
        );
    }

    // OpenMetrics when the scraper asks for it.
    let (content_type, open) =
        scrape(&state, Some("application/openmetrics-text;version=1.0.0")).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE gatekeeper_validation_request_count counter"),
        "{open}"
    );
}

#[tokio::test]
async fn counters_never_go_down_across_policy_reloads() {
    let state = state();
    let dir = testdata("policies");
    let mut last: BTreeMap<String, f64> = BTreeMap::new();
    for round in 0..3 {
        for _ in 0..2 {
            post(&state, &denied_review()).await;
            post(&state, &allowed_review()).await;
        }
        // Reload between rounds: a new policy set with empty decision caches.
        files::load(&state, std::slice::from_ref(&dir)).unwrap();
        let (_, text) = scrape(&state, None).await;
        let lines = text.lines().map(|line| Ok(line.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let mut now: BTreeMap<String, f64> = BTreeMap::new();
        for sample in &scrape.samples {
            if let prometheus_parse::Value::Counter(value) = sample.value {
                let labels: BTreeMap<_, _> = sample.labels.iter().collect();
                let key = format!("{}{labels:?}", sample.metric);
                now.insert(key, value);
            }
        }
        for (series, before) in &last {
            let after = now.get(series).copied().unwrap_or(0.0);
            assert!(
                after >= *before,
                "round {round}: {series} went from {before} to {after}"
            );
        }
        let hits = count(&text, "meshguard_decision_cache_hits_total", &[]);
        let misses = count(&text, "meshguard_decision_cache_misses_total", &[]);
        assert!(
            misses >= 1 && hits >= 1,
            "round {round}: {hits} hits, {misses} misses"
        );
        let requests = count(&text, "gatekeeper_validation_request_count_total", &[]);
        assert_eq!(requests, 4 * (round + 1), "round {round}");
        last = now;
    }
}
