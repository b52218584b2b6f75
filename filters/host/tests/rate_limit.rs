//! The rate-limit module in the wasmtime host: exact budgets across many VMs through one
//! shared-data store, refills on the virtual clock, isolated keys, the 429 it answers, and the
//! bounded key table (overflow cell, idle sweep run by one VM's tick through a shared lease).

use std::time::Duration;

use meshguard_testkit::paths::filter_module;
use meshguard_wasm_host::{HostError, Plugin, PluginOptions, Request, Verdict, WasmModule};

fn module() -> WasmModule {
    WasmModule::from_file(filter_module("meshguard_rate_limit").expect("rate-limit is built"))
        .unwrap()
}

fn start(config: &str, workers: usize) -> Plugin {
    Plugin::start(
        &module(),
        PluginOptions::new(config)
            .named("rate-limit")
            .workers(workers),
    )
    .unwrap()
}

const ORDERS: &str = r#"{"limits":[{"name":"orders","match":{"prefix":"/api/orders"},
    "key":[{"header":"x-user"}],"rate":{"requests":10,"per":"minute"},"burst":5}],
    "headers":"ietf"}"#;

fn orders(user: &str) -> Request {
    Request::get("/api/orders").header("x-user", user)
}

#[test]
fn a_burst_admits_exactly_requests_plus_burst_across_workers_then_refills_on_the_clock() {
    let mut plugin = start(ORDERS, 2);
    let outcomes: Vec<_> = (0..40)
        .map(|_| plugin.send(orders("alice")).unwrap())
        .collect();
    let admitted = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Forwarded)
        .count();
    assert_eq!(
        admitted, 15,
        "10 per minute + burst 5, shared by both workers"
    );
    assert!(outcomes.iter().any(|o| o.vm == 1) && outcomes.iter().any(|o| o.vm == 2));
    let limited = outcomes.last().unwrap();
    assert_eq!(limited.status(), Some(429), "{limited:#?}");
    assert!(
        limited.response_header("retry-after").is_some(),
        "{limited:#?}"
    );
    assert!(
        limited.response_header("ratelimit-policy").is_some()
            || limited.response_header("ratelimit").is_some(),
        "{limited:#?}"
    );

    // One cell comes back every 6 s of (virtual) time.
    plugin.advance(Duration::from_secs(5)).unwrap();
    assert_eq!(plugin.send(orders("alice")).unwrap().status(), Some(429));
    plugin.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(plugin.send(orders("alice")).unwrap().status(), Some(200));
    assert_eq!(plugin.send(orders("alice")).unwrap().status(), Some(429));
}

#[test]
fn eight_vms_interleaving_three_keys_give_each_key_exactly_its_budget() {
    let mut plugin = start(ORDERS, 8);
    assert_eq!(plugin.vm_count(), 9, "eight workers and the main thread");
    let users = ["alice", "bob", "carol"];
    // 3 keys x 40 requests, round robin over the 8 workers: every worker serves every key.
    let mut admitted = [0usize; 3];
    let mut served_by = [
        std::collections::BTreeSet::new(),
        Default::default(),
        Default::default(),
    ];
    for round in 0..40 {
        for (index, user) in users.iter().enumerate() {
            let outcome = plugin.send(orders(user)).unwrap();
            served_by[index].insert(outcome.vm);
            if outcome.verdict == Verdict::Forwarded {
                admitted[index] += 1;
            } else {
                assert_eq!(outcome.status(), Some(429), "round {round}: {outcome:#?}");
            }
        }
    }
    assert_eq!(
        admitted,
        [15, 15, 15],
        "10/min + burst 5 per key, not per VM"
    );
    assert!(served_by.iter().all(|vms| vms.len() == 8), "{served_by:?}");
    // Stats are one per name across VMs, as in Envoy, once every VM's tick added its counts.
    plugin.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.orders.allowed"),
        Some(45)
    );
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.orders.limited"),
        Some(120 - 45)
    );
    // One cell per key every 6 s, whichever VM asks first.
    plugin.advance(Duration::from_secs(6)).unwrap();
    for user in users {
        let statuses: Vec<u16> = (0..8)
            .map(|_| plugin.send(orders(user)).unwrap().status().unwrap())
            .collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            1,
            "{user}: {statuses:?}"
        );
    }
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
}

#[test]
fn a_full_table_overflows_into_one_budget_and_one_vm_sweeps_idle_keys() {
    // 32 keys at most, one request per minute each, forgotten 10 s after their budget is back.
    let config = r#"{"limits":[{"name":"login","key":[{"header":"x-client"}],
        "rate":{"requests":1,"per":"minute"},"maxKeys":32,"idleExpiry":"10s"}]}"#;
    let mut plugin = start(config, 4);
    let client = |id: usize| Request::get("/login").header("x-client", format!("client-{id}"));
    // 2000 distinct keys: the first to reach each bucket take its 16 ways, every other key
    // shares the one overflow cell (1 per minute), so rotating keys buys nothing: exactly the
    // 32 table keys plus the overflow cell's single cell are admitted.
    let admitted: usize = (0..2000)
        .map(|id| usize::from(plugin.send(client(id)).unwrap().status() == Some(200)))
        .sum();
    assert_eq!(admitted, 32 + 1);
    let tracked = 32;

    // Ticks: every VM ticks each second (adding its counts to the stats), one wins the lease;
    // the gauge counts the table.
    plugin.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.login.overflow"),
        Some(2000 - 32)
    );
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.login.keys"),
        Some(tracked)
    );
    let evictions = |plugin: &Plugin| {
        plugin
            .metric("meshguard.rate_limit.rate-limit.login.evictions")
            .unwrap_or(0)
    };
    assert_eq!(evictions(&plugin), 0);
    // Budgets are back after 60 s, and idle for 10 s more at 70 s: the sweep forgets them,
    // each exactly once although five VMs tick.
    plugin.advance(Duration::from_secs(68)).unwrap();
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.login.keys"),
        Some(tracked)
    );
    plugin.advance(Duration::from_secs(3)).unwrap();
    assert_eq!(evictions(&plugin), tracked);
    assert_eq!(
        plugin.metric("meshguard.rate_limit.rate-limit.login.keys"),
        Some(0)
    );
    // The table has room again: new keys get their own budget.
    for id in 2000..2010 {
        assert_eq!(plugin.send(client(id)).unwrap().status(), Some(200));
    }
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
}

#[test]
fn keys_are_isolated_and_unmatched_paths_are_not_limited() {
    let mut plugin = start(ORDERS, 1);
    for _ in 0..15 {
        assert_eq!(plugin.send(orders("alice")).unwrap().status(), Some(200));
    }
    assert_eq!(plugin.send(orders("alice")).unwrap().status(), Some(429));
    assert_eq!(plugin.send(orders("bob")).unwrap().status(), Some(200));
    for _ in 0..30 {
        let outcome = plugin
            .send(Request::get("/api/products").header("x-user", "alice"))
            .unwrap();
        assert_eq!(outcome.status(), Some(200));
    }
}

#[test]
fn a_per_second_limit_refills_its_whole_budget() {
    let config = r#"{"limits":[{"name":"search","match":{"prefix":"/api/search"},
        "key":[{"header":"x-user"}],"rate":{"requests":4,"per":"second"}}],"headers":"xRateLimit"}"#;
    let mut plugin = start(config, 2);
    let search = || Request::get("/api/search?q=shoe").header("x-user", "carol");
    let statuses = |plugin: &mut Plugin| -> Vec<u16> {
        (0..6)
            .map(|_| plugin.send(search()).unwrap().status().unwrap())
            .collect()
    };
    assert_eq!(statuses(&mut plugin), vec![200, 200, 200, 200, 429, 429]);
    plugin.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(statuses(&mut plugin), vec![200, 200, 200, 200, 429, 429]);
}

#[test]
fn ticks_run_on_every_vm_without_failing_it() {
    let mut plugin = start(ORDERS, 2);
    plugin.advance(Duration::from_secs(90)).unwrap();
    assert!(
        plugin.vm_failures().is_empty(),
        "{:?}",
        plugin.vm_failures()
    );
    assert_eq!(plugin.send(orders("dave")).unwrap().status(), Some(200));
}

#[test]
fn invalid_configuration_names_the_field() {
    let config = r#"{"limits":[{"name":"x","key":[{"header":"x-user"}],"rate":{"requests":0,"per":"second"}}]}"#;
    let err = Plugin::start(&module(), PluginOptions::new(config)).unwrap_err();
    assert!(matches!(err, HostError::ConfigRejected { .. }));
    assert!(err.to_string().contains("limits[0].rate.requests"), "{err}");
}

// === global limits: a scripted rate-limit service answers the gRPC callout ===

mod global {
    use std::time::Duration;

    use meshguard_rls::{
        Code, DescriptorStatus, Message, RateLimit, RateLimitRequest, RateLimitResponse, Unit,
    };
    use meshguard_testkit::paths::filter_module;
    use meshguard_wasm_host::{CalloutRule, Plugin, PluginOptions, Request, Verdict, WasmModule};

    const RLS_PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

    fn limits(failure_mode: &str, cluster: &str) -> String {
        format!(
            r#"{{"headers":"ietf","limits":[{{"name":"orders","match":{{"prefix":"/api/orders"}},
                "key":[{{"header":"x-user"}}],
                "global":{{"cluster":"{cluster}","domain":"shop","timeout":"25ms","failureMode":"{failure_mode}"}}}}]}}"#
        )
    }

    /// The rate-limit module and the `meshguard` pipeline's `rateLimit` stage, on one config.
    fn modules(limits: &str) -> [(&'static str, String); 2] {
        [
            ("meshguard_rate_limit", limits.to_string()),
            ("meshguard", format!(r#"{{"rateLimit":{limits}}}"#)),
        ]
    }

    fn start(module: &str, config: &str, rules: Vec<CalloutRule>) -> Plugin {
        let module = WasmModule::from_file(filter_module(module).unwrap()).unwrap();
        let mut options = PluginOptions::new(config)
            .named("rate-limit")
            .workers(2)
            .cluster("ratelimit");
        for rule in rules {
            options = options.callout(rule);
        }
        Plugin::start(&module, options).unwrap()
    }

    fn answer(code: Code, remaining: u32) -> Vec<u8> {
        RateLimitResponse {
            overall_code: code as i32,
            statuses: vec![DescriptorStatus {
                code: code as i32,
                current_limit: Some(RateLimit {
                    name: String::new(),
                    requests_per_unit: 2,
                    unit: Unit::Minute as i32,
                }),
                limit_remaining: remaining,
                duration_until_reset: Some(meshguard_rls::Duration::from_std(
                    Duration::from_millis(41_500),
                )),
            }],
            response_headers_to_add: Vec::new(),
            request_headers_to_add: Vec::new(),
        }
        .encode_to_vec()
    }

    fn order(user: &str) -> Request {
        Request::get("/api/orders").header("x-user", user)
    }

    #[test]
    fn the_service_answers_ok_then_over_limit_and_the_filter_follows() {
        for (module, config) in modules(&limits("allow", "ratelimit")) {
            let mut plugin = start(
                module,
                &config,
                vec![
                    CalloutRule::grpc("ratelimit", 0, answer(Code::Ok, 1)).times(2),
                    CalloutRule::grpc("ratelimit", 0, answer(Code::OverLimit, 0)),
                ],
            );
            for expected in [200, 200, 429] {
                let outcome = plugin.send(order("alice")).unwrap();
                assert_eq!(outcome.status(), Some(expected), "{module}: {outcome:#?}");
            }
            let limited = plugin.send(order("alice")).unwrap();
            assert_eq!(
                limited.response_header("retry-after"),
                Some("42"),
                "{module}"
            );
            assert_eq!(
                limited.response_header("ratelimit"),
                Some("\"orders\";r=0;t=42"),
                "{module}"
            );
            // Each request made one call, as Envoy would put it on the wire.
            let callouts = plugin.callouts();
            assert_eq!(callouts.len(), 4, "{module}");
            let call = &callouts[0];
            assert_eq!(call.cluster, "ratelimit");
            assert_eq!(call.path(), RLS_PATH);
            assert_eq!(call.timeout_ms, 25);
            let request = RateLimitRequest::decode(call.body.as_slice()).unwrap();
            assert_eq!(request.domain, "shop");
            assert_eq!(request.hits_addend, 1);
            assert_eq!(request.descriptors.len(), 1);
            assert_eq!(request.descriptors[0].entries[0].key, "x-user");
            assert_eq!(request.descriptors[0].entries[0].value, "alice");
            // A path no global limit matches makes no call.
            let other = plugin.send(Request::get("/api/cart")).unwrap();
            assert_eq!(other.status(), Some(200));
            assert_eq!(plugin.callouts().len(), 4, "{module}");
            assert!(plugin.vm_failures().is_empty(), "{module}");
        }
    }

    #[test]
    fn a_silent_service_holds_the_request_for_the_timeout_then_the_failure_mode_applies() {
        for (failure_mode, expected) in [("allow", 200), ("deny", 503)] {
            for (module, config) in modules(&limits(failure_mode, "ratelimit")) {
                let mut plugin = start(
                    module,
                    &config,
                    vec![CalloutRule::new(
                        "ratelimit",
                        meshguard_wasm_host::CalloutAnswer::Timeout,
                    )],
                );
                let id = plugin.begin(0, order("alice")).unwrap();
                plugin.advance(Duration::from_millis(24)).unwrap();
                assert_eq!(
                    plugin.outcome(id).unwrap().verdict,
                    Verdict::Pending,
                    "{module}: waits up to the timeout"
                );
                plugin.advance(Duration::from_millis(1)).unwrap();
                let outcome = plugin.outcome(id).unwrap();
                assert_eq!(outcome.status(), Some(expected), "{module}: {outcome:#?}");
                if expected == 503 {
                    assert!(
                        outcome.body_text().contains("DEADLINE_EXCEEDED"),
                        "{module}: {}",
                        outcome.body_text()
                    );
                }
                // Counted (flushed on the next tick), and logged once however many fail.
                for _ in 0..5 {
                    let id = plugin.begin(1, order("bob")).unwrap();
                    plugin.advance(Duration::from_millis(30)).unwrap();
                    assert_eq!(plugin.outcome(id).unwrap().status(), Some(expected));
                }
                plugin.advance(Duration::from_secs(1)).unwrap();
                let stat = |name: &str| {
                    plugin
                        .metric(&format!("meshguard.rate_limit.rate-limit.orders.{name}"))
                        .unwrap_or(0)
                };
                assert_eq!(stat("error"), 6, "{module}");
                let mode_stat = match failure_mode {
                    "allow" => "failure_mode_allowed",
                    _ => "failure_mode_denied",
                };
                assert_eq!(stat(mode_stat), 6, "{module}");
                let warnings = plugin
                    .logs()
                    .iter()
                    .filter(|line| line.message.contains("no usable answer"))
                    .count();
                assert_eq!(warnings, 1, "{module}");
            }
        }
    }

    #[test]
    fn an_unknown_cluster_is_refused_without_a_panic_and_the_failure_mode_applies() {
        for (module, config) in modules(&limits("deny", "no-such-cluster")) {
            let mut plugin = start(module, &config, Vec::new());
            let outcome = plugin.send(order("alice")).unwrap();
            assert_eq!(outcome.status(), Some(503), "{module}: {outcome:#?}");
            assert!(outcome.body_text().contains("no-such-cluster"), "{module}");
            assert!(plugin.vm_failures().is_empty(), "{module}: no panic");
            // The VM still serves.
            assert_eq!(plugin.send(order("bob")).unwrap().status(), Some(503));
        }
    }
}
