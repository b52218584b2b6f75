//! The eviction sweep: forgets keys that have been idle for `idleExpiry`, one chunk of buckets
//! per tick, done by whichever root context takes the limit's lease
//! ([`meshguard_filter_core::lease`]).
//!
//! Every root context ticks (Envoy's main thread and each worker). A root whose tick finds the
//! sweep due takes the lease, sweeps the buckets `[cursor, cursor + CHUNK)` and releases it with
//! the next cursor, the keys kept so far in the pass (the lease's payload) and the next due
//! time; the others see it held or not due and do nothing. Removing a record is itself a CAS
//! on its bucket, so a sweep never undoes a request that charged the bucket meanwhile (that
//! bucket is simply left for the next pass).
//!
//! A record is idle once its tat has passed: its budget is full again and its state equals a
//! fresh key's, so forgetting it changes no decision (governor's `retain_recent` criterion).
//! New keys may reuse idle ways at once (see `store`); the sweep also empties the rest, keeps
//! shared memory tight after a flood, counts evictions and reports the `keys` gauge once per
//! full pass.

use meshguard_filter_core::Host;
use meshguard_filter_core::lease::{Lease, LeaseState};
use meshguard_filter_core::shared::{Cas, Write};

use crate::config::Limit;
use crate::metrics::LimitMetrics;
use crate::table::{Table, decode, encode};

/// Buckets swept per lease (16 keys each).
pub const CHUNK: u32 = 1024;
/// Time between two chunks of one limit's sweep.
pub const INTERVAL_MS: u64 = 1000;
/// How long a root holds the lease while it sweeps a chunk (a sweep runs within one tick; the
/// hold only matters if the VM disappears mid-chunk).
pub const HOLD_MS: u64 = 5000;

/// Where the sweep is in its pass: the lease's payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// First bucket of the next chunk.
    pub next: u32,
    /// Keys kept so far in the current pass.
    pub kept: u32,
}

impl Cursor {
    /// Decodes a payload (empty or short: the start of a pass).
    pub fn decode(bytes: &[u8]) -> Self {
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        Self {
            next: u32_at(0),
            kept: u32_at(4),
        }
    }

    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&self.next.to_le_bytes());
        bytes.extend_from_slice(&self.kept.to_le_bytes());
        bytes
    }
}

/// The sweep lease of `table`.
pub fn lease(table: &Table) -> Lease {
    Lease::new(table.sweep_key())
}

/// A fresh lease record (created with the table, before traffic).
pub fn fresh() -> LeaseState {
    LeaseState {
        payload: Cursor::default().encode(),
        ..LeaseState::default()
    }
}

/// What one tick's sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Whether this root took the lease.
    pub leased: bool,
    /// Records removed.
    pub evicted: u64,
    /// Records kept in the swept chunk.
    pub kept: u32,
    /// Whether the chunk ended a full pass.
    pub pass_done: bool,
}

/// Sweeps one chunk of `table` if this root (`holder`) takes the lease at `now_ms`.
pub fn tick(
    host: &mut dyn Host,
    limit: &Limit,
    table: &Table,
    metrics: &LimitMetrics,
    now_ms: u64,
    holder: u64,
) -> Swept {
    let lease = lease(table);
    let Some(taken) = lease.acquire(host, now_ms, holder, HOLD_MS) else {
        return Swept::default();
    };
    let cursor = Cursor::decode(&taken.payload);
    let start = if cursor.next < table.buckets() {
        cursor.next
    } else {
        0
    };
    let end = start.saturating_add(CHUNK).min(table.buckets());
    let pass_done = end >= table.buckets();
    let idle_ms = u64::try_from(limit.idle_expiry.as_millis()).unwrap_or(u64::MAX);
    let now_ns = now_ms.saturating_mul(1_000_000);
    let idle_ns = idle_ms.saturating_mul(1_000_000);
    let mut swept = Swept {
        leased: true,
        pass_done,
        ..Swept::default()
    };
    for bucket in start..end {
        let key = table.bucket_key(bucket);
        // One attempt: a bucket charged meanwhile is left for the next pass.
        let mut seen = 0usize;
        let result = Cas::new(&key).attempts(1).update(host, |_, bytes| {
            let Some(bytes) = bytes else {
                return (Write::Keep, (0, 0));
            };
            let mut records = decode(bytes);
            seen = records.len();
            records.retain(|record| record.tat.saturating_add(idle_ns) > now_ns);
            let removed = seen - records.len();
            let write = if removed == 0 {
                Write::Keep
            } else {
                Write::Put(encode(&records))
            };
            (write, (removed, records.len()))
        });
        let kept = match result {
            Ok((removed, kept)) => {
                swept.evicted += removed as u64;
                kept
            }
            Err(_) => seen,
        };
        swept.kept = swept
            .kept
            .saturating_add(u32::try_from(kept).unwrap_or(u32::MAX));
    }
    metrics.evictions.add(swept.evicted);
    let total = if start == 0 { 0 } else { cursor.kept }.saturating_add(swept.kept);
    if pass_done {
        metrics.keys.set(host, u64::from(total));
    }
    // Carry the cursor and the count to whoever sweeps the next chunk, a full interval later.
    let _ = lease.release(host, holder, |state| {
        state.next_due_ms = now_ms.saturating_add(INTERVAL_MS);
        state.payload = Cursor {
            next: if pass_done { 0 } else { end },
            kept: if pass_done { 0 } else { total },
        }
        .encode();
    });
    swept
}
