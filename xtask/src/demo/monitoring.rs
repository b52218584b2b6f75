//! Last act: what an operator's Prometheus said. A real Prometheus (Debian's, installed when
//! missing) scrapes an Envoy running the edge gateway's `meshguard` module with the documented
//! tag rules and evaluates meshguard's alert rules (`admission-webhook/deploy/monitoring/`, with
//! `for:` shortened to 1 s) while the payment service fails, a user hammers the orders API and
//! expired tokens arrive; the act then prints which alerts fired, for what, and for how long.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::prometheus::{rules_with_for, stats_config};
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Prometheus, Route, Script, Upstream, http,
};
use serde_json::{Value, json};

use super::Step;

const ISSUER: &str = "https://id.shop.example/realms/shop";

/// The alerts the scenario should raise: name and the label that says for what.
const EXPECTED: [(&str, &str, &str); 3] = [
    (
        "MeshguardCircuitBreakerOpen",
        "meshguard_breaker",
        "payment",
    ),
    ("MeshguardRateLimitRefusing", "meshguard_limit", "orders"),
    ("MeshguardJwtDenialsSpiking", "meshguard_reason", "expired"),
];

fn config() -> String {
    json!({
        "jwtAuth": {
            "providers": [{"name": "shop", "issuer": ISSUER, "jwks": jwks(&[&TestKey::rsa_a()])}],
            "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}]
        },
        "rateLimit": {"limits": [{"name": "orders", "match": {"prefix": "/api/orders"},
                                  "key": [{"claim": "sub"}], "rate": {"requests": 5, "per": "minute"}}]},
        "circuitBreaker": {"breakers": [
            {"name": "payment", "match": {"prefix": "/api/payments"}, "window": {"size": 4},
             "minimumCalls": 4, "openFor": "60s"}]}
    })
    .to_string()
}

fn token(sub: &str, exp: u64) -> String {
    TestKey::rsa_a().token(&json!({"iss": ISSUER, "sub": sub, "exp": exp}))
}

/// When an alert was first seen pending and firing, and last seen, since the scenario began.
#[derive(Default)]
struct Seen {
    pending: Option<Duration>,
    firing: Option<Duration>,
    last: Duration,
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let backend = Upstream::start("commerce").context("starting the commerce backend")?;
    backend.script("/api/payments", Script::status(503));
    let bootstrap = Bootstrap::new()
        .with("stats_config", stats_config()?)
        .cluster(Cluster::new("commerce", backend.addr()))
        .listener(
            Listener::new("edge")
                .filter(FilterSpec::wasm(
                    "edge",
                    filter_module("meshguard")?,
                    config(),
                ))
                .route(Route::prefix("/", "commerce")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    let prometheus = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    \
             static_configs: [{{targets: ['{}']}}]\n",
            envoy.admin_address()
        ),
        &[("rules.yaml", rules_with_for("1s")?)],
    )
    .context("starting Prometheus")?;
    println!(
        "  Prometheus on {} scraping Envoy's /stats/prometheus every second; alert rules from \
         admission-webhook/deploy/monitoring/rules.yaml with for: 1s",
        prometheus.url()
    );

    let edge = envoy.url("edge");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let alice = format!("Bearer {}", token("alice", now + 600));
    let expired = format!("Bearer {}", token("mallory", now - 3600));
    let started = Instant::now();
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let deadline = started + Duration::from_secs(60);
    let mut quiet_after_all = None;
    while Instant::now() < deadline {
        // The scenario, a few requests a round: payments fail, alice exceeds her limit,
        // expired tokens keep coming.
        let _ = http::get(
            &format!("{edge}/api/payments/7"),
            &[("authorization", &alice)],
        )?;
        for _ in 0..3 {
            let _ = http::get(&format!("{edge}/api/orders"), &[("authorization", &alice)])?;
        }
        let _ = http::get(
            &format!("{edge}/api/products"),
            &[("authorization", &expired)],
        )?;
        let elapsed = started.elapsed();
        for alert in prometheus.alerts()? {
            let name = alert["labels"]["alertname"].as_str().unwrap_or("?");
            let what = EXPECTED
                .iter()
                .find(|(expected, _, _)| *expected == name)
                .map_or_else(String::new, |(_, label, _)| label_of(&alert, label));
            let entry = seen.entry((name.to_string(), what)).or_default();
            entry.pending.get_or_insert(elapsed);
            if alert["state"] == "firing" {
                entry.firing.get_or_insert(elapsed);
            }
            entry.last = elapsed;
        }
        let all_firing = EXPECTED.iter().all(|(name, _, value)| {
            seen.get(&(name.to_string(), value.to_string()))
                .is_some_and(|s| s.firing.is_some())
        });
        if all_firing {
            // Let them fire a little while before the summary.
            let since = *quiet_after_all.get_or_insert(Instant::now());
            if since.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut steps = Vec::new();
    for (name, label, value) in EXPECTED {
        let key = (name.to_string(), value.to_string());
        let outcome = match seen.get(&key) {
            Some(Seen {
                pending: Some(pending),
                firing: Some(firing),
                last,
            }) => format!(
                "{name} fired for {label}={value} for {:.0} s (pending at +{:.0} s, firing at +{:.0} s)",
                (last.saturating_sub(*firing)).as_secs_f64().max(1.0),
                pending.as_secs_f64(),
                firing.as_secs_f64()
            ),
            Some(_) => format!("{name} for {label}={value} was pending but never fired"),
            None => format!("{name} for {label}={value} never raised"),
        };
        let ok = seen.get(&key).is_some_and(|s| s.firing.is_some());
        steps.push(Step::new("alerts during the scenario", outcome, ok));
    }
    for ((name, what), _) in seen
        .iter()
        .filter(|((name, what), _)| !EXPECTED.iter().any(|(n, _, v)| n == name && v == what))
    {
        steps.push(Step::new(
            "alerts during the scenario",
            format!("unexpected alert {name} {what}"),
            false,
        ));
    }
    Ok(steps)
}

fn label_of(alert: &Value, label: &str) -> String {
    alert["labels"][label]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
