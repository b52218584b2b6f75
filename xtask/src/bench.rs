//! The benchmark: one Envoy (one worker) with one listener per configuration, the programmable
//! upstream, and wrk as the load generator. Configurations run interleaved in rounds within one
//! run, so a noisy shared machine affects every row alike; the table reports each row against
//! the `no filter` baseline measured in the same run; a row's added p50 is the median over rounds
//! of its p50 minus the baseline's p50 in the same round (paired, so drift between rounds cancels).
//!
//! Two passes per row and round: latency with one connection (p50/p99, the cost one request
//! pays, and Envoy's CPU per request over that pass) and throughput with several connections
//! (requests/s at saturation). With `--calibrate`, rows of the floor filter making a few extra
//! hostcalls of one kind show what each kind costs in this Envoy on this machine.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{filter_module, target_dir};
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream};
use serde::Serialize;

use crate::build::{build_filters, untrimmed_module_path};
use crate::process::{output, run as run_command};

mod authz;
mod edge;
mod global;
mod jwt;

/// Command-line options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Total time budget for the measured passes, in seconds.
    #[arg(long, default_value_t = 80)]
    budget: u64,
    /// Rounds over all configurations.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Connections for the throughput pass.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Only rows whose name contains this text, or one of several texts separated by commas
    /// (the baseline and the floor always run).
    #[arg(long)]
    only: Option<String>,
    /// Also run the calibration rows: the floor plus four header reads (present, absent), four
    /// clock reads, one header-map read, one shared-data update, four header writes: what each
    /// hostcall costs.
    #[arg(long)]
    calibrate: bool,
    /// Do not pin Envoy to the first CPU and the load generator and upstream to the others
    /// (pinning is the default with two CPUs or more: runs are steadier that way).
    #[arg(long)]
    no_pin: bool,
    /// Envoys started per configuration for the resident-memory comparison of the edge rows
    /// (`--concurrency 2`; 0 skips it).
    #[arg(long, default_value_t = 3)]
    rss_repetitions: usize,
}

/// Pins this process (the upstream, and wrk which inherits it) to every CPU but the first and
/// returns the CPU list for Envoy: the first. `None` with fewer than two CPUs or when `taskset`
/// is missing.
fn pin() -> Option<String> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    if cpus < 2 {
        return None;
    }
    let rest = format!("1-{}", cpus - 1);
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &rest, &std::process::id().to_string()])
        .output()
        .ok()?;
    if !pinned.status.success() {
        eprintln!(
            "meshguard: not pinning CPUs: {}",
            String::from_utf8_lossy(&pinned.stderr).trim()
        );
        return None;
    }
    eprintln!("meshguard: Envoy on CPU 0; upstream and wrk on CPUs {rest}");
    Some("0".to_string())
}

/// One configuration under test.
struct Row {
    name: String,
    listener: Listener,
    headers: Vec<(String, String)>,
    path: String,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Sample {
    requests: u64,
    duration_us: u64,
    errors: u64,
    non2xx: u64,
    p50: f64,
    p99: f64,
    /// CPU Envoy's threads used during the pass.
    envoy_cpu: Duration,
}

#[derive(Debug, Serialize)]
struct Result {
    name: String,
    requests_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    added_p50_us: f64,
    /// The middle half of the per-round added p50s (25th and 75th percentile): how far the
    /// machine's noise moved them.
    added_p50_iqr_us: (f64, f64),
    /// Added p50 over the trivial filter's added p50: the issues' targets are stated this way.
    added_vs_floor: f64,
    /// Envoy's CPU per request in the latency passes (all rounds), microseconds.
    envoy_cpu_us: f64,
    /// That minus the `no filter` row's: the work the filter adds to Envoy.
    added_cpu_us: f64,
    /// Added CPU over the trivial filter's added CPU.
    added_cpu_vs_floor: f64,
    p50_ratio: f64,
    rps_ratio: f64,
    errors: u64,
    /// The latency pass's p50 in each round, in round order: the spread behind the medians.
    p50_rounds: Vec<f64>,
}

/// The floor filter making extra hostcalls (`stamp`'s `calibration` block), sent the user
/// header the filter rows get too.
fn calibration_rows() -> anyhow::Result<Vec<Row>> {
    let rows = [
        (
            "4 header reads, present",
            r#"{"headerReads":["x-user-id","x-user-id","x-user-id","x-user-id"]}"#,
        ),
        (
            "4 header reads, absent",
            r#"{"headerReads":["x-a","x-b","x-c","x-d"]}"#,
        ),
        ("4 clock reads", r#"{"clockReads":4}"#),
        ("1 header map read", r#"{"headerMapReads":1}"#),
        (
            "1 shared-data update (read + CAS write)",
            r#"{"sharedDataUpdates":1}"#,
        ),
        (
            "4 header writes",
            r#"{"headerWrites":["x-w1","x-w2","x-w3","x-w4"]}"#,
        ),
    ];
    rows.into_iter()
        .enumerate()
        .map(|(index, (what, calibration))| {
            let name = format!("calibration{index}");
            Ok(Row {
                name: format!("calibration: floor + {what}"),
                listener: Listener::new(&name)
                    .filter(FilterSpec::wasm(
                        &name,
                        filter_module("meshguard_stamp")?,
                        format!(r#"{{"calibration":{calibration}}}"#),
                    ))
                    .route(Route::prefix("/", "backend")),
                headers: vec![("x-user-id".to_string(), "user-0042".to_string())],
                path: "/api/products".to_string(),
            })
        })
        .collect()
}

/// A filter module as cargo built it, with every export the SDK defines (see `exports`).
fn untrimmed_module(crate_name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = untrimmed_module_path(crate_name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask build-filters`",
            path.display()
        );
    }
    Ok(path)
}

/// A canary row: the routes only match the header the filter sets, so a request it failed to
/// route is an error.
fn canary(name: &str, listener: &str, config: &str) -> anyhow::Result<Row> {
    Ok(Row {
        name: name.to_string(),
        listener: Listener::new(listener)
            .filter(FilterSpec::wasm(
                listener,
                filter_module("meshguard_canary")?,
                config,
            ))
            .route(Route::prefix("/", "backend").header("x-mesh-version", "v1"))
            .route(Route::prefix("/", "backend").header("x-mesh-version", "v2")),
        headers: vec![("x-user-id".to_string(), "user-0042".to_string())],
        path: "/api/products".to_string(),
    })
}

/// The realistic canary: sticky user header with a cookie fallback, a gated override, 90/10.
const CANARY: &str = r#"{"services":[{"name":"product","match":{"hosts":["*"],"prefix":"/api/products"},
    "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10}],
    "stickyKey":[{"header":"x-user-id"},{"cookie":"session"}],
    "overrides":{"header":"x-canary-version",
                 "onlyWithHeader":{"name":"x-meshguard-internal"}}}]}"#;

/// The circuit breaker in its steady state: closed, count window of 100 calls, failure-rate and
/// slow-call thresholds.
const BREAKER: &str = r#"{"breakers":[{"name":"product","match":{"prefix":"/api/products"},
    "window":{"type":"count","size":100},"minimumCalls":20,
    "failureRateThreshold":50,"slowCall":{"duration":"2s","rateThreshold":80},
    "openFor":"30s","halfOpen":{"permittedCalls":5,"successToClose":3}}]}"#;

/// The rate limiter in its steady state: one limit keyed by a header, never exceeded.
const RATE_LIMIT: &str = r#"{"limits":[{"name":"per-user","key":[{"header":"x-user-id"}],
    "rate":{"requests":1000000,"per":"second"}}]}"#;

/// Envoy's native token bucket at the rate limiter's rate, enabled and enforced for every
/// request.
fn local_ratelimit() -> FilterSpec {
    FilterSpec::native(
        "envoy.filters.http.local_ratelimit",
        serde_json::json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_local_ratelimit",
            "token_bucket": {
                "max_tokens": 1_000_000,
                "tokens_per_fill": 1_000_000,
                "fill_interval": "1s"
            },
            "filter_enabled": {
                "runtime_key": "local_rate_limit_enabled",
                "default_value": {"numerator": 100, "denominator": "HUNDRED"}
            },
            "filter_enforced": {
                "runtime_key": "local_rate_limit_enforced",
                "default_value": {"numerator": 100, "denominator": "HUNDRED"}
            }
        }),
    )
}

fn rows() -> anyhow::Result<Vec<Row>> {
    let plain = |name: &str, listener: Listener| Row {
        name: name.to_string(),
        listener: listener.route(Route::prefix("/", "backend")),
        headers: Vec::new(),
        path: "/api/products".to_string(),
    };
    let stamp = |name: &str, listener: &str, module: std::path::PathBuf| {
        plain(
            name,
            Listener::new(listener).filter(FilterSpec::wasm(
                listener,
                module,
                r#"{"header":"x-meshguard-stamp","value":"1"}"#,
            )),
        )
    };
    Ok(vec![
        plain("no filter", Listener::new("nofilter")),
        stamp(
            "trivial wasm filter (floor)",
            "stamp",
            filter_module("meshguard_stamp")?,
        ),
        // The same floor as cargo builds it, before `build-filters` removes the exports it
        // never needs: what every SDK callback Envoy then calls per request costs.
        stamp(
            "trivial wasm filter, every SDK export kept",
            "stampuntrimmed",
            untrimmed_module("meshguard_stamp")?,
        ),
        // A realistic canary: sticky user header, gated override header, 90/10.
        canary("canary (sticky header, 90/10)", "canary", CANARY)?,
        // The same filter with only what a canary must do: one sticky header for every host and
        // path, no tester overrides (each configured feature reads one more header).
        canary(
            "canary (sticky header only, 90/10)",
            "canaryminimal",
            r#"{"services":[{"name":"product","match":{"hosts":["*"]},
                "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10}],
                "stickyKey":[{"header":"x-user-id"}]}]}"#,
        )?,
        // The circuit breaker in its steady state: closed, every request admitted after a
        // shared-data read and every outcome written back with CAS (count window of 100 calls,
        // failure-rate and slow-call thresholds).
        plain(
            "circuit breaker (closed, count window 100)",
            Listener::new("circuitbreaker").filter(FilterSpec::wasm(
                "circuit-breaker",
                filter_module("meshguard_circuit_breaker")?,
                BREAKER,
            )),
        ),
        // The rate limiter in its steady state: one limit keyed by a header, never exceeded
        // (one GCRA read + CAS write of the key's bucket in shared data per request).
        Row {
            name: "rate limit (1 limit keyed by header)".to_string(),
            listener: Listener::new("ratelimit")
                .filter(FilterSpec::wasm(
                    "rate-limit",
                    filter_module("meshguard_rate_limit")?,
                    RATE_LIMIT,
                ))
                .route(Route::prefix("/", "backend")),
            headers: vec![("x-user-id".to_string(), "user-0042".to_string())],
            path: "/api/products".to_string(),
        },
        // Envoy's native token bucket at the same rate, enabled and enforced for every request.
        plain(
            "native local_ratelimit (same rate)",
            Listener::new("localratelimit").filter(local_ratelimit()),
        ),
    ]
    .into_iter()
    .chain(jwt::rows()?)
    .chain(edge::rows()?)
    .chain(edge::stage_rows()?)
    .chain(global::rows()?)
    .chain(authz::rows()?)
    .collect())
}

/// Installs wrk from Debian's packages if it is missing.
fn ensure_wrk() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("meshguard: installing the load generator wrk with apt-get");
    let install = || run_command(Command::new("apt-get").args(["install", "-y", "-q", "wrk"]));
    if install().is_err() {
        run_command(Command::new("apt-get").args(["update", "-q"]))?;
        install().context("installing wrk (needs root and Debian's package lists)")?;
    }
    Ok(())
}

const REPORT_LUA: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('MESHGUARD {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50":%.2f,"p99":%.2f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"#;

fn wrk(
    url: &str,
    headers: &[(String, String)],
    connections: u32,
    seconds: u64,
    script: &std::path::Path,
) -> anyhow::Result<Sample> {
    let mut command = Command::new("wrk");
    command
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(script);
    for (name, value) in headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command.arg(url);
    let stdout = output(&mut command)?;
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("MESHGUARD "))
        .with_context(|| format!("wrk printed no report: {stdout}"))?;
    let value: serde_json::Value = serde_json::from_str(line)?;
    let num = |key: &str| value[key].as_f64().unwrap_or(0.0);
    Ok(Sample {
        requests: num("requests") as u64,
        duration_us: num("duration_us") as u64,
        errors: num("errors") as u64,
        non2xx: num("non2xx") as u64,
        p50: num("p50"),
        p99: num("p99"),
        envoy_cpu: Duration::ZERO,
    })
}

/// Fits the run into `budget` seconds: one 1 s warm-up per row, then `rounds` of two passes per
/// row. Rounds shrink (down to one) before passes get shorter than a second.
fn plan(budget: u64, rows: u64, max_rounds: u64) -> (u64, u64) {
    let measured = budget.saturating_sub(rows).max(2 * rows);
    let rounds = (measured / (2 * rows.max(1))).clamp(1, max_rounds.max(1));
    let seconds = (measured / (2 * rows.max(1) * rounds)).max(1);
    (rounds, seconds)
}

/// The `q` quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(0.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs the benchmark.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure_wrk()?;
    build_filters()?;
    let mut rows = rows()?;
    if args.calibrate {
        // Right after the floor, which they extend.
        rows.splice(2..2, calibration_rows()?);
    }
    if let Some(only) = &args.only {
        let mut index = 0;
        rows.retain(|row| {
            index += 1;
            // The baseline and the trivial-filter floor: every target is stated against them.
            index <= 2
                || row.name.starts_with("calibration:")
                || only.split(',').any(|text| row.name.contains(text.trim()))
        });
    }
    let cpus = if args.no_pin { None } else { pin() };
    let upstream = Upstream::start("backend")?;
    let mut bootstrap = Bootstrap::new().cluster(Cluster::new("backend", upstream.addr()));
    // The global rows call a rate-limit service: started only when they run.
    let rls = if rows.iter().any(|row| row.name.starts_with(global::PREFIX)) {
        let service = global::Service::start()?;
        bootstrap = bootstrap.cluster(service.cluster());
        Some(service)
    } else {
        None
    };
    for row in &rows {
        bootstrap = bootstrap.listener(row.listener.clone());
    }
    let envoy = Envoy::start_with(
        &bootstrap,
        &meshguard_testkit::envoy::Options {
            concurrency: 1,
            cpus: cpus.clone(),
            ..Default::default()
        },
    )?;
    let script = target_dir().join("bench").join("report.lua");
    fs::create_dir_all(script.parent().unwrap_or(&target_dir()))?;
    fs::write(&script, REPORT_LUA)?;
    // Rows that send a different token on every request get their own script (bench/jwt.rs).
    let scripts = rows
        .iter()
        .map(|row| jwt::script(&row.listener.name, &script, REPORT_LUA))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let (rounds, seconds) = plan(args.budget, rows.len() as u64, u64::from(args.rounds));
    println!(
        "{} configurations x {rounds} rounds x 2 passes of {seconds}s (latency: 1 connection; throughput: {} connections)",
        rows.len(),
        args.connections
    );
    let started = Instant::now();
    for (row, script) in rows.iter().zip(&scripts) {
        // Warm-up: lets V8 tier up the module before anything is measured.
        wrk(
            &format!("{}{}", envoy.url(&row.listener.name), row.path),
            &row.headers,
            1,
            1,
            script,
        )?;
    }
    let mut latency: Vec<Vec<Sample>> = vec![Vec::new(); rows.len()];
    let mut throughput: Vec<Vec<Sample>> = vec![Vec::new(); rows.len()];
    for round in 0..rounds {
        for (index, row) in rows.iter().enumerate() {
            let url = format!("{}{}", envoy.url(&row.listener.name), row.path);
            let cpu_before = envoy.cpu_time()?;
            let mut sample = wrk(&url, &row.headers, 1, seconds, &scripts[index])?;
            sample.envoy_cpu = envoy.cpu_time()?.saturating_sub(cpu_before);
            latency[index].push(sample);
            throughput[index].push(wrk(
                &url,
                &row.headers,
                args.connections,
                seconds,
                &scripts[index],
            )?);
        }
        eprintln!(
            "round {}/{rounds} done ({:.0?})",
            round + 1,
            started.elapsed()
        );
    }

    let mut results = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let rps = {
            let requests: u64 = throughput[index].iter().map(|s| s.requests).sum();
            let micros: u64 = throughput[index].iter().map(|s| s.duration_us).sum();
            requests as f64 / (micros.max(1) as f64 / 1e6)
        };
        let p50 = median(&mut latency[index].iter().map(|s| s.p50).collect::<Vec<_>>());
        let p99 = median(&mut latency[index].iter().map(|s| s.p99).collect::<Vec<_>>());
        let errors = latency[index]
            .iter()
            .chain(&throughput[index])
            .map(|s| s.errors + s.non2xx)
            .sum();
        results.push(Result {
            name: row.name.clone(),
            requests_per_second: rps,
            p50_us: p50,
            p99_us: p99,
            added_p50_us: 0.0,
            added_p50_iqr_us: (0.0, 0.0),
            envoy_cpu_us: {
                let requests: u64 = latency[index].iter().map(|s| s.requests).sum();
                let cpu: Duration = latency[index].iter().map(|s| s.envoy_cpu).sum();
                cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
            },
            added_cpu_us: 0.0,
            added_cpu_vs_floor: 0.0,
            added_vs_floor: 0.0,
            p50_ratio: 1.0,
            rps_ratio: 1.0,
            errors,
            p50_rounds: latency[index].iter().map(|s| s.p50).collect(),
        });
    }
    let (base_p50, base_rps, base_cpu) = (
        results[0].p50_us,
        results[0].requests_per_second,
        results[0].envoy_cpu_us,
    );
    for (index, result) in results.iter_mut().enumerate() {
        // Paired within each round (the no-filter row ran minutes apart at worst, seconds at
        // best): the machine's drift between rounds cancels; the median drops outlier rounds.
        let mut added: Vec<f64> = latency[index]
            .iter()
            .zip(&latency[0])
            .map(|(sample, base)| sample.p50 - base.p50)
            .collect();
        added.sort_by(f64::total_cmp);
        result.added_p50_us = median(&mut added);
        result.added_p50_iqr_us = (quantile(&added, 0.25), quantile(&added, 0.75));
        result.p50_ratio = result.p50_us / base_p50.max(f64::EPSILON);
        result.added_cpu_us = result.envoy_cpu_us - base_cpu;
        result.rps_ratio = result.requests_per_second / base_rps.max(f64::EPSILON);
    }
    let floor = results
        .iter()
        .find(|r| r.name.contains("floor"))
        .map_or((f64::NAN, f64::NAN), |r| (r.added_p50_us, r.added_cpu_us));
    for result in &mut results {
        result.added_vs_floor = result.added_p50_us / floor.0;
        result.added_cpu_vs_floor = result.added_cpu_us / floor.1;
    }
    let mut table = render(&results);
    table.push_str(&render_stages(&results));
    table.push_str(&global::render(&results));
    drop(rls);
    let edge = results.iter().any(|r| r.name.starts_with(edge::PREFIX));
    if edge && args.rss_repetitions > 0 {
        drop(envoy);
        let rss = edge::rss(&upstream, args.rss_repetitions, cpus)?;
        table.push_str(&render_edge(&results, &rss));
        fs::write(
            target_dir().join("bench").join("rss.json"),
            serde_json::to_vec_pretty(&rss)?,
        )?;
    } else if edge {
        table.push_str(&render_edge(&results, &[]));
    }
    if results.iter().any(|r| r.name.starts_with("authz")) {
        let _ = writeln!(table, "\n{}", authz::memory()?);
    }
    println!("\n{table}");
    let dir = target_dir().join("bench");
    fs::write(dir.join("results.md"), &table)?;
    fs::write(
        dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    println!(
        "wrote {} and results.json",
        dir.join("results.md").display()
    );
    if results.iter().any(|r| r.errors > 0) {
        bail!("some requests failed during the benchmark (see the errors column)");
    }
    Ok(())
}

/// The edge comparison: the pipeline against the chained modules and the native chain, from the
/// rows of this run, and the resident memory with two workers.
fn render_edge(results: &[Result], rss: &[edge::Rss]) -> String {
    let find = |text: &str| {
        results
            .iter()
            .find(|r| r.name.starts_with(edge::PREFIX) && r.name.contains(text))
    };
    let mut out = String::new();
    if let Some(base) = find("authz baseline") {
        let _ = writeln!(
            out,
            "\n| edge: the pipeline's authz stage | added p50 over the pipeline without it (target <= 30 µs, cache off) | added Envoy CPU / request |\n|---|---:|---:|"
        );
        // RBAC, then the policies that show where a cache-off decision's cost goes.
        for text in [
            "RBAC, cache off",
            "RBAC, cache on",
            "`allow := true`, cache off",
            "method and path only, cache off",
        ] {
            if let Some(row) = find(&format!("authz stage: meshguard_with_authz + authz {text}")) {
                let _ = writeln!(
                    out,
                    "| {text} | {:+.1} µs ({:.1} - {:.1} µs p50) | {:+.1} µs |",
                    row.p50_us - base.p50_us,
                    row.p50_us,
                    base.p50_us,
                    row.added_cpu_us - base.added_cpu_us,
                );
            }
        }
    }
    if let (Some(chain), Some(pipeline), Some(native)) =
        (find("chained"), find("pipeline, the same"), find("native"))
    {
        let _ = writeln!(
            out,
            "\n| edge: pipeline against | added p50 | added Envoy CPU / request | req/s |\n|---|---:|---:|---:|"
        );
        for (name, other) in [("four modules chained", chain), ("native chain", native)] {
            let _ = writeln!(
                out,
                "| {name} | {:+.1} / {:+.1} µs = {:.2}x | {:+.1} / {:+.1} µs = {:.2}x | {:.0} / {:.0} = {:.2}x |",
                pipeline.added_p50_us,
                other.added_p50_us,
                pipeline.added_p50_us / other.added_p50_us,
                pipeline.added_cpu_us,
                other.added_cpu_us,
                pipeline.added_cpu_us / other.added_cpu_us,
                pipeline.requests_per_second,
                other.requests_per_second,
                pipeline.requests_per_second / other.requests_per_second,
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| Envoy RSS, --concurrency 2 | MiB (median) | added over no filter | samples |\n|---|---:|---:|---|"
    );
    for row in rss {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:+.1} | {} |",
            row.name,
            row.mib,
            row.added_mib,
            row.samples
                .iter()
                .map(|s| format!("{s:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let added = |text: &str| {
        rss.iter()
            .find(|r| r.name.contains(text))
            .map(|r| r.added_mib)
    };
    if let (Some(pipeline), Some(chain)) = (added("meshguard pipeline"), added("chained")) {
        let _ = writeln!(
            out,
            "\npipeline's added RSS / the chain's: {pipeline:+.1} / {chain:+.1} MiB = {:.2}x",
            pipeline / chain
        );
    }
    out
}

/// The stage rows against the floor and the whole pipeline: each stage's cost over the trivial
/// filter, their sum, and what the pipeline with all four adds over the floor (the difference is
/// what running the stages together saves or costs).
fn render_stages(results: &[Result]) -> String {
    let stages: Vec<&Result> = results
        .iter()
        .filter(|r| r.name.starts_with(edge::STAGE_PREFIX))
        .collect();
    let floor = results.iter().find(|r| r.name.contains("floor"));
    let (Some(floor), false) = (floor, stages.is_empty()) else {
        return String::new();
    };
    let mut out = String::from(
        "\n| pipeline stage | added p50 over the floor µs | added Envoy CPU over the floor µs/req |\n|---|---:|---:|\n",
    );
    let (mut p50, mut cpu) = (0.0, 0.0);
    for stage in &stages {
        let (p, c) = (
            stage.added_p50_us - floor.added_p50_us,
            stage.added_cpu_us - floor.added_cpu_us,
        );
        (p50, cpu) = (p50 + p, cpu + c);
        let name = stage.name.trim_start_matches(edge::STAGE_PREFIX);
        let _ = writeln!(out, "| {name} | {p:+.1} | {c:+.1} |");
    }
    let _ = writeln!(out, "| sum of the stages | {p50:+.1} | {cpu:+.1} |");
    if let Some(pipeline) = results
        .iter()
        .find(|r| r.name.starts_with(edge::PREFIX) && r.name.contains("pipeline"))
    {
        let _ = writeln!(
            out,
            "| the pipeline with all four | {:+.1} | {:+.1} |",
            pipeline.added_p50_us - floor.added_p50_us,
            pipeline.added_cpu_us - floor.added_cpu_us
        );
    }
    out
}

fn render(results: &[Result]) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| configuration | req/s | p50 µs | p99 µs | added p50 µs | per-round middle half | added / floor's added | Envoy CPU µs/req | added CPU / floor's | p50 / no filter | req/s / no filter | errors |"
    );
    let _ = writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.1} | {:.1} | {:+.1} | {:+.1} to {:+.1} | {:.2}x | {:.1} ({:+.1}) | {:.2}x | {:.2}x | {:.2}x | {} |",
            r.name,
            r.requests_per_second,
            r.p50_us,
            r.p99_us,
            r.added_p50_us,
            r.added_p50_iqr_us.0,
            r.added_p50_iqr_us.1,
            r.added_vs_floor,
            r.envoy_cpu_us,
            r.added_cpu_us,
            r.added_cpu_vs_floor,
            r.p50_ratio,
            r.rps_ratio,
            r.errors
        );
    }
    table
}
