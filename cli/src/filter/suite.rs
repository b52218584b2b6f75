//! `meshguard filter test`: runs suites, one fresh plugin per test (fresh VMs, clock, shared
//! data), and prints failures as what-was-expected lines, then `N passed, N failed`.

use std::path::PathBuf;

use meshguard_wasm_host::{HostError, Plugin, WasmModule};

use super::spec::{self, Suite, TestSpec};
use crate::Outcome;

/// Runs every suite; a suite that cannot be loaded is an error (exit 2), failing tests exit 1.
pub fn run(paths: &[PathBuf], verbose: bool) -> anyhow::Result<Outcome> {
    let mut passed = 0usize;
    let mut failed = 0usize;
    for path in paths {
        let suite = spec::read_suite(path)?;
        let module = WasmModule::from_file(&suite.module).map_err(|err| {
            anyhow::anyhow!(
                "{}: module `{}`: {err}",
                path.display(),
                suite.module.display()
            )
        })?;
        let title = suite
            .name
            .clone()
            .unwrap_or_else(|| path.display().to_string());
        println!("suite {title} ({})", module.name());
        for test in &suite.tests {
            let failures = run_test(&suite, &module, test)?;
            if failures.is_empty() {
                passed += 1;
                if verbose {
                    println!("  ok    {}", test.name);
                }
            } else {
                failed += 1;
                println!("  FAIL  {}", test.name);
                for failure in failures {
                    println!("        {failure}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// Runs one test; `Err` only for problems with the suite itself (exit 2).
fn run_test(suite: &Suite, module: &WasmModule, test: &TestSpec) -> anyhow::Result<Vec<String>> {
    let config = test
        .config
        .as_ref()
        .or(suite.config.as_ref())
        .map(spec::ConfigSpec::bytes)
        .unwrap_or_default();
    let env = test.env.clone().over(&suite.env);
    let options = env.options(config)?;
    let mut plugin = match (Plugin::start(module, options), &test.expect_config_error) {
        (Err(HostError::ConfigRejected { message }), Some(expected)) => {
            return Ok(if message.contains(expected.as_str()) {
                Vec::new()
            } else {
                vec![format!(
                    "configuration rejected with {message:?}, expected a message containing \
                     {expected:?}"
                )]
            });
        }
        (Err(HostError::ConfigRejected { message }), None) => {
            return Ok(vec![format!(
                "the filter rejected the configuration: {message}"
            )]);
        }
        (Err(err), _) => return Ok(vec![format!("the plugin did not start: {err}")]),
        (Ok(_), Some(expected)) => {
            return Ok(vec![format!(
                "the configuration was accepted, expected a rejection containing {expected:?}"
            )]);
        }
        (Ok(plugin), None) => plugin,
    };
    let mut failures = Vec::new();
    for (index, step) in test.steps.iter().enumerate() {
        if let Some(by) = step.advance {
            plugin.advance(by)?;
            if let Some(expect) = &step.expect {
                anyhow::ensure!(
                    expect.plugin_only(),
                    "test `{}` step {}: after `advance` only `metrics` can be expected",
                    test.name,
                    index + 1
                );
                failures.extend(
                    expect
                        .check_plugin(&plugin)
                        .into_iter()
                        .map(|f| format!("step {} (advance): {f}", index + 1)),
                );
            }
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
            let Some(expect) = &step.expect else {
                continue;
            };
            let at = if step.repeat > 1 {
                format!(
                    "step {} ({}, {}/{})",
                    index + 1,
                    request.label(),
                    round + 1,
                    step.repeat
                )
            } else {
                format!("step {} ({})", index + 1, request.label())
            };
            failures.extend(
                expect
                    .check(&outcome, &plugin)
                    .into_iter()
                    .map(|f| format!("{at}: {f}")),
            );
        }
    }
    Ok(failures)
}
