//! How calls are judged: resets and timeouts at stream end, local replies, latency, gRPC
//! trailers, cluster matching.

use super::*;

#[test]
fn resets_and_timeouts_without_response_headers_are_failures_at_stream_end() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    w.call("/api/payments", Upstream::Reset(UR));
    w.call("/api/payments", Upstream::Reset(UT));
    w.call("/api/payments", ok());
    w.call("/api/payments", ok());
    assert_eq!(w.phase(), Phase::Open);
    assert_eq!(w.metric("calls.failure"), 2);
}

#[test]
fn a_client_that_went_away_is_not_a_call_and_returns_its_probe_permit() {
    let shared = SharedHandle::default();
    let mut w = due_one_probe(&shared);
    assert_eq!(
        w.call("/api/payments", Upstream::Reset(DC)),
        Decision::Continue
    );
    assert_eq!(w.metric("calls.ignored"), 1);
    assert_eq!(w.phase(), Phase::HalfOpen);
    // The permit came back: the next request is the probe.
    assert_eq!(w.call("/api/payments", ok()), Decision::Continue);
    assert_eq!(w.phase(), Phase::Closed);
}

#[test]
fn envoy_timeout_local_reply_counts_through_its_flag() {
    let config = r#"{"breakers":[{"name":"pay","window":{"size":2},"minimumCalls":2,
        "failureWhen":{"statuses":[],"responseFlags":["UT"]}}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    for _ in 0..2 {
        let (mut http, _) = w.start("/");
        w.host.response_headers = vec![(":status".into(), "504".into())];
        w.host.properties.insert(
            "response.code_details".into(),
            b"upstream_response_timeout".to_vec(),
        );
        w.host
            .properties
            .insert("response.flags".into(), UT.to_le_bytes().to_vec());
        http.on_response_headers(&mut w.host, true);
        http.on_log(&mut w.host);
    }
    assert_eq!(w.phase(), Phase::Open);
}

#[test]
fn a_later_filters_local_reply_is_ignored() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    for _ in 0..6 {
        let (mut http, _) = w.start("/api/payments");
        w.host.response_headers = vec![(":status".into(), "503".into())];
        w.host.properties.insert(
            "response.code_details".into(),
            b"overloaded_by_filter".to_vec(),
        );
        http.on_response_headers(&mut w.host, true);
        http.on_log(&mut w.host);
    }
    assert_eq!(w.phase(), Phase::Closed);
    assert_eq!(w.metric("calls.ignored"), 6);
    assert_eq!(w.metric("calls.failure"), 0);
}

#[test]
fn latency_from_request_headers_makes_calls_slow() {
    let config = r#"{"breakers":[{"name":"pay","window":{"size":3},"minimumCalls":3,
        "failureRateThreshold":100,"slowCall":{"duration":"300ms","rateThreshold":60}}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    w.call("/", Upstream::Status(200, 299));
    w.call("/", Upstream::Status(200, 300));
    assert_eq!(w.metric("calls.slow"), 1);
    assert_eq!(w.phase(), Phase::Closed);
    w.call("/", Upstream::Status(200, 900));
    assert_eq!(w.phase(), Phase::Open);
    assert_eq!(w.metric("calls.success"), 3);
    assert_eq!(w.logs_containing("slow-call rate 66.7% over 3 calls"), 1);
}

#[test]
fn grpc_status_from_the_trailers_is_judged_at_stream_end() {
    let config = r#"{"breakers":[{"name":"pay","window":{"size":2},"minimumCalls":2}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    for (recorded, status) in [(0, 14i64), (1, 4)] {
        let (mut http, _) = w.start("/shop.Payment/Charge");
        w.host.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/grpc".into()),
        ];
        w.host
            .properties
            .insert("response.code_details".into(), VIA_UPSTREAM.to_vec());
        http.on_response_headers(&mut w.host, false);
        // Not judged yet: the status is in the trailers.
        assert_eq!(
            w.metric("calls.failure") + w.metric("calls.success"),
            recorded
        );
        w.host
            .properties
            .insert("response.grpc_status".into(), status.to_le_bytes().to_vec());
        http.on_log(&mut w.host);
    }
    assert_eq!(w.metric("calls.failure"), 2);
    assert_eq!(w.phase(), Phase::Open);
}

#[test]
fn response_without_status_or_origin_is_ignored() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    let (mut http, _) = w.start("/api/payments");
    w.host.response_headers.clear();
    http.on_response_headers(&mut w.host, true);
    http.on_log(&mut w.host);
    assert_eq!(w.metric("calls.ignored"), 1);
    assert_eq!(
        w.host.header(HeaderMap::Request, ":path").as_deref(),
        Some("/api/payments")
    );
}

#[test]
fn cluster_matching_reads_the_cluster_name_property() {
    let config = r#"{"breakers":[{"name":"pay","match":{"cluster":"payment"},
        "window":{"size":1},"minimumCalls":1}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    w.host
        .properties
        .insert("cluster_name".into(), b"product".to_vec());
    w.call("/", fail());
    assert_eq!(w.phase(), Phase::Closed);
    w.host
        .properties
        .insert("cluster_name".into(), b"payment".to_vec());
    w.call("/", fail());
    assert_eq!(w.phase(), Phase::Open);
    // Envoy 1.40 has it as `xds.cluster_name`, which wins over the old name.
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    let properties = &mut w.host.properties;
    properties.insert("cluster_name".into(), b"payment".to_vec());
    properties.insert("xds.cluster_name".into(), b"product".to_vec());
    w.call("/", fail());
    assert_eq!(w.phase(), Phase::Closed);
    let properties = &mut w.host.properties;
    properties.insert("xds.cluster_name".into(), b"payment".to_vec());
    w.call("/", fail());
    assert_eq!(w.phase(), Phase::Open);
}

#[test]
fn a_local_success_counts_in_closed_state_but_never_closes_a_half_open_breaker() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, &one_probe());
    let local_ok = |w: &mut Worker| {
        let (mut http, decision) = w.start("/api/payments");
        w.host.response_headers = vec![(":status".into(), "200".into())];
        w.host
            .properties
            .insert("response.code_details".into(), b"direct_response".to_vec());
        http.on_response_headers(&mut w.host, true);
        http.on_log(&mut w.host);
        decision
    };
    // Closed: a 200 is a success without reading where it came from (the hot path).
    local_ok(&mut w);
    assert_eq!(w.metric("calls.success"), 1);
    w.fail_four();
    assert_eq!(w.phase(), Phase::Open);
    w.host.advance(Duration::from_secs(1));
    // Half-open: the probe's 200 did not come from the upstream, so it proves nothing.
    assert_eq!(local_ok(&mut w), Decision::Continue);
    assert_eq!(w.metric("calls.ignored"), 1);
    assert_eq!(w.phase(), Phase::HalfOpen);
    assert_eq!(w.call("/api/payments", ok()), Decision::Continue);
    assert_eq!(w.phase(), Phase::Closed);
}

#[test]
fn latency_is_measured_at_the_response_headers_not_at_stream_end() {
    let config = BASIC.replace(
        r#""minimumCalls":4,"#,
        r#""minimumCalls":4,"slowCall":{"duration":"500ms","rateThreshold":50},"#,
    );
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, &config);
    let (mut http, _) = w.start("/api/payments");
    w.host.advance(Duration::from_millis(100));
    w.host.response_headers = vec![(":status".into(), "200".into())];
    http.on_response_headers(&mut w.host, false);
    // A long body: the call answered in 100 ms, so it is not slow.
    w.host.advance(Duration::from_secs(5));
    http.on_log(&mut w.host);
    assert_eq!(w.metric("calls.success"), 1);
    assert_eq!(w.metric("calls.slow"), 0);
}

#[test]
fn a_probe_is_recorded_at_its_response_headers() {
    // Not when a long body ends: the breaker closes as soon as the probe's answer arrives.
    let shared = SharedHandle::default();
    let mut w = due_one_probe(&shared);
    let (mut probe, decision) = w.start("/api/payments");
    assert_eq!(decision, Decision::Continue);
    w.host.response_headers = vec![(":status".into(), "200".into())];
    w.host
        .properties
        .insert("response.code_details".into(), VIA_UPSTREAM.to_vec());
    probe.on_response_headers(&mut w.host, false);
    assert_eq!(
        w.phase(),
        Phase::Closed,
        "closed before the probe's body ends"
    );
    probe.on_log(&mut w.host);
    assert_eq!(w.phase(), Phase::Closed);
    assert_eq!(w.metric("calls.success"), 1);
}
