//! Bounded memory: the table holds at most `maxKeys` keys, idle keys are reused and swept, and
//! keys that find no room share the overflow cell.

use std::time::Duration;

use meshguard_filter_core::Host;
use meshguard_filter_core::mock::SharedHandle;

use super::Worker;
use crate::table::decode;

fn config(max_keys: u32, requests: u32, idle: &str) -> String {
    format!(
        r#"{{"limits":[{{"name":"ip","key":[{{"header":"x-client"}}],
            "rate":{{"requests":{requests},"per":"minute"}},"maxKeys":{max_keys},"idleExpiry":"{idle}"}}]}}"#
    )
}

/// Keys tracked in the limit's table (checking that no bucket exceeds its ways).
fn tracked(worker: &Worker) -> usize {
    let table = &worker.root.engine().tables[0];
    (0..table.buckets())
        .map(|bucket| {
            let (bytes, _) = worker.host.shared_get(&table.bucket_key(bucket)).unwrap();
            let records = decode(&bytes);
            assert!(
                records.len() <= table.ways(bucket),
                "bucket {bucket} over its ways"
            );
            records.len()
        })
        .sum()
}

fn client(worker: &mut Worker, id: u64) -> bool {
    worker
        .get("/login", &[("x-client", &format!("client-{id}"))])
        .admitted()
}

#[test]
fn the_table_is_created_up_front_with_exactly_max_keys_ways() {
    let worker = Worker::new(&config(40, 1, "60s"));
    let table = &worker.root.engine().tables[0];
    assert_eq!(table.buckets(), 3);
    assert_eq!((table.ways(0), table.ways(1), table.ways(2)), (16, 16, 8));
    // Buckets, overflow cell, sweep lease and seed marker: nothing else, before any traffic.
    assert_eq!(worker.host.shared.borrow().len(), 3 + 3);
}

#[test]
fn a_full_table_sends_new_keys_to_one_shared_overflow_bucket() {
    // 16 ways; 1 request per minute per key.
    let mut worker = Worker::new(&config(16, 1, "60s"));
    for id in 0..16 {
        assert!(client(&mut worker, id));
    }
    assert_eq!(tracked(&worker), 16);
    // Every further key shares the overflow cell: one cell per minute between all of them,
    // so rotating keys buys no fresh budget.
    let admitted = (16..1000).filter(|&id| client(&mut worker, id)).count();
    assert_eq!(admitted, 1);
    assert_eq!(worker.metric("ip", "overflow"), 1000 - 16);
    assert_eq!(tracked(&worker), 16, "the flood added no key");
    // Tracked keys keep their own state.
    assert!(!client(&mut worker, 3));
    worker.advance(Duration::from_secs(60));
    assert!(client(&mut worker, 3));
}

#[test]
fn idle_keys_are_reused_by_new_keys() {
    let mut worker = Worker::new(&config(16, 1, "1h"));
    for id in 0..16 {
        assert!(client(&mut worker, id));
    }
    // After 60 s every key's budget is full again: its record equals a fresh key's.
    worker.advance(Duration::from_secs(60));
    for id in 100..116 {
        assert!(client(&mut worker, id), "client-{id} takes an idle way");
    }
    assert_eq!(worker.metric("ip", "evictions"), 16);
    assert_eq!(worker.metric("ip", "overflow"), 0);
    assert_eq!(tracked(&worker), 16);
}

#[test]
fn the_sweep_forgets_idle_keys_after_idle_expiry() {
    let shared = SharedHandle::default();
    let config = config(64, 2, "30s");
    let mut a = Worker::on(shared.clone(), &config);
    let mut b = Worker::on(shared, &config);
    for id in 0..40 {
        assert!(client(&mut a, id));
    }
    assert_eq!(tracked(&a), 40);
    // tat = now + 30 s; idle expiry 30 s more: nothing goes at 59 s.
    a.advance(Duration::from_secs(59));
    b.advance(Duration::from_secs(59));
    a.tick();
    assert_eq!(tracked(&a), 40);
    assert_eq!(a.metric("ip", "keys"), 40);
    a.advance(Duration::from_secs(2));
    b.advance(Duration::from_secs(2));
    // One worker wins the lease; the other's tick in the same second does nothing.
    b.tick();
    a.tick();
    assert_eq!(tracked(&a), 0);
    assert_eq!(b.metric("ip", "evictions"), 40);
    assert_eq!(a.metric("ip", "evictions"), 0);
    assert_eq!(b.metric("ip", "keys"), 0);
    // Emptied buckets are still non-empty values: through proxy-wasm an empty value would read
    // back as a missing key without a CAS token.
    let table = &a.root.engine().tables[0];
    for key in (0..table.buckets())
        .map(|bucket| table.bucket_key(bucket))
        .chain([table.overflow_key(), table.sweep_key(), table.marker_key()])
    {
        assert!(!a.host.shared_get(&key).unwrap().0.is_empty(), "{key}");
    }
    // Forgotten keys start fresh.
    assert_eq!((0..5).filter(|_| client(&mut a, 7)).count(), 2);
}

#[test]
fn the_sweep_walks_big_tables_in_chunks() {
    let mut worker = Worker::new(&config(crate::sweep::CHUNK * 16 * 2 + 16, 1, "0s"));
    for id in 0..3000 {
        client(&mut worker, id);
    }
    let before = tracked(&worker);
    assert!(before > 2900, "{before}");
    worker.advance(Duration::from_secs(61));
    let mut ticks = 0;
    while tracked(&worker) > 0 {
        worker.tick();
        worker.advance(Duration::from_secs(1));
        ticks += 1;
        assert!(ticks <= 3, "three chunks cover the table");
    }
    assert_eq!(ticks, 3);
    assert_eq!(worker.metric("ip", "evictions"), before as i64);
}

#[test]
fn a_flood_of_100k_distinct_keys_stays_within_the_bound() {
    let shared = SharedHandle::default();
    let config = config(1000, 5, "10s");
    let mut workers: Vec<Worker> = (0..2)
        .map(|_| Worker::on(shared.clone(), &config))
        .collect();
    // A legitimate user is active before the flood.
    assert!(
        workers[0]
            .get("/login", &[("x-client", "alice")])
            .admitted()
    );
    let entries = workers[0].host.shared.borrow().len();
    let bytes_bound = 63 * (16 * 16 + 64) + 4 * 128;
    let mut admitted = 0;
    for id in 0..100_000u64 {
        if id % 1000 == 0 {
            // 100 s of flood in all: keys keep expiring and being reused.
            for worker in &mut workers {
                worker.advance(Duration::from_secs(1));
            }
        }
        admitted += usize::from(client(&mut workers[(id % 2) as usize], id));
    }
    let store = workers[0].host.shared.borrow();
    assert_eq!(
        store.len(),
        entries,
        "no shared-data entry was added by the flood"
    );
    assert!(store.bytes() <= bytes_bound, "{} bytes", store.bytes());
    drop(store);
    assert!(tracked(&workers[0]) <= 1000);
    // Keys that found room got their own budget; the rest shared the overflow cell.
    let overflow: i64 = workers.iter_mut().map(|w| w.metric("ip", "overflow")).sum();
    let evictions: i64 = workers
        .iter_mut()
        .map(|w| w.metric("ip", "evictions"))
        .sum();
    assert!(
        overflow > 0 && evictions > 0,
        "overflow {overflow}, evictions {evictions}"
    );
    assert!(admitted > 1000, "{admitted}");
    // The filter still serves and still limits: alice's state is hers.
    let mut alice = 0;
    for _ in 0..10 {
        alice += usize::from(
            workers[1]
                .get("/login", &[("x-client", "alice")])
                .admitted(),
        );
    }
    assert!(alice <= 5, "alice never exceeds one key's budget: {alice}");
}
