//! `meshguard filter ...`: try a proxy-wasm filter and its configuration without a cluster.
//!
//! The same embedded host the repository's .wasm tests use (meshguard-wasm-host, wasmtime,
//! Envoy's proxy-wasm semantics, a virtual clock) runs the module:
//!
//! - `run`: one request file (a request, or steps with time passing) and what the filter did:
//!   continued or answered, header changes, callouts, metrics, logs; readable or JSON.
//! - `test`: data-driven suites of requests with expected outcomes; `N passed, N failed`.
//! - `validate`: runs `proxy_on_configure` and prints the filter's own rejection message, so a
//!   bad configuration is caught before it reaches Envoy.
//! - `package`: ships the module as an OCI image Istio pulls, pinned by digest (`package.rs`).

mod expect;
mod headers;
mod package;
mod print;
mod spec;
mod suite;

use std::path::{Path, PathBuf};

use anyhow::Context;
use meshguard_wasm_host::{HostError, Plugin, PluginOptions, WasmModule};

use crate::Outcome;

/// The `filter` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FilterCommand {
    /// Run a request file through a filter and show what the filter did.
    Run(RunArgs),
    /// Run a suite of filter scenarios with expected outcomes.
    Test(TestArgs),
    /// Check a configuration the way Envoy would: run the filter's on_configure.
    Validate(ValidateArgs),
    /// Package a module as an OCI image Istio can pull; write it, push it, pin WasmPlugins.
    Package(package::PackageArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented text.
    Pretty,
    /// One JSON document.
    Json,
}

/// `meshguard filter run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The compiled filter (a proxy-wasm .wasm module).
    module: PathBuf,
    /// The filter configuration (the JSON Envoy passes to the plugin).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The request file (YAML): `request:` (with `repeat:`) or `steps:`, and an optional `env:`.
    #[arg(long)]
    request: PathBuf,
    /// Worker VMs (Envoy's --concurrency); overrides the file's `env.workers`.
    #[arg(long)]
    workers: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    format: Format,
}

/// `meshguard filter test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Suite files (YAML).
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// Print every test, not only failures.
    #[arg(long, short)]
    verbose: bool,
}

/// `meshguard filter validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The compiled filter.
    module: PathBuf,
    /// The configuration to check.
    #[arg(long)]
    config: PathBuf,
}

/// Runs a `filter` subcommand.
pub fn run(command: FilterCommand) -> anyhow::Result<Outcome> {
    match command {
        FilterCommand::Run(args) => run_file(&args),
        FilterCommand::Test(args) => suite::run(&args.suites, args.verbose),
        FilterCommand::Validate(args) => validate(&args),
        FilterCommand::Package(args) => package::run(&args),
    }
}

fn load_module(path: &Path) -> anyhow::Result<WasmModule> {
    WasmModule::from_file(path).map_err(anyhow::Error::from)
}

fn read_config(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        None => Ok(Vec::new()),
        Some(path) => std::fs::read(path).with_context(|| {
            format!(
                "cannot read the configuration {} (pass --config with the filter's JSON \
                 configuration file)",
                path.display()
            )
        }),
    }
}

fn run_file(args: &RunArgs) -> anyhow::Result<Outcome> {
    let module = load_module(&args.module)?;
    let configuration = read_config(args.config.as_deref())?;
    let plan = spec::read_run_plan(&args.request)?;
    let mut options = plan.env.options(configuration)?;
    if let Some(workers) = args.workers {
        anyhow::ensure!(workers > 0, "--workers must be at least 1");
        options.workers = workers;
    }
    let mut plugin = match Plugin::start(&module, options) {
        Ok(plugin) => plugin,
        Err(HostError::ConfigRejected { message }) => {
            anyhow::bail!(
                "the filter rejected its configuration: {message}\n(fix the configuration; \
                 `meshguard filter validate` checks it alone)"
            )
        }
        Err(err) => return Err(err.into()),
    };
    let mut sent = Vec::new();
    for step in &plan.steps {
        if let Some(by) = step.advance {
            plugin.advance(by)?;
            continue;
        }
        let Some(request) = &step.request else {
            continue;
        };
        for round in 0..step.repeat {
            let outcome = match step.worker {
                Some(worker) => plugin.send_to(worker, request.to_host())?,
                None => plugin.send(request.to_host())?,
            };
            let label = if step.repeat > 1 {
                format!("{} ({}/{})", request.label(), round + 1, step.repeat)
            } else {
                request.label()
            };
            sent.push((label, outcome.stream));
        }
    }
    match args.format {
        Format::Json => {
            let requests: Vec<_> = sent
                .iter()
                .filter_map(|(_, id)| plugin.outcome(*id))
                .collect();
            let document = serde_json::json!({
                "module": module.name(),
                "requests": requests,
                "metrics": plugin.metrics(),
                "callouts": plugin.callouts(),
                "logs": plugin.logs(),
                "reports": plugin.reports(),
                "vmFailures": plugin.vm_failures(),
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        Format::Pretty => {
            for (index, (label, id)) in sent.iter().enumerate() {
                if let Some(outcome) = plugin.outcome(*id) {
                    print!(
                        "{}",
                        print::outcome(&format!("request {}: {label}", index + 1), &outcome)
                    );
                }
            }
            print!("{}", print::plugin(&plugin));
        }
    }
    Ok(Outcome::Success)
}

fn validate(args: &ValidateArgs) -> anyhow::Result<Outcome> {
    let module = load_module(&args.module)?;
    let configuration = read_config(Some(&args.config))?;
    let options = PluginOptions::new(configuration).main_thread(false);
    match Plugin::start(&module, options) {
        Ok(plugin) => {
            println!("ok: {} accepts {}", module.name(), args.config.display());
            for report in plugin.reports() {
                println!("note: {report}");
            }
            Ok(Outcome::Success)
        }
        Err(HostError::ConfigRejected { message }) => {
            println!("rejected: {message}");
            Ok(Outcome::Failure)
        }
        Err(err) => Err(err.into()),
    }
}
