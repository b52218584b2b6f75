//! Opening, short-circuiting, probing and closing through the shell, with one or two workers.

use super::*;

#[test]
fn opens_at_the_threshold_and_answers_with_the_fallback() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    for upstream in [ok(), fail(), ok()] {
        assert_eq!(w.call("/api/payments", upstream), Decision::Continue);
    }
    assert_eq!(w.phase(), Phase::Closed);
    assert_eq!(w.call("/api/payments/42", fail()), Decision::Continue);
    assert_eq!(w.phase(), Phase::Open);

    let Decision::Respond(response) = w.call("/api/payments", ok()) else {
        panic!("an open breaker must answer locally");
    };
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"status":"deferred"}"#);
    assert_eq!(
        response.headers,
        vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-meshguard-circuit".to_string(), "open".to_string()),
            ("retry-after".to_string(), "1".to_string()),
        ]
    );
    assert_eq!(w.metric("calls.success"), 2);
    assert_eq!(w.metric("calls.failure"), 2);
    assert_eq!(w.metric("short_circuited"), 1);
    assert_eq!(w.metric("state"), 1);
    assert_eq!(w.metric("transitions"), 1);
    assert_eq!(w.metric("transitions.to_open"), 1);
    assert_eq!(
        w.logs_containing("`pay`: closed -> open (failure rate 50.0% over 4 calls)"),
        1
    );
    assert!(
        w.host
            .logs
            .borrow()
            .iter()
            .any(|(level, line)| *level == LogLevel::Warn && line.contains("closed -> open"))
    );
}

#[test]
fn without_a_fallback_the_answer_is_a_plain_503() {
    let config =
        r#"{"breakers":[{"name":"pay","window":{"size":2},"minimumCalls":2,"openFor":"30s"}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    w.call("/", fail());
    w.call("/", fail());
    let Decision::Respond(response) = w.call("/", ok()) else {
        panic!("open");
    };
    assert_eq!(response.status, 503);
    assert!(String::from_utf8_lossy(&response.body).contains("`pay` is open"));
    assert!(
        response
            .headers
            .contains(&("retry-after".into(), "30".into()))
    );
    assert!(
        response
            .headers
            .contains(&("x-meshguard-circuit".into(), "open".into()))
    );
}

#[test]
fn requests_no_breaker_matches_pass_untouched() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    for _ in 0..10 {
        assert_eq!(w.call("/api/products", fail()), Decision::Continue);
    }
    assert_eq!(w.phase(), Phase::Closed);
    assert_eq!(w.metric("calls.failure"), 0);
}

#[test]
fn workers_share_one_window_and_open_together() {
    let (mut a, mut b) = pair(BASIC);
    a.call("/api/payments", fail());
    b.call("/api/payments", ok());
    a.call("/api/payments", ok());
    b.call("/api/payments", fail());
    // Neither worker saw 4 calls, together they did.
    assert_eq!(a.phase(), Phase::Open);
    assert!(is_short_circuit(&a.call("/api/payments", ok()), "open"));
    assert!(is_short_circuit(&b.call("/api/payments", ok()), "open"));
    // Logged and counted once: by the worker whose write opened it.
    let opened = a.logs_containing("closed -> open") + b.logs_containing("closed -> open");
    assert_eq!(opened, 1);
    assert_eq!(a.metric("transitions") + b.metric("transitions"), 1);
}

#[test]
fn half_open_admits_permitted_calls_across_workers_and_closes_on_success() {
    let (mut a, mut b) = pair(BASIC);
    a.fail_four();
    advance_both(&mut a, &mut b, 1_000);
    let (mut probe_a, decision) = a.start("/api/payments");
    assert_eq!(decision, Decision::Continue);
    let (mut probe_b, decision) = b.start("/api/payments");
    assert_eq!(decision, Decision::Continue);
    // The two permits are gone, whichever worker asks.
    for worker in [&mut a, &mut b] {
        let (_, decision) = worker.start("/api/payments");
        assert!(is_short_circuit(&decision, "half-open"), "{decision:?}");
    }
    assert_eq!(a.phase(), Phase::HalfOpen);
    a.finish(&mut probe_a, ok());
    assert_eq!(a.phase(), Phase::HalfOpen);
    b.finish(&mut probe_b, ok());
    assert_eq!(a.phase(), Phase::Closed);
    assert_eq!(a.call("/api/payments", ok()), Decision::Continue);
    assert_eq!(b.call("/api/payments", ok()), Decision::Continue);
    let transitions: Vec<&str> =
        ["closed -> open", "open -> half-open", "half-open -> closed"].into();
    for text in transitions {
        assert_eq!(
            a.logs_containing(text) + b.logs_containing(text),
            1,
            "{text}"
        );
    }
    assert_eq!(a.metric("transitions") + b.metric("transitions"), 3);
}

#[test]
fn a_failed_probe_reopens_for_every_worker() {
    let (mut a, mut b) = pair(BASIC);
    b.fail_four();
    advance_both(&mut a, &mut b, 1_000);
    assert_eq!(a.call("/api/payments", fail()), Decision::Continue);
    assert_eq!(a.phase(), Phase::Open);
    assert!(is_short_circuit(&b.call("/api/payments", ok()), "open"));
    assert_eq!(
        b.metric("transitions.to_open") + a.metric("transitions.to_open"),
        2
    );
}

#[test]
fn short_circuited_streams_record_nothing() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    w.fail_four();
    let before = (w.metric("calls.success"), w.metric("calls.ignored"));
    for _ in 0..5 {
        assert!(is_short_circuit(&w.call("/api/payments", ok()), "open"));
    }
    assert_eq!(
        (w.metric("calls.success"), w.metric("calls.ignored")),
        before
    );
    assert_eq!(w.metric("short_circuited"), 5);
}

#[test]
fn the_tick_moves_open_to_half_open_once_and_updates_every_gauge() {
    let (mut a, mut b) = pair(BASIC);
    a.fail_four();
    assert_eq!((a.metric("state"), b.metric("state")), (1, 0));
    b.root.on_tick(&mut b.host);
    assert_eq!(b.metric("state"), 1);
    advance_both(&mut a, &mut b, 1_000);
    a.root.on_tick(&mut a.host);
    b.root.on_tick(&mut b.host);
    assert_eq!((a.metric("state"), b.metric("state")), (2, 2));
    assert_eq!(
        a.logs_containing("open -> half-open") + b.logs_containing("open -> half-open"),
        1
    );
    // Permits are untouched by the tick.
    assert_eq!(stored_header(&a.host, &a.key()).unwrap().probes_issued, 0);
}
