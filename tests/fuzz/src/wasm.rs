//! Wasm bytes: modules in the embedded host, and the export trimmer of the filter build.
//!
//! `wasm_host` builds modules with wasm-smith in two shapes: anything wasm-smith can write (most
//! are refused before they run: not proxy-wasm, features the engine does not enable), and
//! proxy-wasm modules (the ABI's exports with their signatures, every hostcall and WASI
//! function importable) whose random bodies call the host with random pointers and lengths.
//! Each module must be refused with an error, or start and serve a request within the fuel and
//! memory limits it is given; a module must never panic or hang the host.

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use meshguard_wasm_host::{Plugin, PluginOptions, Request, WasmModule};

/// The proxy-wasm exports (ABI 0.2.1) and their signatures, for wasm-smith's `exports`.
const PROXY_EXPORTS: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) unreachable)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) unreachable)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) unreachable)
  (func (export "proxy_on_tick") (param i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) unreachable)
  (func (export "proxy_on_delete") (param i32)))"#;

/// Every hostcall the host links (name, i32 parameters, a trailing i64 parameter where the ABI
/// has one), for wasm-smith's `available_imports`.
const HOSTCALLS: &[(&str, &str, &str)] = &[
    ("env", "proxy_log", "i32 i32 i32"),
    ("env", "proxy_get_log_level", "i32"),
    ("env", "proxy_get_current_time_nanoseconds", "i32"),
    ("env", "proxy_set_tick_period_milliseconds", "i32"),
    ("env", "proxy_get_property", "i32 i32 i32 i32"),
    ("env", "proxy_set_property", "i32 i32 i32 i32"),
    ("env", "proxy_get_shared_data", "i32 i32 i32 i32 i32"),
    ("env", "proxy_set_shared_data", "i32 i32 i32 i32 i32"),
    ("env", "proxy_register_shared_queue", "i32 i32 i32"),
    ("env", "proxy_resolve_shared_queue", "i32 i32 i32 i32 i32"),
    ("env", "proxy_dequeue_shared_queue", "i32 i32 i32"),
    ("env", "proxy_enqueue_shared_queue", "i32 i32 i32"),
    ("env", "proxy_define_metric", "i32 i32 i32 i32"),
    ("env", "proxy_increment_metric", "i32 i64"),
    ("env", "proxy_record_metric", "i32 i64"),
    ("env", "proxy_get_metric", "i32 i32"),
    (
        "env",
        "proxy_call_foreign_function",
        "i32 i32 i32 i32 i32 i32",
    ),
    ("env", "proxy_set_effective_context", "i32"),
    ("env", "proxy_done", ""),
    ("env", "proxy_get_status", "i32 i32 i32"),
    ("env", "proxy_get_header_map_pairs", "i32 i32 i32"),
    ("env", "proxy_set_header_map_pairs", "i32 i32 i32"),
    ("env", "proxy_get_header_map_value", "i32 i32 i32 i32 i32"),
    (
        "env",
        "proxy_replace_header_map_value",
        "i32 i32 i32 i32 i32",
    ),
    ("env", "proxy_add_header_map_value", "i32 i32 i32 i32 i32"),
    ("env", "proxy_remove_header_map_value", "i32 i32 i32"),
    ("env", "proxy_get_header_map_size", "i32 i32"),
    ("env", "proxy_get_buffer_bytes", "i32 i32 i32 i32 i32"),
    ("env", "proxy_set_buffer_bytes", "i32 i32 i32 i32 i32"),
    ("env", "proxy_continue_stream", "i32"),
    ("env", "proxy_continue_request", ""),
    ("env", "proxy_close_stream", "i32"),
    (
        "env",
        "proxy_send_local_response",
        "i32 i32 i32 i32 i32 i32 i32 i32",
    ),
    (
        "env",
        "proxy_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
    ),
    ("wasi_snapshot_preview1", "fd_write", "i32 i32 i32 i32"),
    ("wasi_snapshot_preview1", "fd_read", "i32 i32 i32 i32"),
    ("wasi_snapshot_preview1", "fd_seek", "i32 i64 i32 i32"),
    ("wasi_snapshot_preview1", "environ_sizes_get", "i32 i32"),
    ("wasi_snapshot_preview1", "environ_get", "i32 i32"),
    ("wasi_snapshot_preview1", "clock_time_get", "i32 i64 i32"),
    ("wasi_snapshot_preview1", "random_get", "i32 i32"),
    ("wasi_snapshot_preview1", "poll_oneoff", "i32 i32 i32 i32"),
];

fn wat_module(wat: &str) -> Vec<u8> {
    match wat::parse_str(wat) {
        Ok(bytes) => bytes,
        Err(err) => panic!("the harness's own module does not parse: {err}"),
    }
}

fn shapes() -> &'static (Vec<u8>, Vec<u8>) {
    static SHAPES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let imports: String = HOSTCALLS
            .iter()
            .map(|(module, name, params)| {
                format!("(import \"{module}\" \"{name}\" (func (param {params}) (result i32)))\n")
            })
            .collect();
        (
            wat_module(&format!("(module {imports})")),
            wat_module(PROXY_EXPORTS),
        )
    })
}

/// Per-callback fuel. wasm-smith's bodies are a few hundred instructions, so what runs out of
/// fuel is a loop, and a loop meets the limit the same way at any budget: the host's fuel path
/// (trap, VM failed, later callbacks refused) is what is tested, not the budget's size. A budget
/// of a real filter's request (a few million) spent by every looping VM was most of this
/// target's time per input; this one fails a loop in well under a millisecond.
pub const FUEL: u64 = 100_000;
/// Linear memory per VM.
pub const MEMORY_LIMIT: usize = 16 << 20;

/// A module from fuzz bytes: the first byte picks the shape.
pub fn smith(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let proxy_shaped = u.arbitrary::<u8>().ok()? % 4 != 0;
    let mut config = wasm_smith::Config::arbitrary(&mut u).ok()?;
    if proxy_shaped {
        let (imports, exports) = shapes();
        config.available_imports = Some(imports.clone());
        config.exports = Some(exports.clone());
        // What wasmtime's default engine and Envoy's V8 run; the host refuses the rest.
        config.gc_enabled = false;
        config.exceptions_enabled = false;
        config.threads_enabled = false;
        config.memory64_enabled = false;
        config.custom_page_sizes_enabled = false;
        config.shared_everything_threads_enabled = false;
        config.max_memories = 1;
        config.max_imports = config.max_imports.max(8);
    }
    config.max_memory32_bytes = config.max_memory32_bytes.min(64 << 20);
    let module = wasm_smith::Module::new(config, &mut u).ok()?;
    Some(module.to_bytes())
}

/// Target `wasm_host`.
pub fn host(data: &[u8]) {
    let Some(bytes) = smith(data) else {
        return;
    };
    run_module(&bytes);
}

/// Loads a module and, if the host accepts it, serves one request and a tick with it.
pub fn run_module(bytes: &[u8]) {
    let Ok(module) = WasmModule::compile_uncached("fuzz.wasm", bytes) else {
        return;
    };
    let options = PluginOptions::new(b"{}".to_vec())
        .workers(1)
        .fuel(FUEL)
        .memory_limit(MEMORY_LIMIT);
    let Ok(mut plugin) = Plugin::start(&module, options) else {
        return;
    };
    let _ = plugin.send(Request::get("/api/cart").header("x-fuzz", "1"));
    let _ = plugin.advance(Duration::from_secs(1));
    let _ = plugin.send(Request::post("/api/orders", b"{}".to_vec()));
}

/// Target `export_trimmer`: arbitrary bytes, and the same bytes behind a valid header and a
/// list of unused exports, through `remove_unused_exports`.
pub fn trimmer(data: &[u8]) {
    if let Ok(trimmed) = crate::export_trimmer::remove_unused_exports(data) {
        // A module the trimmer accepted is accepted again, with nothing left to remove.
        let again = crate::export_trimmer::remove_unused_exports(&trimmed.module);
        assert!(
            again.is_ok(),
            "the trimmer refuses its own output: {again:?}"
        );
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend_from_slice(data);
    let _ = crate::export_trimmer::remove_unused_exports(&module);
}
