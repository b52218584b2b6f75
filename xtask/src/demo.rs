//! The commerce demo: the platform's backend behind real Envoy with meshguard's filters, driven
//! by a scripted scenario, ending in a readable summary. Each capability adds its act.

use anyhow::{Context, ensure};
use meshguard_testkit::paths::filter_module;
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};

use crate::build::build_filters;

/// One line of the summary.
struct Step {
    act: &'static str,
    request: String,
    outcome: String,
    ok: bool,
}

/// Runs the demo.
pub fn run() -> anyhow::Result<()> {
    build_filters()?;
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
        "Envoy 1.40 (V8) on {} with 2 workers; commerce backend on {}",
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
        steps.push(Step {
            act: "gateway",
            request: format!("GET {path}"),
            outcome: format!(
                "{} from {}, upstream saw x-meshguard-gateway={stamped}",
                response.status,
                echo["upstream"].as_str().unwrap_or("?")
            ),
            ok: response.status == 200 && stamped == "edge-1",
        });
    }

    let vms = envoy
        .stat("wasm.envoy.wasm.runtime.v8.active")?
        .unwrap_or(0);
    println!();
    println!("{:<10} {:<22} outcome", "act", "request");
    for step in &steps {
        println!(
            "{:<10} {:<22} {} {}",
            step.act,
            step.request,
            if step.ok { "ok  " } else { "FAIL" },
            step.outcome
        );
    }
    println!();
    println!(
        "wasm VMs active in Envoy: {vms}; backend hits: {}",
        backend.total_hits()
    );
    let failed = steps.iter().filter(|step| !step.ok).count();
    ensure!(failed == 0, "{failed} demo step(s) did not go as expected");
    println!("demo: {} steps, all as expected", steps.len());
    Ok(())
}
