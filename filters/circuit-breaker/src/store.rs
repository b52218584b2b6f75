//! Read-modify-write of proxy-wasm shared data with compare-and-swap and bounded retries.
//!
//! Shared data is one store per VM id across all Envoy worker threads; a write with the CAS
//! token of the read fails if another worker wrote in between, and then the whole step is
//! re-run on the fresh value. The step is a pure function of the bytes it is given, so a retry
//! can never double-apply anything; side effects (logs, metrics) happen only after the write
//! that won.
//!
//! Every hostcall costs several microseconds in Envoy (far more than the step itself), so a
//! worker may keep a [`Snapshot`] of the value it last read: a read-modify-write then first
//! tries the step on the snapshot and writes with the snapshot's CAS token, skipping the read.
//! Envoy's tokens come from one counter bumped on every write, so a token still matching means
//! nobody wrote since and the snapshot is the current value; a mismatch falls back to a fresh
//! read. A step that wants to write nothing is never answered from a snapshot (its answer
//! could rest on stale data), so reads that decide anything still see the live value.
//!
//! [`update_cached`] lends the host to its step (read-only, between the read and the write) so
//! a step can read the clock only if its result depends on the time.

use std::cell::RefCell;

use meshguard_filter_core::{Host, SharedDataError};

/// Attempts before giving up on a contended key. Two workers rarely collide more than once or
/// twice; the bound only guards against a livelock.
pub const MAX_ATTEMPTS: u32 = 32;

/// Why an update did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Every attempt lost the race to another worker.
    #[error("shared data stayed contended for {MAX_ATTEMPTS} attempts")]
    Contended,
    /// The host refused the write.
    #[error("the host refused to write shared data")]
    Refused,
}

/// What a step wants written.
#[derive(Debug)]
pub enum Write {
    /// Nothing changed.
    Keep,
    /// Replace the value.
    Put(Vec<u8>),
}

/// Runs `step` on the current value of `key` (`None` if never written) and writes what it
/// returns with CAS, retrying on conflicts. Returns the step's result from the attempt whose
/// write won (or that needed no write).
pub fn update<T>(
    host: &mut dyn Host,
    key: &str,
    mut step: impl FnMut(Option<&[u8]>) -> (Write, T),
) -> Result<T, StoreError> {
    for _ in 0..MAX_ATTEMPTS {
        let current = host.shared_get(key);
        let (value, cas) = match &current {
            Some((value, cas)) => (Some(value.as_slice()), Some(*cas)),
            None => (None, None),
        };
        let (write, result) = step(value);
        let Write::Put(bytes) = write else {
            return Ok(result);
        };
        match host.shared_set(key, &bytes, cas) {
            Ok(()) => return Ok(result),
            Err(SharedDataError::CasMismatch) => continue,
            Err(SharedDataError::Refused) => return Err(StoreError::Refused),
        }
    }
    Err(StoreError::Contended)
}

/// A worker's copy of a key's value as last read, with its CAS token.
#[derive(Debug, Default)]
pub struct Snapshot(RefCell<Option<(Vec<u8>, u32)>>);

impl Snapshot {
    fn take(&self) -> Option<(Vec<u8>, u32)> {
        self.0.borrow_mut().take()
    }

    fn keep(&self, value: Option<(Vec<u8>, u32)>) {
        *self.0.borrow_mut() = value.filter(|(_, cas)| *cas != 0);
    }
}

/// [`update`] that starts from `snapshot` when it holds one (see the module docs) and leaves
/// in it what a read that wrote nothing saw. A write consumes the snapshot: the new token is
/// only known from the next read. The step also gets the host, to read the clock lazily.
pub fn update_cached<T>(
    host: &mut dyn Host,
    key: &str,
    snapshot: &Snapshot,
    mut step: impl FnMut(&dyn Host, Option<&[u8]>) -> (Write, T),
) -> Result<T, StoreError> {
    // Token 0 would mean "no check" to Envoy: `keep` never stores it.
    if let Some((value, cas)) = snapshot.take()
        && let (Write::Put(bytes), result) = step(&*host, Some(&value))
    {
        match host.shared_set(key, &bytes, Some(cas)) {
            Ok(()) => return Ok(result),
            Err(SharedDataError::CasMismatch) => {}
            Err(SharedDataError::Refused) => return Err(StoreError::Refused),
        }
    }
    for _ in 0..MAX_ATTEMPTS {
        let current = host.shared_get(key);
        let (write, result) = step(&*host, current.as_ref().map(|(value, _)| value.as_slice()));
        let Write::Put(bytes) = write else {
            snapshot.keep(current);
            return Ok(result);
        };
        let cas = current.as_ref().map(|(_, cas)| *cas);
        match host.shared_set(key, &bytes, cas) {
            Ok(()) => return Ok(result),
            Err(SharedDataError::CasMismatch) => continue,
            Err(SharedDataError::Refused) => return Err(StoreError::Refused),
        }
    }
    Err(StoreError::Contended)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use meshguard_filter_core::mock::{MockHost, SharedHandle};

    use super::*;
    use meshguard_filter_core::racing::RacingHost;

    fn add(host: &mut dyn Host, n: u32) -> Result<u32, StoreError> {
        update(host, "k", |value| {
            let next = value.map_or(0, crate::codec::decode_count) + n;
            (Write::Put(crate::codec::encode_count(next).to_vec()), next)
        })
    }

    fn read(host: &dyn Host) -> u32 {
        crate::codec::decode_count(&host.shared_get("k").unwrap().0)
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
        let seen = update(&mut host, "k", |value| (Write::Keep, value.is_some())).unwrap();
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
    fn a_lost_race_reruns_the_step_on_the_winners_value() {
        let mut host = racing(3);
        // Three other writes of +10 interleave; ours (+1) still lands exactly once on top.
        assert_eq!(add(&mut host, 1), Ok(32));
        assert_eq!(read(&host), 32);
        assert_eq!(host.sets(), 4);
    }

    #[test]
    fn endless_contention_gives_up_without_writing() {
        let mut host = racing(u32::MAX);
        assert_eq!(add(&mut host, 1), Err(StoreError::Contended));
        // Only the other worker's writes landed.
        assert_eq!(read(&host), 1 + 10 * MAX_ATTEMPTS);
    }

    fn add_cached(host: &mut dyn Host, snapshot: &Snapshot, n: u32) -> Result<u32, StoreError> {
        update_cached(host, "k", snapshot, |_, value| {
            let next = value.map_or(0, crate::codec::decode_count) + n;
            (Write::Put(crate::codec::encode_count(next).to_vec()), next)
        })
    }

    fn peek_cached(host: &mut dyn Host, snapshot: &Snapshot) -> u32 {
        update_cached(host, "k", snapshot, |_, value| {
            (Write::Keep, value.map_or(0, crate::codec::decode_count))
        })
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
}
