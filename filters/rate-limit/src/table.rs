//! The per-limit key table in Envoy shared data: bounded, set-associative, created up front.
//!
//! Why this shape:
//! - **Bounded.** Shared data has no delete in the proxy-wasm ABI 0.2.1, so a table that
//!   created one entry per key would grow with every key a flood invents. Instead a limit owns
//!   `ceil(maxKeys / 16)` bucket entries; a bucket holds up to 16 records `(fingerprint, tat)`,
//!   so at most `maxKeys` keys are tracked and the shared-data footprint is fixed.
//! - **Exact under CAS.** A whole bucket is one shared-data value, so finding a key's record,
//!   claiming a free way and updating the GCRA timestamp is one compare-and-swap: two workers
//!   can never insert the same key twice.
//! - **Created before traffic.** Envoy ignores the CAS token when a key does not exist yet
//!   (there is no create-if-absent), so a bucket first written by two workers at once could lose
//!   an update. The first root context to configure (Envoy's main thread, before workers serve)
//!   writes every bucket, the overflow cell, the sweep lease and finally a marker holding the
//!   hash seed; later roots find the marker and only read the seed.
//! - **Unpredictable placement.** Keys are hashed with a random per-process seed kept in shared
//!   data, so a client cannot choose keys that all land in one bucket.
//!
//! Each record's timestamp is governor's "theoretical arrival time" as absolute nanoseconds
//! since the Unix epoch (every worker reads the same host clock).

use std::hash::{BuildHasher, Hasher};

use meshguard_filter_core::Host;

use crate::config::Limit;

/// Ways (records) per bucket.
pub const WAYS: u32 = 16;
/// Bytes per record: fingerprint and tat, both little-endian u64.
pub const RECORD: usize = 16;
/// First byte of every bucket value. Values are never empty: through proxy-wasm an empty value
/// reads back like a missing key (no CAS token), which would turn the next write into a blind
/// overwrite.
pub const BUCKET_TAG: u8 = 1;

/// One tracked key: its fingerprint and its GCRA timestamp (absolute ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// 64-bit fingerprint of the key (never 0).
    pub fp: u64,
    /// Theoretical arrival time, ns since the Unix epoch.
    pub tat: u64,
}

/// Where a key lives: its bucket and fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Bucket index.
    pub bucket: u32,
    /// Fingerprint within the bucket.
    pub fp: u64,
}

/// The shared-data layout of one limit.
#[derive(Debug, Clone)]
pub struct Table {
    namespace: String,
    buckets: u32,
    max_keys: u32,
}

impl Table {
    /// The layout for `limit`. The namespace hashes everything that gives the state its meaning
    /// (plugin, name, rate, burst, table size, key parts): a configuration that changes them
    /// starts from fresh state instead of misreading old timestamps.
    pub fn new(limit: &Limit, plugin: &str) -> Self {
        let identity = format!(
            "{plugin}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{}\u{1f}{}\u{1f}{:?}",
            limit.name, limit.requests, limit.per, limit.burst, limit.max_keys, limit.key
        );
        let digest = hash64(0x6d65_7368_6775_6172, identity.as_bytes());
        Self {
            namespace: format!("meshguard.rl.v2.{}.{digest:016x}.", limit.name),
            buckets: limit.max_keys.div_ceil(WAYS).max(1),
            max_keys: limit.max_keys,
        }
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// Records bucket `bucket` may hold (the last bucket holds the remainder of `maxKeys`).
    pub fn ways(&self, bucket: u32) -> usize {
        let used = bucket.saturating_mul(WAYS);
        self.max_keys.saturating_sub(used).min(WAYS) as usize
    }

    /// Shared-data key of a bucket.
    pub fn bucket_key(&self, bucket: u32) -> String {
        format!("{}b{bucket}", self.namespace)
    }

    /// Shared-data key of the overflow cell (one GCRA timestamp shared by keys that find no
    /// room).
    pub fn overflow_key(&self) -> String {
        format!("{}overflow", self.namespace)
    }

    /// Shared-data key of the sweep lease.
    pub fn sweep_key(&self) -> String {
        format!("{}sweep", self.namespace)
    }

    /// Shared-data key of the marker that holds the hash seed.
    pub fn marker_key(&self) -> String {
        format!("{}seed", self.namespace)
    }

    /// Where `key` lives under `seed`.
    pub fn slot(&self, seed: u64, key: &[u8]) -> Slot {
        let placement = hash64(seed, key);
        let fp = hash64(seed ^ 0x9e37_79b9_7f4a_7c15, key).max(1);
        let bucket = u32::try_from(placement % u64::from(self.buckets)).unwrap_or(0);
        Slot { bucket, fp }
    }

    /// Creates the table in shared data if no root has yet, and returns the hash seed.
    /// `random` is only used when this root creates the table.
    pub fn ensure(&self, host: &mut dyn Host, random: u64) -> u64 {
        if let Some(seed) = self.read_seed(host) {
            return seed;
        }
        let empty_bucket = encode(&[]);
        let fresh_cell = 0u64.to_le_bytes();
        let fresh_lease = crate::sweep::fresh().encode();
        let cells = (0..self.buckets)
            .map(|bucket| (self.bucket_key(bucket), empty_bucket.as_slice()))
            .chain([
                (self.overflow_key(), fresh_cell.as_slice()),
                (self.sweep_key(), fresh_lease.as_slice()),
            ]);
        for (key, value) in cells {
            if host.shared_get(&key).is_none() {
                let _ = host.shared_set(&key, value, None);
            }
        }
        let _ = host.shared_set(&self.marker_key(), &random.to_le_bytes(), None);
        // Another root may have raced us: whatever is stored now is the seed everyone uses.
        self.read_seed(host).unwrap_or(random)
    }

    /// The seed in shared data, if the table exists.
    pub fn read_seed(&self, host: &dyn Host) -> Option<u64> {
        let (bytes, _) = host.shared_get(&self.marker_key())?;
        Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
    }
}

/// A seeded 64-bit hash (foldhash's quality variant; the same on every worker).
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut hasher = foldhash::quality::FixedState::with_seed(seed).build_hasher();
    hasher.write(bytes);
    hasher.finish()
}

/// Decodes a bucket value (a trailing partial record is ignored).
pub fn decode(bytes: &[u8]) -> Vec<Record> {
    let records = match bytes.split_first() {
        Some((&BUCKET_TAG, records)) => records,
        _ => return Vec::new(),
    };
    records
        .chunks_exact(RECORD)
        .filter_map(|chunk| {
            let fp = u64::from_le_bytes(chunk.get(..8)?.try_into().ok()?);
            let tat = u64::from_le_bytes(chunk.get(8..16)?.try_into().ok()?);
            (fp != 0).then_some(Record { fp, tat })
        })
        .collect()
}

/// Encodes records into a bucket value.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + records.len() * RECORD);
    bytes.push(BUCKET_TAG);
    for record in records {
        bytes.extend_from_slice(&record.fp.to_le_bytes());
        bytes.extend_from_slice(&record.tat.to_le_bytes());
    }
    bytes
}

/// Decodes a single timestamp cell (the overflow bucket; 0 means fresh).
pub fn decode_cell(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}
