//! `cargo xtask bench-host` runs this (release build): per-request cost of each repository
//! filter in the embedded host — requests per second through one VM — and module compile time
//! with and without the per-process cache. Rows run interleaved in rounds so machine noise
//! affects all alike; ratios are against the `host floor` row (a WAT module that only
//! continues) measured in the same run.

use std::time::{Duration, Instant};

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::{filter_module, target_dir};
use meshguard_wasm_host::{Plugin, PluginOptions, Request, WasmModule};
use serde_json::json;

struct Row {
    name: &'static str,
    bytes: Vec<u8>,
    config: String,
    request: Box<dyn Fn(u64) -> Request>,
}

fn module_bytes(crate_name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(filter_module(crate_name)?)?)
}

const FLOOR: &str = r#"(module
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32) (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size))) (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))"#;

fn rbac() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(
        meshguard_testkit::paths::workspace_root().join("policies/envoy-authz/rbac.rego"),
    )?)
}

/// A customer reading their own orders, with the payload the JWT filter leaves in filter state.
fn rbac_request(user: u64) -> Request {
    let payload = json!({"verified_jwt": {"sub": format!("user-{user}"),
        "realm_access": {"roles": ["customer"]}}});
    Request::get(format!("/api/users/user-{user}/orders"))
        .property("meshguard.jwt_authn", payload.to_string())
}

fn rows() -> anyhow::Result<Vec<Row>> {
    let issuer = "https://id.shop.example/realms/shop";
    let ec = TestKey::ec256_a();
    let jwt_config = json!({
        "providers": [{"name": "shop", "issuer": issuer, "audiences": ["commerce-api"],
                       "jwks": jwks(&[&ec]), "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}]}],
        "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}]
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let token = ec.token(
        &json!({"iss": issuer, "aud": "commerce-api", "sub": "alice", "iat": now, "exp": now + 86_400}),
    );
    // The pipeline's authz rows: a customer's token (Keycloak's realm roles) reading their own
    // orders, the JWT stage handing the payload on (`payloadInMetadata`), with and without the
    // authz stage: what a cache-off decision adds to the same pass.
    let customer = ec.token(
        &json!({"iss": issuer, "aud": "commerce-api", "sub": "user-000042",
        "iat": now, "exp": now + 86_400, "realm_access": {"roles": ["customer", "offline_access"]},
        "email": "user42@shop.example", "preferred_username": "user42"}),
    );
    let orders = move |_: u64| {
        Request::get("/api/users/user-000042/orders")
            .header("authorization", format!("Bearer {customer}"))
    };
    let pipeline = |authz: Option<serde_json::Value>| {
        let mut config = json!({"jwtAuth": {
            "providers": [{"name": "shop", "issuer": issuer, "audiences": ["commerce-api"],
                           "jwks": jwks(&[&ec]), "payloadInMetadata": "verified_jwt"}],
            "rules": [{"match": {"prefix": "/api/"}, "requires": {"provider": "shop"}}]
        }});
        if let Some(authz) = authz {
            config["authz"] = authz;
        }
        config.to_string()
    };
    Ok(vec![
        Row {
            name: "host floor (WAT, continue only)",
            bytes: wat::parse_str(FLOOR)?,
            config: String::new(),
            request: Box::new(|_| Request::get("/api/products")),
        },
        Row {
            name: "stamp",
            bytes: module_bytes("meshguard_stamp")?,
            config: r#"{"header":"x-meshguard-stamp","value":"1"}"#.into(),
            request: Box::new(|_| Request::get("/api/products")),
        },
        Row {
            name: "rate-limit (1 limit, 1000 users)",
            bytes: module_bytes("meshguard_rate_limit")?,
            config: r#"{"limits":[{"name":"orders","key":[{"header":"x-user"}],
                "rate":{"requests":1000000,"per":"second"}}]}"#
                .into(),
            request: Box::new(|i| {
                Request::get("/api/orders").header("x-user", format!("user-{}", i % 1000))
            }),
        },
        Row {
            name: "jwt-auth (ES256, inline JWKS)",
            bytes: module_bytes("meshguard_jwt_auth")?,
            config: jwt_config.to_string(),
            request: Box::new(move |_| {
                Request::get("/api/orders").header("authorization", format!("Bearer {token}"))
            }),
        },
        Row {
            name: "canary (sticky by user)",
            bytes: module_bytes("meshguard_canary")?,
            config:
                r#"{"services":[{"name":"product","match":{"hosts":["*"], "prefix":"/api/products"},
                "versions":[{"name":"v1","weight":90},{"name":"v2","weight":10}],
                "stickyKey":[{"header":"x-user-id"}]}]}"#
                    .into(),
            request: Box::new(|i| {
                Request::get("/api/products").header("x-user-id", format!("user-{}", i % 1000))
            }),
        },
        Row {
            name: "authz (RBAC policy, cache off)",
            bytes: module_bytes("meshguard_authz")?,
            config: json!({"modules": {"rbac.rego": rbac()?}, "cacheSize": 0}).to_string(),
            request: Box::new(|i| rbac_request(i % 1000)),
        },
        Row {
            name: "authz (RBAC policy, cache on, 1000 users)",
            bytes: module_bytes("meshguard_authz")?,
            config: json!({"modules": {"rbac.rego": rbac()?}}).to_string(),
            request: Box::new(|i| rbac_request(i % 1000)),
        },
        Row {
            name: "meshguard_with_authz: jwtAuth (ES256, payloadInMetadata), no authz",
            bytes: module_bytes("meshguard_with_authz")?,
            config: pipeline(None),
            request: Box::new(orders.clone()),
        },
        Row {
            name: "meshguard_with_authz: jwtAuth + authz (RBAC policy, cache off)",
            bytes: module_bytes("meshguard_with_authz")?,
            config: pipeline(Some(
                json!({"modules": {"rbac.rego": rbac()?}, "cacheSize": 0}),
            )),
            request: Box::new(orders),
        },
        Row {
            name: "circuit-breaker (closed)",
            bytes: module_bytes("meshguard_circuit_breaker")?,
            config: r#"{"breakers":[{"name":"payment","window":{"size":100},"minimumCalls":20,
                "failureRateThreshold":50,"openFor":"10s"}]}"#
                .into(),
            request: Box::new(|_| Request::get("/api/payments")),
        },
    ])
}

fn main() -> anyhow::Result<()> {
    let budget: f64 = std::env::args()
        .skip_while(|a| a != "--seconds-per-row")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rounds = 3;
    let rows = rows()?;

    // Compile time: cold (no cache) vs a cache hit, median of 3.
    let mut compile = Vec::new();
    for row in &rows {
        let mut cold = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            WasmModule::compile_uncached(row.name, &row.bytes)?;
            cold.push(started.elapsed());
        }
        WasmModule::from_bytes(row.name, &row.bytes)?;
        let mut warm = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            WasmModule::from_bytes(row.name, &row.bytes)?;
            warm.push(started.elapsed());
        }
        cold.sort();
        warm.sort();
        compile.push((row.name, row.bytes.len(), cold[1], warm[1]));
    }

    // Per-request cost: one worker VM, no main thread, interleaved rounds.
    let mut plugins = Vec::new();
    for row in &rows {
        let module = WasmModule::from_bytes(row.name, &row.bytes)?;
        let options = PluginOptions::new(row.config.clone())
            .named("bench")
            .main_thread(false);
        let mut plugin = Plugin::start(&module, options)?;
        for i in 0..200 {
            let outcome = plugin.send((row.request)(i))?;
            anyhow::ensure!(
                outcome.status() == Some(200),
                "{}: warm-up got {:?}",
                row.name,
                outcome.status()
            );
        }
        plugins.push(plugin);
    }
    let mut totals = vec![(0u64, Duration::ZERO); rows.len()];
    // CPU time of this thread per row: on a shared machine wall time also counts the time the
    // thread waited for a core, CPU time does not.
    let mut cpu = vec![Duration::ZERO; rows.len()];
    for _ in 0..rounds {
        for (index, row) in rows.iter().enumerate() {
            // A fresh plugin per round keeps the stream table from growing across rounds.
            let module = WasmModule::from_bytes(row.name, &row.bytes)?;
            let options = PluginOptions::new(row.config.clone())
                .named("bench")
                .main_thread(false);
            plugins[index] = Plugin::start(&module, options)?;
            let plugin = &mut plugins[index];
            let deadline = Duration::from_secs_f64(budget / f64::from(rounds));
            let started = Instant::now();
            let cpu_started = thread_cpu_time();
            let mut n = 0u64;
            while started.elapsed() < deadline {
                for _ in 0..50 {
                    let request = (row.request)(n);
                    plugin.send(request)?;
                    n += 1;
                }
            }
            totals[index].0 += n;
            totals[index].1 += started.elapsed();
            if let (Some(end), Some(start)) = (thread_cpu_time(), cpu_started) {
                cpu[index] += end.saturating_sub(start);
            }
        }
    }
    let cpu_per_request =
        |index: usize| cpu[index].as_secs_f64() * 1e6 / totals[index].0.max(1) as f64;
    let floor_cpu = cpu_per_request(0);
    let mut table = String::from(
        "| module | requests/s (1 VM) | µs/request | CPU µs/request | vs host floor (CPU) | size KiB | compile cold ms | compile cached µs |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json_rows = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let rate = totals[index].0 as f64 / totals[index].1.as_secs_f64();
        let (_, size, cold, warm) = compile[index];
        let cpu_us = cpu_per_request(index);
        table.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.2}x | {} | {:.1} | {:.1} |\n",
            row.name,
            rate,
            1e6 / rate,
            cpu_us,
            cpu_us / floor_cpu,
            size / 1024,
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e6,
        ));
        json_rows.push(json!({
            "name": row.name, "requests_per_second": rate, "us_per_request": 1e6 / rate,
            "cpu_us_per_request": cpu_us, "cpu_cost_vs_floor": cpu_us / floor_cpu, "size_bytes": size,
            "compile_cold_ms": cold.as_secs_f64() * 1e3, "compile_cached_us": warm.as_secs_f64() * 1e6,
        }));
    }
    println!("{table}");
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("host.json"),
        serde_json::to_string_pretty(&json_rows)?,
    )?;
    println!("(also in {})", out.join("host.json").display());
    Ok(())
}

/// This thread's CPU time so far, from the scheduler's nanosecond count
/// (`/proc/thread-self/schedstat`, Linux); `None` where it cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
