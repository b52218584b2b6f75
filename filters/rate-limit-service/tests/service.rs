//! The service binary against a real Redis, through its gRPC and HTTP faces: exact counts, a
//! second key with its own budget, Redis stopped, slow and back, configuration errors at start,
//! reloads, and a graceful SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshguard_testkit::Redis;
use tonic::Code as GrpcCode;

const EDGE: &str = "domain: edge
descriptors:
  - key: user
    rate_limit:
      unit: hour
      requests_per_unit: 5
";

#[test]
fn exact_counts_a_second_key_and_keys_that_expire_with_their_state() {
    let redis = Redis::start().unwrap();
    let dir = scratch("exact");
    let service = service(&write_config(&dir, EDGE), &redis, &[]);
    runtime().block_on(async {
        let mut client = client(&service).await;
        let alice = request("edge", &[&[("user", "alice")]]);
        assert_eq!(
            overall_codes(&mut client, &alice, 5).await,
            vec![OK; 5],
            "a fresh key admits a whole unit's worth"
        );
        let refused = ask(&mut client, &alice).await.unwrap();
        assert_eq!(refused.overall_code, OVER);
        let status = &refused.statuses[0];
        assert_eq!(status.limit_remaining, 0);
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit), (5, 3));
        // The wait is one emission interval (720 s) less the time the test took.
        let wait = status.duration_until_reset.unwrap();
        assert!((700..=720).contains(&wait.seconds), "{wait:?}");
        assert_eq!(ask(&mut client, &alice).await.unwrap().overall_code, OVER);
        // Bob has his own five.
        let bob = request("edge", &[&[("user", "bob")]]);
        assert_eq!(
            overall_codes(&mut client, &bob, 6).await,
            vec![OK, OK, OK, OK, OK, OVER]
        );
    });
    let keys = redis.command(&["KEYS", "meshguard:rls:*"]).unwrap();
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "meshguard:rls:edge|user=alice#hour",
            "meshguard:rls:edge|user=bob#hour"
        ]
    );
    for key in keys {
        let ttl: i64 = redis.command(&["PTTL", key]).unwrap().parse().unwrap();
        assert!(
            (3_000_000..=3_600_001).contains(&ttl),
            "{key}: the key lives until its budget is back, no longer ({ttl} ms)"
        );
    }
    let metric = |series: &str| service.metric(series).unwrap();
    assert_eq!(
        metric("meshguard_rls_requests_total{domain=\"edge\",code=\"ok\"}"),
        10.0
    );
    assert_eq!(
        metric("meshguard_rls_requests_total{domain=\"edge\",code=\"over_limit\"}"),
        3.0
    );
    assert_eq!(
        metric(
            "meshguard_rls_rule_hits_total{domain=\"edge\",rule=\"user\",result=\"over_limit\"}"
        ),
        3.0
    );
    assert_eq!(metric("meshguard_rls_redis_up"), 1.0);
}

#[test]
fn redis_stopped_mid_run_is_a_counted_unknown_and_counting_resumes_when_it_is_back() {
    let mut redis = Redis::start().unwrap();
    let dir = scratch("redis-stopped");
    let service = service(
        &write_config(&dir, EDGE),
        &redis,
        &["--redis-timeout", "300ms"],
    );
    let rt = runtime();
    let mut client = rt.block_on(client(&service));
    let carol = request("edge", &[&[("user", "carol")]]);
    rt.block_on(async {
        assert_eq!(overall_codes(&mut client, &carol, 2).await, vec![OK, OK]);
    });
    redis.stop();
    rt.block_on(async {
        for _ in 0..3 {
            let started = Instant::now();
            let status = ask(&mut client, &carol).await.unwrap_err();
            assert_eq!(status.code(), GrpcCode::Unknown, "{status:?}");
            assert!(status.message().contains("redis"), "{}", status.message());
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "answered within the Redis timeout, not hung: {:?}",
                started.elapsed()
            );
        }
    });
    let errors = service
        .metric("meshguard_rls_redis_errors_total{kind=\"unavailable\"}")
        .unwrap()
        + service
            .metric("meshguard_rls_redis_errors_total{kind=\"timeout\"}")
            .unwrap();
    assert_eq!(errors, 3.0);
    assert_eq!(
        service
            .metric("meshguard_rls_requests_total{domain=\"edge\",code=\"error\"}")
            .unwrap(),
        3.0
    );
    assert_eq!(service.metric("meshguard_rls_redis_up").unwrap(), 0.0);
    assert!(
        service.log().contains("answering UNKNOWN"),
        "the failure is logged:\n{}",
        service.log()
    );

    // Back (empty: no persistence): the service reconnects and counts a fresh budget exactly.
    redis.restart().unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ask(&mut client, &carol).await {
                Ok(response) => {
                    assert_eq!(response.overall_code, OK);
                    break;
                }
                Err(status) if Instant::now() < deadline => {
                    assert_eq!(status.code(), GrpcCode::Unknown);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("the service did not reconnect: {status:?}"),
            }
        }
        assert_eq!(
            overall_codes(&mut client, &carol, 5).await,
            vec![OK, OK, OK, OK, OVER]
        );
    });
    assert_eq!(service.metric("meshguard_rls_redis_up").unwrap(), 1.0);
}

#[test]
fn a_slow_redis_is_unknown_within_the_timeout_and_a_missing_one_at_start_too() {
    let mut redis = Redis::start().unwrap();
    let dir = scratch("slow");
    // Redis down before the service starts: it starts anyway, ready, answering UNKNOWN.
    redis.stop();
    let service = service(
        &write_config(&dir, EDGE),
        &redis,
        &["--redis-timeout", "250ms"],
    );
    let ready =
        meshguard_testkit::http::get(&format!("{}/readyz", service.http_url()), &[]).unwrap();
    assert_eq!(ready.status, 200);
    let rt = runtime();
    let mut client = rt.block_on(client(&service));
    let dave = request("edge", &[&[("user", "dave")]]);
    rt.block_on(async {
        let status = ask(&mut client, &dave).await.unwrap_err();
        assert_eq!(status.code(), GrpcCode::Unknown);
    });
    redis.restart().unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while ask(&mut client, &dave).await.is_err() {
            assert!(Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Redis stops answering for 3 s: each decision gives up after the 250 ms timeout.
    redis.command(&["CLIENT", "PAUSE", "3000", "ALL"]).unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let status = ask(&mut client, &dave).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(status.code(), GrpcCode::Unknown, "{status:?}");
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_millis(2_500), "{took:?}");
    });
    assert!(
        service
            .metric("meshguard_rls_redis_errors_total{kind=\"timeout\"}")
            .unwrap()
            >= 1.0
    );
}

#[test]
fn malformed_configuration_is_refused_at_start_with_file_line_and_field() {
    let redis = Redis::start().unwrap();
    let dir = scratch("malformed");
    let config = write_config(
        &dir,
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit:\n      unit: minutes\n      requests_per_unit: 5\n",
    );
    let err = meshguard_testkit::RateLimitService::start(
        std::path::Path::new(BINARY),
        &config,
        &redis.url(),
        &[],
    )
    .unwrap_err()
    .to_string();
    let expected = format!(
        "{}:5:13: descriptors[0].rate_limit.unit: unknown unit `minutes`",
        config.display()
    );
    assert!(
        err.contains("exited during start-up with exit status: 2"),
        "{err}"
    );
    assert!(err.contains(&expected), "{err}");

    // `check` says the same and exits 1; a valid file prints its limits.
    let output = std::process::Command::new(BINARY)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&expected));
    let good = write_config(&dir, EDGE);
    let output = std::process::Command::new(BINARY)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "domain edge: 1 limits\n  user: 5 per hour\n"
    );
}

#[test]
fn malformed_requests_are_invalid_arguments() {
    let redis = Redis::start().unwrap();
    let dir = scratch("invalid");
    let service = service(&write_config(&dir, EDGE), &redis, &[]);
    runtime().block_on(async {
        let mut client = client(&service).await;
        let status = ask(&mut client, &request("", &[&[("user", "x")]]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), GrpcCode::InvalidArgument);
        let status = ask(&mut client, &request("edge", &[])).await.unwrap_err();
        assert_eq!(status.code(), GrpcCode::InvalidArgument);
    });
}

#[test]
fn changed_configuration_is_reloaded_and_an_invalid_change_is_kept_out() {
    let redis = Redis::start().unwrap();
    let dir = scratch("reload");
    let config = write_config(&dir, EDGE);
    let service = service(&config, &redis, &["--reload-interval", "100ms"]);
    let rt = runtime();
    let mut client = rt.block_on(client(&service));
    let limit_of =
        |response: &envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse| {
            response.statuses[0]
                .current_limit
                .as_ref()
                .map(|l| l.requests_per_unit)
        };
    let erin = request("edge", &[&[("user", "erin")]]);
    rt.block_on(async {
        assert_eq!(limit_of(&ask(&mut client, &erin).await.unwrap()), Some(5));
    });
    std::fs::write(&config, EDGE.replace("5", "50")).unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while limit_of(&ask(&mut client, &erin).await.unwrap()) != Some(50) {
            assert!(Instant::now() < deadline, "the change was not picked up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    std::fs::write(&config, "domain: edge\ndescriptors: [oops\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while service
        .metric("meshguard_rls_config_loads_total{result=\"error\"}")
        .unwrap()
        < 1.0
    {
        assert!(Instant::now() < deadline, "the invalid change was not seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(async {
        assert_eq!(
            limit_of(&ask(&mut client, &erin).await.unwrap()),
            Some(50),
            "the last good configuration stays"
        );
    });
    assert!(service.log().contains("keeping the last good one"));
}

#[test]
fn health_and_a_graceful_sigterm() {
    let redis = Redis::start().unwrap();
    let dir = scratch("sigterm");
    let mut service = service(
        &write_config(&dir, EDGE),
        &redis,
        &["--drain-delay", "1s", "--shutdown-timeout", "10s"],
    );
    let get = |path: &str| {
        meshguard_testkit::http::get(&format!("{}{path}", service.http_url()), &[]).unwrap()
    };
    assert_eq!(get("/healthz").status, 200);
    assert_eq!(get("/readyz").status, 200);
    let metrics = get("/metrics");
    assert!(
        metrics.body.ends_with("# EOF\n"),
        "OpenMetrics text: {}",
        metrics.body
    );
    let rt = runtime();
    let mut client = rt.block_on(client(&service));
    service.terminate().unwrap();
    // Draining: not ready any more, but still answering for the drain delay.
    std::thread::sleep(Duration::from_millis(300));
    let ready =
        meshguard_testkit::http::get(&format!("{}/readyz", service.http_url()), &[]).unwrap();
    assert_eq!(ready.status, 503);
    rt.block_on(async {
        let response = ask(&mut client, &request("edge", &[&[("user", "frank")]]))
            .await
            .unwrap();
        assert_eq!(response.overall_code, OK);
    });
    let status = service.wait_exit(Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status}: {}", service.log());
    assert!(service.log().contains("\"stopped\""), "{}", service.log());
}
