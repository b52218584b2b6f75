//! Act: the payment service fails; the circuit breaker in front of it opens and answers with a
//! fallback (the order is kept, the payment queued) without touching the failing service; once
//! payment recovers, one probe gets through and the breaker closes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshguard_testkit::http::{self, Response};
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Script, Upstream};

use super::Step;

const CONFIG: &str = r#"{"breakers":[{
    "name": "payment",
    "match": {"prefix": "/api/payments", "methods": ["POST"]},
    "window": {"type": "count", "size": 10},
    "minimumCalls": 4,
    "failureRateThreshold": 50,
    "openFor": "1s",
    "halfOpen": {"permittedCalls": 1, "successToClose": 1},
    "fallback": {"status": 202,
                 "headers": {"content-type": "application/json"},
                 "body": "{\"status\":\"queued\",\"message\":\"payment is degraded: the order is saved and the payment will be retried\"}"}
}]}"#;

const ORDER: &[u8] = br#"{"orderId":"o-1","amount":89.0}"#;

fn pay(envoy: &Envoy) -> anyhow::Result<Response> {
    http::send(
        "POST",
        &format!("{}/api/payments", envoy.url("gateway")),
        &[("content-type", "application/json")],
        Some(ORDER),
    )
}

fn describe(response: &Response) -> String {
    match response.header("x-meshguard-circuit") {
        Some(state) => format!(
            "{} fallback (circuit {state}, Retry-After {}): {}",
            response.status,
            response.header("retry-after").unwrap_or("-"),
            response.json().map_or_else(
                |_| response.body.clone(),
                |body| body["status"].as_str().unwrap_or("?").to_string()
            )
        ),
        None => format!("{} from the payment service", response.status),
    }
}

fn metric(stats: &BTreeMap<String, i64>, name: &str) -> i64 {
    let suffix = format!("meshguard.circuit_breaker.circuit-breaker.payment.{name}");
    stats
        .iter()
        .filter(|(stat, _)| stat.ends_with(&suffix))
        .map(|(_, value)| value)
        .sum()
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let payment = Upstream::start("payment-v1").context("starting the payment service")?;
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("payment", payment.addr()))
        .listener(
            Listener::new("gateway")
                .filter(FilterSpec::wasm(
                    "circuit-breaker",
                    filter_module("meshguard_circuit_breaker")?,
                    CONFIG,
                ))
                .route(Route::prefix("/", "payment")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    println!(
        "  Envoy 1.40 (V8, 2 workers) on {}; payment service on {}",
        envoy.url("gateway"),
        payment.url()
    );
    let mut steps = Vec::new();

    let response = pay(&envoy)?;
    steps.push(Step::new(
        "POST /api/payments (healthy)",
        describe(&response),
        response.status == 200 && response.header("x-meshguard-circuit").is_none(),
    ));

    payment.script("/api/payments", Script::status(503));
    let mut failures = 0;
    let mut first_fallback = None;
    for _ in 0..20 {
        let response = pay(&envoy)?;
        if response.header("x-meshguard-circuit").is_some() {
            first_fallback = Some(response);
            break;
        }
        failures += 1;
    }
    let hits_when_open = payment.hits("/api/payments");
    steps.push(Step::new(
        "payment fails: POST until it opens",
        format!("{failures} x 503 from payment, then the breaker opened"),
        first_fallback.is_some() && failures == 3,
    ));
    if let Some(response) = &first_fallback {
        steps.push(Step::new(
            "POST /api/payments (breaker open)",
            describe(response),
            response.status == 202 && response.header("x-meshguard-circuit") == Some("open"),
        ));
    }
    let mut fallbacks = 0;
    for _ in 0..10 {
        let response = pay(&envoy)?;
        if response.status == 202 && response.header("x-meshguard-circuit") == Some("open") {
            fallbacks += 1;
        }
    }
    let reached = payment.hits("/api/payments") - hits_when_open;
    steps.push(Step::new(
        "10 more payments while open",
        format!("{fallbacks} answered by the fallback; {reached} reached the failing service"),
        fallbacks == 10 && reached == 0,
    ));

    payment.unscript("/api/payments");
    let deadline = Instant::now() + Duration::from_secs(5);
    let probe = loop {
        let response = pay(&envoy)?;
        if response.header("x-meshguard-circuit").is_none() {
            break response;
        }
        if Instant::now() > deadline {
            bail!("the breaker never let a probe through");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    steps.push(Step::new(
        "payment recovers: after openFor (1 s)",
        format!("probe: {}; breaker closed", describe(&probe)),
        probe.status == 200,
    ));
    let response = pay(&envoy)?;
    steps.push(Step::new(
        "POST /api/payments (closed again)",
        describe(&response),
        response.status == 200 && response.header("x-meshguard-circuit").is_none(),
    ));

    let stats = envoy.flushed_stats()?;
    let (opened, closed, short) = (
        metric(&stats, "transitions.to_open"),
        metric(&stats, "transitions.to_closed"),
        metric(&stats, "short_circuited"),
    );
    steps.push(Step::new(
        "Envoy stats",
        format!("opened {opened}x, closed {closed}x, {short} requests short-circuited"),
        opened == 1 && closed == 1 && short >= 11,
    ));
    Ok(steps)
}
