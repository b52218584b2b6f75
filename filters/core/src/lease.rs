//! The one lease protocol for periodic jobs that exactly one root context should run: the rate
//! limiter's sweep of idle keys, the JWT filter's JWKS refresh.
//!
//! Every root context ticks (Envoy's main thread and each worker), so without coordination a
//! job runs once per worker. A lease is one shared-data record, `(next_due, held_until, holder,
//! payload)`: a root whose tick finds the job due (`now >= next_due`) and not held (`now >=
//! held_until`) takes it with a compare-and-swap through [`crate::shared::Cas`]; the others see
//! the hold and do nothing. The holder runs the job (synchronously, or by a callout answered
//! later) and releases it with the next due time and its payload (a cursor, a generation). A
//! hold expires on its own, so a VM that disappears mid-job blocks nobody for long.
//!
//! Envoy accepts any CAS token on a missing key, so a record is created blind (by the first
//! root at configure time, or by [`Lease::acquire`] finding it missing) and only taken from
//! the next attempt on, with the token of a read of the existing record: two roots can never
//! both win.

use crate::Host;
use crate::shared::{Cas, StoreError, Write};

/// First byte of every lease record (a format version; values are never empty, since an empty
/// value reads back like a missing key through proxy-wasm).
const TAG: u8 = 1;
const HEADER: usize = 1 + 3 * 8;

/// A lease record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// When the job is next due (ms since the epoch; 0: due now).
    pub next_due_ms: u64,
    /// The job is held until then (0: not held).
    pub held_until_ms: u64,
    /// Which root took it last.
    pub holder: u64,
    /// The job's own state (a cursor, a generation), opaque to the lease.
    pub payload: Vec<u8>,
}

impl LeaseState {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER + self.payload.len());
        bytes.push(TAG);
        bytes.extend_from_slice(&self.next_due_ms.to_le_bytes());
        bytes.extend_from_slice(&self.held_until_ms.to_le_bytes());
        bytes.extend_from_slice(&self.holder.to_le_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    /// Decodes a record; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.first() != Some(&TAG) {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Self {
            next_due_ms: u64_at(1)?,
            held_until_ms: u64_at(9)?,
            holder: u64_at(17)?,
            payload: bytes.get(HEADER..)?.to_vec(),
        })
    }

    /// Whether a root may take the job at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        now_ms >= self.next_due_ms && now_ms >= self.held_until_ms
    }
}

/// One job's lease, at a shared-data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    key: String,
}

impl Lease {
    /// The lease at `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }

    /// Its shared-data key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The record, if it exists and is one.
    pub fn read(&self, host: &dyn Host) -> Option<LeaseState> {
        host.shared_get(&self.key)
            .and_then(|(bytes, _)| LeaseState::decode(&bytes))
    }

    /// Writes `initial` unless a record exists (a blind write: call it where no other root can
    /// race, or accept that the job's first run waits for the next attempt). Returns the record
    /// now stored.
    pub fn ensure(&self, host: &mut dyn Host, initial: LeaseState) -> LeaseState {
        if let Some(existing) = self.read(host) {
            return existing;
        }
        let _ = host.shared_set(&self.key, &initial.encode(), None);
        initial
    }

    /// Takes the job if it is due and not held: at most one root wins per due time. The hold
    /// lasts `hold_ms`. A missing record is created (not taken): the job can be taken from the
    /// next attempt on. Returns the record as taken.
    pub fn acquire(
        &self,
        host: &mut dyn Host,
        now_ms: u64,
        holder: u64,
        hold_ms: u64,
    ) -> Option<LeaseState> {
        let Some((bytes, cas)) = host.shared_get(&self.key) else {
            let _ = host.shared_set(&self.key, &LeaseState::default().encode(), None);
            return None;
        };
        let take = |state: &LeaseState| {
            let mut taken = state.clone();
            taken.held_until_ms = now_ms.saturating_add(hold_ms);
            taken.holder = holder;
            taken
        };
        // The common case, nothing due, costs the one read above.
        let state = LeaseState::decode(&bytes).unwrap_or_default();
        if !state.available(now_ms) {
            return None;
        }
        let taken = take(&state);
        match host.shared_set(&self.key, &taken.encode(), Some(cas)) {
            Ok(()) => Some(taken),
            // Someone wrote since the read: decide again on the live record.
            Err(_) => Cas::new(&self.key)
                .update(host, |_, bytes| {
                    let state = bytes.and_then(LeaseState::decode).unwrap_or_default();
                    if bytes.is_none() || !state.available(now_ms) {
                        return (Write::Keep, None);
                    }
                    let taken = take(&state);
                    (Write::Put(taken.encode()), Some(taken))
                })
                .ok()
                .flatten(),
        }
    }

    /// Ends `holder`'s run: `finish` sets the next due time and the payload, and the hold is
    /// released. Does nothing (returns `Ok(false)`) if another root has taken the job since.
    pub fn release(
        &self,
        host: &mut dyn Host,
        holder: u64,
        mut finish: impl FnMut(&mut LeaseState),
    ) -> Result<bool, StoreError> {
        Cas::new(&self.key).update(host, |_, bytes| {
            let Some(mut state) = bytes.and_then(LeaseState::decode) else {
                return (Write::Keep, false);
            };
            if state.holder != holder || state.held_until_ms == 0 {
                return (Write::Keep, false);
            }
            finish(&mut state);
            state.held_until_ms = 0;
            (Write::Put(state.encode()), true)
        })
    }

    /// Changes the record whoever holds it (an early refresh asks for `next_due = now`; a
    /// finished callout publishes its result). `change` returns `None` to write nothing.
    /// Returns `change`'s answer from the write that won; `None` also when the record is
    /// missing or the update failed.
    pub fn update<T>(
        &self,
        host: &mut dyn Host,
        mut change: impl FnMut(&mut LeaseState) -> Option<T>,
    ) -> Option<T> {
        Cas::new(&self.key)
            .update(host, |_, bytes| {
                let Some(mut state) = bytes.and_then(LeaseState::decode) else {
                    return (Write::Keep, None);
                };
                match change(&mut state) {
                    Some(result) => (Write::Put(state.encode()), Some(result)),
                    None => (Write::Keep, None),
                }
            })
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{MockHost, SharedHandle};

    fn workers(n: usize) -> Vec<MockHost> {
        let shared = SharedHandle::default();
        (0..n)
            .map(|_| MockHost::new().with_shared(shared.clone()))
            .collect()
    }

    #[test]
    fn records_round_trip_and_reject_other_bytes() {
        let state = LeaseState {
            next_due_ms: 1,
            held_until_ms: 2,
            holder: 3,
            payload: b"cursor".to_vec(),
        };
        assert_eq!(LeaseState::decode(&state.encode()), Some(state));
        assert_eq!(LeaseState::decode(b""), None);
        assert_eq!(LeaseState::decode(&[TAG, 0, 0]), None);
        assert_eq!(LeaseState::decode(b"{\"json\":1}"), None);
    }

    #[test]
    fn a_missing_record_is_created_and_taken_only_from_the_next_attempt() {
        let mut hosts = workers(2);
        let lease = Lease::new("job");
        assert_eq!(lease.acquire(&mut hosts[0], 1000, 1, 500), None);
        assert!(lease.read(&hosts[0]).is_some());
        let taken = lease.acquire(&mut hosts[1], 1000, 2, 500).unwrap();
        assert_eq!((taken.holder, taken.held_until_ms), (2, 1500));
    }

    #[test]
    fn exactly_one_root_takes_a_due_job_and_the_hold_expires() {
        let mut hosts = workers(3);
        let lease = Lease::new("job");
        lease.ensure(&mut hosts[0], LeaseState::default());
        let winners: Vec<u64> = (0..3)
            .filter_map(|i| lease.acquire(&mut hosts[i], 1000, i as u64 + 1, 500))
            .map(|state| state.holder)
            .collect();
        assert_eq!(winners, vec![1]);
        assert_eq!(
            lease.acquire(&mut hosts[1], 1499, 2, 500),
            None,
            "still held"
        );
        // The holder vanished: the hold expires and another root takes over.
        assert_eq!(
            lease.acquire(&mut hosts[1], 1500, 2, 500).unwrap().holder,
            2
        );
    }

    #[test]
    fn release_schedules_the_next_run_and_ignores_a_stale_holder() {
        let mut hosts = workers(2);
        let lease = Lease::new("job");
        lease.ensure(&mut hosts[0], LeaseState::default());
        lease.acquire(&mut hosts[0], 1000, 7, 100).unwrap();
        // Holder 7 overran its hold; holder 8 took the job.
        lease.acquire(&mut hosts[1], 1100, 8, 100).unwrap();
        assert_eq!(
            lease.release(&mut hosts[0], 7, |s| s.next_due_ms = 99_999),
            Ok(false)
        );
        assert_eq!(
            lease.release(&mut hosts[1], 8, |s| {
                s.next_due_ms = 2000;
                s.payload = b"42".to_vec();
            }),
            Ok(true)
        );
        let state = lease.read(&hosts[0]).unwrap();
        assert_eq!(
            (
                state.next_due_ms,
                state.held_until_ms,
                state.payload.as_slice()
            ),
            (2000, 0, b"42".as_slice())
        );
        assert_eq!(lease.acquire(&mut hosts[0], 1999, 7, 100), None, "not due");
        assert!(lease.acquire(&mut hosts[0], 2000, 7, 100).is_some());
        assert_eq!(lease.release(&mut hosts[1], 8, |_| {}), Ok(false));
    }

    #[test]
    fn update_changes_the_record_unless_told_not_to() {
        let mut hosts = workers(1);
        let lease = Lease::new("job");
        assert_eq!(lease.update(&mut hosts[0], |_| Some(())), None, "no record");
        lease.ensure(
            &mut hosts[0],
            LeaseState {
                next_due_ms: 5000,
                ..LeaseState::default()
            },
        );
        assert_eq!(
            lease.update(&mut hosts[0], |state| {
                state.next_due_ms = 10;
                Some(state.next_due_ms)
            }),
            Some(10)
        );
        assert_eq!(lease.update(&mut hosts[0], |_| None::<()>), None);
        assert_eq!(lease.read(&hosts[0]).unwrap().next_due_ms, 10);
    }

    #[test]
    fn a_due_check_that_finds_nothing_costs_one_read() {
        let mut hosts = workers(1);
        let lease = Lease::new("job");
        lease.ensure(
            &mut hosts[0],
            LeaseState {
                next_due_ms: 5000,
                ..LeaseState::default()
            },
        );
        hosts[0].reset_hostcalls();
        assert_eq!(lease.acquire(&mut hosts[0], 1000, 1, 10), None);
        assert_eq!(hosts[0].hostcalls(), 1);
    }
}
