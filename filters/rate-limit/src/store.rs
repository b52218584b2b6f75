//! governor's seams, implemented over Envoy shared data: a [`StateStore`] and a [`Clock`].
//!
//! governor keeps one number per key, the GCRA "theoretical arrival time" (tat), and makes every
//! decision in a closure it hands to [`StateStore::measure_and_replace`]: given the old tat, the
//! closure either refuses (the cell does not conform) or returns the new tat. governor's own
//! stores run it inside an atomic compare-exchange loop. [`SharedStore`] runs it against a
//! bucket read from shared data and then, depending on its [`Mode`]:
//! - [`Mode::Immediate`]: writes the bucket back with the CAS token of the read and, on a
//!   mismatch (another worker wrote in between), re-reads and re-runs governor's closure: the
//!   same loop as governor's in-memory store, across workers.
//! - [`Mode::Deferred`]: keeps the write for later, so a request can be checked against every
//!   matching limit before any of them is consumed (see `limiter`).
//!
//! [`HostClock`] is governor's clock fed by the host (`proxy_get_current_time`). A
//! `RateLimiter` measures time from the instant it was built, while the shared tat must mean the
//! same thing on every worker, so the store keeps absolute nanoseconds since the Unix epoch in
//! shared data and converts to and from the limiter's origin on each read and write.

use std::cell::RefCell;

use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::state::StateStore;
use meshguard_filter_core::{Host, SharedDataError};

use crate::table::{Record, Slot, Table, decode, decode_cell, encode};

/// CAS attempts before an immediate check gives up (workers are few; this is never reached in
/// practice).
pub const MAX_ATTEMPTS: u32 = 64;

/// governor's clock, reading the host's time once per decision.
#[derive(Debug, Clone, Copy)]
pub struct HostClock {
    now: u64,
}

impl HostClock {
    /// A clock that reads `now` (ns since the Unix epoch).
    pub fn at(now: u64) -> Self {
        Self { now }
    }
}

impl Clock for HostClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.now)
    }
}

/// When the store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write now, retrying on CAS mismatch.
    Immediate,
    /// Keep the write for a later commit.
    Deferred,
}

/// Where a key's state was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// The key already had a record.
    #[default]
    Existing,
    /// A free way takes the new key.
    Fresh,
    /// The new key replaces an idle key's record (an eviction).
    Replaced,
    /// The bucket is full of active keys: the key shares the overflow cell.
    Overflow,
}

/// A write prepared from one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Shared-data key.
    pub key: String,
    /// CAS token of the read (`None`: the entry did not exist).
    pub cas: Option<u32>,
    /// The new value.
    pub value: Vec<u8>,
}

/// What one `measure_and_replace` saw and did.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Where the key's state was.
    pub placement: Placement,
    /// tat before the decision (absolute ns; `None` for a fresh key).
    pub before: Option<u64>,
    /// tat after an admitting decision (absolute ns).
    pub after: Option<u64>,
    /// The prepared write (deferred mode, admitted).
    pub write: Option<Write>,
    /// Whether the write reached shared data (immediate mode).
    pub committed: bool,
    /// CAS mismatches met.
    pub retries: u32,
    /// The host refused a write or retries ran out: the decision was made but not stored.
    pub failed: bool,
}

/// A bucket (or the overflow cell) as read, with the position of the key in it.
struct Located {
    key: String,
    cas: Option<u32>,
    records: Vec<Record>,
    target: Target,
    before: Option<u64>,
}

#[derive(Clone, Copy)]
enum Target {
    Way(usize),
    Append,
    Replace(usize),
    Overflow,
}

/// governor's state store over one limit's shared-data table.
pub struct SharedStore<'a> {
    host: RefCell<&'a mut dyn Host>,
    table: &'a Table,
    origin: u64,
    mode: Mode,
    observation: RefCell<Observation>,
}

impl<'a> SharedStore<'a> {
    /// A store for a limiter built at `origin` (the same `now` its [`HostClock`] reads).
    pub fn new(host: &'a mut dyn Host, table: &'a Table, origin: u64, mode: Mode) -> Self {
        Self {
            host: RefCell::new(host),
            table,
            origin,
            mode,
            observation: RefCell::new(Observation::default()),
        }
    }

    /// What the last decision saw and did.
    pub fn into_observation(self) -> Observation {
        self.observation.into_inner()
    }

    fn locate(&self, slot: &Slot) -> Located {
        let host = self.host.borrow();
        let key = self.table.bucket_key(slot.bucket);
        let (bytes, cas) = match host.shared_get(&key) {
            Some((bytes, cas)) => (bytes, Some(cas)),
            None => (Vec::new(), None),
        };
        let records = decode(&bytes);
        if let Some(index) = records.iter().position(|r| r.fp == slot.fp) {
            let before = records.get(index).map(|r| r.tat);
            return Located {
                key,
                cas,
                records,
                target: Target::Way(index),
                before,
            };
        }
        if records.len() < self.table.ways(slot.bucket) {
            return Located {
                key,
                cas,
                records,
                target: Target::Append,
                before: None,
            };
        }
        // A record whose tat is not in the future is indistinguishable from a fresh key
        // (governor's own `retain_recent` criterion): reuse the oldest such way.
        let idle = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.tat <= self.origin)
            .min_by_key(|(_, r)| r.tat)
            .map(|(index, _)| index);
        if let Some(index) = idle {
            return Located {
                key,
                cas,
                records,
                target: Target::Replace(index),
                before: None,
            };
        }
        let key = self.table.overflow_key();
        let (before, cas) = match host.shared_get(&key) {
            Some((bytes, cas)) => (decode_cell(&bytes), Some(cas)),
            None => (None, None),
        };
        Located {
            key,
            cas,
            records: Vec::new(),
            target: Target::Overflow,
            before,
        }
    }

    /// The write that stores `tat` for the key. Takes the read by value: its key and records
    /// move into the write instead of being copied (this runs on every admitted request).
    fn prepare(located: Located, fp: u64, tat: u64) -> (Write, Placement) {
        let Located {
            key,
            cas,
            mut records,
            target,
            ..
        } = located;
        let placement = match target {
            Target::Way(index) => {
                if let Some(record) = records.get_mut(index) {
                    record.tat = tat;
                }
                Placement::Existing
            }
            Target::Append => {
                records.push(Record { fp, tat });
                Placement::Fresh
            }
            Target::Replace(index) => {
                if let Some(record) = records.get_mut(index) {
                    *record = Record { fp, tat };
                }
                Placement::Replaced
            }
            Target::Overflow => {
                let write = Write {
                    key,
                    cas,
                    value: tat.to_le_bytes().to_vec(),
                };
                return (write, Placement::Overflow);
            }
        };
        let write = Write {
            key,
            cas,
            value: encode(&records),
        };
        (write, placement)
    }

    fn placement_of(target: Target) -> Placement {
        match target {
            Target::Way(_) => Placement::Existing,
            Target::Append => Placement::Fresh,
            Target::Replace(_) => Placement::Replaced,
            Target::Overflow => Placement::Overflow,
        }
    }
}

impl StateStore for SharedStore<'_> {
    type Key = Slot;

    fn measure_and_replace<T, F, E>(&self, slot: &Slot, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut attempts = 0;
        loop {
            let located = self.locate(slot);
            // Absolute -> relative to the limiter's origin. A tat in the past clamps to the
            // origin, which governor treats exactly like the past tat (both are <= now).
            let relative = located
                .before
                .map(|abs| Nanos::from(abs.saturating_sub(self.origin)));
            let decision = f(relative);
            let mut observation = self.observation.borrow_mut();
            observation.before = located.before;
            observation.placement = Self::placement_of(located.target);
            let (value, next) = match decision {
                Ok(admitted) => admitted,
                Err(denied) => {
                    observation.after = None;
                    observation.write = None;
                    return Err(denied);
                }
            };
            let tat = self.origin.saturating_add(next.as_u64());
            let (write, placement) = Self::prepare(located, slot.fp, tat);
            observation.after = Some(tat);
            observation.placement = placement;
            if self.mode == Mode::Deferred {
                observation.write = Some(write);
                return Ok(value);
            }
            let result = self
                .host
                .borrow_mut()
                .shared_set(&write.key, &write.value, write.cas);
            match result {
                Ok(()) => {
                    observation.committed = true;
                    return Ok(value);
                }
                Err(SharedDataError::CasMismatch) if attempts + 1 < MAX_ATTEMPTS => {
                    attempts += 1;
                    observation.retries += 1;
                }
                Err(_) => {
                    // Fail open: the request is judged, but its cell could not be stored.
                    observation.failed = true;
                    return Ok(value);
                }
            }
        }
    }
}

/// Gives back one cell consumed by an earlier committed write for `slot` (used when a later
/// limit denies the request after this one was committed). Inverse of GCRA's update: the tat
/// moves back by one emission interval `t`; concurrent writers only ever saw a stricter state,
/// so the limiter never admits more than its quota. Returns the CAS retries it took.
pub fn refund(host: &mut dyn Host, table: &Table, slot: &Slot, overflow: bool, t: u64) -> u32 {
    let key = if overflow {
        table.overflow_key()
    } else {
        table.bucket_key(slot.bucket)
    };
    let mut retries = 0;
    for _ in 0..MAX_ATTEMPTS {
        let Some((bytes, cas)) = host.shared_get(&key) else {
            return retries;
        };
        let value = if overflow {
            match decode_cell(&bytes) {
                Some(tat) => tat.saturating_sub(t).to_le_bytes().to_vec(),
                None => return retries,
            }
        } else {
            let mut records = decode(&bytes);
            match records.iter_mut().find(|r| r.fp == slot.fp) {
                Some(record) => record.tat = record.tat.saturating_sub(t),
                None => return retries,
            }
            encode(&records)
        };
        match host.shared_set(&key, &value, Some(cas)) {
            Err(SharedDataError::CasMismatch) => retries += 1,
            _ => return retries,
        }
    }
    retries
}
