//! End-to-end: global limits of the rate-limit filter (and the `meshguard` pipeline's
//! `rateLimit` stage) in real Envoy 1.40, against meshguard's rate-limit service on a real
//! Redis:
//!
//! - **exact across replicas:** two gateways (`--concurrency 2` each; one runs the rate-limit
//!   module, the other the pipeline) and two service replicas sharing one Redis admit exactly
//!   the global limit for a burst spread over both, and a second key has its own budget;
//! - **the differential:** Envoy's own `envoy.filters.http.ratelimit` and meshguard's global
//!   limit, sending the same descriptors to the same service, admit the same count, and count
//!   in one budget;
//! - **failures:** Redis stopped mid-run (allow: pass and counted; deny: 503 with a reason;
//!   Envoy never crashes; Redis back: counting resumes), a service slower than the timeout
//!   (the failure mode applies when the timeout elapses, not later), and the service down.
//!
//! Envoy processes are few (CI budget): each scenario mixes the two modules in one run instead
//! of repeating itself per module.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshguard_testkit::modules::{PLUGIN, stat_of};
use meshguard_testkit::rls::{header_action, native_filter, service_binary};
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Module, RateLimitService, Redis, Route, Stage,
    Upstream,
};

/// The service's configuration: 20 an hour per `x-user`, in domain `edge`.
const FLASH_SALE: &str = "domain: edge
descriptors:
  - key: x-user
    rate_limit:
      unit: hour
      requests_per_unit: 20
";

/// A global limit on `x-user` asking the `ratelimit` cluster.
fn limits(cluster: &str, failure_mode: &str, timeout: &str) -> String {
    format!(
        r#"{{"headers":"ietf","limits":[{{"name":"orders","key":[{{"header":"x-user"}}],
            "global":{{"cluster":"{cluster}","domain":"edge","timeout":"{timeout}","failureMode":"{failure_mode}"}}}}]}}"#
    )
}

fn filter(module: Module, plugin: &str, config: &str) -> FilterSpec {
    module
        .filters_named(plugin, &[(Stage::RateLimit, config)])
        .expect("the module is built")
        .pop()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = meshguard_testkit::paths::target_dir()
        .join("global-rate-limit-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn service(config: &Path, redis: &Redis) -> RateLimitService {
    RateLimitService::start(&service_binary().unwrap(), config, &redis.url(), &[]).unwrap()
}

fn config_file(name: &str) -> PathBuf {
    let path = scratch(name).join("ratelimit.yaml");
    std::fs::write(&path, FLASH_SALE).unwrap();
    path
}

/// `threads` threads send `per_thread` GETs each, round robin over `urls`, each on a new
/// connection (so every worker takes some); returns the statuses.
fn burst(urls: &[String], user: &str, threads: usize, per_thread: usize) -> Vec<u16> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let url = &urls[(thread + i) % urls.len()];
                            meshguard_testkit::http::get(
                                &format!("{url}/api/flash-sale"),
                                &[("x-user", user)],
                            )
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

fn get(url: &str, user: &str) -> meshguard_testkit::http::Response {
    meshguard_testkit::http::get(&format!("{url}/api/flash-sale"), &[("x-user", user)]).unwrap()
}

#[test]
fn two_gateways_and_two_service_replicas_admit_exactly_the_global_limit() {
    let redis = Redis::start().unwrap();
    let config = config_file("exact");
    let replicas = [service(&config, &redis), service(&config, &redis)];
    let upstream = Upstream::start("backend").unwrap();
    let rls: Vec<_> = replicas.iter().map(RateLimitService::grpc_addr).collect();
    let limits = limits("ratelimit", "deny", "2s");
    let gateway = |module: Module| {
        Bootstrap::new()
            .cluster(Cluster::new("backend", upstream.addr()))
            .cluster(Cluster::grpc("ratelimit", rls.clone()))
            .listener(
                Listener::new("edge")
                    .filter(filter(module, PLUGIN, &limits))
                    .route(Route::prefix("/", "backend")),
            )
    };
    // One gateway runs the rate-limit module, the other the pipeline: both count in one budget.
    let envoys = [
        Envoy::start(&gateway(Module::Single), 2).unwrap(),
        Envoy::start(&gateway(Module::Pipeline), 2).unwrap(),
    ];
    let urls: Vec<String> = envoys.iter().map(|e| e.url("edge")).collect();

    let alice = burst(&urls, "alice", 6, 10);
    assert_eq!(
        (count(&alice, 200), count(&alice, 429)),
        (20, 40),
        "exactly the global limit over both gateways: {alice:?}"
    );
    let bob = burst(&urls, "bob", 5, 6);
    assert_eq!((count(&bob, 200), count(&bob, 429)), (20, 10), "{bob:?}");
    assert_eq!(upstream.hits("/api/flash-sale"), 40);

    let limited = get(&urls[0], "alice");
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some(), "{limited:?}");
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with("\"orders\";r=0;")),
        "{limited:?}"
    );
    // Both workers of both gateways took part, and each gateway counted its share.
    let mut allowed = 0;
    for envoy in &envoys {
        let per_worker = envoy.connections_per_worker(2).unwrap();
        assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}");
        let stats = envoy.flushed_stats().unwrap();
        allowed += stat_of(&stats, Stage::RateLimit, PLUGIN, "orders.allowed");
        assert!(stat_of(&stats, Stage::RateLimit, PLUGIN, "orders.limited") > 0);
    }
    assert_eq!(allowed, 40);
}

#[test]
fn envoys_native_ratelimit_filter_and_the_global_limit_admit_the_same_count() {
    let redis = Redis::start().unwrap();
    let config = config_file("differential");
    let service = service(&config, &redis);
    let upstream = Upstream::start("backend").unwrap();
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::grpc("ratelimit", vec![service.grpc_addr()]))
        .listener(
            Listener::new("native")
                .filter(native_filter(
                    "edge",
                    "ratelimit",
                    Duration::from_secs(2),
                    true,
                ))
                .rate_limit(header_action("x-user", "x-user"))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("meshguard")
                .filter(filter(
                    Module::Single,
                    PLUGIN,
                    &limits("ratelimit", "deny", "2s"),
                ))
                .route(Route::prefix("/", "backend")),
        );
    let envoy = Envoy::start(&bootstrap, 2).unwrap();
    let native = [envoy.url("native")];
    let meshguard = [envoy.url("meshguard")];

    let by_native = burst(&native, "nina", 5, 6);
    let by_meshguard = burst(&meshguard, "mona", 5, 6);
    assert_eq!(count(&by_native, 200), 20, "{by_native:?}");
    assert_eq!(
        count(&by_meshguard, 200),
        count(&by_native, 200),
        "{by_meshguard:?}"
    );
    assert_eq!(count(&by_meshguard, 429), count(&by_native, 429));
    // Same descriptors, same budget: a user's requests through either filter add up.
    let mixed = burst(&[native[0].clone(), meshguard[0].clone()], "max", 6, 5);
    assert_eq!(count(&mixed, 200), 20, "{mixed:?}");
}

/// A TCP listener that accepts connections and never answers: a service slower than any
/// timeout.
fn black_hole() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn redis_stopped_a_slow_service_and_a_dead_one_follow_the_failure_mode() {
    let mut redis = Redis::start().unwrap();
    let config = config_file("failures");
    let mut service = service(&config, &redis);
    let upstream = Upstream::start("backend").unwrap();
    let (_hole, hole_addr) = black_hole();
    // `allow` runs the rate-limit module, `deny` and `slow` the pipeline.
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .cluster(Cluster::grpc("ratelimit", vec![service.grpc_addr()]))
        .cluster(Cluster::grpc("slow", vec![hole_addr]))
        .listener(
            Listener::new("allow")
                .filter(filter(
                    Module::Single,
                    "allow",
                    &limits("ratelimit", "allow", "2s"),
                ))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("deny")
                .filter(filter(
                    Module::Pipeline,
                    "deny",
                    &limits("ratelimit", "deny", "2s"),
                ))
                .route(Route::prefix("/", "backend")),
        )
        .listener(
            Listener::new("slow")
                .filter(filter(
                    Module::Pipeline,
                    "slow",
                    &limits("slow", "deny", "300ms"),
                ))
                .route(Route::prefix("/", "backend")),
        );
    let mut envoy = Envoy::start(&bootstrap, 2).unwrap();
    let (allow, deny, slow) = (envoy.url("allow"), envoy.url("deny"), envoy.url("slow"));
    assert_eq!(get(&allow, "ann").status, 200);
    assert_eq!(get(&deny, "dan").status, 200);

    // Redis stops mid-run: the service cannot decide, the filter applies its failure mode.
    redis.stop();
    for _ in 0..5 {
        assert_eq!(get(&allow, "ann").status, 200);
        let refused = get(&deny, "dan");
        assert_eq!(refused.status, 503, "{refused:?}");
        assert!(
            refused
                .body
                .contains("rate limit `orders` could not be checked"),
            "{}",
            refused.body
        );
    }
    // Redis is back: counting resumes (a fresh user gets exactly the limit).
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&deny, "dan").status != 200 {
        assert!(Instant::now() < deadline, "the service never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let resumed = burst(std::slice::from_ref(&deny), "rita", 5, 5);
    assert_eq!(
        (count(&resumed, 200), count(&resumed, 429)),
        (20, 5),
        "{resumed:?}"
    );

    // A service slower than the timeout: the request waits the timeout, not longer.
    let started = Instant::now();
    let timed_out = get(&slow, "sam");
    let waited = started.elapsed();
    assert_eq!(timed_out.status, 503, "{timed_out:?}");
    // Envoy reports its own timeout of the call as UNAVAILABLE (the 504 of its async client).
    assert!(
        timed_out.body.contains("could not be checked: gRPC status"),
        "{}",
        timed_out.body
    );
    assert!(
        // Envoy's timer is coarse (a few ms early is seen); never much later than the timeout.
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1_800),
        "waited {waited:?} for a 300ms timeout"
    );

    // The service is gone.
    service.kill();
    assert_eq!(get(&allow, "ann").status, 200);
    assert_eq!(get(&deny, "dan").status, 503);

    assert!(envoy.is_running(), "no crash: {}", envoy.log());
    let stats = envoy.flushed_stats().unwrap();
    let allowed_open = stat_of(
        &stats,
        Stage::RateLimit,
        "allow",
        "orders.failure_mode_allowed",
    );
    let denied = stat_of(
        &stats,
        Stage::RateLimit,
        "deny",
        "orders.failure_mode_denied",
    );
    assert!(allowed_open >= 6, "{allowed_open}");
    assert!(denied >= 6, "{denied}");
    assert!(stat_of(&stats, Stage::RateLimit, "slow", "orders.error") >= 1);
    // Logged, but not once per failure.
    let log = envoy.log();
    let lines = log.matches("gave no usable answer").count();
    assert!((1..=6).contains(&lines), "{lines} failure lines: {log}");
}
