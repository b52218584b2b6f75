//! Act: one flash-sale budget across two gateways. Two Envoys (two gateway pods, two workers
//! each; one runs the rate-limit module, the other the `meshguard` pipeline) ask meshguard's
//! rate-limit service, which counts in one Redis: a rush spread over both gateways admits the
//! budget once, not once per gateway, and a shopper refused by either learns when to retry.

use std::sync::Barrier;

use anyhow::Context;
use meshguard_testkit::http::{self, Response};
use meshguard_testkit::modules::{Module, PLUGIN, stat_of};
use meshguard_testkit::paths::target_dir;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, Listener, RateLimitService, Redis, Route, Stage, Upstream,
};

use super::Step;
use crate::process::{cargo, run as run_command};

/// The service's limits: the sale admits 24 an hour, for everyone together.
const SERVICE_CONFIG: &str = "domain: shop
descriptors:
  - key: generic_key
    value: flash-sale
    rate_limit:
      name: flash-sale
      unit: hour
      requests_per_unit: 24
";

/// The gateways' limit: the sale asks the service; if it cannot answer in time, refuse.
const FILTER_CONFIG: &str = r#"{
  "headers": "ietf",
  "response": {"status": 429, "contentType": "application/json",
               "body": "{\"error\":\"flash sale is sold out for now\"}"},
  "limits": [{
    "name": "flash-sale",
    "match": {"prefix": "/api/products/flash-sale"},
    "key": [{"constant": "flash-sale"}],
    "global": {"cluster": "ratelimit", "domain": "shop", "timeout": "1s", "failureMode": "deny"}
  }]
}"#;

const SHOPPERS: usize = 8;
const REQUESTS_EACH: usize = 8;

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    run_command(cargo().args(["build", "-p", "meshguard-rate-limit-service"]))?;
    let dir = target_dir().join("demo").join("global-rate-limit");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("ratelimit.yaml");
    std::fs::write(&config, SERVICE_CONFIG)?;
    let redis = Redis::start().context("starting Redis")?;
    let service = RateLimitService::start(
        &meshguard_testkit::rls::service_binary()?,
        &config,
        &redis.url(),
        &[],
    )
    .context("starting the rate-limit service")?;
    let backend = Upstream::start("commerce-v1").context("starting the commerce backend")?;
    let gateway = |module: Module| -> anyhow::Result<Envoy> {
        let filter = module
            .filters(&[(Stage::RateLimit, FILTER_CONFIG)])?
            .pop()
            .context("no filter")?;
        let bootstrap = Bootstrap::new()
            .cluster(Cluster::new("commerce", backend.addr()))
            .cluster(Cluster::grpc("ratelimit", vec![service.grpc_addr()]))
            .listener(
                Listener::new("shop")
                    .filter(filter)
                    .route(Route::prefix("/", "commerce")),
            );
        Envoy::start(&bootstrap, 2).context("starting Envoy")
    };
    let gateways = [gateway(Module::Single)?, gateway(Module::Pipeline)?];
    let sales: Vec<String> = gateways
        .iter()
        .map(|g| format!("{}/api/products/flash-sale", g.url("shop")))
        .collect();
    println!(
        "  gateway A {} (rate-limit module) and gateway B {} (meshguard pipeline) share one \
         flash-sale budget of 24/hour in the rate-limit service on {} (Redis on port {})",
        gateways[0].url("shop"),
        gateways[1].url("shop"),
        service.grpc_addr(),
        redis.port()
    );

    let mut steps = Vec::new();
    let rush = rush(&sales)?;
    let admitted = |by: usize| {
        rush.iter()
            .filter(|(gateway, r)| *gateway == by && r.status == 200)
            .count()
    };
    let (a, b) = (admitted(0), admitted(1));
    let denied = rush.iter().filter(|(_, r)| r.status == 429).count();
    steps.push(Step::new(
        format!("{SHOPPERS} shoppers x {REQUESTS_EACH} GET flash-sale, over A and B"),
        format!("{} admitted (A {a}, B {b}), {denied} got 429", a + b),
        a + b == 24 && a > 0 && b > 0 && denied == rush.len() - 24,
    ));
    for (name, sale) in ["A", "B"].iter().zip(&sales) {
        let sample = http::get(sale, &[])?;
        steps.push(Step::new(
            format!("GET flash-sale on gateway {name} after the rush"),
            format!(
                "{} | Retry-After: {} | RateLimit: {} | {}",
                sample.status,
                sample.header("retry-after").unwrap_or("-"),
                sample.header("ratelimit").unwrap_or("-"),
                sample.body.trim()
            ),
            sample.status == 429 && sample.header("retry-after").is_some(),
        ));
    }
    let products = http::get(&format!("{}/api/products", gateways[1].url("shop")), &[])?;
    steps.push(Step::new(
        "GET /api/products on B",
        format!("{} (no global limit applies: no call)", products.status),
        products.status == 200,
    ));
    let mut allowed = 0;
    for gateway in &gateways {
        allowed += stat_of(
            &gateway.flushed_stats()?,
            Stage::RateLimit,
            PLUGIN,
            "flash-sale.allowed",
        );
    }
    steps.push(Step::new(
        "Envoy stats of both gateways",
        format!(
            "allowed {allowed} in all; upstream saw {}",
            backend.hits("/api/products/flash-sale")
        ),
        u64::try_from(allowed).ok() == Some(backend.hits("/api/products/flash-sale")),
    ));
    Ok(steps)
}

/// Every shopper sends its requests at once, alternating gateways, each on a new connection;
/// returns which gateway answered what.
fn rush(sales: &[String]) -> anyhow::Result<Vec<(usize, Response)>> {
    let barrier = Barrier::new(SHOPPERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SHOPPERS)
            .map(|shopper| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    (0..REQUESTS_EACH)
                        .map(|i| {
                            let gateway = (shopper + i) % sales.len();
                            http::get(&sales[gateway], &[]).map(|r| (gateway, r))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            let responses = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a shopper thread panicked"))??;
            all.extend(responses);
        }
        Ok(all)
    })
}
