//! The WASI preview 1 calls a wasm32-wasip1 module makes, as this host answers them: clocks read
//! the virtual clock, randomness comes from the seeded source, the environment is the configured
//! one, and stdout/stderr become log lines. A WAT probe makes each call and hands the results
//! back through shared data, so the test sees exactly the bytes the module got.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use meshguard_wasm_host::{LogLevel, Plugin, PluginOptions, Request};
use support::on_request_headers;

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#;

/// Keys at 1024.., text at 1100.., results at 256..: realtime 256, monotonic 264, random
/// 272..288, environment sizes 288/292, environment pointers 300, strings 400, iovec 320.
const EXTRA: &str = r#"
  (data (i32.const 1024) "rt")
  (data (i32.const 1032) "mono")
  (data (i32.const 1040) "rand")
  (data (i32.const 1048) "env")
  (data (i32.const 1100) "hello from stdout\n")
  (data (i32.const 1150) "and from stderr\n")
  (func $ok (param i32) (if (local.get 0) (then unreachable)))
  (func $print (param $fd i32) (param $text i32) (param $len i32)
    (i32.store (i32.const 320) (local.get $text))
    (i32.store (i32.const 324) (local.get $len))
    (call $ok (call $write (local.get $fd) (i32.const 320) (i32.const 1) (i32.const 328)))
    (if (i32.ne (i32.load (i32.const 328)) (local.get $len)) (then unreachable)))"#;

const BODY: &str = r#"
    (call $ok (call $clock (i32.const 0) (i64.const 1) (i32.const 256)))
    (call $ok (call $clock (i32.const 1) (i64.const 1) (i32.const 264)))
    (call $ok (call $random (i32.const 272) (i32.const 16)))
    (call $ok (call $env_sizes (i32.const 288) (i32.const 292)))
    (call $ok (call $env_get (i32.const 300) (i32.const 400)))
    (call $ok (call $set (i32.const 1024) (i32.const 2) (i32.const 256) (i32.const 8) (i32.const 0)))
    (call $ok (call $set (i32.const 1032) (i32.const 4) (i32.const 264) (i32.const 8) (i32.const 0)))
    (call $ok (call $set (i32.const 1040) (i32.const 4) (i32.const 272) (i32.const 16) (i32.const 0)))
    (call $ok (call $set (i32.const 1048) (i32.const 3) (i32.const 400) (i32.load (i32.const 292))
                         (i32.const 0)))
    (call $print (i32.const 1) (i32.const 1100) (i32.const 18))
    (call $print (i32.const 2) (i32.const 1150) (i32.const 16))
    (i32.const 0)"#;

const START: u64 = 1_700_000_000;

fn start(seed: u64) -> Plugin {
    let module = on_request_headers("wasi", IMPORTS, EXTRA, BODY);
    let mut options = PluginOptions::default()
        .start_time(UNIX_EPOCH + Duration::from_secs(START))
        .seed(seed);
    options.environment = vec![
        ("MESH".to_string(), "guard".to_string()),
        ("ZONE".to_string(), "eu".to_string()),
    ];
    Plugin::start(&module, options).unwrap()
}

fn u64_at(plugin: &Plugin, key: &str) -> u64 {
    let bytes = plugin.shared_data(key).unwrap().0;
    u64::from_le_bytes(bytes.try_into().unwrap())
}

#[test]
fn clocks_read_the_virtual_clock() {
    let mut plugin = start(7);
    plugin.send(Request::get("/")).unwrap();
    let (rt, mono) = (u64_at(&plugin, "rt"), u64_at(&plugin, "mono"));
    assert_eq!(rt, START * 1_000_000_000);
    plugin.advance(Duration::from_millis(1500)).unwrap();
    plugin.send(Request::get("/")).unwrap();
    assert_eq!(u64_at(&plugin, "rt") - rt, 1_500_000_000);
    assert_eq!(u64_at(&plugin, "mono") - mono, 1_500_000_000);
    // Nothing moves the clock but `advance`.
    plugin.send(Request::get("/")).unwrap();
    assert_eq!(u64_at(&plugin, "rt") - rt, 1_500_000_000);
}

#[test]
fn randomness_is_fresh_per_call_and_repeatable_per_seed() {
    let mut plugin = start(7);
    plugin.send(Request::get("/")).unwrap();
    let first = plugin.shared_data("rand").unwrap().0;
    plugin.send(Request::get("/")).unwrap();
    let second = plugin.shared_data("rand").unwrap().0;
    assert_eq!(first.len(), 16);
    assert_ne!(first, second, "every call draws new bytes");

    let mut same_seed = start(7);
    same_seed.send(Request::get("/")).unwrap();
    assert_eq!(same_seed.shared_data("rand").unwrap().0, first);
    let mut other_seed = start(8);
    other_seed.send(Request::get("/")).unwrap();
    assert_ne!(other_seed.shared_data("rand").unwrap().0, first);
}

#[test]
fn the_environment_is_the_configured_one() {
    let mut plugin = start(7);
    plugin.send(Request::get("/")).unwrap();
    assert_eq!(
        plugin.shared_data("env").unwrap().0,
        b"MESH=guard\0ZONE=eu\0".to_vec()
    );
}

#[test]
fn stdout_and_stderr_become_log_lines_of_the_stream() {
    let mut plugin = start(7);
    let outcome = plugin.send(Request::get("/")).unwrap();
    let lines: Vec<(LogLevel, &str)> = outcome
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LogLevel::Info, "hello from stdout"),
            (LogLevel::Error, "and from stderr")
        ]
    );
    assert!(plugin.reports().is_empty(), "{:?}", plugin.reports());
}
