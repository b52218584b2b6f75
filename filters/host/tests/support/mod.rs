//! Small proxy-wasm modules written in WAT for host tests: a skeleton with the exports every
//! module needs (memory, ABI version, allocator, context create) into which a test splices
//! imports and callbacks.

#![allow(dead_code)]

pub mod fidelity;

use meshguard_wasm_host::WasmModule;

/// Compiles WAT text into a module.
pub fn module(name: &str, wat: &str) -> WasmModule {
    let bytes = wat::parse_str(wat).unwrap_or_else(|err| panic!("{name}: bad WAT: {err}"));
    WasmModule::from_bytes(name, &bytes).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// The WAT of a proxy-wasm module with `imports` and `body` (functions, data) spliced in.
/// Memory: 4 pages; strings may go at 1024..65535; the bump heap starts at 131072.
pub fn proxy_wat(imports: &str, body: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  {body}
)"#
    )
}

/// A module whose `proxy_on_request_headers` runs `body` (which must leave an i32 action).
pub fn on_request_headers(name: &str, imports: &str, extra: &str, body: &str) -> WasmModule {
    module(
        name,
        &proxy_wat(
            imports,
            &format!(
                r#"{extra}
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32)
    {body})"#
            ),
        ),
    )
}

/// Reads a probe module from `tests/probes/`.
pub fn probe(name: &str) -> WasmModule {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/probes")
        .join(format!("{name}.wat"));
    let text = std::fs::read_to_string(&path).unwrap();
    module(name, &text)
}
