//! The bulkhead, CAS races between workers, corrupt or reshaped shared state, configuration.

use super::*;

#[test]
fn the_bulkhead_caps_calls_in_flight_across_workers() {
    let config = r#"{"breakers":[{"name":"pay","maxConcurrent":2}]}"#;
    let (mut a, mut b) = pair(config);
    let (mut first, d1) = a.start("/");
    let (mut second, d2) = b.start("/");
    assert_eq!((d1, d2), (Decision::Continue, Decision::Continue));
    let (_, full) = a.start("/");
    assert!(is_short_circuit(&full, "full"), "{full:?}");
    let (_, full) = b.start("/");
    assert!(is_short_circuit(&full, "full"));
    assert_eq!(a.metric("bulkhead_full") + b.metric("bulkhead_full"), 2);
    b.finish(&mut second, ok());
    let (mut third, d3) = a.start("/");
    assert_eq!(d3, Decision::Continue);
    a.finish(&mut first, ok());
    a.finish(&mut third, ok());
    let inflight = a.runtime().guards[0].inflight_key.clone();
    assert_eq!(
        codec::decode_count(&a.host.shared_get(&inflight).unwrap().0),
        0
    );
}

#[test]
fn a_probe_the_bulkhead_refuses_returns_its_permit() {
    let config = r#"{"breakers":[{"name":"pay","window":{"size":2},"minimumCalls":2,
        "openFor":"1s","halfOpen":{"permittedCalls":1},"maxConcurrent":1}]}"#;
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, config);
    w.call("/", fail());
    w.call("/", fail());
    w.host.advance(Duration::from_secs(1));
    // Someone holds the only slot: write the counter as another worker would.
    let inflight = w.runtime().guards[0].inflight_key.clone();
    w.host
        .shared_set(&inflight, &codec::encode_count(1), None)
        .unwrap();
    let (_, decision) = w.start("/");
    assert!(is_short_circuit(&decision, "full"));
    let header = stored_header(&w.host, &w.key()).unwrap();
    assert_eq!((header.phase, header.probes_issued), (Phase::HalfOpen, 0));
}

#[test]
fn outcomes_are_not_lost_when_workers_race_for_the_state() {
    let config = r#"{"breakers":[{"name":"pay","window":{"size":100},"minimumCalls":100}]}"#;
    let shared = SharedHandle::default();
    let mut other = Worker::new(&shared, config);
    let mut racing = {
        let mut host = MockHost::new().with_shared(shared.clone());
        let root = configure(&mut host, config.as_bytes());
        (RacingHost::new(host), root)
    };
    // Before each of our writes, the other worker completes a whole failing call (for the
    // first 10 writes): our read is stale every time, the CAS fails, the step is re-run.
    let left = std::rc::Rc::new(std::cell::Cell::new(10));
    let counter = left.clone();
    let key = other.key();
    racing.0 = racing.0.interfere(move |_| {
        if counter.get() > 0 {
            counter.set(counter.get() - 1);
            other.call("/", fail());
        }
    });
    let (host, root) = &mut racing;
    for _ in 0..5 {
        let mut http = Stream::new(root.new_http(1));
        host.inner.request_headers = vec![(":path".into(), "/".into())];
        assert_eq!(http.on_request_headers(host, true), Decision::Continue);
        host.inner.response_headers = vec![(":status".into(), "200".into())];
        host.inner
            .properties
            .insert("response.code_details".into(), VIA_UPSTREAM.to_vec());
        http.on_response_headers(host, false);
        http.on_log(host);
    }
    assert_eq!(left.get(), 0);
    let state = codec::decode(&host.shared_get(&key).unwrap().0).unwrap();
    let total = state.window.aggregate(0_u64);
    assert_eq!((total.calls, total.failures), (15, 10));
    for guard in &root.runtime().guards {
        guard.flush_counters(&mut host.inner);
    }
    assert_eq!(
        host.inner.metric(&format!(
            "meshguard.circuit_breaker.{PLUGIN}.pay.cas_contended"
        )),
        0
    );
}

#[test]
fn a_probe_permit_taken_by_another_worker_mid_admission_is_not_handed_out_twice() {
    let config = one_probe();
    let shared = SharedHandle::default();
    let other = std::rc::Rc::new(std::cell::RefCell::new(Worker::new(&shared, &config)));
    other.borrow_mut().fail_four();
    let mut host = MockHost::new().with_shared(shared.clone());
    let root = configure(&mut host, config.as_bytes());
    host.advance(Duration::from_secs(1));
    other.borrow_mut().host.advance(Duration::from_secs(1));
    // Between our read of the expired open state and our write of "half-open, one permit
    // issued", the other worker admits its own probe: our write must fail and our retry must
    // see that the only permit is gone.
    let racer = other.clone();
    let probe = std::rc::Rc::new(std::cell::RefCell::new(None));
    let taken = probe.clone();
    let mut host = RacingHost::new(host).interfere(move |_| {
        if taken.borrow().is_none() {
            let (http, decision) = racer.borrow_mut().start("/api/payments");
            assert_eq!(decision, Decision::Continue);
            *taken.borrow_mut() = Some(http);
        }
    });
    let mut http = Stream::new(root.new_http(1));
    host.inner.request_headers = vec![(":path".into(), "/api/payments".into())];
    let decision = http.on_request_headers(&mut host, true);
    assert!(is_short_circuit(&decision, "half-open"), "{decision:?}");
    assert_eq!(
        host.sets(),
        1,
        "one losing write, then a rejection that writes nothing"
    );
    let header = stored_header(&host.inner, &other.borrow().key()).unwrap();
    assert_eq!((header.phase, header.probes_issued), (Phase::HalfOpen, 1));
    // The transition was made (and logged) by the winner only.
    let ours = host.inner.logs.borrow();
    assert!(
        !ours
            .iter()
            .any(|(_, line)| line.contains("open -> half-open"))
    );
    assert_eq!(other.borrow().logs_containing("open -> half-open"), 1);
    // The other worker's probe decides.
    let mut other = other.borrow_mut();
    let mut http = probe.borrow_mut().take().unwrap();
    other.finish(&mut http, ok());
    assert_eq!(other.phase(), Phase::Closed);
}

#[test]
fn endless_contention_fails_open_and_is_counted() {
    let config = r#"{"breakers":[{"name":"pay"}]}"#;
    let shared = SharedHandle::default();
    let mut other = Worker::new(&shared, config);
    let mut host = MockHost::new().with_shared(shared.clone());
    let root = configure(&mut host, config.as_bytes());
    let mut host = RacingHost::new(host).interfere(move |_| {
        other.call("/", ok());
    });
    let mut http = Stream::new(root.new_http(1));
    host.inner.request_headers = vec![(":path".into(), "/".into())];
    assert_eq!(http.on_request_headers(&mut host, true), Decision::Continue);
    host.inner.response_headers = vec![(":status".into(), "200".into())];
    host.inner
        .properties
        .insert("response.code_details".into(), VIA_UPSTREAM.to_vec());
    http.on_response_headers(&mut host, false);
    http.on_log(&mut host);
    for guard in &root.runtime().guards {
        guard.flush_counters(&mut host.inner);
    }
    assert_eq!(
        host.inner.metric(&format!(
            "meshguard.circuit_breaker.{PLUGIN}.pay.cas_contended"
        )),
        1
    );
    assert_eq!(
        host.inner.metric(&format!(
            "meshguard.circuit_breaker.{PLUGIN}.pay.calls.success"
        )),
        1
    );
}

#[test]
fn configure_replaces_corrupt_or_reshaped_state_and_keeps_good_state() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    w.fail_four();
    // A restart of the VM with the same config keeps the open breaker.
    let again = Worker::new(&shared, BASIC);
    assert_eq!(again.phase(), Phase::Open);
    // A different window size cannot reuse the stored window: fresh and closed.
    let reshaped = Worker::new(&shared, &BASIC.replace(r#""size":4"#, r#""size":5"#));
    assert_eq!(reshaped.phase(), Phase::Closed);
    // Garbage in shared data is replaced.
    let key = w.key();
    w.host.shared_set(&key, b"garbage", None).unwrap();
    let mut fresh = Worker::new(&shared, BASIC);
    assert_eq!(fresh.phase(), Phase::Closed);
    assert_eq!(fresh.call("/api/payments", ok()), Decision::Continue);
}

#[test]
fn garbage_written_after_configure_is_repaired_by_traffic() {
    let shared = SharedHandle::default();
    let mut w = Worker::new(&shared, BASIC);
    let key = w.key();
    w.host.shared_set(&key, b"\x01", None).unwrap();
    assert_eq!(w.call("/api/payments", fail()), Decision::Continue);
    assert!(codec::decode(&w.host.shared_get(&key).unwrap().0).is_ok());
}

#[test]
fn keys_are_scoped_by_plugin_name() {
    let shared = SharedHandle::default();
    let mut host = MockHost::new().with_shared(shared);
    let root =
        CircuitBreaker::configure(&mut host, &Env::single("edge"), BASIC.as_bytes()).unwrap();
    assert_eq!(
        root.runtime().guards[0].key,
        "meshguard.circuit_breaker.v1.edge.pay"
    );
}

#[test]
fn invalid_configuration_is_refused_with_the_field() {
    let mut host = MockHost::new();
    let err = CircuitBreaker::configure(
        &mut host,
        &Env::single(PLUGIN),
        br#"{"breakers":[{"name":"a","openFor":"soon"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "breakers[0].openFor");
}

#[test]
fn a_cluster_match_is_refused_where_an_earlier_stage_hides_the_cluster() {
    let config = br#"{"breakers":[{"name":"a","match":{"prefix":"/"}},
                                  {"name":"b","match":{"cluster":"product-v2"}}]}"#;
    let env = |route| Env {
        route,
        ..Env::single(PLUGIN)
    };
    let err = CircuitBreaker::configure(
        &mut MockHost::new(),
        &env(meshguard_filter_core::RouteKnowledge::Unknown),
        config,
    )
    .unwrap_err();
    assert_eq!(err.field, "breakers[1].match.cluster");
    assert!(err.message.contains("cluster"), "{err}");
    for known in [
        meshguard_filter_core::RouteKnowledge::AsArrived,
        meshguard_filter_core::RouteKnowledge::Declared,
    ] {
        assert!(CircuitBreaker::configure(&mut MockHost::new(), &env(known), config).is_ok());
    }
}
