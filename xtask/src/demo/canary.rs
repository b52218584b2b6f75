//! Act: a canary release of the product service, sticky per user.
//!
//! Two product versions run as two clusters; the canary filter assigns each user a version
//! (90/10 by a stable hash of the user id) and sets `x-mesh-version`, which the plain Envoy route
//! table below matches on (the same routes as the VirtualServices in `istio/canary/`). The act
//! shows the split over 200 users, one user staying put across requests and connections, a
//! tester override that needs the internal gate header, a spoofed route header being ignored,
//! and a rollout from 10 % to 20 % that moves users only into the canary.

use anyhow::Context;
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};
use serde_json::Value;

use super::Step;

const USERS: usize = 200;

fn config(canary_percent: u32) -> String {
    format!(
        r#"{{"services":[{{"name":"product","match":{{"hosts":["*"], "prefix":"/api/products"}},
            "versions":[{{"name":"v1","weight":{}}},{{"name":"v2","weight":{canary_percent}}}],
            "stickyKey":[{{"header":"x-user-id"}}],
            "overrides":{{"header":"x-canary-version",
                          "onlyWithHeader":{{"name":"x-meshguard-internal"}}}}}}]}}"#,
        100 - canary_percent
    )
}

fn bootstrap(v1: &Upstream, v2: &Upstream, canary_percent: u32) -> anyhow::Result<Bootstrap> {
    Ok(Bootstrap::new()
        .cluster(Cluster::new("product-v1", v1.addr()))
        .cluster(Cluster::new("product-v2", v2.addr()))
        .listener(
            Listener::new("shop")
                .filter(FilterSpec::wasm(
                    "canary",
                    filter_module("meshguard_canary")?,
                    config(canary_percent),
                ))
                .route(Route::prefix("/", "product-v2").header("x-mesh-version", "v2"))
                .route(Route::prefix("/", "product-v1").header("x-mesh-version", "v1"))
                .route(Route::prefix("/", "product-v1")),
        ))
}

/// The route table Envoy runs, one line per route, read back from the rendered bootstrap.
fn route_table(bootstrap: &Bootstrap) -> Vec<String> {
    let rendered = bootstrap.render();
    let routes = rendered.pointer(
        "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config\
         /virtual_hosts/0/routes",
    );
    routes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|route| {
            let headers: Vec<String> = route["match"]["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    format!(
                        " {}={}",
                        h["name"].as_str().unwrap_or("?"),
                        h["string_match"]["exact"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!(
                "prefix {}{} -> cluster {}",
                route["match"]["prefix"].as_str().unwrap_or("?"),
                if headers.is_empty() {
                    " (no header)".to_string()
                } else {
                    headers.concat()
                },
                route["route"]["cluster"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Which version served `user` (each call a new connection).
fn version_of(envoy: &Envoy, user: &str, extra: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut headers = vec![("x-user-id", user)];
    headers.extend_from_slice(extra);
    let response = http::get(&format!("{}/api/products", envoy.url("shop")), &headers)?;
    let echo: Value = response.json()?;
    Ok(echo["upstream"].as_str().unwrap_or("?").to_string())
}

fn users() -> Vec<String> {
    (1..=USERS).map(|i| format!("user-{i:03}")).collect()
}

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let v1 = Upstream::start("v1").context("starting product v1")?;
    let v2 = Upstream::start("v2").context("starting product v2")?;
    let ten = bootstrap(&v1, &v2, 10)?;
    let envoy = Envoy::start(&ten, 2).context("starting Envoy")?;
    println!(
        "  Envoy 1.40 (V8, 2 workers) on {}; product v1 on {}, v2 on {}",
        envoy.url("shop"),
        v1.url(),
        v2.url()
    );
    println!("  route table (the plain-Envoy twin of istio/canary/product.yaml):");
    for line in route_table(&ten) {
        println!("    {line}");
    }

    let mut steps = Vec::new();
    let users = users();
    let assigned: Vec<String> = users
        .iter()
        .map(|user| version_of(&envoy, user, &[]))
        .collect::<anyhow::Result<_>>()?;
    let canary: Vec<&String> = users
        .iter()
        .zip(&assigned)
        .filter(|(_, version)| *version == "v2")
        .map(|(user, _)| user)
        .collect();
    let share = canary.len() as f64 * 100.0 / USERS as f64;
    steps.push(Step::new(
        format!("{USERS} users GET /api/products (90/10)"),
        format!(
            "v1: {} users, v2: {} users ({share:.1} % canary)",
            USERS - canary.len(),
            canary.len()
        ),
        assigned.iter().all(|v| v == "v1" || v == "v2") && (5.0..=15.0).contains(&share),
    ));

    let Some(regular) = canary.first().map(|user| user.to_string()) else {
        steps.push(Step::new("pick a canary user", "nobody in v2", false));
        return Ok(steps);
    };
    let visits: Vec<String> = (0..5)
        .map(|_| version_of(&envoy, &regular, &[]))
        .collect::<anyhow::Result<_>>()?;
    steps.push(Step::new(
        format!("{regular}: 5 more requests, new connections"),
        format!("served by {}", visits.join(" ")),
        visits.iter().all(|v| v == "v2"),
    ));

    let stable = users
        .iter()
        .zip(&assigned)
        .find(|(_, version)| *version == "v1")
        .map(|(user, _)| user.clone())
        .unwrap_or_default();
    let asked = version_of(&envoy, &stable, &[("x-canary-version", "v2")])?;
    steps.push(Step::new(
        format!("{stable} sends x-canary-version: v2"),
        format!("served by {asked} (no internal gate header: override ignored)"),
        asked == "v1",
    ));
    let tester = version_of(
        &envoy,
        &stable,
        &[("x-canary-version", "v2"), ("x-meshguard-internal", "qa")],
    )?;
    steps.push(Step::new(
        format!("tester as {stable} + x-meshguard-internal"),
        format!("served by {tester} (override honoured)"),
        tester == "v2",
    ));
    let spoofed = version_of(&envoy, &stable, &[("x-mesh-version", "v2")])?;
    steps.push(Step::new(
        format!("{stable} sends x-mesh-version: v2"),
        format!("served by {spoofed} (client copy stripped)"),
        spoofed == "v1",
    ));

    let stats = envoy.flushed_stats()?;
    let stat = |name: &str| {
        stats
            .get(&format!(
                "wasmcustom.meshguard.canary.canary.product.{name}"
            ))
            .copied()
            .unwrap_or(0)
    };
    let (r1, r2, used, denied) = (
        stat("v1.requests"),
        stat("v2.requests"),
        stat("overrides_used"),
        stat("overrides_denied"),
    );
    steps.push(Step::new(
        "Envoy stats",
        format!("requests v1={r1} v2={r2}, overrides used={used} denied={denied}"),
        r1 + r2 == (USERS + 8) as i64 && used == 1 && denied == 1,
    ));
    drop(envoy);

    // Rollout: the same users through an Envoy configured at 20 %.
    let twenty = Envoy::start(&bootstrap(&v1, &v2, 20)?, 2).context("starting Envoy at 20 %")?;
    let after: Vec<String> = users
        .iter()
        .map(|user| version_of(&twenty, user, &[]))
        .collect::<anyhow::Result<_>>()?;
    let left = assigned
        .iter()
        .zip(&after)
        .filter(|(before, after)| *before == "v2" && *after != "v2")
        .count();
    let now = after.iter().filter(|v| *v == "v2").count();
    steps.push(Step::new(
        "raise the canary to 20 %",
        format!(
            "{} -> {now} users in v2; {left} left the canary",
            canary.len()
        ),
        left == 0 && now > canary.len(),
    ));
    Ok(steps)
}
