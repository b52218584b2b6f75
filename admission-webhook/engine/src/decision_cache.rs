//! A bounded per-template cache of decisions, keyed by the part of `input` the template's
//! decision depends on ([`crate::read_set`]: values, types and shapes of paths) and the inventory
//! generation when the template reads `data.inventory`.
//!
//! Why: admission traffic repeats itself. A ReplicaSet scaling to N replicas sends N Pod reviews
//! that differ only in name and uids; templates whose decisions do not depend on those fields
//! decide all N the same way, and the engine's speed is real work (hundreds of µs for a
//! resource-quantity template). Gatekeeper evaluates every one; here the second and later ones
//! are lookups, in the webhook and in `policy check` and audit alike.
//!
//! A cached decision with violations is reused only when the values its messages can show (the
//! read set's shape paths, such as the object's name in `"pod %v is privileged"`) are equal too:
//! the key holds their deep type signature, which decides whether a body succeeds, and the entry
//! keeps the values, which decide what the messages say. A decision without violations needs
//! no such check. Run-time errors are cached like results and reused like decisions with
//! violations (Gatekeeper reports them as violations); timeouts are not cached.
//!
//! The key holds the values themselves (regorus values share their trees, so a key costs a few
//! reference counts), compared in full: there are no hash collisions to reason about. Two
//! generations of at most `capacity` entries each bound the memory: when the current one fills,
//! it becomes the previous one and the older is dropped, an approximate LRU that costs nothing
//! per hit. Hits and misses are counted in [`CacheCounters`], which belong to the policy set and
//! can be handed from one set to the next ([`crate::PolicySet::set_cache_counters`]) so a
//! process's counts never go down when its policies reload.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use regorus::Value;

/// Entries per generation (two generations are kept).
pub const CAPACITY: usize = 512;

/// A cached outcome: the `violation` value, or the run-time error message.
pub(crate) type Outcome = Result<Value, String>;

/// A decision and the values its messages can show.
#[derive(Debug, Clone)]
struct Entry {
    outcome: Outcome,
    shown: Vec<Value>,
}

impl Entry {
    /// Whether the decision can be reused for a review that shows `shown`.
    fn fits(&self, shown: &[Value]) -> bool {
        let quiet = match &self.outcome {
            Ok(Value::Set(set)) => set.is_empty(),
            Ok(Value::Array(array)) => array.is_empty(),
            Ok(Value::Undefined) => true,
            _ => false,
        };
        quiet || self.shown == shown
    }
}

#[derive(Debug, Default)]
struct Generations {
    current: BTreeMap<Value, Entry>,
    previous: BTreeMap<Value, Entry>,
}

/// The decision cache of one template.
#[derive(Debug)]
pub(crate) struct DecisionCache {
    /// Read-locked for the common lookup (reviews on several threads share a template), write-
    /// locked to insert or to promote from the previous generation.
    generations: RwLock<Generations>,
    capacity: usize,
}

/// Hit and miss counts (a snapshot of [`CacheCounters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions evaluated (and then cached).
    pub misses: u64,
}

impl std::ops::AddAssign for CacheStats {
    fn add_assign(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
    }
}

/// Hit and miss counters of the decision caches a policy set uses. They only go up; the webhook
/// keeps one for the life of the process and hands it to every policy set it loads.
#[derive(Debug, Default)]
pub struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheCounters {
    /// The counts so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl DecisionCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            generations: RwLock::new(Generations::default()),
            capacity: capacity.max(1),
        }
    }

    /// The cached outcome for `key` when it can be reused for a review showing `shown` (a hit
    /// in the previous generation is promoted).
    pub fn get(&self, key: &Value, shown: &[Value]) -> Option<Outcome> {
        if let Ok(generations) = self.generations.read()
            && let Some(entry) = generations.current.get(key)
        {
            return entry.fits(shown).then(|| entry.outcome.clone());
        }
        let Ok(mut generations) = self.generations.write() else {
            return None;
        };
        if let Some(entry) = generations.current.get(key) {
            return entry.fits(shown).then(|| entry.outcome.clone());
        }
        let entry = generations.previous.remove(key)?;
        let outcome = entry.fits(shown).then(|| entry.outcome.clone());
        Self::insert_into(&mut generations, self.capacity, key.clone(), entry);
        outcome
    }

    /// Stores the outcome of an evaluation and the values its messages could show.
    pub fn insert(&self, key: Value, outcome: Outcome, shown: Vec<Value>) {
        if let Ok(mut generations) = self.generations.write() {
            Self::insert_into(
                &mut generations,
                self.capacity,
                key,
                Entry { outcome, shown },
            );
        }
    }

    fn insert_into(generations: &mut Generations, capacity: usize, key: Value, entry: Entry) {
        if generations.current.len() >= capacity && !generations.current.contains_key(&key) {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, entry);
    }

    /// Entries held (both generations).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.generations
            .read()
            .map(|g| g.current.len() + g.previous.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Outcome {
        Ok(Value::from(std::collections::BTreeSet::new()))
    }

    fn violation(msg: &str) -> Outcome {
        let mut entry = std::collections::BTreeMap::new();
        entry.insert(Value::from("msg"), Value::from(msg));
        Ok(Value::from(std::collections::BTreeSet::from([
            Value::from(entry),
        ])))
    }

    #[test]
    fn decisions_without_violations_ignore_what_messages_would_show() {
        let cache = DecisionCache::new(8);
        let key = Value::from("k");
        cache.insert(key.clone(), empty(), vec![Value::from("pod-a")]);
        assert_eq!(cache.get(&key, &[Value::from("pod-b")]), Some(empty()));
    }

    #[test]
    fn decisions_with_violations_need_the_same_shown_values() {
        let cache = DecisionCache::new(8);
        let key = Value::from("k");
        cache.insert(
            key.clone(),
            violation("pod-a is privileged"),
            vec![Value::from("pod-a")],
        );
        assert_eq!(
            cache.get(&key, &[Value::from("pod-a")]),
            Some(violation("pod-a is privileged"))
        );
        assert_eq!(cache.get(&key, &[Value::from("pod-b")]), None);
        // Errors are reused as decisions with violations are.
        cache.insert(
            key.clone(),
            Err("conflict".into()),
            vec![Value::from("pod-a")],
        );
        assert_eq!(cache.get(&key, &[Value::from("pod-b")]), None);
    }

    #[test]
    fn generations_bound_the_entries_and_promote_hits() {
        let cache = DecisionCache::new(2);
        for i in 0..3u64 {
            cache.insert(Value::from(i), Ok(Value::from(i * 10)), Vec::new());
        }
        // 0 and 1 filled the first generation; 2 started a new one.
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.get(&Value::from(0u64), &[]),
            Some(Ok(Value::from(0u64)))
        );
        cache.insert(Value::from(3u64), Ok(Value::Null), Vec::new());
        // The current generation (2, 0) was full: it became the previous one; 1 is gone.
        assert_eq!(cache.get(&Value::from(1u64), &[]), None);
        assert!(cache.get(&Value::from(2u64), &[]).is_some());
        assert!(cache.len() <= 4);
    }

    #[test]
    fn counters_only_go_up() {
        let counters = CacheCounters::default();
        counters.count(true);
        counters.count(false);
        counters.count(false);
        assert_eq!(counters.stats(), CacheStats { hits: 1, misses: 2 });
    }
}
