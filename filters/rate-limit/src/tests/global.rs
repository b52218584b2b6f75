//! Global limits on the mock host: the descriptors sent, what each answer means, failure
//! modes, shadow mode, local-first, and the failure log gate.

use std::time::Duration;

use meshguard_filter_core::mock::SharedHandle;
use meshguard_filter_core::{
    CallResponse, Decision, GrpcCall, HeaderMap, Host, LogLevel, Root, Stream,
};
use meshguard_rls::{
    Code, DescriptorStatus, HeaderValue, Message, RateLimit, RateLimitRequest, RateLimitResponse,
    Unit,
};

use super::{Answer, Worker};

/// One global limit per user (header `x-user`) and a local one per client address.
fn config(failure_mode: &str, shadow: bool, local_requests: u32) -> String {
    format!(
        r#"{{"headers":"ietf","limits":[
            {{"name":"local","key":[{{"clientIp":null}}],"rate":{{"requests":{local_requests},"per":"minute"}}}},
            {{"name":"orders","key":[{{"header":"x-user"}}],"shadow":{shadow},
              "global":{{"cluster":"ratelimit","domain":"shop","failureMode":"{failure_mode}"}}}}]}}"#
    )
}

/// What a request got, and the global call it made.
struct Sent {
    answer: Answer,
    call: Option<GrpcCall>,
}

/// Sends a GET with `headers`; a global call is answered with `answer` (built from the call).
fn send(
    worker: &mut Worker,
    headers: &[(&str, &str)],
    answer: impl FnOnce(&GrpcCall) -> Option<CallResponse>,
) -> Sent {
    let host = &mut worker.host;
    host.request_headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/orders?x=1".to_string()),
        (":authority".to_string(), "shop.example".to_string()),
    ];
    for (name, value) in headers {
        host.request_headers
            .push((name.to_string(), value.to_string()));
    }
    host.response_headers = vec![(":status".to_string(), "200".to_string())];
    let calls_before = host.grpc_calls.len();
    let mut http = Stream::new(worker.root.new_http(1));
    let mut decision = http.on_request_headers(host, true);
    let mut call = None;
    if decision == Decision::Pause {
        assert_eq!(host.grpc_calls.len(), calls_before + 1, "a pause is a call");
        let (token, made) = host.grpc_calls.last().cloned().unwrap();
        decision = http.on_call_response(host, token, answer(&made));
        call = Some(made);
    } else {
        assert_eq!(host.grpc_calls.len(), calls_before, "no pause, no call");
    }
    let answer = match decision {
        Decision::Continue => {
            http.on_response_headers(host, true);
            Answer::Admitted(
                host.response_headers
                    .iter()
                    .filter(|(name, _)| name != ":status")
                    .cloned()
                    .collect(),
            )
        }
        Decision::Respond(response) => Answer::Denied(response),
        Decision::Pause => panic!("still paused after the answer"),
    };
    Sent { answer, call }
}

fn grpc(response: RateLimitResponse) -> Option<CallResponse> {
    Some(CallResponse::grpc(0, "", response.encode_to_vec()))
}

fn status(code: Code, remaining: u32, reset: Duration) -> DescriptorStatus {
    DescriptorStatus {
        code: code as i32,
        current_limit: Some(RateLimit {
            name: String::new(),
            requests_per_unit: 20,
            unit: Unit::Minute as i32,
        }),
        limit_remaining: remaining,
        duration_until_reset: Some(meshguard_rls::Duration::from_std(reset)),
    }
}

fn answer(code: Code, statuses: Vec<DescriptorStatus>) -> RateLimitResponse {
    RateLimitResponse {
        overall_code: code as i32,
        statuses,
        response_headers_to_add: Vec::new(),
        request_headers_to_add: Vec::new(),
    }
}

fn ok() -> Option<CallResponse> {
    grpc(answer(
        Code::Ok,
        vec![status(Code::Ok, 19, Duration::from_secs(3))],
    ))
}

fn decoded(call: &GrpcCall) -> RateLimitRequest {
    RateLimitRequest::decode(call.message.as_slice()).unwrap()
}

fn entries(request: &RateLimitRequest) -> Vec<Vec<(String, String)>> {
    request
        .descriptors
        .iter()
        .map(|d| {
            d.entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect()
        })
        .collect()
}

#[test]
fn the_call_carries_one_descriptor_per_matching_limit_from_the_same_key_sources() {
    let mut worker = Worker::new(
        r#"{"limits":[
            {"name":"user","key":[{"header":"x-user"},{"clientIp":null}],
             "global":{"cluster":"outbound|8081||ratelimit","domain":"shop","timeout":"35ms"}},
            {"name":"sale","key":[{"constant":"flash-sale"},{"path":null},{"method":null},{"cookie":"tier"}],
             "global":{"cluster":"outbound|8081||ratelimit","domain":"shop"}},
            {"name":"admin","match":{"prefix":"/admin"},"key":[{"constant":"admin"}],
             "global":{"cluster":"outbound|8081||ratelimit","domain":"shop"}}]}"#,
    );
    let sent = send(
        &mut worker,
        &[("x-user", "alice"), ("cookie", "tier=gold")],
        |_| ok(),
    );
    assert!(sent.answer.admitted());
    let call = sent.call.unwrap();
    assert_eq!(call.cluster, "outbound|8081||ratelimit");
    assert_eq!(call.service, "envoy.service.ratelimit.v3.RateLimitService");
    assert_eq!(call.method, "ShouldRateLimit");
    assert_eq!(
        call.timeout,
        Duration::from_millis(35),
        "the longest matched timeout"
    );
    let request = decoded(&call);
    assert_eq!(request.domain, "shop");
    assert_eq!(request.hits_addend, 1);
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        entries(&request),
        vec![
            pairs(&[("x-user", "alice"), ("remote_address", "10.0.0.7")]),
            pairs(&[
                ("generic_key", "flash-sale"),
                ("path", "/orders"),
                ("method", "GET"),
                ("cookie.tier", "gold"),
            ]),
        ],
        "the admin limit does not match /orders"
    );
}

#[test]
fn descriptor_keys_match_a_service_configuration_written_for_other_clients() {
    // The Istio task's ConfigMap keys on `PATH`; the commerce ConfigMap on `path_class`.
    let mut worker = Worker::new(
        r#"{"limits":[
            {"name":"orders","key":[{"constant":"orders"},{"header":"x-jwt-sub"}],
             "global":{"cluster":"rls","domain":"commerce-edge","descriptorKeys":["path_class","jwt_sub"]}}]}"#,
    );
    let sent = send(&mut worker, &[("x-jwt-sub", "user-42")], |_| ok());
    let request = decoded(&sent.call.unwrap());
    assert_eq!(
        entries(&request),
        vec![vec![
            ("path_class".to_string(), "orders".to_string()),
            ("jwt_sub".to_string(), "user-42".to_string())
        ]]
    );
}

#[test]
fn a_missing_key_part_skips_the_limit_or_sends_an_empty_value_when_shared() {
    let mut worker = Worker::new(
        r#"{"limits":[
            {"name":"user","key":[{"header":"x-user"}],"global":{"cluster":"rls","domain":"d"}}]}"#,
    );
    let sent = send(&mut worker, &[], |_| panic!("no call without a key"));
    assert!(sent.answer.admitted());
    assert!(sent.call.is_none());

    let mut worker = Worker::new(
        r#"{"limits":[
            {"name":"user","key":[{"header":"x-user"}],"onMissingKey":"shared",
             "global":{"cluster":"rls","domain":"d"}}]}"#,
    );
    let sent = send(&mut worker, &[], |_| ok());
    let request = decoded(&sent.call.unwrap());
    assert_eq!(
        entries(&request),
        vec![vec![("x-user".to_string(), String::new())]]
    );
}

#[test]
fn over_limit_gets_the_429_with_the_services_retry_after_headers_and_ratelimit_headers() {
    let mut worker = Worker::new(&config("allow", false, 100));
    let sent = send(&mut worker, &[("x-user", "alice")], |_| {
        let mut over = answer(
            Code::OverLimit,
            vec![status(Code::OverLimit, 0, Duration::from_millis(2_500))],
        );
        over.response_headers_to_add = vec![
            HeaderValue {
                key: "X-Served-By".into(),
                value: "rls-1".into(),
                raw_value: Vec::new(),
            },
            HeaderValue {
                key: "bad header".into(),
                value: "dropped".into(),
                raw_value: Vec::new(),
            },
        ];
        grpc(over)
    });
    let response = sent.answer.response().clone();
    assert_eq!(response.status, 429);
    assert_eq!(
        sent.answer.header("retry-after"),
        Some("3"),
        "2.5 s rounds up"
    );
    assert_eq!(sent.answer.header("x-envoy-ratelimited"), Some("true"));
    assert_eq!(
        sent.answer.header("ratelimit-policy"),
        Some("\"orders\";q=20;w=60")
    );
    assert_eq!(sent.answer.header("ratelimit"), Some("\"orders\";r=0;t=3"));
    assert_eq!(sent.answer.header("x-served-by"), Some("rls-1"));
    assert!(
        !response
            .headers
            .iter()
            .any(|(name, _)| name == "bad header"),
        "an invalid header from the service is dropped"
    );
    assert_eq!(worker.metric("orders", "limited"), 1);
    // The local limit was not charged: the request never went on.
    assert_eq!(worker.metric("local", "allowed"), 0);
}

#[test]
fn ok_continues_with_the_services_headers_and_charges_the_local_limit() {
    let mut worker = Worker::new(&config("allow", false, 100));
    let sent = send(&mut worker, &[("x-user", "alice")], |_| {
        let mut fine = answer(Code::Ok, vec![status(Code::Ok, 19, Duration::from_secs(3))]);
        fine.request_headers_to_add = vec![HeaderValue {
            key: "x-ratelimit-checked".into(),
            value: "yes".into(),
            raw_value: Vec::new(),
        }];
        fine.response_headers_to_add = vec![HeaderValue {
            key: "x-quota-note".into(),
            value: String::new(),
            raw_value: b"raw".to_vec(),
        }];
        grpc(fine)
    });
    assert!(sent.answer.admitted(), "{:?}", sent.answer);
    assert_eq!(sent.answer.header("x-quota-note"), Some("raw"));
    assert_eq!(
        worker
            .host
            .header(HeaderMap::Request, "x-ratelimit-checked")
            .as_deref(),
        Some("yes")
    );
    // Local and global limits in one RateLimit header.
    assert_eq!(
        sent.answer.header("ratelimit"),
        Some("\"local\";r=99;t=1, \"orders\";r=19;t=3")
    );
    assert_eq!(worker.metric("orders", "allowed"), 1);
    assert_eq!(worker.metric("local", "allowed"), 1);
}

#[test]
fn local_first_a_locally_refused_request_costs_no_call() {
    let mut worker = Worker::new(&config("allow", false, 1));
    assert!(
        send(&mut worker, &[("x-user", "alice")], |_| ok())
            .answer
            .admitted()
    );
    let refused = send(&mut worker, &[("x-user", "alice")], |_| panic!("no call"));
    assert_eq!(refused.answer.response().status, 429);
    assert!(refused.call.is_none());
    assert_eq!(worker.host.grpc_calls.len(), 1);
}

#[test]
fn a_globally_refused_request_leaves_the_local_budget_untouched() {
    let mut worker = Worker::new(&config("allow", false, 1));
    let over = || {
        grpc(answer(
            Code::OverLimit,
            vec![status(Code::OverLimit, 0, Duration::from_secs(1))],
        ))
    };
    for _ in 0..3 {
        let sent = send(&mut worker, &[("x-user", "alice")], |_| over());
        assert_eq!(sent.answer.response().status, 429);
    }
    // The local budget of one is still whole.
    assert!(
        send(&mut worker, &[("x-user", "alice")], |_| ok())
            .answer
            .admitted()
    );
}

/// Every kind of missing answer, as the shim and the hosts deliver it.
fn failures() -> Vec<(&'static str, Option<CallResponse>)> {
    vec![
        ("timeout", Some(CallResponse::grpc(4, "", Vec::new()))),
        (
            "unavailable",
            Some(CallResponse::grpc(14, "no healthy upstream", Vec::new())),
        ),
        ("unknown", grpc(answer(Code::Unknown, Vec::new()))),
        (
            "garbage",
            Some(CallResponse::grpc(0, "", vec![0xff, 0xff, 0xff])),
        ),
        ("http answer", Some(CallResponse::default())),
        ("no answer", None),
    ]
}

#[test]
fn failure_mode_allow_lets_requests_through_and_counts_them() {
    for (what, failure) in failures() {
        let mut worker = Worker::new(&config("allow", false, 100));
        let sent = send(&mut worker, &[("x-user", "alice")], |_| failure);
        assert!(sent.answer.admitted(), "{what}: {:?}", sent.answer);
        assert_eq!(worker.metric("orders", "error"), 1, "{what}");
        assert_eq!(worker.metric("orders", "failure_mode_allowed"), 1, "{what}");
        assert_eq!(
            worker.metric("local", "allowed"),
            1,
            "{what}: charged locally"
        );
    }
}

#[test]
fn failure_mode_deny_refuses_with_a_reason() {
    for (what, failure) in failures() {
        let mut worker = Worker::new(&config("deny", false, 100));
        let sent = send(&mut worker, &[("x-user", "alice")], |_| failure);
        let response = sent.answer.response();
        assert_eq!(response.status, 503, "{what}");
        let body = String::from_utf8_lossy(&response.body);
        assert!(
            body.contains("rate limit `orders` could not be checked"),
            "{what}: {body}"
        );
        assert_eq!(
            sent.answer.header("x-meshguard-ratelimit"),
            Some("service-error")
        );
        assert_eq!(worker.metric("orders", "failure_mode_denied"), 1, "{what}");
        assert_eq!(worker.metric("local", "allowed"), 0, "{what}: not charged");
    }
    let timeout = send(
        &mut Worker::new(&config("deny", false, 100)),
        &[("x-user", "alice")],
        |_| Some(CallResponse::grpc(4, "", Vec::new())),
    );
    let body = String::from_utf8(timeout.answer.response().body.clone()).unwrap();
    assert!(body.contains("DEADLINE_EXCEEDED"), "{body}");
}

#[test]
fn a_call_the_host_refuses_applies_the_failure_mode_without_pausing() {
    let mut worker = Worker::new(&config("deny", false, 100));
    worker.host.refuse_grpc = true;
    let sent = send(&mut worker, &[("x-user", "alice")], |_| panic!("no call"));
    assert_eq!(sent.answer.response().status, 503);
    let body = String::from_utf8_lossy(&sent.answer.response().body).into_owned();
    assert!(body.contains("is `ratelimit` a cluster"), "{body}");
}

#[test]
fn shadow_global_limits_count_and_never_deny() {
    let mut worker = Worker::new(&config("deny", true, 100));
    let over = grpc(answer(
        Code::OverLimit,
        vec![status(Code::OverLimit, 0, Duration::from_secs(1))],
    ));
    let sent = send(&mut worker, &[("x-user", "alice")], |_| over);
    assert!(sent.answer.admitted());
    assert_eq!(
        sent.answer.header("ratelimit"),
        Some("\"local\";r=99;t=1"),
        "shadow limits are not advertised"
    );
    assert_eq!(worker.metric("orders", "shadow_limited"), 1);
    assert_eq!(worker.metric("orders", "limited"), 0);
    // A failure in shadow mode is counted, and the request goes on even with `deny`.
    let sent = send(&mut worker, &[("x-user", "alice")], |_| {
        Some(CallResponse::grpc(14, "", Vec::new()))
    });
    assert!(sent.answer.admitted());
    assert_eq!(worker.metric("orders", "error"), 1);
    assert_eq!(worker.metric("orders", "failure_mode_denied"), 0);
}

#[test]
fn an_answer_without_per_descriptor_statuses_counts_for_every_descriptor() {
    let mut worker = Worker::new(&config("allow", false, 100));
    let sent = send(&mut worker, &[("x-user", "alice")], |_| {
        grpc(answer(Code::OverLimit, Vec::new()))
    });
    assert_eq!(sent.answer.response().status, 429);
    assert_eq!(sent.answer.header("retry-after"), Some("1"));
}

#[test]
fn another_calls_answer_does_not_resume_the_stream() {
    let mut worker = Worker::new(&config("allow", false, 100));
    worker.host.request_headers = vec![
        (":path".to_string(), "/".to_string()),
        ("x-user".to_string(), "alice".to_string()),
    ];
    let mut http = Stream::new(worker.root.new_http(1));
    assert_eq!(
        http.on_request_headers(&mut worker.host, true),
        Decision::Pause
    );
    let token = worker.host.grpc_calls[0].0;
    assert_eq!(
        http.on_call_response(&mut worker.host, token + 7, ok()),
        Decision::Pause
    );
    assert_eq!(
        http.on_call_response(&mut worker.host, token, ok()),
        Decision::Continue
    );
}

#[test]
fn failures_are_logged_once_per_interval_across_workers() {
    let shared = SharedHandle::default();
    let mut workers = [
        Worker::on(shared.clone(), &config("allow", false, 1_000)),
        Worker::on(shared, &config("allow", false, 1_000)),
    ];
    let warnings = |workers: &[Worker; 2]| -> usize {
        workers
            .iter()
            .map(|w| {
                w.host
                    .logs
                    .borrow()
                    .iter()
                    .filter(|(level, line)| {
                        *level == LogLevel::Warn && line.contains("no usable answer")
                    })
                    .count()
            })
            .sum()
    };
    let unavailable = || Some(CallResponse::grpc(14, "", Vec::new()));
    for _ in 0..20 {
        for worker in workers.iter_mut() {
            send(worker, &[("x-user", "alice")], |_| unavailable());
            worker.advance(Duration::from_millis(200));
        }
    }
    // 4 s of failures on two workers: one line.
    assert_eq!(warnings(&workers), 1);
    assert_eq!(
        workers[0].metric("orders", "error") + workers[1].metric("orders", "error"),
        40
    );
    for worker in workers.iter_mut() {
        worker.advance(Duration::from_secs(10));
        send(worker, &[("x-user", "alice")], |_| unavailable());
    }
    assert_eq!(warnings(&workers), 2, "the next interval logs again, once");
}
