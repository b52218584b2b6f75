//! A bounded per-template cache of decisions, keyed by the part of `input` the template reads
//! and the inventory generation when the template reads `data.inventory`.
//!
//! What a template reads is found by scanning its Rego (main module and libs): for every
//! occurrence of the identifier `input` (a reference, an `import input.x` alias, `with input as`)
//! the longest static prefix (`.field` or `["field"]` segments) is kept; whatever the Rego does
//! below the prefix stays inside the value there, which the key holds whole, and a bare `input`
//! keys on everything. A template calling a clock, network or random builtin (`time.now_ns`,
//! `http.send`, `rand.intn`, `uuid.rfc4122`, ...) is never cached.
//!
//! Why: admission traffic repeats itself. A ReplicaSet scaling to N replicas sends N Pod reviews
//! that differ only in name and uids; templates that do not read those fields decide all N the
//! same way, and the engine's speed is real work (hundreds of µs for a resource-quantity
//! template). Gatekeeper evaluates every one; here the second and later ones are lookups.
//!
//! The key holds the values themselves (regorus values share their trees, so a key costs a few
//! reference counts), compared in full: there are no hash collisions to reason about. Run-time
//! errors are cached like results (they are decisions too: Gatekeeper reports them as
//! violations); timeouts are not. Two generations of at most `capacity` entries each bound the
//! memory: when the current one fills, it becomes the previous one and the older is dropped, an
//! approximate LRU that costs nothing per hit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use regorus::Value;

use crate::read_set::ReadSet;

/// Entries per generation (two generations are kept).
pub const CAPACITY: usize = 512;

/// A cached outcome: the `violation` value, or the run-time error message.
pub(crate) type Outcome = Result<Value, String>;

#[derive(Debug, Default)]
struct Generations {
    current: BTreeMap<Value, Outcome>,
    previous: BTreeMap<Value, Outcome>,
}

/// The decision cache of one template.
#[derive(Debug)]
pub(crate) struct DecisionCache {
    generations: Mutex<Generations>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hit and miss counts of a cache (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reviews answered from the cache.
    pub hits: u64,
    /// Reviews evaluated (and then cached).
    pub misses: u64,
}

impl std::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
    }
}

impl DecisionCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            generations: Mutex::new(Generations::default()),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached outcome for `key`, if any (a hit in the previous generation is promoted).
    pub fn get(&self, key: &Value) -> Option<Outcome> {
        let Ok(mut generations) = self.generations.lock() else {
            return None;
        };
        let found = match generations.current.get(key) {
            Some(outcome) => Some(outcome.clone()),
            None => {
                let promoted = generations.previous.remove(key);
                if let Some(outcome) = &promoted {
                    Self::insert_into(
                        &mut generations,
                        self.capacity,
                        key.clone(),
                        outcome.clone(),
                    );
                }
                promoted
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores the outcome of an evaluation.
    pub fn insert(&self, key: Value, outcome: Outcome) {
        if let Ok(mut generations) = self.generations.lock() {
            Self::insert_into(&mut generations, self.capacity, key, outcome);
        }
    }

    fn insert_into(generations: &mut Generations, capacity: usize, key: Value, outcome: Outcome) {
        if generations.current.len() >= capacity {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, outcome);
    }

    /// Entries held (both generations).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.generations
            .lock()
            .map(|g| g.current.len() + g.previous.len())
            .unwrap_or(0)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// The cache key of one evaluation: the values at each read path of `input`
/// (`{"review": review, "parameters": parameters}`), then the inventory generation if read.
pub(crate) fn key(
    reads: &ReadSet,
    review: &Value,
    parameters: &Value,
    inventory: Option<u64>,
) -> Value {
    let mut parts: Vec<Value> = reads
        .paths
        .iter()
        .map(|path| match path.split_first() {
            None => Value::from(vec![review.clone(), parameters.clone()]),
            Some((root, rest)) => {
                let start = match root.as_str() {
                    "review" => review,
                    "parameters" => parameters,
                    _ => return Value::Undefined,
                };
                let mut at = start;
                for segment in rest {
                    at = &at[segment.as_str()];
                }
                at.clone()
            }
        })
        .collect();
    if let Some(generation) = inventory {
        parts.push(Value::from(generation));
    }
    Value::from(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::from_json_str(text).expect("json")
    }

    #[test]
    fn the_key_holds_exactly_the_read_paths() {
        let reads =
            ReadSet::of(["package x\nv { input.review.object.spec.x; input.parameters.max }"]);
        let params = json(r#"{"max": 1, "unread": 2}"#);
        let a = json(r#"{"uid": "1", "object": {"metadata": {"name": "a"}, "spec": {"x": 1}}}"#);
        let b = json(r#"{"uid": "2", "object": {"metadata": {"name": "b"}, "spec": {"x": 1}}}"#);
        let c = json(r#"{"uid": "3", "object": {"metadata": {"name": "a"}, "spec": {"x": 2}}}"#);
        assert_eq!(
            key(&reads, &a, &params, None),
            key(&reads, &b, &params, None)
        );
        assert_ne!(
            key(&reads, &a, &params, None),
            key(&reads, &c, &params, None)
        );
        let other = json(r#"{"max": 2, "unread": 2}"#);
        assert_ne!(
            key(&reads, &a, &params, None),
            key(&reads, &a, &other, None)
        );
        let unread = json(r#"{"max": 1, "unread": 3}"#);
        assert_eq!(
            key(&reads, &a, &params, None),
            key(&reads, &a, &unread, None)
        );
        assert_ne!(
            key(&reads, &a, &params, Some(1)),
            key(&reads, &a, &params, Some(2))
        );
    }

    #[test]
    fn missing_paths_key_as_undefined_not_as_absent() {
        let reads = ReadSet::of(["package x\nv { input.review.object.spec.x }"]);
        let empty = json("{}");
        let without = json(r#"{"object": {"spec": {}}}"#);
        let with_null = json(r#"{"object": {"spec": {"x": null}}}"#);
        assert_ne!(
            key(&reads, &without, &empty, None),
            key(&reads, &with_null, &empty, None)
        );
    }

    #[test]
    fn generations_bound_the_entries_and_promote_hits() {
        let cache = DecisionCache::new(2);
        for i in 0..3u64 {
            cache.insert(Value::from(i), Ok(Value::from(i * 10)));
        }
        // 0 and 1 filled the first generation; 2 started a new one.
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&Value::from(0u64)), Some(Ok(Value::from(0u64))));
        cache.insert(Value::from(3u64), Ok(Value::Null));
        // The current generation (2, 0) was full: it became the previous one; 1 is gone.
        assert_eq!(cache.get(&Value::from(1u64)), None);
        assert!(cache.get(&Value::from(2u64)).is_some());
        assert!(cache.len() <= 4);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
    }
}
