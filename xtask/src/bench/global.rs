//! The global rows: meshguard's global limit (the rate-limit module's gRPC callout to an RLS v3
//! service) against Envoy's native `envoy.filters.http.ratelimit`, both asking the same
//! rate-limit service (meshguard's, release build, on a real Redis) with the same descriptor,
//! in the same run. The limit is never reached, so every request is one `ShouldRateLimit`
//! round trip and one Redis script; the comparison ([`render`]) is the added p50 and the added
//! Envoy CPU per request, as a ratio (the issue's target: meshguard ≤ 1.2x native).

use std::fmt::Write as _;

use meshguard_testkit::paths::{filter_module, target_dir};
use meshguard_testkit::rls::{header_action, native_filter};
use meshguard_testkit::{Cluster, FilterSpec, Listener, RateLimitService, Redis, Route};

use super::{Result, Row};
use crate::process::{cargo, run as run_command};

/// Row name prefix, for `--only global`.
pub(super) const PREFIX: &str = "global: ";

/// The cluster both rows call the service through.
const CLUSTER: &str = "ratelimit";

/// The service's limit: per user, far above anything a benchmark sends.
const SERVICE_CONFIG: &str = "domain: bench
descriptors:
  - key: x-user-id
    rate_limit:
      unit: second
      requests_per_unit: 1000000000
";

const FILTER_CONFIG: &str = r#"{"limits":[{"name":"per-user","key":[{"header":"x-user-id"}],
    "global":{"cluster":"ratelimit","domain":"bench","timeout":"1s","failureMode":"deny"}}]}"#;

/// The two global rows.
pub(super) fn rows() -> anyhow::Result<Vec<Row>> {
    let row = |name: &str, listener: Listener| Row {
        name: format!("{PREFIX}{name}"),
        listener: listener.route(Route::prefix("/", "backend")),
        headers: vec![("x-user-id".to_string(), "user-0042".to_string())],
        path: "/api/products".to_string(),
    };
    Ok(vec![
        row(
            "meshguard global limit (gRPC callout to the RLS)",
            Listener::new("globalmeshguard").filter(FilterSpec::wasm(
                "rate-limit-global",
                filter_module("meshguard_rate_limit")?,
                FILTER_CONFIG,
            )),
        ),
        row(
            "native envoy.filters.http.ratelimit (same RLS, same descriptor)",
            Listener::new("globalnative")
                .filter(native_filter(
                    "bench",
                    CLUSTER,
                    std::time::Duration::from_secs(1),
                    true,
                ))
                .rate_limit(header_action("x-user-id", "x-user-id")),
        ),
    ])
}

/// Redis and the rate-limit service the global rows call, while they run.
pub(super) struct Service {
    /// Kept for its lifetime: the service counts in it.
    _redis: Redis,
    service: RateLimitService,
}

impl Service {
    /// Builds (release) and starts the service on a fresh Redis. `MESHGUARD_RLS_BINARY`
    /// names another build (a smoke run with the debug one, on a busy machine): both rows call
    /// the same service, so the ratio still compares the filters.
    pub(super) fn start() -> anyhow::Result<Self> {
        let binary = match std::env::var_os("MESHGUARD_RLS_BINARY") {
            Some(binary) => std::path::PathBuf::from(binary),
            None => {
                run_command(cargo().args([
                    "build",
                    "--release",
                    "-p",
                    "meshguard-rate-limit-service",
                    "--bin",
                    "meshguard-rate-limit-service",
                ]))?;
                target_dir()
                    .join("release")
                    .join("meshguard-rate-limit-service")
            }
        };
        println!(
            "rate-limit service for the global rows: {}",
            binary.display()
        );
        let dir = target_dir().join("bench").join("global");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("ratelimit.yaml");
        std::fs::write(&config, SERVICE_CONFIG)?;
        let redis = Redis::start()?;
        let service = RateLimitService::start(&binary, &config, &redis.url(), &[])?;
        Ok(Self {
            _redis: redis,
            service,
        })
    }

    /// The Envoy cluster of the service.
    pub(super) fn cluster(&self) -> Cluster {
        Cluster::grpc(CLUSTER, vec![self.service.grpc_addr()])
    }
}

/// meshguard's global limit against the native filter, from the rows of this run.
pub(super) fn render(results: &[Result]) -> String {
    let find = |text: &str| {
        results
            .iter()
            .find(|r| r.name.starts_with(PREFIX) && r.name.contains(text))
    };
    let mut out = String::new();
    if let (Some(ours), Some(native)) = (find("meshguard"), find("native")) {
        let _ = writeln!(
            out,
            "\n| global limit (same RLS) | added p50 | added Envoy CPU / request | req/s |\n|---|---:|---:|---:|"
        );
        let _ = writeln!(
            out,
            "| meshguard / native (target ≤ 1.2x) | {:+.1} / {:+.1} µs = {:.2}x | {:+.1} / {:+.1} µs = {:.2}x | {:.0} / {:.0} = {:.2}x |",
            ours.added_p50_us,
            native.added_p50_us,
            ours.added_p50_us / native.added_p50_us,
            ours.added_cpu_us,
            native.added_cpu_us,
            ours.added_cpu_us / native.added_cpu_us,
            ours.requests_per_second,
            native.requests_per_second,
            ours.requests_per_second / native.requests_per_second,
        );
    }
    out
}
