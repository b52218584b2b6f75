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
use meshguard_filter_core::Host;
use meshguard_filter_core::shared::{Cas, StoreError, Write as Put};

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

#[derive(Debug, Clone, Copy)]
enum Target {
    Way(usize),
    Append,
    Replace(usize),
    Overflow,
}

impl Target {
    fn placement(self) -> Placement {
        match self {
            Self::Way(_) => Placement::Existing,
            Self::Append => Placement::Fresh,
            Self::Replace(_) => Placement::Replaced,
            Self::Overflow => Placement::Overflow,
        }
    }
}

/// One decision against one value (a bucket or the overflow cell).
struct Judged<T, E> {
    outcome: Result<T, E>,
    before: Option<u64>,
    after: Option<u64>,
    placement: Placement,
    /// The value to store when admitted.
    value: Option<Vec<u8>>,
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

    /// Where `slot`'s key goes in a bucket holding `records`.
    fn target(&self, records: &[Record], slot: &Slot) -> Target {
        if let Some(index) = records.iter().position(|r| r.fp == slot.fp) {
            return Target::Way(index);
        }
        if records.len() < self.table.ways(slot.bucket) {
            return Target::Append;
        }
        // A record whose tat is not in the future is indistinguishable from a fresh key
        // (governor's own `retain_recent` criterion): reuse the oldest such way.
        records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.tat <= self.origin)
            .min_by_key(|(_, r)| r.tat)
            .map_or(Target::Overflow, |(index, _)| Target::Replace(index))
    }

    /// Runs governor's decision `f` for the key at `target` of a bucket holding `records`.
    fn judge_bucket<T, E>(
        &self,
        mut records: Vec<Record>,
        target: Target,
        fp: u64,
        f: &impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    ) -> Judged<T, E> {
        let before = match target {
            Target::Way(index) => records.get(index).map(|r| r.tat),
            _ => None,
        };
        let placement = target.placement();
        match f(self.relative(before)) {
            Err(denied) => Judged {
                outcome: Err(denied),
                before,
                after: None,
                placement,
                value: None,
            },
            Ok((value, next)) => {
                let tat = self.origin.saturating_add(next.as_u64());
                match target {
                    Target::Way(index) => {
                        if let Some(record) = records.get_mut(index) {
                            record.tat = tat;
                        }
                    }
                    Target::Append => records.push(Record { fp, tat }),
                    Target::Replace(index) => {
                        if let Some(record) = records.get_mut(index) {
                            *record = Record { fp, tat };
                        }
                    }
                    Target::Overflow => {}
                }
                Judged {
                    outcome: Ok(value),
                    before,
                    after: Some(tat),
                    placement,
                    value: Some(encode(&records)),
                }
            }
        }
    }

    /// Runs governor's decision `f` against the overflow cell holding `before`.
    fn judge_cell<T, E>(
        &self,
        before: Option<u64>,
        f: &impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    ) -> Judged<T, E> {
        match f(self.relative(before)) {
            Err(denied) => Judged {
                outcome: Err(denied),
                before,
                after: None,
                placement: Placement::Overflow,
                value: None,
            },
            Ok((value, next)) => {
                let tat = self.origin.saturating_add(next.as_u64());
                Judged {
                    outcome: Ok(value),
                    before,
                    after: Some(tat),
                    placement: Placement::Overflow,
                    value: Some(tat.to_le_bytes().to_vec()),
                }
            }
        }
    }

    /// Absolute -> relative to the limiter's origin. A tat in the past clamps to the origin,
    /// which governor treats exactly like the past tat (both are <= now).
    fn relative(&self, before: Option<u64>) -> Option<Nanos> {
        before.map(|abs| Nanos::from(abs.saturating_sub(self.origin)))
    }

    fn observe<T, E>(&self, judged: Judged<T, E>, write: Option<Write>) -> Result<T, E> {
        let mut observation = self.observation.borrow_mut();
        observation.before = judged.before;
        observation.after = judged.after;
        observation.placement = judged.placement;
        observation.write = write;
        judged.outcome
    }

    /// Deferred: one read (the bucket, and the overflow cell if the bucket has no room), the
    /// decision, and the write kept for the commit.
    fn deferred<T, E>(
        &self,
        slot: &Slot,
        f: &impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    ) -> Result<T, E> {
        let host = self.host.borrow();
        let key = self.table.bucket_key(slot.bucket);
        let (bytes, cas) = match host.shared_get(&key) {
            Some((bytes, cas)) => (bytes, Some(cas)),
            None => (Vec::new(), None),
        };
        let records = decode(&bytes);
        let (judged, key, cas) = match self.target(&records, slot) {
            Target::Overflow => {
                let key = self.table.overflow_key();
                let (before, cas) = match host.shared_get(&key) {
                    Some((bytes, cas)) => (decode_cell(&bytes), Some(cas)),
                    None => (None, None),
                };
                (self.judge_cell(before, f), key, cas)
            }
            target => (self.judge_bucket(records, target, slot.fp, f), key, cas),
        };
        let write = judged.value.clone().map(|value| Write { key, cas, value });
        self.observe(judged, write)
    }

    /// Immediate: governor's read-decide-CAS loop on the bucket through the shared update
    /// helper, then on the overflow cell if the bucket has no room for the key.
    fn immediate<T, E>(
        &self,
        slot: &Slot,
        f: &impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    ) -> Result<T, E> {
        let mut host = self.host.borrow_mut();
        let bucket = self.table.bucket_key(slot.bucket);
        let attempted = Cas::new(&bucket)
            .attempts(MAX_ATTEMPTS)
            .run(&mut **host, |_, bytes| {
                let records = decode(bytes.unwrap_or_default());
                match self.target(&records, slot) {
                    Target::Overflow => (Put::Keep, None),
                    target => {
                        let judged = self.judge_bucket(records, target, slot.fp, f);
                        match judged.value.clone() {
                            Some(value) => (Put::Put(value), Some(judged)),
                            None => (Put::Keep, Some(judged)),
                        }
                    }
                }
            });
        let mut retries = attempted.retries;
        let (judged, result) = match attempted.result {
            Ok(Some(judged)) => (judged, Ok(())),
            Ok(None) => {
                let overflow = self.table.overflow_key();
                let attempted =
                    Cas::new(&overflow)
                        .attempts(MAX_ATTEMPTS)
                        .run(&mut **host, |_, bytes| {
                            let judged = self.judge_cell(bytes.and_then(decode_cell), f);
                            match judged.value.clone() {
                                Some(value) => (Put::Put(value), judged),
                                None => (Put::Keep, judged),
                            }
                        });
                retries += attempted.retries;
                match attempted.result {
                    Ok(judged) => (judged, Ok(())),
                    // Judged on the last value read, but not stored.
                    Err(err) => (self.judge_cell(None, f), Err(err)),
                }
            }
            Err(err) => {
                let records = Vec::new();
                (
                    self.judge_bucket(records, Target::Append, slot.fp, f),
                    Err(err),
                )
            }
        };
        drop(host);
        let stored = judged.value.is_some();
        {
            let mut observation = self.observation.borrow_mut();
            observation.retries += retries;
            match result {
                Ok(()) => observation.committed = stored,
                // Fail open: the request is judged, but its cell could not be stored.
                Err(StoreError::Contended | StoreError::Refused) => observation.failed = true,
            }
        }
        self.observe(judged, None)
    }
}

impl StateStore for SharedStore<'_> {
    type Key = Slot;

    fn measure_and_replace<T, F, E>(&self, slot: &Slot, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        match self.mode {
            Mode::Deferred => self.deferred(slot, &f),
            Mode::Immediate => self.immediate(slot, &f),
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
    Cas::new(&key)
        .attempts(MAX_ATTEMPTS)
        .run(host, |_, bytes| {
            let Some(bytes) = bytes else {
                return (Put::Keep, ());
            };
            if overflow {
                return match decode_cell(bytes) {
                    Some(tat) => (Put::Put(tat.saturating_sub(t).to_le_bytes().to_vec()), ()),
                    None => (Put::Keep, ()),
                };
            }
            let mut records = decode(bytes);
            match records.iter_mut().find(|r| r.fp == slot.fp) {
                Some(record) => {
                    record.tat = record.tat.saturating_sub(t);
                    (Put::Put(encode(&records)), ())
                }
                None => (Put::Keep, ()),
            }
        })
        .retries
}
