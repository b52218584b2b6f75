//! The host's ABI behaviour, probed with small WAT modules: local replies, map availability,
//! callouts on the virtual clock (scripted, or forwarded to a loopback server), ticks on every
//! VM, shared data with CAS across workers, queues, metrics, properties and bodies.

mod support;

use std::time::Duration;

use meshguard_wasm_host::{
    CalloutAnswer, CalloutRule, CalloutState, Plugin, PluginOptions, Request, Verdict,
};
use support::{module, on_request_headers, probe, proxy_wat};

#[test]
fn a_local_reply_passes_through_the_filters_own_response_callback() {
    let mut plugin = Plugin::start(&probe("envoy_probe"), PluginOptions::default()).unwrap();
    let outcome = plugin
        .send(Request::get("/teapot").header("x-probe-reply", "1"))
        .unwrap();
    assert_eq!(outcome.verdict, Verdict::LocalReply);
    assert!(!outcome.forwarded());
    assert_eq!(outcome.status(), Some(418));
    assert_eq!(outcome.body_text(), "short and stout");
    assert_eq!(outcome.response_header("x-probe"), Some("yes"));
    assert_eq!(outcome.response_header("content-type"), Some("text/plain"));
    assert_eq!(outcome.response_header("x-probe-on-response"), Some("1"));
    // The filter stopped iteration and never continued, so it still holds the request headers.
    assert_eq!(outcome.response_header("x-probe-request-map"), Some("ok"));
    let reply = outcome.local_reply.unwrap();
    assert_eq!(reply.sent_in, "on_request_headers");
    assert_eq!(
        reply.headers,
        vec![("x-probe".to_string(), "yes".to_string())]
    );
}

#[test]
fn request_headers_are_gone_in_the_response_phase_as_in_envoy() {
    let mut plugin = Plugin::start(&probe("envoy_probe"), PluginOptions::default()).unwrap();
    let outcome = plugin.send(Request::get("/api")).unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded);
    assert_eq!(outcome.upstream_header("x-probe-seen"), Some("1"));
    assert_eq!(
        outcome.response_header("x-probe-request-map"),
        Some("bad-argument")
    );
    assert_eq!(outcome.response_header("x-upstream"), Some("backend"));
}

const CALLOUT_IMPORTS: &str = r#"
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;

/// Calls cluster `auth` (`GET /check`, timeout 500 ms) and pauses; the answer decides: body
/// "ok" continues, another body answers 403, a failed call 502, a rejected dispatch 500.
fn callout_module() -> meshguard_wasm_host::WasmModule {
    let extra = r#"
  (data (i32.const 1024) "auth")
  (data (i32.const 1088) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\04\00\00\00:method\00GET\00:path\00/check\00:authority\00auth\00")
  (func $deny (param $status i32)
    (drop (call $reply (local.get $status) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                       (i32.const 0) (i32.const 0) (i32.const -1))))
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $headers i32)
        (param $body i32) (param $trailers i32)
    (if (i32.eqz (local.get $headers)) (then (call $deny (i32.const 502)) (return)))
    (if (i32.eq (local.get $body) (i32.const 2))
      (then (drop (call $continue (i32.const 0))))
      (else (call $deny (i32.const 403)))))"#;
    let body = r#"
    (if (call $call (i32.const 1024) (i32.const 4) (i32.const 1088) (i32.const 69) (i32.const 0) (i32.const 0)
                    (i32.const 0) (i32.const 0) (i32.const 500) (i32.const 64))
      (then (call $deny (i32.const 500)) (return (i32.const 1))))
    (i32.const 1)"#;
    on_request_headers("callout", CALLOUT_IMPORTS, extra, body)
}

#[test]
fn scripted_callouts_are_answered_after_the_callback_and_resume_the_stream() {
    let options =
        PluginOptions::default().callout(CalloutRule::respond("auth", 200, "ok").path("/check"));
    let mut plugin = Plugin::start(&callout_module(), options).unwrap();
    let outcome = plugin.send(Request::get("/orders")).unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded, "{outcome:#?}");
    assert_eq!(outcome.callouts.len(), 1);
    let call = &outcome.callouts[0];
    assert_eq!(
        (call.cluster.as_str(), call.method(), call.path()),
        ("auth", "GET", "/check")
    );
    assert_eq!(call.state, CalloutState::Answered { status: 200 });
    assert_eq!(call.timeout_ms, 500);
}

#[test]
fn delayed_answers_wait_for_the_virtual_clock() {
    let rule = CalloutRule::respond("auth", 200, "nope").delay(Duration::from_millis(200));
    let mut plugin =
        Plugin::start(&callout_module(), PluginOptions::default().callout(rule)).unwrap();
    let pending = plugin.send(Request::get("/orders")).unwrap();
    assert_eq!(pending.verdict, Verdict::Pending);
    assert_eq!(pending.waiting_in.as_deref(), Some("on_request_headers"));
    plugin.advance(Duration::from_millis(199)).unwrap();
    assert_eq!(
        plugin.outcome(pending.stream).unwrap().verdict,
        Verdict::Pending
    );
    plugin.advance(Duration::from_millis(1)).unwrap();
    let done = plugin.outcome(pending.stream).unwrap();
    assert_eq!(done.status(), Some(403));
    assert_eq!(done.local_reply.unwrap().sent_in, "on_http_call_response");
}

#[test]
fn unanswered_callouts_time_out_with_envoys_504_and_resets_fail() {
    let mut silent = Plugin::start(
        &callout_module(),
        PluginOptions::default().callout(CalloutRule::new("auth", CalloutAnswer::Timeout)),
    )
    .unwrap();
    let id = silent.send(Request::get("/")).unwrap().stream;
    silent.advance(Duration::from_millis(500)).unwrap();
    let timed_out = silent.outcome(id).unwrap();
    // The module saw a response with headers (the router's 504) and a body that is not "ok".
    assert_eq!(timed_out.status(), Some(403));
    assert_eq!(
        timed_out.callouts[0].state,
        CalloutState::Answered { status: 504 }
    );

    let mut reset = Plugin::start(
        &callout_module(),
        PluginOptions::default().callout(CalloutRule::new("auth", CalloutAnswer::Reset)),
    )
    .unwrap();
    let outcome = reset.send(Request::get("/")).unwrap();
    assert_eq!(outcome.status(), Some(502));
    assert_eq!(outcome.callouts[0].state, CalloutState::Failed);
}

#[test]
fn forwarded_callouts_reach_a_real_loopback_server() {
    use meshguard_testkit::{Script, Upstream};
    let auth = Upstream::start("auth").unwrap();
    auth.script("/check", Script::document("text/plain", "ok"));
    let rule = CalloutRule::new("auth", CalloutAnswer::Forward { url: auth.url() });
    let mut plugin =
        Plugin::start(&callout_module(), PluginOptions::default().callout(rule)).unwrap();
    let outcome = plugin.send(Request::get("/orders")).unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded, "{outcome:#?}");
    assert_eq!(
        outcome.callouts[0].state,
        CalloutState::Answered { status: 200 }
    );
    assert_eq!(auth.hits("/check"), 1);
    // The server's own answer decides: a 503 with another body is refused by the module.
    auth.script("/check", Script::status(503));
    let refused = plugin.send(Request::get("/orders")).unwrap();
    assert_eq!(refused.status(), Some(403));
    assert_eq!(
        refused.callouts[0].state,
        CalloutState::Answered { status: 503 }
    );
    assert_eq!(auth.hits("/check"), 2);
}

#[test]
fn callouts_to_unknown_clusters_are_bad_arguments_and_reported() {
    let mut plugin = Plugin::start(&callout_module(), PluginOptions::default()).unwrap();
    let outcome = plugin.send(Request::get("/")).unwrap();
    assert_eq!(outcome.status(), Some(500));
    assert!(
        plugin
            .reports()
            .iter()
            .any(|r| r.contains("unknown cluster `auth`"))
    );
}

#[test]
fn callouts_of_a_finished_stream_are_cancelled() {
    // Dispatches and continues at once: the stream ends before the answer arrives.
    let extra = r#"
  (data (i32.const 1024) "auth")
  (data (i32.const 1088) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\04\00\00\00:method\00GET\00:path\00/check\00:authority\00auth\00")
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32) unreachable)"#;
    let body = r#"
    (drop (call $call (i32.const 1024) (i32.const 4) (i32.const 1088) (i32.const 69) (i32.const 0) (i32.const 0)
                      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 64)))
    (i32.const 0)"#;
    let module = on_request_headers("fire-and-forget", CALLOUT_IMPORTS, extra, body);
    let rule = CalloutRule::respond("auth", 200, "ok").delay(Duration::from_secs(1));
    let mut plugin = Plugin::start(&module, PluginOptions::default().callout(rule)).unwrap();
    let outcome = plugin.send(Request::get("/")).unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded);
    assert_eq!(outcome.callouts[0].state, CalloutState::Cancelled);
    plugin.advance(Duration::from_secs(2)).unwrap();
    // Never delivered (the callback would have trapped).
    assert!(plugin.vm_failures().is_empty());
}

const TICK_MODULE_IMPORTS: &str = r#"
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_every (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))"#;

#[test]
fn ticks_fire_on_every_vm_on_the_virtual_clock() {
    let body = r#"
  (data (i32.const 1024) "ticks")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 256)))
    (drop (call $tick_every (i32.const 100)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $increment (i32.load (i32.const 256)) (i64.const 1))))"#;
    let module = module("ticks", &proxy_wat(TICK_MODULE_IMPORTS, body));
    let mut plugin = Plugin::start(&module, PluginOptions::default().workers(2)).unwrap();
    assert_eq!(plugin.vm_count(), 3);
    assert_eq!(plugin.tick_period(0), Some(Duration::from_millis(100)));
    plugin.advance(Duration::from_millis(99)).unwrap();
    assert_eq!(plugin.metric("ticks"), Some(0));
    plugin.advance(Duration::from_millis(901)).unwrap();
    // 10 ticks on each of main + 2 workers; all VMs share the stat by name.
    assert_eq!(plugin.metric("ticks"), Some(30));
    let mut quiet = Plugin::start(&module, PluginOptions::default().main_thread(false)).unwrap();
    quiet.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(quiet.metric("ticks"), Some(10));
}

#[test]
fn metric_semantics_follow_envoy() {
    let imports = r#"
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $record (param i32 i64) (result i32)))
  (import "env" "proxy_get_metric" (func $get (param i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
    let extra = r#"
  (data (i32.const 1024) "requests")
  (data (i32.const 1040) "inflight")
  (data (i32.const 1056) "latency")"#;
    // status = 100 * (counter decrement refused: 2) + 10 * (histogram get refused: 2) + gauge
    let body = r#"
    (local $c i32) (local $g i32) (local $h i32) (local $s i32)
    (drop (call $define (i32.const 0) (i32.const 1024) (i32.const 8) (i32.const 256)))
    (drop (call $define (i32.const 1) (i32.const 1040) (i32.const 8) (i32.const 260)))
    (drop (call $define (i32.const 2) (i32.const 1056) (i32.const 7) (i32.const 264)))
    (local.set $c (i32.load (i32.const 256)))
    (local.set $g (i32.load (i32.const 260)))
    (local.set $h (i32.load (i32.const 264)))
    (drop (call $increment (local.get $c) (i64.const 3)))
    (local.set $s (i32.mul (i32.const 100) (call $increment (local.get $c) (i64.const -1))))
    (drop (call $increment (local.get $g) (i64.const 5)))
    (drop (call $increment (local.get $g) (i64.const -2)))
    (drop (call $record (local.get $h) (i64.const 42)))
    (local.set $s (i32.add (local.get $s) (i32.mul (i32.const 10) (call $get (local.get $h) (i32.const 272)))))
    (drop (call $get (local.get $g) (i32.const 272)))
    (local.set $s (i32.add (local.get $s) (i32.load (i32.const 272))))
    (drop (call $reply (local.get $s) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                       (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)"#;
    let module = on_request_headers("metrics", imports, extra, body);
    let mut plugin = Plugin::start(&module, PluginOptions::default()).unwrap();
    assert_eq!(plugin.send(Request::get("/")).unwrap().status(), Some(223));
    let metrics = plugin.metrics();
    assert_eq!(metrics["requests"].value, 3);
    assert_eq!(metrics["inflight"].value, 3);
    assert_eq!(metrics["latency"].samples, vec![42]);
}

const SHARED_IMPORTS: &str = r#"
  (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))"#;

/// Increments a one-byte counter in shared data with a CAS retry loop.
const SHARED_BUMP: &str = r#"
  (data (i32.const 1024) "hits")
  (func $bump (local $v i32)
    (loop $retry
      (if (i32.eqz (call $get (i32.const 1024) (i32.const 4) (i32.const 64) (i32.const 68) (i32.const 72)))
        (then (local.set $v (i32.load8_u (i32.load (i32.const 64)))))
        (else (local.set $v (i32.const 0)) (i32.store (i32.const 72) (i32.const 0))))
      (i32.store8 (i32.const 80) (i32.add (local.get $v) (i32.const 1)))
      (br_if $retry (i32.eq (i32.const 8)
        (call $set (i32.const 1024) (i32.const 4) (i32.const 80) (i32.const 1) (i32.load (i32.const 72)))))))"#;

#[test]
fn shared_data_is_one_store_for_all_workers() {
    let module = on_request_headers(
        "shared",
        SHARED_IMPORTS,
        SHARED_BUMP,
        "(call $bump) (i32.const 0)",
    );
    let mut plugin = Plugin::start(&module, PluginOptions::default().workers(3)).unwrap();
    let mut vms = Vec::new();
    for _ in 0..7 {
        vms.push(plugin.send(Request::get("/")).unwrap().vm);
    }
    vms.sort_unstable();
    vms.dedup();
    assert_eq!(vms, vec![1, 2, 3], "round robin over the workers");
    assert_eq!(plugin.shared_data("hits").unwrap().0, vec![7]);
    // An outside write bumps the CAS token; the module's retry loop copes.
    plugin.set_shared_data("hits", &[100]);
    plugin.send_to(0, Request::get("/")).unwrap();
    assert_eq!(plugin.shared_data("hits").unwrap().0, vec![101]);
}

#[test]
fn queues_wake_their_owner_after_the_enqueue() {
    let imports = r#"
  (import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;
    let body = r#"
  (data (i32.const 1024) "jobs")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $register (i32.const 1024) (i32.const 4) (i32.const 256)))
    (i32.const 1))
  (func (export "proxy_on_queue_ready") (param $ctx i32) (param $queue i32)
    (loop $drain
      (if (i32.eqz (call $dequeue (local.get $queue) (i32.const 64) (i32.const 68)))
        (then
          (drop (call $log (i32.const 2) (i32.load (i32.const 64)) (i32.load (i32.const 68))))
          (br $drain)))))"#;
    let module = module("queue", &proxy_wat(imports, body));
    let mut plugin = Plugin::start(&module, PluginOptions::default().workers(2)).unwrap();
    plugin.enqueue("jobs", b"first").unwrap();
    plugin.enqueue("jobs", b"second").unwrap();
    let logs: Vec<(usize, String)> = plugin
        .logs()
        .into_iter()
        .map(|l| (l.vm, l.message))
        .collect();
    // The last VM to register owns the queue.
    assert_eq!(
        logs,
        vec![(2, "first".to_string()), (2, "second".to_string())]
    );
    assert!(plugin.enqueue("nope", b"x").is_err());
}

#[test]
fn properties_come_from_the_stream_and_the_table() {
    let imports = r#"
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))"#;
    let extra = r#"
  (data (i32.const 1024) "source\00address")
  (data (i32.const 1056) "node\00id")
  (data (i32.const 1088) "x-source")
  (data (i32.const 1104) "x-node")
  (func $copy (param $path i32) (param $len i32) (param $name i32) (param $name_len i32)
    (if (i32.eqz (call $prop (local.get $path) (local.get $len) (i32.const 64) (i32.const 68)))
      (then (drop (call $add (i32.const 0) (local.get $name) (local.get $name_len)
                             (i32.load (i32.const 64)) (i32.load (i32.const 68)))))))"#;
    let body = r#"
    (call $copy (i32.const 1024) (i32.const 14) (i32.const 1088) (i32.const 8))
    (call $copy (i32.const 1056) (i32.const 7) (i32.const 1104) (i32.const 6))
    (i32.const 0)"#;
    let module = on_request_headers("props", imports, extra, body);
    let options = PluginOptions::default().property("node.id", "sidecar~10.0.0.9");
    let mut plugin = Plugin::start(&module, options).unwrap();
    let outcome = plugin
        .send(Request::get("/").source("10.1.1.1:31337"))
        .unwrap();
    assert_eq!(outcome.upstream_header("x-source"), Some("10.1.1.1:31337"));
    assert_eq!(outcome.upstream_header("x-node"), Some("sidecar~10.0.0.9"));
}

#[test]
fn bodies_buffer_across_chunks_and_can_be_replaced() {
    let imports = r#"
  (import "env" "proxy_set_buffer_bytes" (func $set_body (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;
    let body = r#"
  (data (i32.const 1024) "REDACTED")
  (data (i32.const 1040) "chunk")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (drop (call $log (i32.const 1) (i32.const 1040) (i32.const 5)))
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $set_body (i32.const 0) (i32.const 0) (local.get $size) (i32.const 1024) (i32.const 8)))
    (i32.const 0))"#;
    let module = module("body", &proxy_wat(imports, body));
    let mut plugin = Plugin::start(&module, PluginOptions::default()).unwrap();
    let outcome = plugin
        .send(Request::post("/upload", "").body_chunks(vec![b"se".to_vec(), b"cret".to_vec()]))
        .unwrap();
    assert_eq!(outcome.logs.len(), 2, "one on_request_body per chunk");
    assert_eq!(outcome.upstream.as_ref().unwrap().body, b"REDACTED");
}

#[test]
fn routes_pick_the_cluster_from_the_headers_the_filter_leaves() {
    use meshguard_wasm_host::{Route, UpstreamResponse};
    let options = PluginOptions::default()
        .route(Route::prefix("/", "canary").header("x-probe-seen", "1"))
        .route(Route::prefix("/static", "stable"))
        .upstream("canary", UpstreamResponse::body(200, "v2"));
    let mut plugin = Plugin::start(&probe("envoy_probe"), options).unwrap();
    let outcome = plugin.send(Request::get("/api")).unwrap();
    assert_eq!(outcome.upstream.as_ref().unwrap().cluster, "canary");
    assert_eq!(outcome.body_text(), "v2");
}

#[test]
fn no_route_is_a_404_from_the_router() {
    use meshguard_wasm_host::Route;
    let options = PluginOptions::default().route(Route::prefix("/only", "backend"));
    let mut plugin = Plugin::start(&probe("envoy_probe"), options).unwrap();
    let outcome = plugin.send(Request::get("/elsewhere")).unwrap();
    assert_eq!(outcome.status(), Some(404));
    assert_eq!(
        outcome.local_reply.as_ref().unwrap().details,
        "route_not_found"
    );
    assert_eq!(outcome.response_header("x-probe-on-response"), Some("1"));
}

/// Stops iteration at request headers, buffers body chunks until the last, then continues.
fn holds_headers_for_the_body() -> meshguard_wasm_host::WasmModule {
    let extra = r#"
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32)
    (result i32)
    (if (result i32) (local.get $eos) (then (i32.const 0)) (else (i32.const 1))))"#;
    on_request_headers("hold", "", extra, "(i32.const 1)")
}

#[test]
fn stop_iteration_at_headers_stalls_the_body_unless_envoy_allows_holding_headers() {
    let request = || {
        Request::post("/api/payments", "{\"amount\":")
            .body_chunks(vec![b"{\"amount\":".to_vec(), b" 10}".to_vec()])
    };
    // Envoy's default for ABI 0.2.x: StopIteration becomes StopAllIteration, body included.
    let mut stalled =
        Plugin::start(&holds_headers_for_the_body(), PluginOptions::default()).unwrap();
    let outcome = stalled.send(request()).unwrap();
    assert_eq!(outcome.verdict, Verdict::Pending);
    // `allow_on_headers_stop_iteration: true`: the body reaches the filter, which continues.
    let options = PluginOptions::default().allow_on_headers_stop_iteration(true);
    let mut held = Plugin::start(&holds_headers_for_the_body(), options).unwrap();
    let outcome = held.send(request()).unwrap();
    assert_eq!(outcome.verdict, Verdict::Forwarded);
    assert!(
        outcome.body_text().contains("amount"),
        "{}",
        outcome.body_text()
    );
}
