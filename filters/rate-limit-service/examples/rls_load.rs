//! A load generator for the rate-limit service, driven by `cargo xtask bench-rls`: RLS v3
//! `ShouldRateLimit` over gRPC (tonic with Envoy's own types, HTTP/2 as Envoy sends it), one JSON
//! line of results on stdout.
//!
//! ```text
//! rls_load --addr 127.0.0.1:8081 --domain bench --seconds 10 saturate --concurrency 64
//! rls_load --addr 127.0.0.1:8081 --domain bench --seconds 10 rate --per-second 2000
//! rls_load --addr 127.0.0.1:8081 --domain bench --seconds 10 flood --keys 100000
//! ```
//!
//! - `saturate`: a closed loop on `concurrency` tasks over several HTTP/2 connections; decisions
//!   per second and the latency of each.
//! - `rate`: an open loop at a fixed rate: every request is its own task, started at its
//!   scheduled time whatever the earlier ones do, so a stall shows in the tail instead of slowing
//!   the load. Latency is measured from the send; how late the sends were against the schedule
//!   (Tokio's timers tick in milliseconds) is reported apart, as `schedule_lag_p99_ms`.
//! - `flood`: `keys` distinct descriptor values, each once, as fast as `concurrency` allows.
//!
//! Every loop is bounded in time and count. Requests carry one descriptor `(<key>, user-N)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    RateLimitDescriptor, rate_limit_descriptor::Entry,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
struct Args {
    /// The service's gRPC address.
    #[arg(long)]
    addr: String,
    /// The domain to ask about.
    #[arg(long, default_value = "bench")]
    domain: String,
    /// Seconds of load (an upper bound for `flood`).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Distinct values the requests cycle through (saturate, rate).
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// The descriptor key (its value is `user-N`).
    #[arg(long, default_value = "user")]
    key: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Closed loop: as many decisions as `concurrency` tasks get answered.
    Saturate {
        /// Tasks, each waiting for its answer before the next request.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Open loop at a fixed rate.
    Rate {
        /// Requests per second.
        #[arg(long, default_value_t = 2_000)]
        per_second: u64,
    },
    /// Distinct keys, each once.
    Flood {
        /// How many distinct keys.
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Tasks.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    over: AtomicU64,
    errors: AtomicU64,
    latencies: std::sync::Mutex<Vec<u32>>,
    lags: std::sync::Mutex<Vec<u32>>,
}

impl Tally {
    fn record(&self, result: &Result<i32, tonic::Status>, latency: Duration) {
        match result {
            Ok(2) => self.over.fetch_add(1, Ordering::Relaxed),
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.errors.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(micros);
        }
    }

    fn lag(&self, lag: Duration) {
        if let Ok(mut lags) = self.lags.lock() {
            lags.push(u32::try_from(lag.as_micros()).unwrap_or(u32::MAX));
        }
    }

    fn report(&self, mode: &str, elapsed: Duration) -> serde_json::Value {
        let mut latencies = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        latencies.sort_unstable();
        let mut lags = self.lags.lock().map(|l| l.clone()).unwrap_or_default();
        lags.sort_unstable();
        let quantile = |values: &[u32], q: f64| {
            if values.is_empty() {
                return 0.0;
            }
            let index = ((values.len() as f64 - 1.0) * q).round() as usize;
            f64::from(values[index.min(values.len() - 1)]) / 1_000.0
        };
        let pick = |q: f64| quantile(&latencies, q);
        let requests = latencies.len() as f64;
        serde_json::json!({
            "mode": mode,
            "requests": latencies.len(),
            "ok": self.ok.load(Ordering::Relaxed),
            "over_limit": self.over.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "seconds": elapsed.as_secs_f64(),
            "per_second": requests / elapsed.as_secs_f64().max(1e-9),
            "p50_ms": pick(0.50),
            "p99_ms": pick(0.99),
            "max_ms": pick(1.0),
            "schedule_lag_p99_ms": quantile(&lags, 0.99),
        })
    }
}

fn request(domain: &str, key: &str, user: u64) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_string(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: key.to_string(),
                value: format!("user-{user}"),
            }],
            ..Default::default()
        }],
        hits_addend: 1,
    }
}

async fn ask(
    client: &mut RateLimitServiceClient<Channel>,
    request: RateLimitRequest,
) -> Result<i32, tonic::Status> {
    client
        .should_rate_limit(request)
        .await
        .map(|response| response.into_inner().overall_code)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = Channel::from_shared(format!("http://{}", args.addr))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await?;
        clients.push(RateLimitServiceClient::new(channel));
    }
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mode = match args.mode {
        Mode::Saturate { concurrency } => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for task in 0..concurrency.max(1) {
                let mut client = clients[task % clients.len()].clone();
                let (tally, next) = (tally.clone(), next.clone());
                let (domain, key) = (args.domain.clone(), args.key.clone());
                let users = args.users.max(1);
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let user = next.fetch_add(1, Ordering::Relaxed) % users;
                        let sent = Instant::now();
                        let result = ask(&mut client, request(&domain, &key, user)).await;
                        tally.record(&result, sent.elapsed());
                    }
                }));
            }
            for task in tasks {
                task.await?;
            }
            "saturate"
        }
        Mode::Rate { per_second } => {
            let interval = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
            let total = per_second.saturating_mul(args.seconds);
            let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
            for i in 0..total {
                let scheduled = started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                let mut client = clients[(i as usize) % clients.len()].clone();
                let (tally, domain, key) = (tally.clone(), args.domain.clone(), args.key.clone());
                let user = i % args.users.max(1);
                tasks.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    tally.lag(sent.saturating_duration_since(scheduled));
                    let result = ask(&mut client, request(&domain, &key, user)).await;
                    tally.record(&result, sent.elapsed());
                }));
            }
            for task in tasks {
                task.await?;
            }
            "rate"
        }
        Mode::Flood { keys, concurrency } => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for task in 0..concurrency.max(1) {
                let mut client = clients[task % clients.len()].clone();
                let (tally, next) = (tally.clone(), next.clone());
                let (domain, key) = (args.domain.clone(), args.key.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= keys || Instant::now() > deadline {
                            break;
                        }
                        let sent = Instant::now();
                        let result = ask(&mut client, request(&domain, &key, n)).await;
                        tally.record(&result, sent.elapsed());
                    }
                }));
            }
            for task in tasks {
                task.await?;
            }
            "flood"
        }
    };
    println!("{}", tally.report(mode, started.elapsed()));
    Ok(())
}
