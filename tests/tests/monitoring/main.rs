//! What an operator monitors, tested like code (`admission-webhook/deploy/monitoring/`):
//!
//! - the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`);
//! - the Prometheus Operator and Grafana manifests wrap the rules, the dashboard and the Envoy
//!   tag rules unchanged;
//! - one real Prometheus (Debian's) scrapes one real Envoy running the `meshguard` module and the
//!   authz module with the documented tag rules, the real webhook (over TLS) and the real
//!   rate-limit service (with Redis), while a short demo-like scenario with scripted faults runs.
//!   Then: every family the three expose is in the metrics reference (README.md) with its type,
//!   and the reference's families are there with their documented labels; every alert expression
//!   evaluates; the alerts the faults should raise are pending or firing (in a copy of the rules
//!   whose `for:` is 1 s) and no other alert is; every dashboard query and variable parses and
//!   returns data.
//!
//! The scrape and evaluation intervals are 1 s and every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshguard_admission_webhook::client::TlsClient;
use meshguard_admission_webhook::pki::Pki;
use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::{filter_module, target_dir, workspace_root};
use meshguard_testkit::prometheus::{monitoring_dir, promtool, rules_with_for, stats_config};
use meshguard_testkit::rls::{header_action, native_filter, service_binary};
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Prometheus, RateLimitService, Redis, Route,
    Script, Upstream, http,
};
use serde_json::{Value, json};

pub(crate) fn read(name: &str) -> String {
    std::fs::read_to_string(monitoring_dir().join(name)).unwrap()
}

pub(crate) fn yaml(name: &str) -> Value {
    serde_yaml::from_str(&read(name)).unwrap()
}

mod reference;
mod scenario;
mod webhook;

use reference::{NOT_EXERCISED, Source, check_listed, families, reference};
use scenario::*;
use webhook::{Webhook, slow_configmap_review, webhook_policies};

// === promtool ===

#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let dir = monitoring_dir();
    let checked = promtool(&dir, &["check", "rules", "rules.yaml"]).unwrap();
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "rules.test.yaml"]).unwrap();
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test that fires it and one that keeps it silent.
    let tests = read("rules.test.yaml");
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        let cases = tests.matches(&format!("alertname: {name}\n")).count();
        assert!(
            cases >= 2,
            "{name} has {cases} promtool case(s), wants fire and silent"
        );
        assert!(
            alert["annotations"]["summary"].is_string()
                && alert["annotations"]["runbook_url"].is_string(),
            "{name} needs a summary and a runbook_url"
        );
        let anchor = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .rsplit('#')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(anchor, name.to_lowercase(), "{name}'s runbook anchor");
        assert!(
            read("README.md").contains(&format!("#### {name}\n")),
            "{name} has no runbook section in README.md"
        );
    }
}

fn alerts() -> Vec<Value> {
    yaml("rules.yaml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

/// Every YAML document of a file of the repository.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(workspace_root().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|document: &Value| !document.is_null())
        .collect()
}

#[test]
fn service_monitors_select_the_services_and_ports_they_scrape() {
    let services: Vec<Value> = [
        "admission-webhook/deploy/service.yaml",
        "istio/rate-limit-service/deployment.yaml",
    ]
    .iter()
    .flat_map(|path| documents(path))
    .filter(|document| document["kind"] == "Service")
    .collect();
    let monitors = documents("admission-webhook/deploy/monitoring/servicemonitor-webhook.yaml");
    assert_eq!(monitors.len(), 2);
    for monitor in monitors {
        assert_eq!(monitor["kind"], "ServiceMonitor");
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let namespaces = &monitor["spec"]["namespaceSelector"]["matchNames"];
        let service = services
            .iter()
            .find(|service| {
                selector
                    .iter()
                    .all(|(label, value)| service["metadata"]["labels"][label] == *value)
                    && namespaces
                        .as_array()
                        .unwrap()
                        .contains(&service["metadata"]["namespace"])
            })
            .unwrap_or_else(|| panic!("no Service matches {monitor}"));
        for endpoint in monitor["spec"]["endpoints"].as_array().unwrap() {
            assert!(
                service["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|port| port["name"] == endpoint["port"]),
                "{} has no port {}",
                service["metadata"]["name"],
                endpoint["port"]
            );
        }
    }
}

#[test]
fn manifests_wrap_the_rules_dashboard_and_tag_rules_unchanged() {
    let rule = yaml("prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"],
        yaml("rules.yaml")["groups"],
        "prometheusrule.yaml must carry rules.yaml's groups unchanged"
    );
    let config_map = yaml("grafana-dashboard-configmap.yaml");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        config_map["data"]["meshguard.json"].as_str().unwrap(),
        read("dashboard.json"),
        "grafana-dashboard-configmap.yaml must carry dashboard.json unchanged"
    );
    let override_map = yaml("istio-bootstrap-override.yaml");
    let bootstrap: Value = serde_json::from_str(
        override_map["data"]["custom_bootstrap.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        bootstrap,
        yaml("envoy-stats-tags.yaml"),
        "istio-bootstrap-override.yaml must carry envoy-stats-tags.yaml unchanged"
    );
    // The kustomization applies every manifest of the folder.
    let kustomization = yaml("kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for entry in std::fs::read_dir(monitoring_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let plain = [
            "kustomization.yaml",
            "rules.yaml",
            "rules.test.yaml",
            "envoy-stats-tags.yaml",
        ];
        if name.ends_with(".yaml") && !plain.contains(&name.as_str()) {
            assert!(listed.contains(&name), "kustomization.yaml misses {name}");
        }
    }
    // Grafana 10+: a schema of that era, a Prometheus data-source variable, and every panel
    // query on it.
    let dashboard: Value = serde_json::from_str(&read("dashboard.json")).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(!dashboard_queries(&dashboard).is_empty());
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        }
    }
}

/// Every panel's PromQL, with the panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|target| {
                    (
                        panel["title"].as_str().unwrap_or_default().to_string(),
                        target["expr"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A query as Grafana sends it with every variable on "All".
fn grafana_substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$plugin", ".*")
        .replace("$webhook", ".*")
        .replace("$rls", ".*")
}

fn get(url: &str, headers: &[(&str, &str)]) -> u16 {
    http::get(url, headers).unwrap().status
}

#[test]
fn prometheus_scrapes_the_filters_webhook_and_rate_limit_service() {
    let documented = reference();
    let run = target_dir()
        .join("monitoring-runs")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run).unwrap();

    // --- the parts -----------------------------------------------------------------------
    let upstream = Upstream::start("backend").unwrap();
    upstream.script("/api/payments", Script::status(503));
    upstream.script("/certs", Script::status(500));
    let mut redis = Redis::start().unwrap();
    let rls_config = run.join("ratelimit.yaml");
    std::fs::write(
        &rls_config,
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit:\n      unit: hour\n      requests_per_unit: 3\n",
    )
    .unwrap();
    let rls = RateLimitService::start(&service_binary().unwrap(), &rls_config, &redis.url(), &[])
        .unwrap();
    let ecds = run.join("broken-ecds.json");
    discover(&ecds, "1", GOOD_LIMITS);
    let bootstrap = Bootstrap::new()
        .with("stats_config", stats_config().unwrap())
        .with("node", json!({"id": "monitoring-test", "cluster": "edge"}))
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::new("product-v1", upstream.addr()))
        .cluster(Cluster::new("product-v2", upstream.addr()))
        .cluster(Cluster::new("jwks", upstream.addr()))
        .cluster(Cluster::grpc("rls", vec![rls.grpc_addr()]))
        .listener(
            Listener::new("edge")
                .filter(FilterSpec::Wasm {
                    name: "edge".to_string(),
                    module: filter_module("meshguard").unwrap(),
                    config: pipeline_config("jwks"),
                    vm_id: "edge".to_string(),
                })
                .filter(FilterSpec::Wasm {
                    name: "edge-authz".to_string(),
                    module: filter_module("meshguard_authz").unwrap(),
                    config: json!({"modules": {"policy.rego": AUTHZ_POLICY},
                                   "decisionPath": "envoy/authz/allow"})
                    .to_string(),
                    vm_id: "edge-authz".to_string(),
                })
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            // A plugin delivered by config discovery, as Istio delivers a WasmPlugin; its
            // configuration is replaced by one meshguard refuses once Prometheus scrapes.
            Listener::new("broken")
                .filter(FilterSpec::Discovered {
                    name: "broken".to_string(),
                    path: ecds.clone(),
                })
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("global")
                .filter(native_filter("edge", "rls", Duration::from_secs(2), false))
                .rate_limit(header_action("x-user", "user"))
                .route(Route::prefix("/", "backend")),
        );
    let envoy = Envoy::start(&bootstrap, 2).unwrap();
    let policies = webhook_policies(&run);
    let webhook = Webhook::start(&run, &policies);
    std::fs::write(run.join("webhook-ca.pem"), &webhook.pki.ca_pem).unwrap();

    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: envoy
    metrics_path: /stats/prometheus
    static_configs: [{{targets: ['{envoy}']}}]
  - job_name: webhook
    scheme: https
    tls_config: {{ca_file: '{ca}', server_name: localhost}}
    static_configs: [{{targets: ['{webhook}']}}]
  - job_name: rls
    static_configs: [{{targets: ['{rls}']}}]
",
        envoy = envoy.admin_address(),
        ca = run.join("webhook-ca.pem").display(),
        webhook = webhook.addr,
        rls = rls.http_url().trim_start_matches("http://"),
    );
    let prometheus =
        Prometheus::start(&config, &[("rules.yaml", rules_with_for("1s").unwrap())]).unwrap();

    // Counters only show a rate once Prometheus has a sample from before they move.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus.query("up == 1").unwrap();
        if up.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up within 60 s: {}",
            serde_json::to_string_pretty(&prometheus.targets().unwrap()).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // --- the scenario ----------------------------------------------------------------------
    // A configuration meshguard refuses: Envoy rejects the update and keeps the previous one.
    discover(&ecds, "2", BAD_LIMITS);
    let deadline = Instant::now() + Duration::from_secs(30);
    while envoy
        .stat("extension_config_discovery.http_filter.broken.config_fail")
        .unwrap()
        != Some(1)
    {
        assert!(
            Instant::now() < deadline,
            "the bad configuration was not rejected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&format!("{}/anything", envoy.url("broken")), &[]), 200);
    let edge = envoy.url("edge");
    let exp = now() + 600;
    let users = ["alice", "bob", "carol", "dave", "erin", "frank"];
    for user in users {
        let bearer = format!("Bearer {}", token(user, exp));
        assert_eq!(
            get(
                &format!("{edge}/api/products/1"),
                &[("authorization", &bearer)]
            ),
            200
        );
        assert_eq!(
            get(
                &format!("{edge}/api/inventory/1"),
                &[("authorization", &bearer)]
            ),
            200
        );
    }
    assert_eq!(get(&format!("{edge}/public/catalog"), &[]), 200);
    // JWT denials: missing and expired tokens, each about a sixth of the traffic.
    for _ in 0..12 {
        assert_eq!(get(&format!("{edge}/api/products/1"), &[]), 401);
        let expired = format!("Bearer {}", token("mallory", now() - 3600));
        assert_eq!(
            get(
                &format!("{edge}/api/products/1"),
                &[("authorization", &expired)]
            ),
            401
        );
    }
    // The partner's JWKS endpoint fails: the filter keeps fetching (from its tick, with
    // backoff) and counts every failure.
    // One user over the orders limit (5 a minute): 15 of 20 refused.
    let alice = format!("Bearer {}", token("alice", exp));
    let limited = (0..20)
        .filter(|_| get(&format!("{edge}/api/orders"), &[("authorization", &alice)]) == 429)
        .count();
    assert_eq!(limited, 15);
    // The payment upstream fails until the breaker opens.
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            get(
                &format!("{edge}/api/payments/7"),
                &[("authorization", &alice)],
            )
        })
        .collect();
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    // Authorization: the admin API is denied by policy.
    assert_eq!(
        get(
            &format!("{edge}/api/admin/users"),
            &[("authorization", &alice)]
        ),
        403
    );
    // The global limit: 3 an hour per user.
    let global = envoy.url("global");
    let over = (0..5)
        .filter(|_| get(&format!("{global}/x"), &[("x-user", "alice")]) == 429)
        .count();
    assert_eq!(over, 2);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let review: Value = serde_json::from_str(
            &std::fs::read_to_string(
                workspace_root()
                    .join("admission-webhook/server/tests/testdata/deployment-review.json"),
            )
            .unwrap(),
        )
        .unwrap();
        for _ in 0..4 {
            let answer = webhook.post(&review).await;
            assert!(answer["response"]["allowed"].is_boolean(), "{answer}");
        }
        // The slow policy runs past the 300 ms deadline: answered by failurePolicy Fail.
        for _ in 0..2 {
            let answer = webhook.post(&slow_configmap_review()).await;
            assert_eq!(answer["response"]["allowed"], false, "{answer}");
        }
    });

    // --- every family exposed is documented --------------------------------------------------
    let mut problems = Vec::new();
    let envoy_families = families(&envoy.admin_get("/stats/prometheus").unwrap());
    problems.extend(check_listed(Source::Envoy, &envoy_families, &documented));
    let webhook_text = runtime.block_on(webhook.metrics());
    problems.extend(check_listed(
        Source::Webhook,
        &families(&webhook_text),
        &documented,
    ));
    let rls_text = ureq::get(&format!("{}/metrics", rls.http_url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    problems.extend(check_listed(Source::Rls, &families(&rls_text), &documented));
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The Redis fault comes after the scrape of every healthy family.
    redis.stop();
    for _ in 0..3 {
        let _ = get(&format!("{global}/x"), &[("x-user", "bob")]);
    }

    // --- alerts: the faults raise theirs, and only those ---------------------------------------
    let expected: Vec<(&str, &[(&str, &str)])> = vec![
        (
            "MeshguardCircuitBreakerOpen",
            &[("meshguard_breaker", "payment")],
        ),
        (
            "MeshguardFilterConfigRejected",
            &[("extension_config", "broken")],
        ),
        (
            "MeshguardJwksRefreshFailing",
            &[("meshguard_plugin", "edge")],
        ),
        (
            "MeshguardRateLimitRefusing",
            &[("meshguard_limit", "orders")],
        ),
        (
            "MeshguardJwtDenialsSpiking",
            &[("meshguard_reason", "missing")],
        ),
        (
            "MeshguardJwtDenialsSpiking",
            &[("meshguard_reason", "expired")],
        ),
        (
            "MeshguardWebhookFailurePolicyAnswers",
            &[("reason", "timeout")],
        ),
        ("MeshguardWebhookErrorRatio", &[("job", "webhook")]),
        ("MeshguardPolicyNotEnforced", &[("job", "webhook")]),
        ("MeshguardRateLimitServiceRedisErrors", &[("job", "rls")]),
    ];
    let raised = |alerts: &[Value], (name, labels): &(&str, &[(&str, &str)])| {
        alerts.iter().any(|alert| {
            alert["labels"]["alertname"] == *name
                && labels
                    .iter()
                    .all(|(label, value)| alert["labels"][*label] == *value)
                && matches!(alert["state"].as_str(), Some("pending" | "firing"))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let alerts = loop {
        let alerts = prometheus.alerts().unwrap();
        if expected.iter().all(|e| raised(&alerts, e)) {
            break alerts;
        }
        // Keep the Redis errors coming while waiting.
        let _ = get(&format!("{global}/x"), &[("x-user", "bob")]);
        assert!(
            Instant::now() < deadline,
            "alerts not raised within 90 s: {:?}\nactive: {}",
            expected
                .iter()
                .filter(|e| !raised(&alerts, e))
                .collect::<Vec<_>>(),
            serde_json::to_string_pretty(&alerts).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Every active alert is one of those, for that subject (no other reason, breaker, job).
    for alert in &alerts {
        assert!(
            expected
                .iter()
                .any(|expected| raised(std::slice::from_ref(alert), expected)),
            "unexpected alert: {alert}"
        );
    }
    // The healthy breaker stays silent.
    assert!(
        !alerts
            .iter()
            .any(|a| a["labels"]["meshguard_breaker"] == "inventory"),
        "{alerts:?}"
    );

    // --- every rule evaluates without error -------------------------------------------------
    for rule in prometheus.rules().unwrap() {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    for alert in self::alerts() {
        let expr = alert["expr"].as_str().unwrap();
        prometheus
            .query(expr)
            .unwrap_or_else(|e| panic!("{}: {e:#}", alert["alert"]));
    }

    // --- the reference's families are there with their labels ----------------------------------
    let mut missing = Vec::new();
    for (name, row) in &documented {
        if NOT_EXERCISED.iter().any(|(skip, _)| skip == name) {
            continue;
        }
        let series = if row.kind == "histogram" {
            format!("{name}_bucket")
        } else {
            name.clone()
        };
        let samples = prometheus
            .query(&format!("{{__name__=\"{series}\"}}"))
            .unwrap();
        if samples.is_empty() {
            missing.push(format!("{name}: no sample"));
            continue;
        }
        for label in &row.labels {
            if !samples.iter().any(|s| !s.label(label).is_empty()) {
                missing.push(format!("{name}: no series has the label {label}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    // The certificate-expiry gauge holds the served certificate's notAfter (rcgen's default
    // validity runs for centuries).
    let expiry = prometheus
        .query("meshguard_webhook_certificate_expiry_timestamp_seconds")
        .unwrap();
    assert!(
        expiry.len() == 1 && expiry[0].value > (now() + 365 * 86_400) as f64,
        "{expiry:?}"
    );

    // --- every dashboard query parses and returns data ---------------------------------------
    let dashboard: Value = serde_json::from_str(&read("dashboard.json")).unwrap();
    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries(&dashboard) {
        let query = grafana_substitute(&expr);
        match prometheus.query(&query) {
            Ok(samples) if samples.is_empty() => empty.push(format!("{title}: {query}: no data")),
            Ok(_) => {}
            Err(err) => empty.push(format!("{title}: {query}: {err:#}")),
        }
    }
    // The variables' `label_values(selector, label)` list values too (as Grafana's
    // /api/v1/series lookup would).
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let (selector, label) = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.rsplit_once(','))
            .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
        let query = format!("group by ({}) ({selector})", label.trim());
        match prometheus.query(&query) {
            Ok(samples) if samples.is_empty() => {
                empty.push(format!("variable {}: {query}: no data", variable["name"]))
            }
            Ok(_) => {}
            Err(err) => empty.push(format!("variable {}: {query}: {err:#}", variable["name"])),
        }
    }
    assert!(empty.is_empty(), "{}", empty.join("\n"));
    let _ = std::fs::remove_dir_all(&run);
}
