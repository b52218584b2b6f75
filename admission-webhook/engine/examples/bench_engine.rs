//! The policy engine benchmark (`cargo xtask bench-engine` runs it in release): reviews/s on one
//! core and per-review latency for one Pod, one Deployment and one Service against every template
//! and sample constraint of the repository's `gatekeeper/` folder plus the larger set in
//! `benches-data/`, on regorus' tree interpreter and on its bytecode VM, in the same run.
//!
//! Usage: `bench_engine [--seconds S] [--json PATH] [--markdown PATH]`; the table goes to stdout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshguard_policy_engine::{AdmissionRequest, Corpus, EvalMode, Inventory, document};

struct Row {
    object: String,
    set: String,
    constraints: usize,
    violations: usize,
    interpreter: (f64, f64),
    vm: (f64, f64),
}

/// Reviews per second and mean microseconds per review for `seconds` of repeated reviews.
fn measure(
    corpus: &Corpus,
    request: &AdmissionRequest,
    mode: EvalMode,
    seconds: f64,
) -> (f64, f64) {
    let set = corpus.policies.clone().with_eval_mode(mode);
    let inventory = Inventory::new();
    let budget = Duration::from_secs_f64(seconds);
    // Warm up.
    let _ = set.review(request, &inventory);
    let started = Instant::now();
    let mut reviews = 0u64;
    while started.elapsed() < budget {
        let _ = set.review(request, &inventory);
        reviews += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = reviews as f64 / elapsed;
    (per_second, 1e6 / per_second)
}

fn main() -> anyhow::Result<()> {
    let mut seconds = 2.0;
    let mut json_out: Option<PathBuf> = None;
    let mut markdown_out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            "--json" => json_out = args.next().map(PathBuf::from),
            "--markdown" => markdown_out = args.next().map(PathBuf::from),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gatekeeper = crate_dir.join("../../gatekeeper");
    let larger = crate_dir.join("benches-data");
    let sets = [
        ("gatekeeper/", vec![gatekeeper.clone()]),
        ("gatekeeper/ + larger set", vec![gatekeeper, larger.clone()]),
    ];
    let objects = ["pod.yaml", "deployment.yaml", "service.yaml"];
    let mut rows = Vec::new();
    for (set_name, paths) in &sets {
        let corpus = Corpus::load(paths)?;
        let constraints = corpus.policies.constraints().count();
        for object in objects {
            let doc = document::read_file(&larger.join("objects").join(object))?;
            let value = &doc
                .first()
                .ok_or_else(|| anyhow::anyhow!("{object} is empty"))?
                .value;
            let request = AdmissionRequest::from_object(value)?;
            let violations = corpus.policies.review(&request, &Inventory::new())?.len();
            let interpreter = measure(&corpus, &request, EvalMode::Interpreter, seconds);
            let vm = measure(&corpus, &request, EvalMode::Vm, seconds);
            rows.push(Row {
                object: value["kind"].as_str().unwrap_or("?").to_string(),
                set: set_name.to_string(),
                constraints,
                violations,
                interpreter,
                vm,
            });
        }
    }
    let mut md = String::from(
        "| object | policy set | constraints | violations | interpreter reviews/s | interpreter µs/review | vm reviews/s | vm µs/review | speed-up |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for row in &rows {
        let ratio = row.vm.0 / row.interpreter.0;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}x |\n",
            row.object,
            row.set,
            row.constraints,
            row.violations,
            row.interpreter.0,
            row.interpreter.1,
            row.vm.0,
            row.vm.1,
            ratio
        ));
        json.push(serde_json::json!({
            "object": row.object, "set": row.set, "constraints": row.constraints,
            "violations": row.violations,
            "interpreter": {"reviews_per_s": row.interpreter.0, "us_per_review": row.interpreter.1},
            "vm": {"reviews_per_s": row.vm.0, "us_per_review": row.vm.1},
            "speedup": ratio,
        }));
    }
    print!("{md}");
    if let Some(path) = markdown_out {
        std::fs::write(path, &md)?;
    }
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
