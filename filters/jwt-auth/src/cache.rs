//! The per-worker cache of verified tokens: a repeated token skips parsing and signature
//! verification, never the time checks.
//!
//! Entries are found by a keyed hash of (provider, token) (SipHash with keys from the host's
//! randomness, so clients cannot aim collisions) and confirmed by comparing the stored token, so
//! a collision can only cost a miss. An entry remembers the key-set generation it was verified
//! against: after a JWKS refresh every entry of that provider is a miss, so a key removed from
//! the JWKS stops being trusted at once. Eviction is first-in first-out within a fixed bound.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::claims::Times;

/// What a verified token produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Time claims, checked again on every use.
    pub times: Times,
    /// Headers to write upstream (claims and payload).
    pub headers: Rc<[(String, String)]>,
    /// The payload, as verified: published to the stages after the JWT stage in the pipeline
    /// (a limit or canary keyed on `claim: sub`, authorization).
    pub claims: Rc<Map<String, Value>>,
    /// The payload for later filters (`payloadInMetadata`), already encoded as
    /// `{"<name>": <payload>}` ([`meshguard_filter_core::claims::encode`]).
    pub metadata: Option<Rc<[u8]>>,
}

#[derive(Debug)]
struct Entry {
    provider: usize,
    token: Box<str>,
    generation: u64,
    verified: Verified,
}

/// A bounded map from tokens to their verification result.
#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    hasher: RandomState,
    entries: HashMap<u64, Entry>,
    order: VecDeque<u64>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hasher: RandomState::new(),
            entries: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    fn key(&self, provider: usize, token: &str) -> u64 {
        self.hasher.hash_one((provider, token))
    }

    /// The cached result for `token` of `provider` verified against key-set `generation`.
    pub fn get(&self, provider: usize, token: &str, generation: u64) -> Option<&Verified> {
        if self.capacity == 0 {
            return None;
        }
        self.entries
            .get(&self.key(provider, token))
            .filter(|entry| {
                entry.provider == provider
                    && entry.generation == generation
                    && &*entry.token == token
            })
            .map(|entry| &entry.verified)
    }

    /// Remembers a verified token, evicting the oldest entry when full.
    pub fn insert(&mut self, provider: usize, token: &str, generation: u64, verified: Verified) {
        if self.capacity == 0 {
            return;
        }
        let key = self.key(provider, token);
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
            self.order.push_back(key);
        }
        self.entries.insert(
            key,
            Entry {
                provider,
                token: token.into(),
                generation,
                verified,
            },
        );
        if self.order.len() > 2 * self.capacity {
            // Replaced keys can leave stale positions behind; rebuild from the live entries.
            self.order.retain(|key| self.entries.contains_key(key));
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64) -> Verified {
        Verified {
            claims: Rc::default(),
            times: Times {
                exp: Some(exp),
                ..Times::default()
            },
            headers: Rc::from(vec![("x-sub".to_string(), "alice".to_string())]),
            metadata: None,
        }
    }

    #[test]
    fn hits_need_the_same_provider_token_and_generation() {
        let mut cache = TokenCache::new(4);
        cache.insert(0, "t1", 1, verified(10));
        assert_eq!(cache.get(0, "t1", 1), Some(&verified(10)));
        assert_eq!(cache.get(1, "t1", 1), None);
        assert_eq!(cache.get(0, "t2", 1), None);
        assert_eq!(cache.get(0, "t1", 2), None, "a JWKS refresh invalidates");
    }

    #[test]
    fn stays_within_its_bound_evicting_the_oldest() {
        let mut cache = TokenCache::new(3);
        for i in 0..10 {
            cache.insert(0, &format!("t{i}"), 1, verified(i));
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(0, "t9", 1).is_some());
        assert!(cache.get(0, "t8", 1).is_some());
        assert!(cache.get(0, "t0", 1).is_none());
        // Re-inserting the same token does not grow the order queue without bound.
        for generation in 0..100 {
            cache.insert(0, "t9", generation, verified(9));
        }
        assert!(cache.order.len() <= 6);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn capacity_zero_disables() {
        let mut cache = TokenCache::new(0);
        cache.insert(0, "t", 1, verified(1));
        assert!(cache.is_empty());
        assert_eq!(cache.get(0, "t", 1), None);
    }
}
