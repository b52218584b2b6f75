//! The script's semantics in plain Rust, for tests only: the decision tests run on it with a
//! clock they move, and the store tests check the Redis script against it, decision by decision,
//! on Redis's own clock. The service never uses it (a count kept in one process would multiply
//! a global limit by the number of replicas).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Item, Mode, Outcome, Store, StoreError};
use crate::gcra::Tat;

/// The script's semantics in Rust: judge every item, charge only if no enforced one refuses.
#[derive(Default)]
pub struct ReferenceStore {
    pub now: AtomicU64,
    pub down: AtomicBool,
    pub state: Mutex<HashMap<String, Tat>>,
}

impl ReferenceStore {
    /// A store whose clock reads `now`.
    pub fn at(now: u64) -> Self {
        let store = Self::default();
        store.now.store(now, Ordering::SeqCst);
        store
    }
}

impl Store for ReferenceStore {
    async fn decide(&self, items: &[Item]) -> Result<Outcome, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        let now = self.now.load(Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        let original = state.clone();
        let mut pending: HashMap<String, Tat> = HashMap::new();
        let mut results = Vec::new();
        let mut refused = false;
        for item in items {
            let stored = pending
                .get(&item.key)
                .or_else(|| state.get(&item.key))
                .copied()
                .filter(|tat| tat.floor >= now);
            let tat = stored.unwrap_or(Tat {
                floor: now,
                frac: 0,
            });
            let (admitted, after) = match item.mode {
                Mode::Refuse => (false, tat),
                Mode::Refund => {
                    let scaled = (i128::from(tat.floor) * i128::from(item.per_unit)
                        + i128::from(tat.frac))
                        - (i128::from(item.cost.floor) * i128::from(item.per_unit)
                            + i128::from(item.cost.frac));
                    let per = i128::from(item.per_unit);
                    let floor = u64::try_from(scaled.div_euclid(per)).unwrap();
                    let frac = u64::try_from(scaled.rem_euclid(per)).unwrap();
                    let after = if floor < now {
                        Tat {
                            floor: now,
                            frac: 0,
                        }
                    } else {
                        Tat { floor, frac }
                    };
                    (true, after)
                }
                Mode::Charge => {
                    let mut next = Tat {
                        floor: tat.floor + item.cost.floor,
                        frac: tat.frac + item.cost.frac,
                    };
                    if next.frac >= u64::from(item.per_unit) {
                        next.frac -= u64::from(item.per_unit);
                        next.floor += 1;
                    }
                    let ahead = next.floor - now;
                    if ahead < item.tau_micros || (ahead == item.tau_micros && next.frac == 0) {
                        (true, next)
                    } else {
                        (false, tat)
                    }
                }
            };
            if admitted {
                pending.insert(item.key.clone(), after);
            }
            refused |= !admitted && item.enforced;
            results.push((admitted, after));
        }
        if refused {
            let results = items
                .iter()
                .zip(results)
                .map(|(item, (admitted, _))| {
                    let tat = original
                        .get(&item.key)
                        .copied()
                        .filter(|tat| tat.floor >= now)
                        .unwrap_or(Tat {
                            floor: now,
                            frac: 0,
                        });
                    (admitted, tat)
                })
                .collect();
            return Ok(Outcome {
                now,
                refused,
                items: results,
            });
        }
        state.extend(pending);
        Ok(Outcome {
            now,
            refused,
            items: results,
        })
    }
}
