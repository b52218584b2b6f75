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
//! **Cheap keys.** The document is encoded once into a compact, unambiguous byte string
//! ([`key_of`]: a tag and a length before every value, objects in their sorted order) and
//! looked up in a hash table: one pass over the document and one hash, instead of the ordered
//! map of documents this replaced, whose every probe compared nested documents field by field.
//! The table's hasher is std's SipHash with per-worker random keys, so a client cannot craft
//! paths that collide.
//!
//! **Bounded, with CLOCK eviction** ([`Clock`]): at most `cacheSize` entries, and no key over
//! [`MAX_KEY_BYTES`]. A hit sets the entry's reference bit; a miss on a full cache moves the
//! hand round the entries, clearing bits, and replaces the first entry found unreferenced
//! (second chance). A working set that fits (1,000 users' pages in the default 1,024 entries)
//! stays in whole, where the two generations this replaced turned over every 512 insertions
//! and missed nearly every time once more than half the size cycled. Each worker has its own
//! cache (wasm VMs share no memory); only decisions are cached, never errors.

use std::collections::HashMap;
use std::rc::Rc;

use regorus::Value;

use crate::decision::Verdict;

/// Keys (encoded input documents) larger than this are not cached.
pub const MAX_KEY_BYTES: usize = 4096;

/// One entry of a [`Clock`].
#[derive(Debug)]
struct Slot<V> {
    key: Rc<[u8]>,
    value: V,
    referenced: bool,
}

/// A map of at most `capacity` entries keyed by bytes, evicting with CLOCK (second chance): an
/// entry used since the hand last passed it survives one more round.
#[derive(Debug)]
pub struct Clock<V> {
    index: HashMap<Rc<[u8]>, usize>,
    slots: Vec<Slot<V>>,
    hand: usize,
    capacity: usize,
    evictions: u64,
}

impl<V: Clone> Clock<V> {
    /// At most `capacity` entries (0: nothing is stored).
    pub fn new(capacity: usize) -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            hand: 0,
            capacity,
            evictions: 0,
        }
    }

    /// Whether anything can be stored.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The value for `key`, if remembered (and marks it used).
    pub fn get(&mut self, key: &[u8]) -> Option<V> {
        let at = *self.index.get(key)?;
        let slot = self.slots.get_mut(at)?;
        slot.referenced = true;
        Some(slot.value.clone())
    }

    /// Remembers a value, evicting an entry not used since the hand last passed when full.
    pub fn insert(&mut self, key: &[u8], value: V) {
        if !self.enabled() {
            return;
        }
        if let Some(slot) = self
            .index
            .get(key)
            .copied()
            .and_then(|at| self.slots.get_mut(at))
        {
            slot.value = value;
            slot.referenced = true;
            return;
        }
        let key: Rc<[u8]> = Rc::from(key);
        if self.slots.len() < self.capacity {
            self.index.insert(Rc::clone(&key), self.slots.len());
            self.slots.push(Slot {
                key,
                value,
                referenced: false,
            });
            return;
        }
        // Every entry is passed at most once with its bit set, so this ends within two rounds.
        let len = self.slots.len();
        for _ in 0..=2 * len {
            let at = self.hand;
            self.hand = (self.hand + 1) % len.max(1);
            let Some(slot) = self.slots.get_mut(at) else {
                return;
            };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.index.remove(&slot.key);
            self.index.insert(Rc::clone(&key), at);
            *slot = Slot {
                key,
                value,
                referenced: false,
            };
            self.evictions += 1;
            return;
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

/// A worker's decision cache.
#[derive(Debug)]
pub struct DecisionCache(Clock<Rc<Verdict>>);

impl DecisionCache {
    /// A cache of at most `size` entries (0: nothing is ever stored).
    pub fn new(size: usize) -> Self {
        Self(Clock::new(size))
    }

    /// Whether the cache stores anything.
    pub fn enabled(&self) -> bool {
        self.0.enabled()
    }

    /// The key of an input document, `None` when it is not cached (the cache is off or the
    /// document is over [`MAX_KEY_BYTES`]).
    pub fn key(&self, input: &Value) -> Option<Vec<u8>> {
        if self.enabled() { key_of(input) } else { None }
    }

    /// The decision for `key`, if remembered.
    pub fn get(&mut self, key: &[u8]) -> Option<Rc<Verdict>> {
        self.0.get(key)
    }

    /// Remembers a decision.
    pub fn insert(&mut self, key: &[u8], verdict: Rc<Verdict>) {
        self.0.insert(key, verdict);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.0.evictions()
    }
}

/// The cache key of a document: every value as a tag byte and, for strings, numbers written
/// out and collections, a length before its content, so two documents share a key only when
/// they are equal. `None` when the key would exceed [`MAX_KEY_BYTES`].
pub fn key_of(value: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    encode(value, &mut out).then_some(out)
}

fn encode(value: &Value, out: &mut Vec<u8>) -> bool {
    fn bytes(tag: u8, text: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text);
    }
    fn count(tag: u8, n: usize, out: &mut Vec<u8>) {
        out.push(tag);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    match value {
        Value::Null => out.push(b'n'),
        Value::Undefined => out.push(b'?'),
        Value::Bool(flag) => out.push(if *flag { b't' } else { b'f' }),
        Value::Number(number) => match number.as_i64() {
            Some(int) if number.is_integer() => {
                out.push(b'i');
                out.extend_from_slice(&int.to_le_bytes());
            }
            _ => bytes(b'd', number.format_decimal().as_bytes(), out),
        },
        Value::String(text) => bytes(b's', text.as_bytes(), out),
        Value::Array(items) => {
            count(b'a', items.len(), out);
            for item in items.iter() {
                if !encode(item, out) {
                    return false;
                }
            }
        }
        Value::Set(items) => {
            count(b'S', items.len(), out);
            for item in items.iter() {
                if !encode(item, out) {
                    return false;
                }
            }
        }
        Value::Object(fields) => {
            count(b'o', fields.len(), out);
            for (key, value) in fields.iter() {
                if !encode(key, out) || !encode(value, out) {
                    return false;
                }
            }
        }
    }
    out.len() <= MAX_KEY_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Vec<u8> {
        key_of(&Value::from(format!("/api/orders/{n}"))).unwrap()
    }

    fn verdict(allowed: bool) -> Rc<Verdict> {
        Rc::new(Verdict::plain(allowed))
    }

    #[test]
    fn never_holds_more_than_its_size() {
        let mut cache = DecisionCache::new(4);
        for n in 0..10 {
            cache.insert(&key(n), verdict(n % 2 == 0));
            assert!(cache.len() <= 4);
        }
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.evictions(), 6);
        assert_eq!(cache.get(&key(9)).map(|v| v.allowed), Some(false));
        assert_eq!(cache.get(&key(8)).map(|v| v.allowed), Some(true));
        assert!(cache.get(&key(0)).is_none(), "the oldest unused went first");
    }

    #[test]
    fn a_used_entry_gets_a_second_chance() {
        let mut cache = DecisionCache::new(3);
        for n in 1..=3 {
            cache.insert(&key(n), verdict(true));
        }
        assert!(cache.get(&key(1)).is_some());
        cache.insert(&key(4), verdict(true));
        assert!(cache.get(&key(1)).is_some(), "used, so it survived");
        assert!(cache.get(&key(2)).is_none(), "the first unused was evicted");
        assert!(cache.get(&key(3)).is_some() && cache.get(&key(4)).is_some());
    }

    #[test]
    fn a_working_set_that_fits_stays_whole() {
        // 1,000 users cycling through a 1,024-entry cache: after the first round, every
        // request hits (the two-generation cache this replaced missed nearly all of them).
        let mut cache = DecisionCache::new(1024);
        let mut hits = 0;
        for round in 0..3 {
            for n in 0..1000 {
                match cache.get(&key(n)) {
                    Some(_) => hits += 1,
                    None => cache.insert(&key(n), verdict(true)),
                }
            }
            if round == 0 {
                assert_eq!(hits, 0);
            }
        }
        assert_eq!(hits, 2000);
        assert_eq!(cache.evictions(), 0);
    }

    #[test]
    fn a_larger_working_set_still_hits_what_it_can() {
        // 1,500 keys cycling through 1,024 entries: CLOCK degrades to FIFO on a pure cycle,
        // but the bound holds and scans of new keys replace entries one at a time.
        let mut cache = DecisionCache::new(1024);
        for _ in 0..3 {
            for n in 0..1500 {
                if cache.get(&key(n)).is_none() {
                    cache.insert(&key(n), verdict(true));
                }
                assert!(cache.len() <= 1024);
            }
        }
        // A hot key used on every request survives any amount of churn.
        let mut cache = DecisionCache::new(64);
        cache.insert(&key(0), verdict(true));
        for n in 1..10_000 {
            assert!(cache.get(&key(0)).is_some(), "evicted at {n}");
            cache.insert(&key(n), verdict(true));
        }
    }

    #[test]
    fn off_or_oversized_keys_store_nothing() {
        let mut off = DecisionCache::new(0);
        assert_eq!(off.key(&Value::from("/")), None);
        off.insert(&key(1), verdict(true));
        assert!(off.is_empty() && !off.enabled());
        let cache = DecisionCache::new(8);
        assert_eq!(cache.key(&Value::from("x".repeat(MAX_KEY_BYTES))), None);
        assert!(cache.key(&Value::from("x".repeat(100))).is_some());
    }

    #[test]
    fn keys_are_equal_only_for_equal_documents() {
        let doc = |json: &str| Value::from_json_str(json).unwrap();
        let pairs = [
            (r#"{"a": "bc"}"#, r#"{"ab": "c"}"#),
            (r#"["a", "b"]"#, r#"["ab"]"#),
            (r#"{"a": 1}"#, r#"{"a": "1"}"#),
            (r#"{"a": 1.5}"#, r#"{"a": 15}"#),
            (r#"{"a": null}"#, r#"{"a": false}"#),
            (r#"[[], []]"#, r#"[[[]]]"#),
            (r#"{"n": 2.5}"#, r#"{"n": 2.25}"#),
            (
                r#"{"n": 18446744073709551615}"#,
                r#"{"n": 18446744073709551614}"#,
            ),
        ];
        for (left, right) in pairs {
            assert_ne!(key_of(&doc(left)), key_of(&doc(right)), "{left} vs {right}");
        }
        assert_eq!(
            key_of(&doc(r#"{"b": [1, "x"], "a": {"c": true}}"#)),
            key_of(&doc(r#"{"a": {"c": true}, "b": [1, "x"]}"#)),
            "field order does not matter"
        );
    }
}
