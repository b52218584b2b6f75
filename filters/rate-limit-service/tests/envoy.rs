//! End-to-end: Envoy 1.40's own global rate-limit filter (`envoy.filters.http.ratelimit`) against
//! the service, which shows the service is a faithful RLS v3 server:
//!
//! - two Envoys (two gateway pods, two workers each) and two service replicas sharing one Redis
//!   admit exactly the global limit for a burst spread over all of them, and a second key has its
//!   own budget;
//! - the ConfigMap of Istio's global rate-limit task, unchanged, behind the route actions of that
//!   task, gives the answers the task documents;
//! - the gateway manifests of `istio/rate-limit-service/` (the native filter and its actions, the
//!   ConfigMap) run as written;
//! - Redis stopped, Redis slow beyond Envoy's timeout, and the service down all resolve by the
//!   filter's failure mode (pass, or 503 with `failure_mode_deny`), within the timeout; when
//!   Redis is back, counting resumes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use meshguard_testkit::rls::{header_action, native_filter};
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, Listener, RateLimitService, Redis, Route, Upstream,
};
use serde_json::json;

/// Sends GETs to `urls` (round robin) from `threads` threads, `per_thread` each, every request on
/// a new connection (so both workers of each Envoy take some); returns the statuses.
fn burst(
    urls: &[String],
    path: &str,
    headers: &[(&str, &str)],
    threads: usize,
    per_thread: usize,
) -> Vec<u16> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let url = &urls[(thread + i) % urls.len()];
                            meshguard_testkit::http::get(&format!("{url}{path}"), headers)
                                .unwrap()
                                .status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn gateway(
    upstream: &Upstream,
    rls: Vec<std::net::SocketAddr>,
    filter_timeout: Duration,
    deny: bool,
) -> Bootstrap {
    Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::grpc("rate_limit_service", rls))
        .listener(
            Listener::new("edge")
                .filter(native_filter(
                    "edge",
                    "rate_limit_service",
                    filter_timeout,
                    deny,
                ))
                .rate_limit(header_action("x-user", "user"))
                .route(Route::prefix("/", "backend")),
        )
}

const FLASH_SALE: &str = "domain: edge
descriptors:
  - key: user
    rate_limit:
      unit: hour
      requests_per_unit: 20
";

#[test]
fn two_gateways_and_two_service_replicas_admit_exactly_the_global_limit() {
    let redis = Redis::start().unwrap();
    let dir = scratch("envoy-exact");
    let config = write_config(&dir, FLASH_SALE);
    let replicas = [service(&config, &redis, &[]), service(&config, &redis, &[])];
    let upstream = Upstream::start("backend").unwrap();
    let addrs = replicas
        .iter()
        .map(RateLimitService::grpc_addr)
        .collect::<Vec<_>>();
    let bootstrap = gateway(&upstream, addrs, Duration::from_secs(2), true);
    let envoys = [
        Envoy::start(&bootstrap, 2).unwrap(),
        Envoy::start(&bootstrap, 2).unwrap(),
    ];
    let urls: Vec<String> = envoys.iter().map(|e| e.url("edge")).collect();

    let alice = burst(&urls, "/api/flash-sale", &[("x-user", "alice")], 6, 10);
    assert_eq!(
        (count(&alice, 200), count(&alice, 429)),
        (20, 40),
        "exactly the global limit over both gateways: {alice:?}"
    );
    let bob = burst(&urls, "/api/flash-sale", &[("x-user", "bob")], 5, 6);
    assert_eq!((count(&bob, 200), count(&bob, 429)), (20, 10), "{bob:?}");
    assert_eq!(
        upstream.hits("/api/flash-sale"),
        40,
        "refused requests never reach the backend"
    );

    // The load really was spread: every Envoy worker and both replicas took part.
    for envoy in &envoys {
        let per_worker = envoy.connections_per_worker(2).unwrap();
        assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}");
        let stats = envoy.stats().unwrap();
        assert!(
            stats
                .get("cluster.backend.ratelimit.over_limit")
                .copied()
                .unwrap_or(0)
                > 0,
            "{stats:?}"
        );
    }
    let answered: Vec<f64> = replicas
        .iter()
        .map(|r| {
            r.metric("meshguard_rls_requests_total{domain=\"edge\",code=\"ok\"}")
                .unwrap()
                + r.metric("meshguard_rls_requests_total{domain=\"edge\",code=\"over_limit\"}")
                    .unwrap()
        })
        .collect();
    assert!(answered.iter().all(|n| *n > 0.0), "{answered:?}");
    assert_eq!(answered.iter().sum::<f64>(), 90.0);
}

#[test]
fn the_istio_task_configuration_behaves_as_the_task_documents() {
    let redis = Redis::start().unwrap();
    let dir = scratch("envoy-istio");
    let configmap: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/istio-task-configmap.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let config = write_config(&dir, configmap["data"]["config.yaml"].as_str().unwrap());
    let service = service(&config, &redis, &[]);
    let upstream = Upstream::start("productpage").unwrap();
    // The task's EnvoyFilters: the filter with failure_mode_deny, `:path` as PATH on the
    // virtual host, and the `api` route's own header_value_match action.
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("productpage", upstream.addr()))
        .cluster(Cluster::grpc("ratelimit", vec![service.grpc_addr()]))
        .listener(
            Listener::new("gateway")
                .filter(native_filter(
                    "ratelimit",
                    "ratelimit",
                    Duration::from_secs(10),
                    true,
                ))
                .rate_limit(header_action(":path", "PATH"))
                .route(
                    Route::prefix("/api/v1/products", "productpage").rate_limit(json!({
                        "actions": [{
                            "header_value_match": {
                                "descriptor_key": "PATH",
                                "descriptor_value": "api",
                                "headers": [{
                                    "name": ":path",
                                    "safe_regex_match": {
                                        "google_re2": {},
                                        "regex": "/api/v1/products/[1-9]{1,2}"
                                    }
                                }]
                            }
                        }]
                    })),
                )
                .route(Route::prefix("/", "productpage")),
        );
    let envoy = Envoy::start(&bootstrap, 1).unwrap();
    let url = envoy.url("gateway");
    let get = |path: &str| meshguard_testkit::http::get(&format!("{url}{path}"), &[]).unwrap();
    // "You will see the first request go through but every following request within a minute
    // will get a 429 response."
    let productpage: Vec<u16> = (0..2).map(|_| get("/productpage").status).collect();
    assert_eq!(productpage, vec![200, 429]);
    // "for /api/v1/products/* you will need to hit twice, with any number in between 1-99, until
    // you get the 429 response within a minute."
    let products: Vec<u16> = (1..=3)
        .map(|i| get(&format!("/api/v1/products/{i}")).status)
        .collect();
    assert_eq!(products, vec![200, 200, 429]);
    // Every other path has 100 per minute, each its own.
    let reviews: Vec<u16> = (0..10).map(|_| get("/reviews/0").status).collect();
    assert_eq!(reviews, vec![200; 10]);
    let over = get("/productpage");
    assert_eq!(over.header("x-envoy-ratelimited"), Some("true"));
    assert_eq!(over.header("x-ratelimit-remaining"), Some("0"));
}

#[test]
fn failures_resolve_by_the_filters_failure_mode_within_its_timeout() {
    let mut redis = Redis::start().unwrap();
    let dir = scratch("envoy-failure");
    let config = write_config(&dir, FLASH_SALE);
    // The service gives Redis 1 s; Envoy waits 250 ms for the service.
    let mut rls = service(&config, &redis, &["--redis-timeout", "1s"]);
    let upstream = Upstream::start("backend").unwrap();
    let timeout = Duration::from_millis(250);
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::grpc("rls", vec![rls.grpc_addr()]))
        .listener(
            Listener::new("allow")
                .filter(native_filter("edge", "rls", timeout, false))
                .rate_limit(header_action("x-user", "user"))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("deny")
                .filter(native_filter("edge", "rls", timeout, true))
                .rate_limit(header_action("x-user", "user"))
                .route(Route::prefix("/", "backend")),
        );
    let envoy = Envoy::start(&bootstrap, 2).unwrap();
    let send = |listener: &str, user: &str| {
        let started = Instant::now();
        let response = meshguard_testkit::http::get(
            &format!("{}/order", envoy.url(listener)),
            &[("x-user", user)],
        )
        .unwrap();
        (response.status, started.elapsed())
    };
    let stat = |name: &str| envoy.stat(name).unwrap().unwrap_or(0);

    // Redis stopped: the service answers UNKNOWN; allow passes, deny answers 503.
    redis.stop();
    for _ in 0..3 {
        assert_eq!(send("allow", "gina").0, 200);
        assert_eq!(send("deny", "gina").0, 503);
    }
    assert_eq!(stat("cluster.backend.ratelimit.failure_mode_allowed"), 3);
    assert_eq!(stat("cluster.backend.ratelimit.error"), 6);
    assert_eq!(
        rls.metric("meshguard_rls_requests_total{domain=\"edge\",code=\"error\"}")
            .unwrap(),
        6.0
    );

    // Redis back: counting resumes, exactly.
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while send("deny", "hank").0 != 200 {
        assert!(Instant::now() < deadline, "counting did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    let statuses: Vec<u16> = (0..20).map(|_| send("deny", "hank").0).collect();
    assert_eq!(count(&statuses, 200), 19, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 1, "{statuses:?}");

    // Redis slow (paused 3 s): Envoy gives up after its 250 ms (its timer may fire a little
    // early by our clock), not after the service's 1 s.
    redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).unwrap();
    let waited = |took: Duration| took >= timeout * 4 / 5 && took < Duration::from_millis(900);
    let (status, took) = send("allow", "ivan");
    assert_eq!(status, 200);
    assert!(waited(took), "{took:?}");
    let (status, took) = send("deny", "ivan");
    assert_eq!(status, 503);
    assert!(waited(took), "{took:?}");
    std::thread::sleep(Duration::from_secs(3));

    // The service down: connection refused, the failure mode again, at once.
    rls.kill();
    let (status, took) = send("allow", "judy");
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(send("deny", "judy").0, 503);
    assert!(upstream.hits("/order") > 0);
}

#[test]
fn the_gateway_manifests_run_as_written() {
    let docs = meshguard_testkit::istio::documents("rate-limit-service");
    let find = |kind: &str, name: &str| {
        docs.iter()
            .map(|(_, doc)| doc)
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap()
            .clone()
    };
    let json = |value: &serde_yaml::Value| serde_json::to_value(value).unwrap();
    let redis = Redis::start().unwrap();
    let dir = scratch("envoy-manifests");
    let configmap = find("ConfigMap", "meshguard-rate-limit-config");
    for (name, text) in configmap["data"].as_mapping().unwrap() {
        std::fs::write(dir.join(name.as_str().unwrap()), text.as_str().unwrap()).unwrap();
    }
    let rls = RateLimitService::start(Path::new(BINARY), &dir, &redis.url(), &[]).unwrap();
    let upstream = Upstream::start("backend").unwrap();
    let patches =
        find("EnvoyFilter", "meshguard-rate-limit-global")["spec"]["configPatches"].clone();
    let filter = &patches[0]["patch"]["value"];
    let mut listener = Listener::new("gateway").filter(meshguard_testkit::FilterSpec::native(
        filter["name"].as_str().unwrap(),
        json(&filter["typed_config"]),
    ));
    for rate_limit in patches[1]["patch"]["value"]["rate_limits"]
        .as_sequence()
        .unwrap()
    {
        listener = listener.rate_limit(json(rate_limit));
    }
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::grpc("meshguard_rate_limit", vec![rls.grpc_addr()]))
        .listener(listener.route(Route::prefix("/", "backend")));
    let envoy = Envoy::start(&bootstrap, 2).unwrap();
    let url = envoy.url("gateway");
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        meshguard_testkit::http::send(method, &format!("{url}{path}"), headers, None)
            .unwrap()
            .status
    };
    // Login: 5 per minute per client address.
    let logins: Vec<u16> = (0..6)
        .map(|_| send("POST", "/api/users/login", &[]))
        .collect();
    assert_eq!(logins, vec![200, 200, 200, 200, 200, 429]);
    assert_eq!(
        send("GET", "/api/users/login", &[]),
        200,
        "only POST is a login"
    );
    // Orders: 20 per minute per verified user.
    let orders: Vec<u16> = (0..21)
        .map(|_| send("GET", "/api/orders/17", &[("x-jwt-sub", "user-42")]))
        .collect();
    assert_eq!((count(&orders, 200), orders[20]), (20, 429));
    assert_eq!(
        send("GET", "/api/orders/17", &[("x-jwt-sub", "user-43")]),
        200
    );
    // Search is in shadow mode: counted, never refused.
    let searches: Vec<u16> = (0..5)
        .map(|_| send("GET", "/api/search?q=tea", &[]))
        .collect();
    assert_eq!(searches, vec![200; 5]);
    assert_eq!(
        rls.metric(
            "meshguard_rls_rule_hits_total{domain=\"commerce-edge\",rule=\"path_class_login.remote_address\",result=\"over_limit\"}"
        )
        .unwrap(),
        1.0
    );
}
