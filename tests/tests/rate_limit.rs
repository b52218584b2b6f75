//! End-to-end: the rate-limit filter in real Envoy 1.40 (V8) with two workers, requests spread
//! over several keep-alive connections (so both workers serve them):
//!
//! - for 10 per minute plus a burst of 5 (governor `Quota::per_minute(10).allow_burst(15)`: a
//!   fresh key may spend 15 cells at once, one more every 6 s), a rapid burst of 60 requests
//!   that ends within 6 s admits exactly 15 across both workers; the other 45 get 429 with
//!   `Retry-After` and the RateLimit headers;
//! - keys are isolated, and a per-second limit refills its whole budget after a pause;
//! - a limit keyed on the `sub` claim that the JWT filter, earlier in the same chain, writes to
//!   `x-jwt-sub` (a client-sent copy is stripped by the JWT filter, so it cannot pick a budget);
//! - a flood of 100 000 distinct keys keeps the table within `maxKeys`, Envoy keeps serving, and
//!   tracked keys keep their own budget;
//! - keys idle for `idleExpiry` are swept by one worker's tick, in bounded time, and every key
//!   that took a way is evicted exactly once;
//! - a bad configuration is refused by Envoy with the field named.
//!
//! Every scenario runs twice: against the rate-limit module and against the `meshguard`
//! pipeline module with the same configuration in its `rateLimit` section.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use meshguard_jwt_auth::testing::{TestKey, jwks};
use meshguard_testkit::modules::stat;
use meshguard_testkit::{
    Bootstrap, Cluster, Envoy, FilterSpec, Listener, Module, Route, Stage, Upstream, scenarios,
};
use serde_json::json;

scenarios!(
    a_rapid_burst_admits_exactly_requests_plus_burst_across_two_workers,
    keys_are_isolated_and_a_per_second_limit_recovers,
    a_limit_keyed_on_the_jwt_subject_claim_in_the_same_chain,
    a_flood_of_100k_distinct_keys_stays_bounded_and_envoy_keeps_serving,
    idle_keys_are_swept_by_one_worker_in_bounded_time,
    invalid_config_is_refused_with_the_field_named,
);

fn rate_limit(module: Module, config: &str) -> FilterSpec {
    module
        .filter(Stage::RateLimit, config)
        .expect("the module is built")
}

fn envoy(upstream: &Upstream, filters: Vec<FilterSpec>) -> Envoy {
    let mut listener = Listener::new("edge");
    for filter in filters {
        listener = listener.filter(filter);
    }
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(listener.route(Route::prefix("/", "backend")));
    Envoy::start(&bootstrap, 2).unwrap()
}

/// A response as the burst client saw it.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    retry_after: Option<String>,
    ratelimit: Option<String>,
    policy: Option<String>,
}

/// Sends `per_thread` GETs from each of `threads` threads, each thread on its own keep-alive
/// connection, all starting together. Headers per request come from `headers(thread, i)`.
fn burst(
    url: &str,
    threads: usize,
    per_thread: usize,
    headers: impl Fn(usize, usize) -> Vec<(String, String)> + Sync,
) -> Vec<Seen> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (barrier, headers) = (&barrier, &headers);
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .max_idle_connections_per_host(1)
                        .build();
                    barrier.wait();
                    (0..per_thread)
                        .map(|i| {
                            let mut request = agent.get(url);
                            for (name, value) in headers(thread, i) {
                                request = request.set(&name, &value);
                            }
                            let response = match request.call() {
                                Ok(response) | Err(ureq::Error::Status(_, response)) => response,
                                Err(err) => panic!("GET {url}: {err}"),
                            };
                            let seen = Seen {
                                status: response.status(),
                                retry_after: response.header("retry-after").map(str::to_string),
                                ratelimit: response.header("ratelimit").map(str::to_string),
                                policy: response.header("ratelimit-policy").map(str::to_string),
                            };
                            // Reading the body returns the connection to the agent.
                            let _ = response.into_string();
                            seen
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    })
}

fn user(name: &str) -> impl Fn(usize, usize) -> Vec<(String, String)> + Sync + '_ {
    move |_, _| vec![("x-user".to_string(), name.to_string())]
}

/// A limit's stat, `meshguard.rate_limit.<plugin>.<limit>.<stat>` (Envoy may prefix custom wasm
/// stats).
fn metric(stats: &BTreeMap<String, i64>, limit: &str, name: &str) -> i64 {
    stat(stats, Stage::RateLimit, &format!("{limit}.{name}"))
}

const ORDERS: &str = r#"{"limits":[{"name":"orders","match":{"prefix":"/api/orders"},
    "key":[{"header":"x-user"}],"rate":{"requests":10,"per":"minute"},"burst":5}],
    "headers":"ietf"}"#;

fn a_rapid_burst_admits_exactly_requests_plus_burst_across_two_workers(module: Module) {
    let upstream = Upstream::start("orders").unwrap();
    let envoy = envoy(&upstream, vec![rate_limit(module, ORDERS)]);
    let url = format!("{}/api/orders", envoy.url("edge"));

    let started = Instant::now();
    let seen = burst(&url, 12, 5, user("alice"));
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(6),
        "the burst must end within one emission interval (6 s) for the count to be exact; took {elapsed:?}"
    );
    let admitted: Vec<&Seen> = seen.iter().filter(|s| s.status == 200).collect();
    let denied: Vec<&Seen> = seen.iter().filter(|s| s.status == 429).collect();
    assert_eq!(
        admitted.len(),
        15,
        "10/min + burst 5 from a fresh key: {seen:?}"
    );
    assert_eq!(denied.len(), 45);
    assert_eq!(
        upstream.hits("/api/orders"),
        15,
        "denied requests never reach the upstream"
    );
    let workers = envoy.connections_per_worker(2).unwrap();
    assert!(
        workers.iter().all(|&n| n > 0),
        "both workers served connections: {workers:?}"
    );

    for seen in &denied {
        let retry: u64 = seen.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry), "Retry-After {retry}");
        assert_eq!(seen.policy.as_deref(), Some("\"orders\";q=15;w=90"));
        let ratelimit = seen.ratelimit.as_deref().unwrap();
        assert!(ratelimit.starts_with("\"orders\";r=0;t="), "{ratelimit}");
    }
    // Every admitted response says how many cells are left: 14, 13, ..., 0, each exactly once.
    let mut remaining: Vec<u32> = admitted
        .iter()
        .map(|s| {
            let value = s.ratelimit.as_deref().unwrap();
            let r = value
                .split(";r=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            r.parse().unwrap()
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..15).collect::<Vec<_>>());

    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "orders", "allowed"), 15);
    assert_eq!(metric(&stats, "orders", "limited"), 45);
}

fn keys_are_isolated_and_a_per_second_limit_recovers(module: Module) {
    let upstream = Upstream::start("api").unwrap();
    let config = r#"{"limits":[
        {"name":"login","match":{"path":"/login"},"key":[{"header":"x-user"}],
         "rate":{"requests":4,"per":"minute"}},
        {"name":"search","match":{"prefix":"/api/search"},"key":[{"header":"x-user"}],
         "rate":{"requests":4,"per":"second"}}],"headers":"xRateLimit"}"#;
    let envoy = envoy(&upstream, vec![rate_limit(module, config)]);
    let login = format!("{}/login", envoy.url("edge"));
    let search = format!("{}/api/search", envoy.url("edge"));

    let count = |seen: &[Seen]| seen.iter().filter(|s| s.status == 200).count();
    assert_eq!(count(&burst(&login, 4, 5, user("alice"))), 4);
    assert_eq!(
        count(&burst(&login, 4, 5, user("bob"))),
        4,
        "bob has his own budget"
    );
    assert_eq!(
        count(&burst(&login, 4, 2, user("alice"))),
        0,
        "alice is still limited"
    );
    // Without the key header the limit does not apply.
    assert_eq!(count(&burst(&login, 2, 10, |_, _| Vec::new())), 20);

    // 4 per second: one cell every 250 ms. Sequential requests on one connection take a few
    // milliseconds, so each batch sees no refill; a pause of 1.1 s refills the whole budget
    // and no more.
    assert_eq!(count(&burst(&search, 1, 8, user("carol"))), 4);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(count(&burst(&search, 1, 8, user("carol"))), 4);
}

fn a_limit_keyed_on_the_jwt_subject_claim_in_the_same_chain(module: Module) {
    let upstream = Upstream::start("orders").unwrap();
    let key = TestKey::ec256_a();
    let jwt = json!({
        "providers": [{
            "name": "shop",
            "issuer": "https://id.shop.example",
            "jwks": jwks(&[&key]),
            "claimToHeaders": [{"claim": "sub", "header": "x-jwt-sub"}]
        }],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    })
    .to_string();
    let config = r#"{"limits":[{"name":"per-user","key":[{"header":"x-jwt-sub"}],
        "rate":{"requests":3,"per":"minute"}}]}"#;
    let envoy = envoy(
        &upstream,
        module
            .filters(&[(Stage::JwtAuth, &jwt), (Stage::RateLimit, config)])
            .unwrap(),
    );
    let url = format!("{}/api/orders", envoy.url("edge"));
    let token = |sub: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        key.token(&json!({"iss": "https://id.shop.example", "sub": sub, "exp": exp}))
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let bearer = |token: &str| vec![("authorization".to_string(), format!("Bearer {token}"))];

    let count = |seen: &[Seen], status: u16| seen.iter().filter(|s| s.status == status).count();
    let first = burst(&url, 3, 3, |_, _| bearer(&alice));
    assert_eq!(count(&first, 200), 3, "{first:?}");
    assert_eq!(count(&first, 429), 6);
    // Claiming to be bob in the claim header does not help: the JWT filter replaces it.
    let spoofed = burst(&url, 2, 2, |_, _| {
        let mut headers = bearer(&alice);
        headers.push(("x-jwt-sub".to_string(), "bob".to_string()));
        headers
    });
    assert_eq!(count(&spoofed, 429), 4);
    let second = burst(&url, 3, 3, |_, _| bearer(&bob));
    assert_eq!(count(&second, 200), 3, "bob's own budget");
    // No token: the JWT filter answers 401 before the rate limiter counts anything.
    let anonymous = burst(&url, 1, 3, |_, _| Vec::new());
    assert_eq!(count(&anonymous, 401), 3);
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "per-user", "allowed"), 6);
    assert_eq!(upstream.hits("/api/orders"), 6);
}

fn a_flood_of_100k_distinct_keys_stays_bounded_and_envoy_keeps_serving(module: Module) {
    let upstream = Upstream::start("login").unwrap();
    let config = r#"{"limits":[{"name":"flood","key":[{"header":"x-client"}],
        "rate":{"requests":2,"per":"hour"},"maxKeys":1000}]}"#;
    let envoy = envoy(&upstream, vec![rate_limit(module, config)]);
    let url = format!("{}/login", envoy.url("edge"));
    // A tracked user before the flood.
    let alice = |_: usize, _: usize| vec![("x-client".to_string(), "alice".to_string())];
    assert_eq!(burst(&url, 1, 1, alice).first().unwrap().status, 200);

    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    let started = Instant::now();
    let seen = burst(&url, THREADS, PER_THREAD, |thread, i| {
        vec![("x-client".to_string(), format!("bot-{thread}-{i}"))]
    });
    let elapsed = started.elapsed();
    assert_eq!(seen.len(), THREADS * PER_THREAD);
    assert!(seen.iter().all(|s| s.status == 200 || s.status == 429));
    let admitted = seen.iter().filter(|s| s.status == 200).count();
    eprintln!(
        "flood of {} keys: {elapsed:?}, {admitted} admitted",
        seen.len()
    );

    // The table filled up (1000 keys, alice among them); every later key shared the one
    // overflow budget of 2 cells, so rotating keys bought nothing.
    let stats = envoy.flushed_stats().unwrap();
    let overflow = metric(&stats, "flood", "overflow");
    assert!(
        overflow > 95_000,
        "most flood keys shared the overflow cell: {overflow}"
    );
    assert!(
        admitted <= 999 + 2,
        "999 table keys plus the overflow budget: {admitted}"
    );
    assert!(
        admitted >= 990,
        "keys that found room were admitted: {admitted}"
    );
    // The sweep's gauge (one pass of 63 buckets per tick): exactly maxKeys keys tracked.
    std::thread::sleep(Duration::from_millis(2500));
    let stats = envoy.stats().unwrap();
    let flood: Vec<_> = stats
        .iter()
        .filter(|(name, _)| name.contains("meshguard.rate_limit.") && name.contains(".flood."))
        .collect();
    assert_eq!(metric(&stats, "flood", "keys"), 1000, "{flood:?}");
    // Envoy keeps serving, and alice's own budget was not taken by the flood.
    let after = burst(&url, 1, 3, alice);
    assert_eq!(
        after.iter().filter(|s| s.status == 200).count(),
        1,
        "{after:?}"
    );
    let fresh = burst(&url, 1, 1, |_, _| {
        vec![("x-other".to_string(), "1".to_string())]
    });
    assert_eq!(
        fresh.first().unwrap().status,
        200,
        "requests without the key are served"
    );
}

fn idle_keys_are_swept_by_one_worker_in_bounded_time(module: Module) {
    let upstream = Upstream::start("search").unwrap();
    // 10 per second: a key's budget is back 100 ms after its one request, and it is forgotten
    // 1 s after that. 200 keys at most.
    let config = r#"{"limits":[{"name":"search","key":[{"header":"x-client"}],
        "rate":{"requests":10,"per":"second"},"maxKeys":200,"idleExpiry":"1s"}]}"#;
    let envoy = envoy(&upstream, vec![rate_limit(module, config)]);
    let url = format!("{}/api/search", envoy.url("edge"));

    const THREADS: usize = 4;
    const PER_THREAD: usize = 1_250;
    let seen = burst(&url, THREADS, PER_THREAD, |thread, i| {
        vec![("x-client".to_string(), format!("crawler-{thread}-{i}"))]
    });
    assert!(seen.iter().all(|s| s.status == 200 || s.status == 429));
    // Every key is new and sent once: it either took a way in the table (a free one, or an
    // idle key's, which is an eviction) or was judged on the shared overflow cell.
    let stats = envoy.flushed_stats().unwrap();
    let overflow = metric(&stats, "search", "overflow");
    let placed = (THREADS * PER_THREAD) as i64 - overflow;
    assert!(placed >= 200, "the table filled: {placed} keys placed");

    // Every placed key is forgotten once, by one worker's sweep, soon after it goes idle: the
    // tracked-keys gauge drops to 0 and evictions count each placed key exactly once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = envoy.stats().unwrap();
        let (keys, evictions) = (
            metric(&stats, "search", "keys"),
            metric(&stats, "search", "evictions"),
        );
        if keys == 0 && evictions == placed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle keys not swept within 10 s: keys {keys}, evictions {evictions} of {placed}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The emptied table gives a newcomer a way and its own whole budget.
    let fresh = burst(&url, 1, 10, |_, _| {
        vec![("x-client".to_string(), "newcomer".to_string())]
    });
    assert!(fresh.iter().all(|s| s.status == 200), "{fresh:?}");
    let stats = envoy.flushed_stats().unwrap();
    assert_eq!(metric(&stats, "search", "overflow"), overflow);
}

fn invalid_config_is_refused_with_the_field_named(module: Module) {
    let upstream = Upstream::start("backend").unwrap();
    let bootstrap = Bootstrap::new()
        .cluster(Cluster::new("backend", upstream.addr()))
        .listener(
            Listener::new("edge")
                .filter(rate_limit(
                    module,
                    r#"{"limits":[{"name":"x","key":["path"],"rate":{"requests":0,"per":"second"}}]}"#,
                ))
                .route(Route::prefix("/", "backend")),
        );
    let err = Envoy::start(&bootstrap, 1).expect_err("Envoy must refuse the configuration");
    let text = format!("{err:#}");
    let field = match module {
        Module::Single => "limits[0].rate.requests",
        Module::Pipeline => "rateLimit.limits[0].rate.requests",
    };
    assert!(
        text.contains(&format!("invalid configuration at `{field}`")),
        "{text}"
    );
}
