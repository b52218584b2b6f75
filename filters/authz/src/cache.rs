//! The per-worker decision cache, keyed by the part of the input the policy reads.
//!
//! The input document is built from exactly what the policy reads ([`crate::input`]), so two
//! requests whose documents are equal get the same decision from a pure policy: the document
//! itself is the key, compared in full (no hash collisions to reason about). For the commerce
//! RBAC policy that is the method, the path and the verified claims: a shopper paging through
//! their orders with one token hits after the first request of each page.
//!
//! Never used for a policy that reads the clock or random values, or that reads something that
//! differs on every request (`request.time`, the request id, every header including
//! `x-request-id`): [`crate::policy::Policy::uncacheable`] says why, once, at configure time.
//!
//! Bounded twice: at most `cacheSize` entries (two generations of half each: when the current
//! one fills it becomes the previous one and the older is dropped, an approximate LRU that
//! costs nothing on a hit), and no key larger than [`MAX_KEY_BYTES`] is stored. Each worker
//! has its own cache (wasm VMs share no memory); only decisions are cached, never errors.

use std::collections::BTreeMap;
use std::rc::Rc;

use regorus::Value;

use crate::decision::Verdict;

/// Keys (input documents) larger than this are not cached.
pub const MAX_KEY_BYTES: usize = 4096;

/// A map of at most `size` entries in two generations: when the current one fills it becomes
/// the previous one and the older is dropped; a hit in the previous one moves to the current.
#[derive(Debug)]
pub struct Generations<K, V> {
    current: BTreeMap<K, V>,
    previous: BTreeMap<K, V>,
    generation: usize,
}

impl<K: Ord, V: Clone> Generations<K, V> {
    /// At most `size` entries (0: nothing is stored).
    pub fn new(size: usize) -> Self {
        Self {
            current: BTreeMap::new(),
            previous: BTreeMap::new(),
            generation: size / 2 + size % 2,
        }
    }

    /// Whether anything can be stored.
    pub fn enabled(&self) -> bool {
        self.generation > 0
    }

    /// The value for `key`, if remembered.
    pub fn get(&mut self, key: &K) -> Option<V> {
        if let Some(value) = self.current.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.previous.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    /// Remembers a value.
    pub fn insert(&mut self, key: K, value: V) {
        if !self.enabled() {
            return;
        }
        if self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A worker's decision cache.
#[derive(Debug)]
pub struct DecisionCache(Generations<Value, Rc<Verdict>>);

impl DecisionCache {
    /// A cache of at most `size` entries (0: nothing is ever stored).
    pub fn new(size: usize) -> Self {
        Self(Generations::new(size))
    }

    /// Whether the cache stores anything.
    pub fn enabled(&self) -> bool {
        self.0.enabled()
    }

    /// The decision for `key`, if remembered.
    pub fn get(&mut self, key: &Value) -> Option<Rc<Verdict>> {
        self.0.get(key)
    }

    /// Remembers a decision (not when the cache is off or the key is too large).
    pub fn insert(&mut self, key: Value, verdict: Rc<Verdict>) {
        if self.enabled() && weight(&key, MAX_KEY_BYTES) <= MAX_KEY_BYTES {
            self.0.insert(key, verdict);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// About the bytes of `value` as JSON, counted up to `limit` (then it stops).
fn weight(value: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        total += match value {
            Value::String(text) => text.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                2
            }
            Value::Set(items) => {
                stack.extend(items.iter());
                2
            }
            Value::Object(fields) => {
                for (key, value) in fields.iter() {
                    stack.push(key);
                    stack.push(value);
                }
                2
            }
            _ => 8,
        };
        if total > limit {
            break;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Value {
        Value::from(format!("/api/orders/{n}"))
    }

    #[test]
    fn remembers_up_to_its_size() {
        let mut cache = DecisionCache::new(4);
        for n in 0..10 {
            cache.insert(key(n), Rc::new(Verdict::plain(n % 2 == 0)));
            assert!(cache.len() <= 4);
        }
        assert_eq!(cache.get(&key(9)).map(|v| v.allowed), Some(false));
        assert_eq!(cache.get(&key(8)).map(|v| v.allowed), Some(true));
        assert!(
            cache.get(&key(0)).is_none(),
            "the oldest generation was dropped"
        );
    }

    #[test]
    fn a_hit_in_the_previous_generation_survives_the_next_turn() {
        let mut cache = DecisionCache::new(4);
        cache.insert(key(1), Rc::new(Verdict::plain(true)));
        cache.insert(key(2), Rc::new(Verdict::plain(true)));
        cache.insert(key(3), Rc::new(Verdict::plain(true)));
        assert!(
            cache.get(&key(1)).is_some(),
            "promoted from the previous generation"
        );
        cache.insert(key(4), Rc::new(Verdict::plain(true)));
        cache.insert(key(5), Rc::new(Verdict::plain(true)));
        assert!(cache.get(&key(1)).is_some());
    }

    #[test]
    fn off_or_oversized_keys_store_nothing() {
        let mut off = DecisionCache::new(0);
        off.insert(key(1), Rc::new(Verdict::plain(true)));
        assert!(off.is_empty() && !off.enabled());
        let mut cache = DecisionCache::new(8);
        cache.insert(
            Value::from("x".repeat(MAX_KEY_BYTES)),
            Rc::new(Verdict::plain(true)),
        );
        assert!(cache.is_empty());
    }
}
