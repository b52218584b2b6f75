//! The eviction sweep: forgets keys that have been idle for `idleExpiry`, one chunk of buckets
//! per tick, done by whichever root context wins the lease.
//!
//! Every root context ticks (Envoy's main thread and each worker). The lease is a shared-data
//! cell `(next_due, cursor, kept)`: a root whose tick finds `next_due` passed advances it with
//! a CAS and sweeps the buckets `[cursor, cursor + CHUNK)`; the others see the new `next_due`
//! and do nothing. Removing a record is itself a CAS on its bucket, so a sweep never undoes a
//! request that charged the bucket meanwhile (that bucket is simply left for the next pass).
//!
//! A record is idle once its tat has passed: its budget is full again and its state equals a
//! fresh key's, so forgetting it changes no decision (governor's `retain_recent` criterion).
//! New keys may reuse idle ways at once (see `store`); the sweep also empties the rest, keeps
//! shared memory tight after a flood, counts evictions and reports the `keys` gauge once per
//! full pass.

use meshguard_filter_core::{Host, SharedDataError};

use crate::config::Limit;
use crate::metrics::LimitMetrics;
use crate::table::{Table, decode, encode};

/// Buckets swept per lease (16 keys each).
pub const CHUNK: u32 = 1024;
/// Time between two chunks of one limit's sweep.
pub const INTERVAL_NS: u64 = 1_000_000_000;

/// The lease cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// When the next chunk is due (ns since the Unix epoch).
    pub next_due: u64,
    /// First bucket of the next chunk.
    pub cursor: u32,
    /// Keys kept so far in the current pass.
    pub kept: u32,
}

impl Lease {
    /// Decodes a lease (empty or short: a fresh lease).
    pub fn decode(bytes: &[u8]) -> Self {
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        Self {
            next_due: u64_at(0),
            cursor: u32_at(8),
            kept: u32_at(12),
        }
    }

    /// Encodes the lease.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&self.next_due.to_le_bytes());
        bytes.extend_from_slice(&self.cursor.to_le_bytes());
        bytes.extend_from_slice(&self.kept.to_le_bytes());
        bytes
    }
}

/// What one tick's sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Whether this root won the lease.
    pub leased: bool,
    /// Records removed.
    pub evicted: u64,
    /// Records kept in the swept chunk.
    pub kept: u32,
    /// Whether the chunk ended a full pass.
    pub pass_done: bool,
}

/// Sweeps one chunk of `table` if this root wins the lease.
pub fn tick(
    host: &mut dyn Host,
    limit: &Limit,
    table: &Table,
    metrics: &LimitMetrics,
    now: u64,
) -> Swept {
    let lease_key = table.sweep_key();
    let Some((bytes, cas)) = host.shared_get(&lease_key) else {
        return Swept::default();
    };
    let lease = Lease::decode(&bytes);
    if now < lease.next_due {
        return Swept::default();
    }
    let start = if lease.cursor < table.buckets() {
        lease.cursor
    } else {
        0
    };
    let end = start.saturating_add(CHUNK).min(table.buckets());
    let pass_done = end >= table.buckets();
    let claimed = Lease {
        next_due: now.saturating_add(INTERVAL_NS),
        cursor: if pass_done { 0 } else { end },
        kept: if start == 0 { 0 } else { lease.kept },
    };
    if host
        .shared_set(&lease_key, &claimed.encode(), Some(cas))
        .is_err()
    {
        return Swept::default(); // Another root took this chunk.
    }
    let idle_ns = u64::try_from(limit.idle_expiry.as_nanos()).unwrap_or(u64::MAX);
    let mut swept = Swept {
        leased: true,
        pass_done,
        ..Swept::default()
    };
    for bucket in start..end {
        let key = table.bucket_key(bucket);
        let Some((bytes, cas)) = host.shared_get(&key) else {
            continue;
        };
        let mut records = decode(&bytes);
        let before = records.len();
        records.retain(|record| record.tat.saturating_add(idle_ns) > now);
        let removed = before - records.len();
        let kept = if removed == 0 {
            records.len()
        } else {
            match host.shared_set(&key, &encode(&records), Some(cas)) {
                Ok(()) => {
                    swept.evicted += removed as u64;
                    records.len()
                }
                // Charged meanwhile: leave it for the next pass.
                Err(SharedDataError::CasMismatch | SharedDataError::Refused) => before,
            }
        };
        swept.kept = swept
            .kept
            .saturating_add(u32::try_from(kept).unwrap_or(u32::MAX));
    }
    metrics.evictions.add(swept.evicted);
    let total = claimed.kept.saturating_add(swept.kept);
    if pass_done {
        if let Some(gauge) = metrics.keys {
            host.record_metric(gauge, u64::from(total));
        }
    } else {
        // Carry the count to whoever sweeps the next chunk (due a full interval later).
        for _ in 0..8 {
            let Some((bytes, cas)) = host.shared_get(&lease_key) else {
                break;
            };
            let mut current = Lease::decode(&bytes);
            current.kept = current.kept.saturating_add(swept.kept);
            if host
                .shared_set(&lease_key, &current.encode(), Some(cas))
                .is_ok()
            {
                break;
            }
        }
    }
    swept
}
