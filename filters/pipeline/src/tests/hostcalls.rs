//! Hostcalls per request through the whole pipeline, pinned, beside what the same four
//! configurations cost as four modules (each module's own count is pinned in its crate). The
//! saving is the request model's: each header read once, the clock read once, no second map
//! read.

use std::collections::BTreeMap;

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{Env, Filter, Root, Stream};
use serde_json::{Value, json};

use super::{Gateway, NOW, jwt_section};

/// The benchmark's four configurations (`cargo xtask bench`): JWT (cached token, two claim
/// headers), one limit keyed by a header, a canary on a sticky header, a closed breaker.
fn sections() -> Value {
    json!({
        "jwtAuth": jwt_section(),
        "rateLimit": {"limits": [{"name": "per-user", "key": [{"header": "x-user-id"}],
                                  "rate": {"requests": 1_000_000, "per": "second"}}]},
        "canary": {"services": [{"name": "product", "match": {"prefix": "/api/products"},
                                 "versions": [{"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}],
                                 "stickyKey": [{"header": "x-user-id"}]}]},
        "circuitBreaker": {"breakers": [{"name": "product", "match": {"prefix": "/api/products"},
                                         "window": {"type": "count", "size": 100},
                                         "minimumCalls": 20}]}
    })
}

fn steady(gateway: &mut Gateway) -> BTreeMap<&'static str, u32> {
    let bearer = format!("Bearer {}", super::token("user-0042"));
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-user-id", "user-0042"),
    ];
    gateway.send("/api/products", &headers, 200);
    gateway.host.reset_hostcalls();
    gateway.send("/api/products", &headers, 200);
    gateway.host.hostcall_counts()
}

#[test]
fn one_pass_makes_fewer_calls_than_four_modules() {
    let mut gateway = Gateway::new(&sections());
    let pipeline = steady(&mut gateway);
    // One header-map read serves every stage's request headers; one clock read serves JWT's
    // `exp` and the limiter's GCRA; the breaker needs no clock (no slowCall). Writes: the claim
    // header, the token removed, the route header. Shared data: the limiter's bucket and the
    // breaker's state, one read and one CAS write each. Response: `:status`, and for a 200 the
    // `content-type` the breaker judges gRPC by.
    assert_eq!(
        pipeline,
        BTreeMap::from([
            ("header", 2),
            ("headers", 1),
            ("now", 1),
            ("set_header", 3),
            ("shared_get", 2),
            ("shared_set", 2),
        ])
    );

    // The same four configurations as four modules, each with its own request model.
    let mut separate = BTreeMap::new();
    for section in ["jwtAuth", "rateLimit", "canary", "circuitBreaker"] {
        let one = json!({ section: sections()[section].clone() });
        let mut gateway = Gateway::new(&one);
        for (call, count) in steady(&mut gateway) {
            *separate.entry(call).or_insert(0) += count;
        }
    }
    let total = |calls: &BTreeMap<&str, u32>| calls.values().sum::<u32>();
    // Four modules read the sticky header twice (limiter, canary), the route header for the
    // canary's spoof check, `:path` twice (canary, breaker) and the clock twice (JWT, limiter);
    // the pipeline answers all of them from the JWT stage's one map read and one clock read.
    assert_eq!(
        separate,
        BTreeMap::from([
            ("header", 7),
            ("headers", 1),
            ("now", 2),
            ("set_header", 3),
            ("shared_get", 2),
            ("shared_set", 2),
        ])
    );
    assert_eq!((total(&pipeline), total(&separate)), (11, 17));
}

#[test]
fn a_single_stage_pipeline_costs_what_its_module_costs() {
    let limit = json!({"limits": [{"name": "per-user", "key": [{"header": "x-user-id"}],
                                   "rate": {"requests": 1_000_000, "per": "second"}}]});
    let mut host = MockHost::new()
        .with_now(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(NOW))
        .with_request_header(":path", "/api/products")
        .with_request_header("x-user-id", "user-0042");
    let single = meshguard_rate_limit::RateLimit::configure(
        &mut host,
        &Env::single("edge"),
        limit.to_string().as_bytes(),
    )
    .unwrap();
    let mut count = |run: &mut dyn FnMut(&mut MockHost)| {
        run(&mut host);
        host.reset_hostcalls();
        run(&mut host);
        host.hostcall_counts()
    };
    let module = count(&mut |host| {
        Stream::new(single.new_http(1)).on_request_headers(host, true);
    });
    let gateway = Gateway::new(&json!({ "rateLimit": limit }));
    let root = &gateway.root;
    let pipeline = count(&mut |host| {
        Stream::new(root.new_http(1)).on_request_headers(host, true);
    });
    assert_eq!(module, pipeline);
}
