//! The depth bound ([`meshguard_rego_compat::depth`]) against regorus itself: a module at the
//! bound, in each shape the bound weighs, parses, evaluates on the interpreter, compiles for the
//! VM and runs there on a thread with a 2 MiB stack (the size tokio's and the test harness'
//! threads have; a debug build's frames are larger than a release build's, so a release build
//! has more room still). A stack overflow aborts this test binary, which fails the test run.

use meshguard_rego_compat::{TooCostly, check_parse_cost, depth};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;

/// The shapes, each with its depth `budget` spent on its repeated part: the module (its rule
/// `x` to evaluate).
fn shapes(budget: u32) -> Vec<(&'static str, String)> {
    let module = |expr: String| format!("package p\n\nx := {expr}\n");
    let operators = (budget / depth::OPERATOR) as usize;
    let chain = |op: &str| module(format!("1{}", format!(" {op}\n 1").repeat(operators)));
    // A set literal is a bracket: a chain of sets spends `NESTED` on the brackets closed before
    // and as much on the one it opens.
    let sets = ((budget - 2 * depth::NESTED) / depth::OPERATOR) as usize;
    // Twelve parentheses, each opening with three unary minus, inside one another, then an
    // operator chain around them for the rest of the budget.
    let per_parenthesis = depth::NESTED + 3 * depth::UNARY;
    let around = ((budget - 12 * per_parenthesis) / depth::OPERATOR) as usize;
    vec![
        (
            "unary minus",
            module(format!(
                "{}1",
                "-\n".repeat((budget / depth::UNARY) as usize)
            )),
        ),
        ("binary minus", chain("-")),
        ("comparisons", chain("<=")),
        ("products", chain("*")),
        (
            "set intersection",
            module(format!("{{1}}{}", " &\n {1}".repeat(sets))),
        ),
        (
            "set union",
            module(format!("{{1}}{}", " |\n {1}".repeat(sets))),
        ),
        (
            "parentheses, unary minus and a chain",
            module(format!(
                "{}1{}{}",
                "(- - - ".repeat(12),
                ")".repeat(12),
                " +\n 1".repeat(around)
            )),
        ),
    ]
}

/// Parses, evaluates and runs `module` in regorus, and says how far it got: the module must
/// parse; what the evaluation gives does not matter (a unary minus on an expression is an
/// error in regorus, a long chain too many registers for the VM), only that regorus returns.
fn run_in_regorus(module: String) -> Result<&'static str, String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine
        .add_policy("p.rego".into(), module)
        .map_err(|err| format!("{err:#}"))?;
    let _ = engine.eval_rule("data.p.x".into());
    let Ok(compiled) = engine.compile_with_entrypoint(&"data.p.x".into()) else {
        return Ok("evaluated");
    };
    let Ok(program) = Compiler::compile_from_policy(&compiled, &["data.p.x"]) else {
        return Ok("evaluated, compiled");
    };
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_max_instructions(1_000_000);
    let _ = vm.execute_entry_point_by_name("data.p.x");
    Ok("evaluated, compiled, run on the VM")
}

#[test]
fn modules_at_the_bound_run_in_regorus_on_a_two_mib_stack() {
    for (what, module) in shapes(depth::MAX_DEPTH) {
        assert_eq!(check_parse_cost(&module), Ok(()), "{what} at the bound");
        assert_eq!(
            depth::deepest(&module),
            depth::MAX_DEPTH,
            "{what} reaches the bound"
        );
        let reached = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || run_in_regorus(module))
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{what}: regorus panicked"));
        match reached {
            Ok(reached) => eprintln!("{what}: {reached}"),
            Err(err) => panic!("{what}: regorus refused the module: {err}"),
        }
    }
}

#[test]
fn modules_beyond_the_bound_are_refused_before_regorus() {
    // Each shape at eight times the bound: the unary run (some 500 `-`) is what overflowed
    // regorus' parser in the `authz_config` find, the chains (some 4,000 operators) what
    // overflowed its evaluation, both on a 2 MiB stack in a release build.
    for (what, module) in shapes(8 * depth::MAX_DEPTH) {
        let err = check_parse_cost(&module).unwrap_err();
        assert!(matches!(err, TooCostly::Depth(_)), "{what}: {err}");
        assert!(err.line() >= 3, "{what}: {err:?}");
    }
}
