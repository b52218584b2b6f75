//! What one pass gives that four modules cannot: stages keyed on verified claims, refusals
//! nobody later counts, budget only for requests that go upstream, and the cluster the request
//! really goes to.

use meshguard_canary::hash::bucket;
use serde_json::{Value, json};

use super::{Gateway, jwt_section};

fn limit(key: Value, requests: u32) -> Value {
    json!({"limits": [{"name": "per-user", "key": [key],
                       "rate": {"requests": requests, "per": "minute"}}],
           "headers": "ietf"})
}

fn admitted(gateway: &mut Gateway, n: usize, send: impl Fn(&mut Gateway) -> u32) -> usize {
    (0..n).filter(|_| send(gateway) == 200).count()
}

#[test]
fn a_limit_keyed_on_the_verified_sub() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt_section(),
        "rateLimit": limit(json!({"claim": "sub"}), 3),
    }));
    let alice = |g: &mut Gateway| g.as_user("alice", "/api/orders", 200).status();
    assert_eq!(admitted(&mut gateway, 5, alice), 3);
    assert_eq!(
        admitted(&mut gateway, 5, |g| g
            .as_user("bob", "/api/orders", 200)
            .status()),
        3,
        "bob has his own budget"
    );
    // Claiming to be someone else in a header changes nothing: the key is the verified claim.
    let spoofing = |g: &mut Gateway| {
        let bearer = format!("Bearer {}", super::token("alice"));
        g.send(
            "/api/orders",
            &[
                ("authorization", &bearer),
                ("x-jwt-sub", "carol"),
                ("sub", "carol"),
            ],
            200,
        )
        .status()
    };
    assert_eq!(admitted(&mut gateway, 2, spoofing), 0);
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.per-user.allowed"),
        6
    );
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.per-user.limited"),
        6
    );
}

#[test]
fn a_canary_keyed_on_the_verified_sub() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt_section(),
        "canary": {"services": [{"name": "product", "match": {"prefix": "/api/products"},
                                 "versions": [{"name": "v1", "weight": 50}, {"name": "v2", "weight": 50}],
                                 "stickyKey": [{"claim": "sub"}, {"header": "x-user-id"}]}]},
    }));
    for n in 0..50 {
        let user = format!("user-{n}");
        let expected = if bucket("product", user.as_bytes()) >= 5000 {
            "v2"
        } else {
            "v1"
        };
        let bearer = format!("Bearer {}", super::token(&user));
        // A client-chosen key header is ignored while a verified claim is there.
        let sent = gateway.send(
            "/api/products/1",
            &[("authorization", &bearer), ("x-user-id", "someone-else")],
            200,
        );
        assert_eq!(sent.upstream("x-mesh-version"), Some(expected), "{user}");
    }
}

#[test]
fn a_request_jwt_refused_is_never_counted_by_the_limiter_or_the_breaker() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt_section(),
        "rateLimit": limit(json!({"constant": "all"}), 2),
        "circuitBreaker": {"breakers": [{"name": "all", "window": {"size": 4}, "minimumCalls": 4}]},
    }));
    for _ in 0..10 {
        assert_eq!(gateway.send("/api/orders", &[], 200).status(), 401);
        assert_eq!(
            gateway
                .send("/api/orders", &[("authorization", "Bearer not.a.jwt")], 200)
                .status(),
            401
        );
    }
    for stat in ["allowed", "limited"] {
        assert_eq!(
            gateway.metric(&format!("meshguard.rate_limit.edge.per-user.{stat}")),
            0
        );
    }
    for stat in [
        "calls.success",
        "calls.failure",
        "calls.ignored",
        "short_circuited",
    ] {
        assert_eq!(
            gateway.metric(&format!("meshguard.circuit_breaker.edge.all.{stat}")),
            0
        );
    }
    // The budget is untouched: a signed-in user still gets all of it.
    assert_eq!(
        admitted(&mut gateway, 3, |g| g
            .as_user("alice", "/api/orders", 200)
            .status()),
        2
    );
}

#[test]
fn a_client_sent_claim_header_never_reaches_a_later_stage() {
    let mut gateway = Gateway::new(&json!({
        "jwtAuth": jwt_section(),
        "rateLimit": limit(json!({"header": "x-jwt-sub"}), 2),
    }));
    // With a token, the header the limiter keys on is the verified claim the JWT stage wrote.
    let mallory = |g: &mut Gateway| {
        let bearer = format!("Bearer {}", super::token("alice"));
        let sent = g.send(
            "/api/orders",
            &[("authorization", &bearer), ("x-jwt-sub", "mallory")],
            200,
        );
        if sent.status() == 200 {
            assert_eq!(sent.upstream("x-jwt-sub"), Some("alice"));
        }
        sent.status()
    };
    assert_eq!(
        admitted(&mut gateway, 4, mallory),
        2,
        "all on alice's budget"
    );
    // On a public path no token is needed, and a client copy of the claim header is removed
    // before the limiter looks: no key, no count, nobody spends mallory's budget.
    for _ in 0..5 {
        let sent = gateway.send("/public/catalog", &[("x-jwt-sub", "mallory")], 200);
        assert_eq!(sent.status(), 200);
        assert_eq!(sent.upstream("x-jwt-sub"), None);
    }
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.per-user.allowed"),
        2
    );
}

#[test]
fn an_open_breaker_does_not_consume_rate_limit_budget() {
    let mut gateway = Gateway::new(&json!({
        "rateLimit": limit(json!({"constant": "all"}), 10),
        "circuitBreaker": {"breakers": [{"name": "payments", "match": {"prefix": "/api/payments"},
                                         "window": {"size": 4}, "minimumCalls": 4,
                                         "openFor": "60s"}]},
    }));
    for _ in 0..4 {
        assert_eq!(gateway.send("/api/payments", &[], 503).status(), 200);
    }
    // Open now: every payment is answered by the breaker, none spends the budget.
    for _ in 0..20 {
        assert_eq!(gateway.send("/api/payments", &[], 200).status(), 503);
    }
    assert_eq!(
        gateway.metric("meshguard.circuit_breaker.edge.payments.short_circuited"),
        20
    );
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.per-user.allowed"),
        4
    );
    assert_eq!(
        gateway.metric("meshguard.rate_limit.edge.per-user.limited"),
        0
    );
    // The six cells left are there for other calls.
    assert_eq!(
        admitted(&mut gateway, 8, |g| g
            .send("/api/products", &[], 200)
            .status()),
        6
    );
}

#[test]
fn the_breaker_judges_the_cluster_the_canary_moved_the_request_to() {
    // Envoy reports `xds.cluster_name` = product-v1 for every request here, as it does for a
    // request without the route header: the route it chose before the canary stage set it.
    let mut gateway = Gateway::new(&json!({
        "canary": {"services": [{"name": "product", "match": {"prefix": "/api/products"},
                                 "versions": [{"name": "v1", "weight": 50, "cluster": "product-v1"},
                                              {"name": "v2", "weight": 50, "cluster": "product-v2"}],
                                 "stickyKey": [{"header": "x-user-id"}]}]},
        "circuitBreaker": {"breakers": [
            {"name": "v2", "match": {"cluster": "product-v2"}, "window": {"size": 4},
             "minimumCalls": 4, "openFor": "60s"},
            {"name": "v1", "match": {"cluster": "product-v1"}, "window": {"size": 4},
             "minimumCalls": 4, "openFor": "60s"}]},
    }));
    let users = |version: &str| -> Vec<String> {
        (0..)
            .map(|n| format!("user-{n}"))
            .filter(|u| (bucket("product", u.as_bytes()) >= 5000) == (version == "v2"))
            .take(4)
            .collect()
    };
    // v2 fails: its users' calls open the v2 breaker, not the v1 one.
    for user in users("v2") {
        let sent = gateway.send("/api/products", &[("x-user-id", &user)], 503);
        assert_eq!(sent.upstream("x-mesh-version"), Some("v2"));
    }
    for user in users("v2") {
        let sent = gateway.send("/api/products", &[("x-user-id", &user)], 200);
        assert_eq!(sent.status(), 503, "v2 is open for {user}");
        assert!(sent.response.is_empty() || sent.status() == 503);
    }
    for user in users("v1") {
        let sent = gateway.send("/api/products", &[("x-user-id", &user)], 200);
        assert_eq!(sent.status(), 200, "v1 stays closed for {user}");
        assert_eq!(sent.upstream("x-mesh-version"), Some("v1"));
    }
    assert_eq!(
        gateway.metric("meshguard.circuit_breaker.edge.v2.calls.failure"),
        4
    );
    assert_eq!(
        gateway.metric("meshguard.circuit_breaker.edge.v1.calls.failure"),
        0
    );
    assert_eq!(
        gateway.metric("meshguard.circuit_breaker.edge.v1.calls.success"),
        4
    );
}
