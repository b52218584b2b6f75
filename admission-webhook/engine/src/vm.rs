//! The two ways a template's `violation` can be evaluated: regorus' tree interpreter (a clone of
//! the prepared [`regorus::Engine`]) and regorus' bytecode VM ([`regorus::rvm::RegoVM`] running a
//! [`Program`] compiled once per template).
//!
//! Why both: the VM is several times faster on Gatekeeper templates (see the `bench_engine`
//! example and `cargo xtask bench-engine`), and the engine's test suite checks it gives the same
//! decisions as the interpreter on every template and sample of the repository's `gatekeeper/`
//! folder and on the benchmark's larger set. The interpreter stays available behind
//! [`EvalMode::Interpreter`] for comparison, and it is the fallback for a template the VM
//! compiler refuses (the reason is kept in [`crate::Template::vm_unavailable`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use regorus::Value;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::VmError;
use regorus::rvm::{Program, RegoVM};
use regorus::utils::limits::ExecutionTimerConfig;

use crate::template::{Failure, RegoVersion};

/// Which regorus evaluator runs templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvalMode {
    /// regorus' tree interpreter: a clone of the prepared engine per evaluation.
    Interpreter,
    /// regorus' bytecode VM (the default): the program compiled once per template, a fresh VM per
    /// evaluation. Templates the VM compiler refuses run on the interpreter.
    #[default]
    Vm,
}

impl EvalMode {
    /// The name used on command lines and in benchmark tables (`interpreter`, `vm`).
    pub fn name(self) -> &'static str {
        match self {
            EvalMode::Interpreter => "interpreter",
            EvalMode::Vm => "vm",
        }
    }
}

impl std::str::FromStr for EvalMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "interpreter" => Ok(EvalMode::Interpreter),
            "vm" => Ok(EvalMode::Vm),
            other => Err(format!(
                "unknown evaluation mode {other:?} (expected interpreter or vm)"
            )),
        }
    }
}

/// Compiles a template's modules (already rewritten for OPA's semantics) into a VM program for
/// `rule`, adding the VM-only assignment guards; the error says why the VM cannot run the template.
pub(crate) fn compile(
    modules: &[(String, String)],
    version: RegoVersion,
    rule: &str,
) -> Result<Arc<Program>, String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    engine.set_strict_builtin_errors(false);
    for (name, text) in modules {
        engine
            .add_policy(name.clone(), text.clone())
            .map_err(|err| format!("{err:#}"))?;
    }
    let compiled = engine
        .compile_with_entrypoint(&rule.into())
        .map_err(|err| format!("{err:#}"))?;
    Compiler::compile_from_policy(&compiled, &[rule]).map_err(|err| format!("{err:#}"))
}

/// The timer configuration shared by both evaluators.
pub(crate) fn timer(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::MIN.saturating_add(31),
    }
}

/// Runs a program on `input` (and `data`, which holds `inventory` when the template reads it).
pub(crate) fn evaluate(
    program: &Arc<Program>,
    input: Value,
    data: Option<Value>,
    limit: Duration,
) -> Result<Value, Failure> {
    let mut vm = RegoVM::new();
    vm.load_program(program.clone());
    // The deadline bounds the work; the VM's default instruction budget (25,000) is far too small
    // for ordinary templates over a Deployment.
    vm.set_max_instructions(usize::MAX);
    vm.set_strict_builtin_errors(false);
    vm.set_execution_timer_config(Some(timer(limit)));
    if let Some(data) = data {
        vm.set_data(data)
            .map_err(|err| Failure::Error(format!("loading data.inventory: {err}")))?;
    }
    vm.set_input(input);
    vm.execute().map_err(|err| match err {
        VmError::TimeLimitExceeded { .. } => Failure::Timeout,
        other => Failure::Error(other.to_string()),
    })
}
