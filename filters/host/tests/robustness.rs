//! Modules that are broken, hostile or unusual fail with errors that say what is wrong, and
//! never take the host down.

mod support;

use meshguard_wasm_host::{
    HostError, Plugin, PluginOptions, Request, Verdict, WasmModule, cache_stats,
};
use support::{on_request_headers, proxy_wat};

fn start(module: &WasmModule) -> Plugin {
    Plugin::start(module, PluginOptions::default()).expect("the module starts")
}

#[test]
fn bytes_that_are_not_wasm_are_named_as_such() {
    let err = WasmModule::from_bytes("notes.txt", b"hello, world").unwrap_err();
    assert!(matches!(err, HostError::NotWasm { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("notes.txt is not a WebAssembly binary"),
        "{err}"
    );
    let err = WasmModule::from_bytes("filter.wat", b"(module)").unwrap_err();
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );
}

#[test]
fn truncated_modules_are_invalid_with_wasmtimes_reason() {
    let bytes = wat::parse_str(proxy_wat("", "")).unwrap();
    let err = WasmModule::from_bytes("cut.wasm", &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, HostError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cut.wasm is not a valid WebAssembly module"),
        "{err}"
    );
}

#[test]
fn missing_exports_are_listed() {
    let bytes = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let err = WasmModule::from_bytes("plain.wasm", &bytes).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HostError::NotProxyWasm { .. }), "{text}");
    for missing in [
        "proxy_abi_version_0_2_1",
        "memory",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
    ] {
        assert!(text.contains(missing), "{missing} not named in: {text}");
    }
}

#[test]
fn imports_from_unknown_modules_are_refused_up_front() {
    let wat = proxy_wat(r#"(import "custom_host" "magic" (func (param i32)))"#, "");
    let err = WasmModule::from_bytes("odd.wasm", &wat::parse_str(wat).unwrap()).unwrap_err();
    assert!(err.to_string().contains("custom_host::magic"), "{err}");
}

#[test]
fn a_looping_callback_runs_out_of_fuel_and_the_vm_fails_closed() {
    let module = on_request_headers(
        "loop",
        "",
        "",
        "(loop $forever (br $forever)) (i32.const 0)",
    );
    let mut plugin = Plugin::start(&module, PluginOptions::default().fuel(5_000_000)).unwrap();
    let outcome = plugin.send(Request::get("/")).unwrap();
    assert_eq!(outcome.verdict, Verdict::VmFailed);
    assert_eq!(outcome.status(), Some(503));
    let failure = outcome.vm_failure.unwrap();
    assert!(
        failure.contains("proxy_on_request_headers ran out of fuel"),
        "{failure}"
    );
    assert_eq!(outcome.local_reply.unwrap().details, "wasm_fail_stream");
    // Envoy keeps failing requests on a crashed VM.
    let again = plugin.send(Request::get("/")).unwrap();
    assert_eq!(again.verdict, Verdict::VmFailed);
    assert_eq!(plugin.vm_failures().len(), 1);
}

#[test]
fn a_trap_is_reported_with_the_callback_name() {
    let module = on_request_headers("trap", "", "", "unreachable");
    let outcome = start(&module).send(Request::get("/")).unwrap();
    let failure = outcome.vm_failure.unwrap();
    assert!(
        failure.contains("proxy_on_request_headers trapped on `unreachable`"),
        "{failure}"
    );
}

#[test]
fn memory_growth_beyond_the_limit_is_explained() {
    // Grows by 64 MiB, traps if refused.
    let body = "(if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)) (then unreachable)) (i32.const 0)";
    let module = on_request_headers("hog", "", "", body);
    let mut small = Plugin::start(&module, PluginOptions::default().memory_limit(8 << 20)).unwrap();
    let failure = small.send(Request::get("/")).unwrap().vm_failure.unwrap();
    assert!(
        failure.contains("memory limit of 8388608 bytes"),
        "{failure}"
    );
    // With room, the same module is fine.
    let mut roomy =
        Plugin::start(&module, PluginOptions::default().memory_limit(128 << 20)).unwrap();
    assert_eq!(
        roomy.send(Request::get("/")).unwrap().verdict,
        Verdict::Forwarded
    );
}

#[test]
fn initial_memory_beyond_the_limit_fails_to_instantiate() {
    let wat = proxy_wat("", "").replace(
        "(memory (export \"memory\") 4)",
        "(memory (export \"memory\") 512)",
    );
    let module = support::module("big", &wat);
    let err = Plugin::start(&module, PluginOptions::default().memory_limit(1 << 20)).unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the limit of 1048576 bytes"),
        "{err}"
    );
}

#[test]
fn unimplemented_hostcalls_answer_unimplemented_and_are_reported() {
    // Calls proxy_grpc_stream (unary gRPC calls are implemented, streams are not) and an
    // unknown env import; answers 400 + the status they returned.
    let imports = r#"
  (import "env" "proxy_grpc_stream" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_from_the_future" (func $future (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
    let body = r#"
    (local $s i32)
    (local.set $s (call $grpc (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                              (i32.const 0) (i32.const 0) (i32.const 0)))
    (local.set $s (i32.add (local.get $s) (call $future (i32.const 7))))
    (local.set $s (i32.add (local.get $s) (call $open (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                                      (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))))
    (drop (call $reply (i32.add (i32.const 300) (local.get $s)) (i32.const 0) (i32.const 0) (i32.const 0)
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)"#;
    let module = on_request_headers("future", imports, "", body);
    let mut plugin = start(&module);
    let outcome = plugin.send(Request::get("/")).unwrap();
    // 12 (Unimplemented) + 12 + 52 (ENOSYS)
    assert_eq!(outcome.status(), Some(376), "{outcome:#?}");
    let reports = plugin.reports().join("\n");
    for name in [
        "env::proxy_grpc_stream",
        "env::proxy_from_the_future",
        "wasi_snapshot_preview1::path_open",
    ] {
        assert!(reports.contains(name), "{name} not reported: {reports}");
    }
    assert!(
        outcome
            .logs
            .iter()
            .any(|l| l.message.contains("proxy_grpc_stream is not implemented"))
    );
}

#[test]
fn unknown_imports_of_other_result_types_answer_zero_without_trapping() {
    let imports = r#"
  (import "env" "proxy_wide_future" (func $wide (result i64)))
  (import "env" "proxy_quiet_future" (func $quiet (param i32)))"#;
    let body = r#"
    (call $quiet (i32.const 1))
    (if (i64.ne (call $wide) (i64.const 0)) (then unreachable))
    (i32.const 0)"#;
    let module = on_request_headers("wide", imports, "", body);
    let mut plugin = start(&module);
    let outcome = plugin.send(Request::get("/")).unwrap();
    assert!(outcome.forwarded(), "{outcome:#?}");
    let reports = plugin.reports().join("\n");
    assert!(reports.contains("env::proxy_wide_future"), "{reports}");
    assert!(reports.contains("env::proxy_quiet_future"), "{reports}");
}

#[test]
fn proc_exit_fails_the_vm_with_its_code() {
    let imports = r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
    let module = on_request_headers(
        "exit",
        imports,
        "",
        "(call $exit (i32.const 3)) (i32.const 0)",
    );
    let failure = start(&module)
        .send(Request::get("/"))
        .unwrap()
        .vm_failure
        .unwrap();
    assert!(failure.contains("proc_exit(3)"), "{failure}");
}

#[test]
fn an_initialiser_that_traps_fails_the_start_clearly() {
    let wat = proxy_wat("", r#"(func (export "_initialize") unreachable)"#);
    let err = Plugin::start(&support::module("init", &wat), PluginOptions::default()).unwrap_err();
    assert!(matches!(err, HostError::StartFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("_initialize failed while starting"),
        "{err}"
    );
}

#[test]
fn refusing_configuration_without_a_log_line_still_explains() {
    let wat = proxy_wat(
        "",
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    let err =
        Plugin::start(&support::module("refuse", &wat), PluginOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("returned false without logging why"),
        "{err}"
    );
}

#[test]
fn exports_with_the_wrong_signature_are_named() {
    let wat = proxy_wat(
        "",
        r#"(func (export "proxy_on_request_headers") (param i32) (result i32) (i32.const 0))"#,
    );
    let err = Plugin::start(&support::module("sig", &wat), PluginOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`proxy_on_request_headers` has an unexpected signature"),
        "{err}"
    );
}

#[test]
fn guest_pointers_out_of_bounds_get_invalid_memory_access() {
    let imports = r#"
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
    let body = r#"
    (drop (call $reply (i32.add (i32.const 400) (call $log (i32.const 2) (i32.const -16) (i32.const 64)))
                       (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)"#;
    let module = on_request_headers("oob", imports, "", body);
    assert_eq!(
        start(&module).send(Request::get("/")).unwrap().status(),
        Some(406)
    );
}

#[test]
fn modules_are_compiled_once_per_process() {
    let wat = proxy_wat("", r#"(func (export "cache_marker_unique_4711"))"#);
    let bytes = wat::parse_str(wat).unwrap();
    let before = cache_stats();
    let first = WasmModule::from_bytes("cached.wasm", &bytes).unwrap();
    let second = WasmModule::from_bytes("cached-again.wasm", &bytes).unwrap();
    let after = cache_stats();
    assert!(after.misses > before.misses);
    assert!(after.hits > before.hits);
    assert_eq!(first.sha256(), second.sha256());
}
