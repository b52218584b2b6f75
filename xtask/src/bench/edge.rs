//! The edge rows: what the commerce edge gateway runs on every request, as four modules chained,
//! as the one `meshguard` module, and as Envoy's nearest native chain, in the same run:
//!
//! - JWT (RS256, one token, verified-token cache) -> rate limit (one limit keyed by a header) ->
//!   canary (sticky header, gated override, 90/10) -> circuit breaker (closed, count window):
//!   four modules, four VMs per worker, the configurations of the single-filter rows;
//! - the pipeline with the same four configurations in its sections;
//! - jwt_authn with `jwt_cache_config` -> local_ratelimit, Envoy's native counterparts;
//! - the pipeline's `authz` stage, on `meshguard_with_authz` (the build with the Rego engine;
//!   `meshguard.wasm` has none): the same four sections (the JWT provider with
//!   `payloadInMetadata`) on a customer reading their own orders, without `authz` and with
//!   the commerce RBAC policy (`policies/envoy-authz/rbac.rego`), decision cache off and on.
//!   The stage's cost is the difference to the row without it (the issue's target: at most
//!   30 µs added p50 with the cache off). Canary and breaker match only `/api/products`, so
//!   on this path they decide without routing, the same in all three rows.
//!
//! Besides latency, CPU and throughput, the resident memory of an Envoy with two workers
//! (`--concurrency 2`) running only the chain, only the pipeline (`meshguard.wasm`, and
//! `meshguard_with_authz.wasm` with an authz section), or no filter ([`rss`]): each wasm module
//! is a V8 VM on the main thread and on every worker, compiled whole in each.

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::paths::{filter_module, workspace_root};
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream};
use serde::Serialize;
use serde_json::Value;

use super::{BREAKER, CANARY, RATE_LIMIT, Row, local_ratelimit};

/// Row name prefix, for `--only edge`.
pub(super) const PREFIX: &str = "edge: ";

/// Prefix of the stage rows: the pipeline with one section at a time, where its cost goes.
pub(super) const STAGE_PREFIX: &str = "edge stage: ";

fn stages() -> anyhow::Result<Vec<(&'static str, &'static str, Value)>> {
    let jwt = super::jwt::ours_config(&jwks(&[&TestKey::rsa_a()]));
    Ok(vec![
        ("meshguard_jwt_auth", "jwtAuth", jwt),
        (
            "meshguard_rate_limit",
            "rateLimit",
            serde_json::from_str(RATE_LIMIT)?,
        ),
        ("meshguard_canary", "canary", serde_json::from_str(CANARY)?),
        (
            "meshguard_circuit_breaker",
            "circuitBreaker",
            serde_json::from_str(BREAKER)?,
        ),
    ])
}

/// The four single-purpose modules chained, each its own plugin and VM.
fn chain(listener: &str) -> anyhow::Result<Listener> {
    let mut chained = Listener::new(listener);
    for (module, section, config) in stages()? {
        let name = format!("{listener}-{section}");
        chained = chained.filter(FilterSpec::wasm(
            name,
            filter_module(module)?,
            config.to_string(),
        ));
    }
    Ok(routed(chained))
}

/// The `meshguard` module with the same four configurations.
fn pipeline(listener: &str) -> anyhow::Result<Listener> {
    let mut sections = serde_json::Map::new();
    for (_, section, config) in stages()? {
        sections.insert(section.to_string(), config);
    }
    Ok(routed(Listener::new(listener).filter(FilterSpec::wasm(
        listener,
        filter_module("meshguard")?,
        Value::Object(sections).to_string(),
    ))))
}

/// The path of the authz rows: the token's user reading their own orders (RBAC allows it).
const ORDERS: &str = "/api/users/user-000042/orders";

/// The pipeline for the authz rows, on `meshguard_with_authz` (the build with the Rego engine;
/// the baseline too, so the rows differ by the stage alone): the four sections with the JWT
/// payload in metadata, and an `authz` section with the RBAC policy and a decision cache of
/// `cache` entries, if given.
fn pipeline_authz(listener: &str, cache: Option<u64>) -> anyhow::Result<Listener> {
    let rbac = std::fs::read_to_string(workspace_root().join("policies/envoy-authz/rbac.rego"))?;
    pipeline_policy(
        listener,
        cache.map(|size| ("rbac.rego", rbac.as_str(), size)),
    )
}

/// Where a cache-off decision's cost goes: the same pipeline with a policy that reads nothing
/// (`allow := true`, so what is left is the stage's plumbing) and one that reads only the
/// method and the path (no claims).
const TRIVIAL_POLICY: &str = "package envoy.authz\n\nallow := true\n";
const METHOD_PATH_POLICY: &str = "package envoy.authz\n\ndefault allow := false\n\nallow if {\n\tinput.attributes.request.http.method == \"GET\"\n\tinput.parsed_path == [\"api\", \"users\", \"user-000042\", \"orders\"]\n}\n";

/// The pipeline of the authz rows with `policy` (file name, source, cache size) as its `authz`
/// section, if given.
fn pipeline_policy(listener: &str, policy: Option<(&str, &str, u64)>) -> anyhow::Result<Listener> {
    let mut sections = serde_json::Map::new();
    for (_, section, mut config) in stages()? {
        if section == "jwtAuth" {
            config["providers"][0]["payloadInMetadata"] = "verified_jwt".into();
        }
        sections.insert(section.to_string(), config);
    }
    if let Some((file, source, size)) = policy {
        sections.insert(
            "authz".to_string(),
            serde_json::json!({"modules": {file: source}, "cacheSize": size}),
        );
    }
    Ok(Listener::new(listener)
        .filter(FilterSpec::wasm(
            listener,
            filter_module("meshguard_with_authz")?,
            Value::Object(sections).to_string(),
        ))
        .route(Route::prefix("/", "backend")))
}

/// Envoy's nearest native chain: jwt_authn with its cache, then local_ratelimit.
fn native(listener: &str) -> Listener {
    Listener::new(listener)
        .filter(super::jwt::native(&jwks(&[&TestKey::rsa_a()]), true))
        .filter(local_ratelimit())
        .route(Route::prefix("/", "backend"))
}

/// The canary's routes: only a request it routed reaches the upstream.
fn routed(listener: Listener) -> Listener {
    listener
        .route(Route::prefix("/", "backend").header("x-mesh-version", "v1"))
        .route(Route::prefix("/", "backend").header("x-mesh-version", "v2"))
}

/// The headers of every edge request: a signed-in user's token and user id.
fn headers() -> Vec<(String, String)> {
    vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", TestKey::rsa_a().token(&super::jwt::claims(42))),
        ),
        ("x-user-id".to_string(), "user-0042".to_string()),
    ]
}

/// The pipeline with one of the four sections only (`--only "edge stage"`): what each stage adds
/// over the floor, and how the stages sum to the whole pipeline ([`super::render_stages`]).
pub(super) fn stage_rows() -> anyhow::Result<Vec<Row>> {
    stages()?
        .into_iter()
        .map(|(_, section, config)| {
            let listener = format!("edgestage{}", section.to_lowercase());
            let module = Listener::new(&listener).filter(FilterSpec::wasm(
                &listener,
                filter_module("meshguard")?,
                serde_json::json!({ section: config }).to_string(),
            ));
            Ok(Row {
                name: format!("{STAGE_PREFIX}pipeline with {section} only"),
                // Without the canary nothing sets the route header, so the plain route serves.
                listener: if section == "canary" {
                    routed(module)
                } else {
                    module.route(Route::prefix("/", "backend"))
                },
                headers: headers(),
                path: "/api/products".to_string(),
            })
        })
        .collect()
}

/// The edge rows.
pub(super) fn rows() -> anyhow::Result<Vec<Row>> {
    let row = |name: &str, listener: Listener| Row {
        name: format!("{PREFIX}{name}"),
        listener,
        headers: headers(),
        path: "/api/products".to_string(),
    };
    let orders = |name: &str, listener: Listener| Row {
        path: ORDERS.to_string(),
        ..row(name, listener)
    };
    Ok(vec![
        row(
            "four modules chained (JWT RS256 cached -> rate limit -> canary -> circuit breaker)",
            chain("edgechain")?,
        ),
        row(
            "meshguard pipeline, the same four configurations",
            pipeline("edgepipeline")?,
        ),
        row(
            "native chain (jwt_authn + jwt_cache_config -> local_ratelimit)",
            native("edgenative"),
        ),
        orders(
            "authz baseline: meshguard_with_authz, four sections, payloadInMetadata, own orders",
            pipeline_authz("edgeazbase", None)?,
        ),
        orders(
            "authz stage: meshguard_with_authz + authz RBAC, cache off",
            pipeline_authz("edgeaznocache", Some(0))?,
        ),
        orders(
            "authz stage: meshguard_with_authz + authz RBAC, cache on",
            pipeline_authz("edgeazcache", Some(1024))?,
        ),
        orders(
            "authz stage: meshguard_with_authz + authz `allow := true`, cache off",
            pipeline_policy("edgeaztrivial", Some(("trivial.rego", TRIVIAL_POLICY, 0)))?,
        ),
        orders(
            "authz stage: meshguard_with_authz + authz method and path only, cache off",
            pipeline_policy(
                "edgeazmethodpath",
                Some(("methodpath.rego", METHOD_PATH_POLICY, 0)),
            )?,
        ),
    ])
}

/// Envoy's resident memory with two workers and one configuration.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Rss {
    /// The configuration.
    pub name: String,
    /// Median VmRSS over the repetitions, MiB.
    pub mib: f64,
    /// Over the `no filter` Envoy's, MiB.
    pub added_mib: f64,
    /// Every repetition's VmRSS, MiB.
    pub samples: Vec<f64>,
}

/// VmRSS of an Envoy with `--concurrency 2` running each configuration alone (no filter, the
/// chain, the pipeline), after requests have reached both workers; `repetitions` Envoys each,
/// interleaved. Envoy runs on `cpus`, as in the latency passes.
pub(super) fn rss(
    upstream: &Upstream,
    repetitions: usize,
    cpus: Option<String>,
) -> anyhow::Result<Vec<Rss>> {
    // (name, listener, the path its requests take: one the configuration lets through).
    let mut configurations: Vec<(String, Listener, &str)> = vec![
        (
            "no filter".to_string(),
            Listener::new("edge").route(Route::prefix("/", "backend")),
            "/api/products",
        ),
        (
            "four modules chained".to_string(),
            chain("edge")?,
            "/api/products",
        ),
        (
            "meshguard pipeline".to_string(),
            pipeline("edge")?,
            "/api/products",
        ),
        // The build with the Rego engine and an authz section (RBAC, cache on), on a request
        // the policy allows: what authorization in the pipeline costs in memory.
        (
            "meshguard_with_authz pipeline + authz".to_string(),
            pipeline_authz("edge", Some(1024))?,
            ORDERS,
        ),
        (
            "trivial wasm filter (floor)".to_string(),
            Listener::new("edge")
                .filter(FilterSpec::wasm(
                    "edge",
                    filter_module("meshguard_stamp")?,
                    r#"{"header":"x-meshguard-stamp","value":"1"}"#,
                ))
                .route(Route::prefix("/", "backend")),
            "/api/products",
        ),
    ];
    // Each module alone, one VM per thread: where the chain's memory goes.
    for (module, section, config) in stages()? {
        let listener = Listener::new("edge").filter(FilterSpec::wasm(
            "edge",
            filter_module(module)?,
            config.to_string(),
        ));
        let listener = if section == "canary" {
            routed(listener)
        } else {
            listener.route(Route::prefix("/", "backend"))
        };
        configurations.push((format!("{module} alone"), listener, "/api/products"));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configurations.len()];
    for _ in 0..repetitions {
        for (index, (name, listener, path)) in configurations.iter().enumerate() {
            let bootstrap = Bootstrap::new()
                .cluster(Cluster::new("backend", upstream.addr()))
                .listener(listener.clone());
            let envoy = Envoy::start_with(
                &bootstrap,
                &meshguard_testkit::envoy::Options {
                    concurrency: 2,
                    component_log_level: "wasm:warn".to_string(),
                    cpus: cpus.clone(),
                    ..Default::default()
                },
            )?;
            // Several connections, so both workers serve (and every VM has run requests).
            let url = format!("{}{path}", envoy.url("edge"));
            let headers = headers();
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for _ in 0..64 {
                let response = meshguard_testkit::http::get(&url, &pairs)?;
                anyhow::ensure!(
                    response.status == 200,
                    "{name}: {} {}",
                    response.status,
                    response.body
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            let mib = envoy.rss_bytes()? as f64 / (1024.0 * 1024.0);
            eprintln!("rss: {name}: {mib:.1} MiB");
            samples[index].push(mib);
        }
    }
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        super::median(&mut sorted)
    };
    let base = median(&samples[0]);
    Ok(configurations
        .iter()
        .zip(samples)
        .map(|((name, _, _), samples)| {
            let mib = median(&samples);
            Rss {
                name: name.clone(),
                mib,
                added_mib: mib - base,
                samples,
            }
        })
        .collect())
}
