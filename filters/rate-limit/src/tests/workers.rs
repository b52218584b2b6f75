//! Several workers (mocks sharing one shared-data store) make one limiter: exact counts, and
//! the compare-and-swap paths when a worker writes between another's check and commit.

use std::time::Duration;

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::racing::RacingHost;
use meshguard_filter_core::{Decision, Env, Filter, Root, Stream};

use super::{Worker, per_user};
use crate::RateLimit;

#[test]
fn four_workers_share_one_exact_budget() {
    let shared = SharedHandle::default();
    let config = per_user(10, "minute", 5);
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::on(shared.clone(), &config))
        .collect();
    let mut admitted = 0;
    for round in 0..100 {
        let worker = &mut workers[round % 4];
        admitted += usize::from(worker.get("/", &[("x-user", "alice")]).admitted());
    }
    assert_eq!(
        admitted, 15,
        "requests + burst across all workers, not per worker"
    );
    // One cell per 6 s, whichever worker asks.
    for worker in &mut workers {
        worker.advance(Duration::from_secs(6));
    }
    let after: usize = workers
        .iter_mut()
        .map(|w| usize::from(w.get("/", &[("x-user", "alice")]).admitted()))
        .sum();
    assert_eq!(after, 1);
    // Stats are per VM here; Envoy sums them by name.
    let allowed: i64 = workers
        .iter_mut()
        .map(|w| w.metric("user", "allowed"))
        .sum();
    assert_eq!(allowed, 16);
}

#[test]
fn the_first_root_creates_the_table_and_later_roots_share_its_seed() {
    let shared = SharedHandle::default();
    let config = per_user(1, "second", 0);
    let a = Worker::on(shared.clone(), &config);
    let b = Worker::on(shared.clone(), &config);
    let seeds = |w: &Worker| w.root.engine().seeds[0].get();
    assert_eq!(seeds(&a), seeds(&b));
    // A different configuration of the limit lives in a different namespace.
    let c = Worker::on(shared.clone(), &per_user(2, "second", 0));
    let tables = |w: &Worker| w.root.engine().tables[0].bucket_key(0);
    assert_eq!(tables(&a), tables(&b));
    assert_ne!(tables(&a), tables(&c));
}

/// Worker A's request races worker B's: B's request is sent right before A's first write to a
/// shared key containing `trigger`. Returns A's decision, A's host and B.
fn race(
    config: &str,
    trigger: &str,
    a_headers: &[(&str, &str)],
    b_headers: &'static [(&'static str, &'static str)],
    prefill: impl FnOnce(&mut Worker),
) -> (
    Decision,
    RacingHost,
    std::rc::Rc<std::cell::RefCell<Worker>>,
) {
    let shared = SharedHandle::default();
    let b = std::rc::Rc::new(std::cell::RefCell::new(Worker::on(shared.clone(), config)));
    prefill(&mut b.borrow_mut());

    let mut inner = MockHost::new()
        .with_shared(shared)
        .with_property("plugin_name", b"rate-limit");
    let a_root =
        RateLimit::configure(&mut inner, &Env::single(super::PLUGIN), config.as_bytes()).unwrap();
    inner.request_headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), "/".into()),
    ];
    for (name, value) in a_headers {
        inner
            .request_headers
            .push((name.to_string(), value.to_string()));
    }
    let b_hook = b.clone();
    let trigger = trigger.to_string();
    let raced = std::rc::Rc::new(std::cell::Cell::new(false));
    let happened = raced.clone();
    // B's request runs once, right before A's first write to a key containing `trigger`.
    let mut host = RacingHost::new(inner).interfere(move |key| {
        if key.contains(&trigger) && !happened.replace(true) {
            assert!(
                b_hook.borrow_mut().get("/", b_headers).admitted(),
                "B's request is admitted"
            );
        }
    });
    let decision = Stream::new(a_root.new_http(1)).on_request_headers(&mut host, true);
    assert!(raced.get(), "the race happened");
    // What A's root adds to the stats on its next tick.
    for metrics in &a_root.engine().metrics {
        metrics.flush(&mut host.inner);
    }
    (decision, host, b)
}

#[test]
fn a_stale_commit_is_rechecked_and_still_admitted_when_room_is_left() {
    let config = per_user(2, "minute", 0);
    let (decision, host, b) = race(
        &config,
        ".b",
        &[("x-user", "alice")],
        &[("x-user", "alice")],
        |_| {},
    );
    assert_eq!(decision, Decision::Continue);
    assert_eq!(
        host.inner.metric(&super::stat_name("user", "cas_retries")),
        1
    );
    // Both cells are used: nothing is left for anyone.
    assert!(!b.borrow_mut().get("/", &[("x-user", "alice")]).admitted());
}

#[test]
fn a_stale_commit_that_no_longer_fits_is_denied() {
    let config = per_user(2, "minute", 0);
    let (decision, host, b) = race(
        &config,
        ".b",
        &[("x-user", "alice")],
        &[("x-user", "alice")],
        |b| {
            assert!(b.get("/", &[("x-user", "alice")]).admitted());
        },
    );
    let Decision::Respond(response) = decision else {
        panic!("A must be denied: B took the last cell between A's check and commit");
    };
    assert_eq!(response.status, 429);
    assert_eq!(host.inner.metric(&super::stat_name("user", "limited")), 1);
    assert!(!b.borrow_mut().get("/", &[("x-user", "alice")]).admitted());
}

#[test]
fn a_late_denial_refunds_the_limits_already_committed() {
    // `global` (10/min) is committed first; `user` (1/min, only with x-user) then loses its
    // cell to B. A is denied and its global cell comes back.
    let config = r#"{"limits":[
        {"name":"global","key":[{"constant":"all"}],"rate":{"requests":10,"per":"minute"}},
        {"name":"user","match":{"headers":[{"name":"x-user","present":true}]},"key":[{"header":"x-user"}],
         "rate":{"requests":1,"per":"minute"}}]}"#;
    let (decision, _host, b) = race(
        config,
        ".user.",
        &[("x-user", "alice")],
        &[("x-user", "alice")],
        |_| {},
    );
    assert!(matches!(decision, Decision::Respond(_)), "{decision:?}");
    // B used one global cell; A's was refunded: 9 remain for requests without x-user.
    assert_eq!(b.borrow_mut().admitted(20, "/", &[]), 9);
}
