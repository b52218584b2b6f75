use std::time::Duration;

use super::*;

fn breaker(json: &str) -> Breaker {
    let config = format!(r#"{{"breakers":[{json}]}}"#);
    parse_config(config.as_bytes())
        .unwrap_or_else(|err| panic!("{json}: {err}"))
        .breakers
        .remove(0)
}

#[test]
fn a_full_breaker_parses_into_validated_types() {
    let b = breaker(
        r#"{
            "name": "payment",
            "match": {"cluster": "outbound|8080||payment", "hosts": ["*.shop.svc"],
                      "prefix": "/api/payments", "methods": ["post", "PUT"]},
            "failureWhen": {"statuses": ["5xx", 429, "400-401"], "responseFlags": ["UT", "uf", "UpstreamRetryLimitExceeded"],
                            "grpcStatuses": ["UNAVAILABLE", 4, "13"]},
            "window": {"type": "time", "size": 30},
            "minimumCalls": 20,
            "failureRateThreshold": 40.5,
            "slowCall": {"duration": "1.5s", "rateThreshold": 80},
            "openFor": "30s",
            "halfOpen": {"permittedCalls": 5, "successToClose": 3, "maxWait": "2m"},
            "maxConcurrent": 64,
            "fallback": {"status": 202, "headers": {"Content-Type": "application/json"},
                         "body": "{\"status\":\"queued\"}"}
        }"#,
    );
    assert_eq!(b.name, "payment");
    assert_eq!(b.matcher.cluster.as_deref(), Some("outbound|8080||payment"));
    assert_eq!(
        b.matcher.hosts,
        [meshguard_filter_core::route::HostPattern::Suffix(
            ".shop.svc".into()
        )]
    );
    assert!(matches!(&b.matcher.path,
        Some(meshguard_filter_core::route::PathMatch::Prefix(p)) if p == "/api/payments"));
    assert_eq!(b.matcher.methods, ["POST", "PUT"]);
    assert_eq!(
        b.failure.statuses,
        vec![
            StatusRange { from: 500, to: 599 },
            StatusRange { from: 429, to: 429 },
            StatusRange { from: 400, to: 401 },
        ]
    );
    assert_eq!(b.failure.response_flags, (1 << 2) | (1 << 5) | (1 << 15));
    assert_eq!(b.failure.grpc_statuses, (1 << 14) | (1 << 4) | (1 << 13));
    assert_eq!(b.window, WindowConfig::Time { seconds: 30 });
    assert_eq!(b.minimum_calls, 20);
    assert_eq!(b.failure_rate_threshold, 40.5);
    assert_eq!(
        b.slow_call,
        Some(SlowCall {
            duration: Duration::from_millis(1500),
            rate_threshold: 80.0
        })
    );
    assert_eq!(b.open_for, Duration::from_secs(30));
    assert_eq!(
        b.half_open,
        HalfOpen {
            permitted_calls: 5,
            success_to_close: 3,
            max_wait: Some(Duration::from_secs(120)),
        }
    );
    assert_eq!(b.max_concurrent, Some(64));
    assert_eq!(
        b.fallback,
        Fallback {
            status: 202,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"status":"queued"}"#.to_vec(),
        }
    );
}

#[test]
fn defaults_follow_resilience4j() {
    let b = breaker(r#"{"name":"b"}"#);
    assert!(b.matcher.path.is_none() && b.matcher.cluster.is_none());
    assert!(b.matcher.methods.is_empty() && b.matcher.hosts.is_empty());
    assert_eq!(b.failure, FailureWhen::default());
    assert_eq!(b.window, WindowConfig::Count { size: 100 });
    assert_eq!(b.minimum_calls, 100);
    assert_eq!(b.failure_rate_threshold, 50.0);
    assert_eq!(b.slow_call, None);
    assert_eq!(b.open_for, Duration::from_secs(60));
    assert_eq!(
        b.half_open,
        HalfOpen {
            permitted_calls: 10,
            success_to_close: 10,
            max_wait: None
        }
    );
    assert_eq!(b.max_concurrent, None);
    assert_eq!(b.fallback.status, 503);
    assert!(String::from_utf8_lossy(&b.fallback.body).contains("`b` is open"));
    // A small count window lowers the default minimum with it.
    let small = breaker(r#"{"name":"b","window":{"size":8}}"#);
    assert_eq!(small.minimum_calls, 8);
    // successToClose follows permittedCalls.
    let probes = breaker(r#"{"name":"b","halfOpen":{"permittedCalls":3}}"#);
    assert_eq!(probes.half_open.success_to_close, 3);
}

#[test]
fn failure_signals_default_independently_and_empty_lists_switch_them_off() {
    let b = breaker(r#"{"name":"b","failureWhen":{"statuses":[503]}}"#);
    assert_eq!(b.failure.statuses, vec![StatusRange { from: 503, to: 503 }]);
    assert_eq!(b.failure.response_flags, DEFAULT_FAILURE_FLAGS);
    assert_eq!(b.failure.grpc_statuses, DEFAULT_GRPC_FAILURES);
    let off = breaker(
        r#"{"name":"b","failureWhen":{"statuses":[],"responseFlags":[],"grpcStatuses":[]}}"#,
    );
    assert!(off.failure.statuses.is_empty());
    assert_eq!(off.failure.response_flags, 0);
    assert_eq!(off.failure.grpc_statuses, 0);
}

#[test]
fn the_flag_table_matches_envoys_legacy_bitmask() {
    // Bits from Envoy's LegacyResponseFlag enum: each flag is 1 << its position.
    for (index, (_, _, bit)) in RESPONSE_FLAGS.iter().enumerate() {
        assert_eq!(*bit as usize, index);
    }
    let short: Vec<&str> = RESPONSE_FLAGS.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(short.get(2), Some(&"UT"));
    assert_eq!(short.get(5), Some(&"UF"));
    assert_eq!(short.get(15), Some(&"URX"));
    assert_eq!(short.get(28), Some(&"DR"));
    assert_eq!(GRPC_CODES.get(14), Some(&("UNAVAILABLE", 14)));
}

#[test]
fn durations() {
    for (text, millis) in [
        ("1ms", 1),
        ("250ms", 250),
        ("1s", 1000),
        ("1.5s", 1500),
        ("2m", 120_000),
        ("1h", 3_600_000),
        (" 3s ", 3000),
        ("1.1s", 1100),
        ("0.1s", 100),
        ("2.345s", 2345),
        ("0.5m", 30_000),
        ("24h", 86_400_000),
    ] {
        assert_eq!(
            parse_duration(text).unwrap(),
            Duration::from_millis(millis),
            "{text}"
        );
    }
    for text in [
        "",
        "5",
        "s",
        "1.5ms",
        "0s",
        "-1s",
        "1d",
        "25h",
        "1 s",
        "1e3ms",
        "1..2s",
        ".5s",
        "1.s5",
        "1.2345s",
        "99999999999999999999999999999999999999999h",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?} must be rejected");
    }
}

/// Each bad configuration with the field its error must name.
#[test]
fn bad_config_names_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{}"#, "breakers"),
        (r#"{"breakers":[]}"#, "breakers"),
        (r#"{"breakers":[{"name":"a"}],"extra":1}"#, "extra"),
        (r#"{"breakers":[{"name":"A b"}]}"#, "breakers[0].name"),
        (r#"{"breakers":[{"name":""}]}"#, "breakers[0].name"),
        (
            r#"{"breakers":[{"name":"a"},{"name":"a"}]}"#,
            "breakers[1].name",
        ),
        (
            r#"{"breakers":[{"name":"a","nmae":1}]}"#,
            "breakers[0].nmae",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"pathPrefix":"/x"}}]}"#,
            "breakers[0].match.pathPrefix",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"prefix":"x"}}]}"#,
            "breakers[0].match.prefix",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"hosts":["a b"]}}]}"#,
            "breakers[0].match.hosts[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"cluster":""}}]}"#,
            "breakers[0].match.cluster",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"methods":[]}}]}"#,
            "breakers[0].match.methods",
        ),
        (
            r#"{"breakers":[{"name":"a","match":{"methods":["GET","G T"]}}]}"#,
            "breakers[0].match.methods[1]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"statuses":[503,"6xx"]}}]}"#,
            "breakers[0].failureWhen.statuses[1]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"statuses":[99]}}]}"#,
            "breakers[0].failureWhen.statuses[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"statuses":["504-500"]}}]}"#,
            "breakers[0].failureWhen.statuses[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"responseFlags":["UT","XX"]}}]}"#,
            "breakers[0].failureWhen.responseFlags[1]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"grpcStatuses":["OK"]}}]}"#,
            "breakers[0].failureWhen.grpcStatuses[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"grpcStatuses":[17]}}]}"#,
            "breakers[0].failureWhen.grpcStatuses[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"grpcStatuses":["NOPE"]}}]}"#,
            "breakers[0].failureWhen.grpcStatuses[0]",
        ),
        (
            r#"{"breakers":[{"name":"a","failureWhen":{"status":[500]}}]}"#,
            "breakers[0].failureWhen.status",
        ),
        (
            r#"{"breakers":[{"name":"a","window":{"type":"sliding","size":5}}]}"#,
            "breakers[0].window.type",
        ),
        (
            r#"{"breakers":[{"name":"a","window":{"type":"count","size":0}}]}"#,
            "breakers[0].window.size",
        ),
        (
            r#"{"breakers":[{"name":"a","window":{"type":"time","size":601}}]}"#,
            "breakers[0].window.size",
        ),
        (
            r#"{"breakers":[{"name":"a","window":{"type":"count"}}]}"#,
            "breakers[0].window",
        ),
        (
            r#"{"breakers":[{"name":"a","window":{"size":10},"minimumCalls":11}]}"#,
            "breakers[0].minimumCalls",
        ),
        (
            r#"{"breakers":[{"name":"a","minimumCalls":0}]}"#,
            "breakers[0].minimumCalls",
        ),
        (
            r#"{"breakers":[{"name":"a","failureRateThreshold":0}]}"#,
            "breakers[0].failureRateThreshold",
        ),
        (
            r#"{"breakers":[{"name":"a","failureRateThreshold":100.5}]}"#,
            "breakers[0].failureRateThreshold",
        ),
        (
            r#"{"breakers":[{"name":"a","failureRateThreshold":"50%"}]}"#,
            "breakers[0].failureRateThreshold",
        ),
        (
            r#"{"breakers":[{"name":"a","slowCall":{"duration":"fast"}}]}"#,
            "breakers[0].slowCall.duration",
        ),
        (
            r#"{"breakers":[{"name":"a","slowCall":{"duration":"1s","rateThreshold":-1}}]}"#,
            "breakers[0].slowCall.rateThreshold",
        ),
        (
            r#"{"breakers":[{"name":"a","slowCall":{"rateThreshold":50}}]}"#,
            "breakers[0].slowCall",
        ),
        (
            r#"{"breakers":[{"name":"a","openFor":"0s"}]}"#,
            "breakers[0].openFor",
        ),
        (
            r#"{"breakers":[{"name":"a","openFor":30}]}"#,
            "breakers[0].openFor",
        ),
        (
            r#"{"breakers":[{"name":"a","halfOpen":{"permittedCalls":0}}]}"#,
            "breakers[0].halfOpen.permittedCalls",
        ),
        (
            r#"{"breakers":[{"name":"a","halfOpen":{"permittedCalls":2,"successToClose":3}}]}"#,
            "breakers[0].halfOpen.successToClose",
        ),
        (
            r#"{"breakers":[{"name":"a","halfOpen":{"maxWait":"soon"}}]}"#,
            "breakers[0].halfOpen.maxWait",
        ),
        (
            r#"{"breakers":[{"name":"a","maxConcurrent":0}]}"#,
            "breakers[0].maxConcurrent",
        ),
        (
            r#"{"breakers":[{"name":"a","fallback":{"status":99}}]}"#,
            "breakers[0].fallback.status",
        ),
        (
            r#"{"breakers":[{"name":"a","fallback":{"headers":{"bad header":"x"}}}]}"#,
            "breakers[0].fallback.headers.bad header",
        ),
        (
            r#"{"breakers":[{"name":"a","fallback":{"headers":{"Retry-After":"5"}}}]}"#,
            "breakers[0].fallback.headers.Retry-After",
        ),
        (
            r#"{"breakers":[{"name":"a","fallback":{"headers":{"x-a":"a\nb"}}}]}"#,
            "breakers[0].fallback.headers.x-a",
        ),
        (
            r#"{"breakers":[{"name":"a","fallback":{"bdy":""}}]}"#,
            "breakers[0].fallback.bdy",
        ),
    ];
    for (config, field) in cases {
        let err = parse_config(config.as_bytes()).expect_err(config);
        assert_eq!(&err.field, field, "{config}: {err}");
    }
}

#[test]
fn too_many_breakers_is_an_error() {
    let breakers: Vec<String> = (0..=MAX_BREAKERS)
        .map(|i| format!(r#"{{"name":"b{i}"}}"#))
        .collect();
    let config = format!(r#"{{"breakers":[{}]}}"#, breakers.join(","));
    assert_eq!(
        parse_config(config.as_bytes()).unwrap_err().field,
        "breakers"
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let err =
        parse_config(br#"{"breakers":[{"name":"a","window":{"size":10},"minimumCalls":11}]}"#)
            .unwrap_err();
    assert!(err.message.contains("enlarge window.size"), "{err}");
    let err = parse_config(br#"{"breakers":[{"name":"a","openFor":"30"}]}"#).unwrap_err();
    assert!(err.message.contains("ms, s, m or h"), "{err}");
}
