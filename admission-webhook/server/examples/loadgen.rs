//! Load generator for `cargo xtask bench-webhook`: sends AdmissionReview JSON over kept-alive TLS
//! connections to a running webhook and prints one JSON line of results.
//!
//! ```text
//! loadgen --addr 127.0.0.1:8443 --ca ca.crt --reviews a.json,b.json saturate --connections 32 --seconds 10
//! loadgen --addr 127.0.0.1:8443 --ca ca.crt --reviews a.json rate --per-second 500 --seconds 10
//! ```
//!
//! `saturate` keeps every connection busy (closed loop) and reports throughput; `rate` sends on a
//! fixed schedule (open loop) and measures each latency from the request's scheduled time, so a
//! stalled server shows up in the percentiles instead of slowing the schedule down. Both are
//! bounded in time and in requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use meshguard_admission_webhook::client::TlsClient;
use serde_json::json;

struct Args {
    addr: SocketAddr,
    ca: PathBuf,
    reviews: Vec<PathBuf>,
    mode: String,
    connections: usize,
    per_second: u64,
    seconds: u64,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        addr: "127.0.0.1:8443".parse()?,
        ca: PathBuf::new(),
        reviews: Vec::new(),
        mode: String::new(),
        connections: 16,
        per_second: 500,
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("missing value");
        match arg.as_str() {
            "--addr" => args.addr = value()?.parse()?,
            "--ca" => args.ca = value()?.into(),
            "--reviews" => args.reviews = value()?.split(',').map(PathBuf::from).collect(),
            "--connections" => args.connections = value()?.parse()?,
            "--per-second" => args.per_second = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "saturate" | "rate" => args.mode = arg,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(!args.reviews.is_empty(), "--reviews is required");
    anyhow::ensure!(!args.mode.is_empty(), "give a mode: saturate or rate");
    Ok(args)
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    denied: u64,
    /// Answers given by the failure policy (timeout, overload, internal error): not a verdict.
    failed: u64,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read(&args.ca)?;
    let client = TlsClient::new(args.addr, &ca, "localhost")?;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        args.reviews
            .iter()
            .map(std::fs::read)
            .collect::<Result<_, _>>()?,
    );
    let duration = Duration::from_secs(args.seconds);
    let max_requests = 2_000_000u64;
    let connections = args.connections.max(1);
    // Warm up: every connection established and one review each.
    let mut conns = Vec::new();
    for _ in 0..connections {
        let mut conn = client.connect().await?;
        conn.post("/validate", bodies[0].clone()).await?;
        conns.push(conn);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (worker, mut conn) in conns.into_iter().enumerate() {
        let bodies = bodies.clone();
        let mode = args.mode.clone();
        let per_second = args.per_second;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sent = 0u64;
            loop {
                let index = worker as u64 + sent * connections as u64;
                let scheduled = if mode == "rate" {
                    let at = started + Duration::from_secs_f64(index as f64 / per_second as f64);
                    if at.duration_since(started) >= duration {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    at
                } else {
                    if started.elapsed() >= duration {
                        break;
                    }
                    Instant::now()
                };
                if index >= max_requests {
                    break;
                }
                let body = bodies[(index as usize) % bodies.len()].clone();
                match conn.post("/validate", body).await {
                    Ok(reply) if reply.status == 200 => {
                        if contains(&reply.body, b"\"allowed\":false") {
                            tally.denied += 1;
                        }
                        if contains(&reply.body, b"\"code\":500")
                            || contains(&reply.body, b"could not be reviewed")
                        {
                            tally.failed += 1;
                        }
                        tally.latencies.push(scheduled.elapsed());
                    }
                    _ => tally.errors += 1,
                }
                sent += 1;
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.latencies.extend(tally.latencies);
        all.errors += tally.errors;
        all.denied += tally.denied;
        all.failed += tally.failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort();
    let ok = all.latencies.len() as f64;
    println!(
        "{}",
        json!({
            "mode": args.mode,
            "connections": connections,
            "seconds": elapsed,
            "requests": all.latencies.len(),
            "errors": all.errors,
            "denied": all.denied,
            "failed": all.failed,
            "reviews_per_second": ok / elapsed,
            "p50_ms": percentile(&all.latencies, 0.50),
            "p90_ms": percentile(&all.latencies, 0.90),
            "p99_ms": percentile(&all.latencies, 0.99),
            "max_ms": percentile(&all.latencies, 1.0),
        })
    );
    Ok(())
}
