//! The policy engine benchmark (`cargo xtask bench-engine` runs it in release): reviews/s on one
//! core and per-review latency for one Pod, one Deployment and one Service against every template
//! and sample constraint of the repository's `gatekeeper/` folder plus the larger set in
//! `benches-data/`, on regorus' tree interpreter and on its bytecode VM, in the same run.
//!
//! Every row reviews a stream of 256 copies of the object that differ in name and uids, as a
//! ReplicaSet's replicas (or re-created objects) do. The interpreter and VM columns evaluate every
//! review (decision cache off); the last column is the chosen configuration, the VM with the
//! decision cache on, which evaluates a template again only when the part of the request it reads
//! changed; its hit rate is printed. The last column shows the cache's cost when it can reuse
//! little: every copy has its own image tags and a distinct label.
//!
//! A second table is the decision cache on the idioms of public template libraries: the
//! public-library-style set (`benches-data/library/`, 16 templates, 64 constraints) reviewing
//! 1,000 replicas of the Pod (new name and uid each, as a ReplicaSet creates them) on 2 threads,
//! as `policy check`, audit and the webhook's concurrent reviews do; interpreter, VM and VM plus
//! cache in the same run. Each pass starts with empty caches (a fresh load, not timed) and runs
//! the 1,000 replicas in order; passes repeat until the time budget is spent.
//!
//! Usage: `bench_engine [--seconds S] [--replicas N] [--json PATH] [--markdown PATH]`; the tables
//! go to stdout.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshguard_policy_engine::{
    AdmissionRequest, Corpus, EnforcementPoint, EvalMode, Inventory, ReviewOptions, document,
    parallel,
};

struct Row {
    object: String,
    set: String,
    constraints: usize,
    violations: usize,
    interpreter: (f64, f64),
    vm: (f64, f64),
    cached: (f64, f64),
    hit_rate: f64,
    cold: (f64, f64),
    cold_hits: f64,
}

/// Reviews per second and mean microseconds per review for `seconds` of reviews cycling through
/// `requests`, and the decision cache's hit rate over the run.
fn measure(
    corpus: &Corpus,
    requests: &[AdmissionRequest],
    mode: EvalMode,
    cached: bool,
    seconds: f64,
) -> ((f64, f64), f64) {
    // A fresh load per measurement: empty caches, nothing carried over between columns.
    let set = corpus
        .policies
        .clone()
        .with_eval_mode(mode)
        .with_decision_cache(cached);
    let inventory = Inventory::new();
    let budget = Duration::from_secs_f64(seconds);
    let before = set.cache_stats();
    let started = Instant::now();
    let mut reviews = 0u64;
    for request in requests.iter().cycle() {
        if started.elapsed() >= budget {
            break;
        }
        let _ = set.review(request, &inventory);
        reviews += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = set.cache_stats();
    let lookups = (after.hits + after.misses).saturating_sub(before.hits + before.misses);
    let hit_rate = if lookups == 0 {
        0.0
    } else {
        (after.hits - before.hits) as f64 / lookups as f64
    };
    let per_second = reviews as f64 / elapsed;
    ((per_second, 1e6 / per_second), hit_rate)
}

/// Appends `-{index}` to every `image` string, so each copy has different container specs.
fn retag(value: &mut serde_json::Value, index: usize) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    serde_json::Value::String(image) if key == "image" => {
                        image.push_str(&format!("-{index}"));
                    }
                    other => retag(other, index),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| retag(item, index)),
        _ => {}
    }
}

/// `count` copies of an object with distinct names and uids, as a controller creates them; with
/// `distinct_specs`, also a distinct label and distinct image tags (a cache can reuse little).
fn replicas(
    object: &serde_json::Value,
    count: usize,
    distinct_specs: bool,
) -> anyhow::Result<Vec<AdmissionRequest>> {
    (0..count)
        .map(|index| {
            let mut copy = object.clone();
            if distinct_specs {
                retag(&mut copy, index);
                copy["metadata"]["labels"]["rollout"] = format!("r{index}").into();
            }
            if let Some(metadata) = copy["metadata"].as_object_mut() {
                let name = metadata
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("obj");
                metadata.insert("name".into(), format!("{name}-{index:05x}").into());
                metadata.insert(
                    "uid".into(),
                    format!("00000000-0000-4000-8000-{index:012x}").into(),
                );
            }
            Ok(AdmissionRequest::from_object(&copy)?)
        })
        .collect()
}

/// One evaluator on the replica stream: reviews/s over whole passes of `requests` on `threads`
/// threads (each pass on a fresh load, so caches start empty), and the cache's hit rate.
fn measure_replicas(
    paths: &[PathBuf],
    requests: &[AdmissionRequest],
    mode: EvalMode,
    cached: bool,
    seconds: f64,
    threads: NonZeroUsize,
) -> anyhow::Result<((f64, f64), f64)> {
    let budget = Duration::from_secs_f64(seconds);
    let inventory = Inventory::new();
    let options = ReviewOptions::at(EnforcementPoint::Gator);
    let mut spent = Duration::ZERO;
    let mut reviews = 0usize;
    let (mut hits, mut lookups) = (0u64, 0u64);
    while spent < budget {
        let set = Corpus::load(paths)?
            .policies
            .with_eval_mode(mode)
            .with_decision_cache(cached);
        let started = Instant::now();
        // Chunks keep a slow evaluator within the budget; each chunk runs on `threads` threads.
        for chunk in requests.chunks(64) {
            let outcomes = parallel::map_in_order(chunk, Some(threads), |request| {
                set.review_with(request, &inventory, &options)
            });
            for outcome in outcomes {
                outcome?;
            }
            reviews += chunk.len();
            if spent + started.elapsed() >= budget {
                break;
            }
        }
        spent += started.elapsed();
        let stats = set.cache_stats();
        hits += stats.hits;
        lookups += stats.hits + stats.misses;
    }
    let per_second = reviews as f64 / spent.as_secs_f64();
    let hit_rate = if lookups == 0 {
        0.0
    } else {
        hits as f64 / lookups as f64
    };
    Ok(((per_second, 1e6 / per_second), hit_rate))
}

fn main() -> anyhow::Result<()> {
    let mut seconds = 2.0;
    let mut json_out: Option<PathBuf> = None;
    let mut markdown_out: Option<PathBuf> = None;
    let mut replica_count = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            "--replicas" => replica_count = args.next().unwrap_or_default().parse()?,
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
        (
            "gatekeeper/ + larger set",
            vec![
                gatekeeper,
                larger.join("templates.yaml"),
                larger.join("objects"),
            ],
        ),
    ];
    let objects = ["pod.yaml", "deployment.yaml", "service.yaml"];
    let mut rows = Vec::new();
    for (set_name, paths) in &sets {
        // Templates are shared between clones of a set (and so are their caches): load each
        // measurement's set afresh.
        let load = || Corpus::load(paths);
        let corpus = load()?;
        let constraints = corpus.policies.constraints().count();
        for object in objects {
            let doc = document::read_file(&larger.join("objects").join(object))?;
            let value = &doc
                .first()
                .ok_or_else(|| anyhow::anyhow!("{object} is empty"))?
                .value;
            let requests = replicas(value, 256, false)?;
            let distinct = replicas(value, 4096, true)?;
            let first = requests
                .first()
                .ok_or_else(|| anyhow::anyhow!("no requests"))?;
            let violations = corpus.policies.review(first, &Inventory::new())?.len();
            let (interpreter, _) =
                measure(&load()?, &requests, EvalMode::Interpreter, false, seconds);
            let (vm, _) = measure(&load()?, &requests, EvalMode::Vm, false, seconds);
            let (cached, hit_rate) = measure(&load()?, &requests, EvalMode::Vm, true, seconds);
            let (cold, cold_hits) = measure(&load()?, &distinct, EvalMode::Vm, true, seconds);
            rows.push(Row {
                object: value["kind"].as_str().unwrap_or("?").to_string(),
                set: set_name.to_string(),
                constraints,
                violations,
                interpreter,
                vm,
                cached,
                hit_rate,
                cold,
                cold_hits,
            });
        }
    }
    let mut md = String::from(
        "| object | policy set | constraints | violations | interpreter reviews/s | µs/review | vm reviews/s | µs/review | vm / interpreter | vm + decision cache reviews/s | µs/review | cache hits | chosen / interpreter | distinct specs: vm + cache µs/review (hits) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for row in &rows {
        let ratio = row.vm.0 / row.interpreter.0;
        let chosen = row.cached.0 / row.interpreter.0;
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}x | {:.0} | {:.0} | {:.0}% | {:.1}x | {:.0} ({:.0}%) |\n",
            row.object,
            row.set,
            row.constraints,
            row.violations,
            row.interpreter.0,
            row.interpreter.1,
            row.vm.0,
            row.vm.1,
            ratio,
            row.cached.0,
            row.cached.1,
            row.hit_rate * 100.0,
            chosen,
            row.cold.1,
            row.cold_hits * 100.0
        ));
        json.push(serde_json::json!({
            "object": row.object, "set": row.set, "constraints": row.constraints,
            "violations": row.violations,
            "interpreter": {"reviews_per_s": row.interpreter.0, "us_per_review": row.interpreter.1},
            "vm": {"reviews_per_s": row.vm.0, "us_per_review": row.vm.1},
            "speedup": ratio,
            "vm_cached": {"reviews_per_s": row.cached.0, "us_per_review": row.cached.1, "hit_rate": row.hit_rate},
            "chosen_speedup": chosen,
            "vm_cached_distinct_specs": {"reviews_per_s": row.cold.0, "us_per_review": row.cold.1, "hit_rate": row.cold_hits},
        }));
    }
    // The public-library-style set, 1,000 replicas, 2 threads.
    let library = vec![larger.join("library")];
    let corpus = Corpus::load(&library)?;
    let constraints = corpus.policies.constraints().count();
    let pod = document::read_file(&larger.join("objects").join("pod.yaml"))?;
    let pod = &pod
        .first()
        .ok_or_else(|| anyhow::anyhow!("pod.yaml is empty"))?
        .value;
    let requests = replicas(pod, replica_count, false)?;
    let two = NonZeroUsize::new(2).ok_or_else(|| anyhow::anyhow!("2 threads"))?;
    let (interpreter, _) = measure_replicas(
        &library,
        &requests,
        EvalMode::Interpreter,
        false,
        seconds,
        two,
    )?;
    let (vm, _) = measure_replicas(&library, &requests, EvalMode::Vm, false, seconds, two)?;
    let (cached, hit_rate) =
        measure_replicas(&library, &requests, EvalMode::Vm, true, seconds, two)?;
    md.push_str(&format!(
        "\n| object | policy set | constraints | replicas | threads | interpreter reviews/s | µs/review | vm reviews/s | µs/review | vm + decision cache reviews/s | µs/review | cache hits | chosen / interpreter | target |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n| Pod | public-library-style | {constraints} | {replica_count} | 2 | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.1}x | >= 2000 reviews/s: {} |\n",
        interpreter.0,
        interpreter.1,
        vm.0,
        vm.1,
        cached.0,
        cached.1,
        hit_rate * 100.0,
        cached.0 / interpreter.0,
        if cached.0 >= 2000.0 { "met" } else { "missed" },
    ));
    json.push(serde_json::json!({
        "object": "Pod", "set": "public-library-style", "constraints": constraints,
        "replicas": replica_count, "threads": 2,
        "interpreter": {"reviews_per_s": interpreter.0, "us_per_review": interpreter.1},
        "vm": {"reviews_per_s": vm.0, "us_per_review": vm.1},
        "vm_cached": {"reviews_per_s": cached.0, "us_per_review": cached.1, "hit_rate": hit_rate},
        "chosen_speedup": cached.0 / interpreter.0,
        "target_reviews_per_s": 2000,
    }));
    print!("{md}");
    if let Some(path) = markdown_out {
        std::fs::write(path, &md)?;
    }
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
