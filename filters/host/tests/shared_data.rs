//! Shared data between Envoy workers: two VM instances read the same key, both try to write
//! it back, and the second write carries a CAS token the first write made stale. Envoy's
//! workers race for real; here the race is made explicit by pausing both streams on a
//! callout, then letting the virtual clock deliver the answers one after the other.

mod support;

use std::time::Duration;

use meshguard_wasm_host::{CalloutRule, Plugin, PluginOptions, Request, Verdict};
use support::on_request_headers;

const IMPORTS: &str = r#"
  (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;

/// Request headers: read `k` (value byte and CAS token kept in this instance's globals), call
/// cluster `auth` and pause. Callout answer: write value + 1 with the kept token; continue on
/// success, answer 409 on `CasMismatch` (8), 500 on anything else.
const EXTRA: &str = r#"
  (global $seen (mut i32) (i32.const 0))
  (global $cas (mut i32) (i32.const 0))
  (data (i32.const 1024) "auth")
  (data (i32.const 1040) "k")
  (data (i32.const 1088) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\04\00\00\00:method\00GET\00:path\00/check\00:authority\00auth\00")
  (func $answer (param $status i32)
    (drop (call $reply (local.get $status) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                       (i32.const 0) (i32.const 0) (i32.const -1))))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (local $status i32)
    (i32.store8 (i32.const 80) (i32.add (global.get $seen) (i32.const 1)))
    (local.set $status
      (call $set (i32.const 1040) (i32.const 1) (i32.const 80) (i32.const 1) (global.get $cas)))
    (if (i32.eqz (local.get $status)) (then (drop (call $continue (i32.const 0))) (return)))
    (if (i32.eq (local.get $status) (i32.const 8)) (then (call $answer (i32.const 409)) (return)))
    (call $answer (i32.const 500)))"#;

const BODY: &str = r#"
    (if (call $get (i32.const 1040) (i32.const 1) (i32.const 64) (i32.const 68) (i32.const 72))
      (then unreachable))
    (global.set $seen (i32.load8_u (i32.load (i32.const 64))))
    (global.set $cas (i32.load (i32.const 72)))
    (if (call $call (i32.const 1024) (i32.const 4) (i32.const 1088) (i32.const 69) (i32.const 0)
                    (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 96))
      (then unreachable))
    (i32.const 1)"#;

fn start(workers: usize) -> Plugin {
    let module = on_request_headers("cas", IMPORTS, EXTRA, BODY);
    let rule = CalloutRule::respond("auth", 200, "").delay(Duration::from_millis(100));
    let mut plugin = Plugin::start(
        &module,
        PluginOptions::default().workers(workers).callout(rule),
    )
    .unwrap();
    plugin.set_shared_data("k", &[0]);
    plugin
}

#[test]
fn a_write_with_a_token_another_worker_made_stale_is_a_cas_mismatch() {
    let mut plugin = start(2);
    let first = plugin.send_to(0, Request::get("/a")).unwrap();
    let second = plugin.send_to(1, Request::get("/b")).unwrap();
    assert_eq!(
        (first.verdict, second.verdict),
        (Verdict::Pending, Verdict::Pending)
    );
    assert_ne!(first.vm, second.vm, "two VM instances");
    let token = plugin.shared_data("k").unwrap().1;

    plugin.advance(Duration::from_millis(100)).unwrap();
    let first = plugin.outcome(first.stream).unwrap();
    let second = plugin.outcome(second.stream).unwrap();
    assert_eq!(first.verdict, Verdict::Forwarded, "{first:#?}");
    assert_eq!(second.status(), Some(409), "{second:#?}");
    // One increment landed, with a new token; the stale write changed nothing.
    let (value, new_token) = plugin.shared_data("k").unwrap();
    assert_eq!(value, vec![1]);
    assert_ne!(new_token, token);
    assert!(plugin.vm_failures().is_empty());
}

#[test]
fn writes_in_turn_each_see_the_last_token() {
    let mut plugin = start(2);
    for (index, worker) in [0, 1, 0, 1].into_iter().enumerate() {
        let id = plugin.send_to(worker, Request::get("/")).unwrap().stream;
        plugin.advance(Duration::from_millis(100)).unwrap();
        let outcome = plugin.outcome(id).unwrap();
        assert_eq!(outcome.verdict, Verdict::Forwarded, "{outcome:#?}");
        assert_eq!(plugin.shared_data("k").unwrap().0, vec![index as u8 + 1]);
    }
}
