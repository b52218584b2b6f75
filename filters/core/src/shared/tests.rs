use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::mock::{MockHost, SharedHandle};
use crate::racing::RacingHost;

fn decode(bytes: &[u8]) -> u32 {
    bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn add(host: &mut dyn Host, n: u32) -> Result<u32, StoreError> {
    Cas::new("k").update(host, |_, value| {
        let next = value.map_or(0, decode) + n;
        (Write::Put(next.to_le_bytes().to_vec()), next)
    })
}

fn read(host: &dyn Host) -> u32 {
    decode(&host.shared_get("k").unwrap().0)
}

#[test]
fn creates_then_updates() {
    let mut host = MockHost::new();
    assert_eq!(add(&mut host, 2), Ok(2));
    assert_eq!(add(&mut host, 3), Ok(5));
    assert_eq!(read(&host), 5);
}

#[test]
fn keep_writes_nothing() {
    let mut host = MockHost::new();
    let seen = Cas::new("k")
        .update(&mut host, |_, value| (Write::Keep, value.is_some()))
        .unwrap();
    assert!(!seen);
    assert!(host.shared_get("k").is_none());
}

/// Another worker adds 10 before each of our first `losses` writes.
fn racing(losses: u32) -> RacingHost {
    let shared = SharedHandle::default();
    let mut seed = MockHost::new().with_shared(shared.clone());
    add(&mut seed, 1).unwrap();
    let mut other = MockHost::new().with_shared(shared.clone());
    let left = Rc::new(Cell::new(losses));
    RacingHost::new(MockHost::new().with_shared(shared)).interfere(move |_| {
        if left.get() == 0 {
            return;
        }
        left.set(left.get() - 1);
        add(&mut other, 10).unwrap();
    })
}

#[test]
fn a_lost_race_reruns_the_step_on_the_winners_value_and_counts_it() {
    let mut host = racing(3);
    // Three other writes of +10 interleave; ours (+1) still lands exactly once on top.
    let attempted = Cas::new("k").run(&mut host, |_, value| {
        let next = value.map_or(0, decode) + 1;
        (Write::Put(next.to_le_bytes().to_vec()), next)
    });
    assert_eq!(
        attempted,
        Attempted {
            result: Ok(32),
            retries: 3
        }
    );
    assert_eq!(read(&host), 32);
    assert_eq!(host.sets(), 4);
}

#[test]
fn endless_contention_gives_up_after_the_bound_without_writing() {
    let mut host = racing(u32::MAX);
    assert_eq!(add(&mut host, 1), Err(StoreError::Contended));
    assert_eq!(read(&host), 1 + 10 * DEFAULT_ATTEMPTS);
    let mut host = racing(u32::MAX);
    let attempted = Cas::new("k").attempts(1).run(&mut host, |_, value| {
        (Write::Put(vec![0; 4]), value.is_some())
    });
    assert_eq!(attempted.result, Err(StoreError::Contended));
    assert_eq!(attempted.retries, 0, "one attempt, no retry");
    assert_eq!(host.sets(), 1);
}

fn add_cached(host: &mut dyn Host, snapshot: &Snapshot, n: u32) -> Result<u32, StoreError> {
    Cas::new("k").snapshot(snapshot).update(host, |_, value| {
        let next = value.map_or(0, decode) + n;
        (Write::Put(next.to_le_bytes().to_vec()), next)
    })
}

fn peek_cached(host: &mut dyn Host, snapshot: &Snapshot) -> u32 {
    Cas::new("k")
        .snapshot(snapshot)
        .update(host, |_, value| (Write::Keep, value.map_or(0, decode)))
        .unwrap()
}

/// Our worker (through a counting host) and another one on the same shared data.
fn two_workers() -> (RacingHost, MockHost) {
    let shared = SharedHandle::default();
    let mut seed = MockHost::new().with_shared(shared.clone());
    add(&mut seed, 1).unwrap();
    let ours = RacingHost::new(MockHost::new().with_shared(shared.clone()));
    (ours, MockHost::new().with_shared(shared))
}

#[test]
fn a_snapshot_spares_the_read_when_nobody_wrote() {
    let (mut host, _) = two_workers();
    let snapshot = Snapshot::default();
    assert_eq!(peek_cached(&mut host, &snapshot), 1);
    assert_eq!(host.gets(), 1);
    assert_eq!(add_cached(&mut host, &snapshot, 2), Ok(3));
    assert_eq!((host.gets(), host.sets()), (1, 1));
    // The write used the snapshot up: the next step reads again.
    assert_eq!(add_cached(&mut host, &snapshot, 2), Ok(5));
    assert_eq!((host.gets(), host.sets()), (2, 2));
    assert_eq!(read(&host), 5);
}

#[test]
fn a_stale_snapshot_loses_its_write_and_the_step_reruns_on_the_live_value() {
    let (mut host, mut other) = two_workers();
    let snapshot = Snapshot::default();
    assert_eq!(peek_cached(&mut host, &snapshot), 1);
    add(&mut other, 10).unwrap();
    // Applied once, on top of the other worker's write, not on the stale 1.
    assert_eq!(add_cached(&mut host, &snapshot, 1), Ok(12));
    assert_eq!((host.gets(), host.sets()), (2, 2));
    assert_eq!(read(&host), 12);
}

#[test]
fn a_step_that_writes_nothing_is_never_answered_from_the_snapshot() {
    let (mut host, mut other) = two_workers();
    let snapshot = Snapshot::default();
    assert_eq!(peek_cached(&mut host, &snapshot), 1);
    add(&mut other, 10).unwrap();
    assert_eq!(peek_cached(&mut host, &snapshot), 11);
}
