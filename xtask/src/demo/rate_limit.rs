//! Act: a flash sale. Shoppers rush `/api/products/flash-sale` behind Envoy (two workers) with
//! the rate-limit filter holding one global budget of 30 per minute plus a burst of 10; the rush
//! turns into 429s with `Retry-After` and RateLimit headers, other pages keep working, and after
//! waiting what `Retry-After` said the sale admits shoppers again at the sustained rate.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;
use meshguard_testkit::http::{self, Response};
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream};

use super::Step;

/// One global budget for the sale: 40 cells at once, then one every 2 s.
const CONFIG: &str = r#"{
  "headers": "ietf",
  "response": {"status": 429, "contentType": "application/json",
               "body": "{\"error\":\"flash sale is busy, retry shortly\"}"},
  "limits": [{
    "name": "flash-sale",
    "match": {"prefix": "/api/products/flash-sale"},
    "key": [{"constant": "flash-sale"}],
    "rate": {"requests": 30, "per": "minute"},
    "burst": 10
  }]
}"#;

const SHOPPERS: usize = 8;
const REQUESTS_EACH: usize = 8;

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let backend = Upstream::start("commerce-v1").context("starting the commerce backend")?;
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("commerce", backend.addr()))
        .listener(
            Listener::new("shop")
                .filter(FilterSpec::wasm(
                    "rate-limit",
                    filter_module("meshguard_rate_limit")?,
                    CONFIG,
                ))
                .route(Route::prefix("/", "commerce")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    let sale = format!("{}/api/products/flash-sale", envoy.url("shop"));
    println!(
        "  flash sale on {sale}: one budget for everyone, 30/min + burst 10 (40 at once, then 1 every 2 s)"
    );

    let mut steps = Vec::new();
    let started = Instant::now();
    let rush = rush(&sale)?;
    let elapsed = started.elapsed();
    let admitted = rush.iter().filter(|r| r.status == 200).count();
    let denied: Vec<&Response> = rush.iter().filter(|r| r.status == 429).collect();
    // Exactly the 40-cell budget, plus one cell per 2 s the rush itself lasted.
    let refilled = usize::try_from(elapsed.as_secs() / 2).unwrap_or(usize::MAX);
    steps.push(Step::new(
        format!("{} shoppers x {REQUESTS_EACH} GET flash-sale", SHOPPERS),
        format!(
            "{admitted} admitted, {} got 429 (in {:.0?})",
            denied.len(),
            elapsed
        ),
        (40..=40 + refilled).contains(&admitted) && admitted + denied.len() == rush.len(),
    ));
    // One more shopper right after the rush: what does a denied client learn?
    let sample = http::get(&sale, &[])?;
    let retry_after = sample
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok());
    steps.push(Step::new(
        "GET flash-sale right after the rush",
        format!(
            "{} | Retry-After: {} | RateLimit: {} | RateLimit-Policy: {} | {}",
            sample.status,
            sample.header("retry-after").unwrap_or("-"),
            sample.header("ratelimit").unwrap_or("-"),
            sample.header("ratelimit-policy").unwrap_or("-"),
            sample.body.trim()
        ),
        sample.status == 429
            && retry_after.is_some_and(|s| (1..=2).contains(&s))
            && sample.header("ratelimit-policy") == Some("\"flash-sale\";q=40;w=80"),
    ));
    let products = http::get(&format!("{}/api/products", envoy.url("shop")), &[])?;
    steps.push(Step::new(
        "GET /api/products during the rush",
        format!("{} (not part of the sale's budget)", products.status),
        products.status == 200,
    ));
    // Retry-After is the wait rounded up: after it exactly one cell is back.
    let wait = retry_after.unwrap_or(2);
    std::thread::sleep(Duration::from_secs(wait));
    let first = http::get(&sale, &[])?;
    let second = http::get(&sale, &[])?;
    steps.push(Step::new(
        format!("wait Retry-After ({wait} s), GET flash-sale twice"),
        format!(
            "{} then {} (RateLimit: {})",
            first.status,
            second.status,
            first.header("ratelimit").unwrap_or("-")
        ),
        first.status == 200 && second.status == 429,
    ));
    std::thread::sleep(Duration::from_secs(2));
    let later = http::get(&sale, &[])?;
    steps.push(Step::new(
        "2 s later, GET flash-sale",
        format!("{}: the sale admits one shopper every 2 s", later.status),
        later.status == 200,
    ));
    let stats = envoy.flushed_stats()?;
    let (allowed, limited) = (stat(&stats, "allowed"), stat(&stats, "limited"));
    steps.push(Step::new(
        "Envoy stats (both workers, one limiter)",
        format!(
            "allowed {allowed}, limited {limited}; upstream saw {}",
            backend.hits("/api/products/flash-sale")
        ),
        u64::try_from(allowed).ok() == Some(backend.hits("/api/products/flash-sale")),
    ));
    Ok(steps)
}

/// Every shopper sends its requests at once, each on a new connection.
fn rush(url: &str) -> anyhow::Result<Vec<Response>> {
    let barrier = Barrier::new(SHOPPERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SHOPPERS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    (0..REQUESTS_EACH)
                        .map(|_| http::get(url, &[]))
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

/// A filter stat, wherever Envoy prefixes it.
fn stat(stats: &BTreeMap<String, i64>, name: &str) -> i64 {
    let suffix = format!("meshguard.rate_limit.rate-limit.flash-sale.{name}");
    stats
        .iter()
        .filter(|(stat, _)| stat.ends_with(&suffix))
        .map(|(_, value)| value)
        .sum()
}
