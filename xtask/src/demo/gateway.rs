//! Act 1: the commerce backend behind Envoy with a meshguard filter stamping every request.

use anyhow::Context;
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};

use super::Step;

/// Runs the act.
pub fn run() -> anyhow::Result<Vec<Step>> {
    let backend = Upstream::start("commerce-v1").context("starting the commerce backend")?;
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("commerce", backend.addr()))
        .listener(
            Listener::new("gateway")
                .filter(FilterSpec::wasm(
                    "stamp",
                    filter_module("meshguard_stamp")?,
                    r#"{"header":"x-meshguard-gateway","value":"edge-1"}"#,
                ))
                .route(Route::prefix("/", "commerce")),
        );
    let envoy = Envoy::start(&bootstrap, 2).context("starting Envoy")?;
    println!(
        "  Envoy 1.40 (V8, 2 workers) on {}; commerce backend on {}",
        envoy.url("gateway"),
        backend.url()
    );

    let mut steps = Vec::new();
    for path in ["/api/products", "/api/orders", "/api/payments"] {
        let response = http::get(&format!("{}{path}", envoy.url("gateway")), &[])?;
        let echo = response.json()?;
        let stamped = echo["headers"]["x-meshguard-gateway"]
            .as_str()
            .unwrap_or("-")
            .to_string();
        steps.push(Step::new(
            format!("GET {path}"),
            format!(
                "{} from {}, upstream saw x-meshguard-gateway={stamped}",
                response.status,
                echo["upstream"].as_str().unwrap_or("?")
            ),
            response.status == 200 && stamped == "edge-1",
        ));
    }
    let vms = envoy
        .stat("wasm.envoy.wasm.runtime.v8.active")?
        .unwrap_or(0);
    steps.push(Step::new(
        "Envoy stats",
        format!("{vms} V8 wasm VMs active"),
        vms >= 1,
    ));
    Ok(steps)
}
