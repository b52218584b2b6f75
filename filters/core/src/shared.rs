//! The one read-modify-write of proxy-wasm shared data: compare-and-swap with a bounded number
//! of attempts. The rate limiter, the circuit breaker and the JWKS refresh ([`crate::lease`])
//! all update shared data through it.
//!
//! Shared data is one store per VM id across all Envoy worker threads; a write with the CAS
//! token of the read fails if another worker wrote in between, and then the whole step is
//! re-run on the fresh value. The step is a function of the bytes it is given, so a retry can
//! never double-apply anything; side effects (logs, metrics) belong after the write that won.
//!
//! Every hostcall costs microseconds in Envoy (far more than the step itself), so a worker may
//! keep a [`Snapshot`] of the value it last read: an update then first tries the step on the
//! snapshot and writes with the snapshot's CAS token, skipping the read. Envoy's tokens come
//! from one counter bumped on every write, so a token still matching means nobody wrote since
//! and the snapshot is the current value; a mismatch falls back to a fresh read. A step that
//! wants to write nothing is never answered from a snapshot (its answer could rest on stale
//! data), so reads that decide anything still see the live value.
//!
//! Envoy ignores the CAS token when a key does not exist yet (there is no create-if-absent):
//! keys that several workers may create at once must be created before traffic (at configure
//! time on the main thread), or created blind and only then updated with CAS, as
//! [`crate::lease::Lease`] does.

use std::cell::RefCell;

use crate::{Host, SharedDataError};

/// Attempts before giving up on a contended key. Two workers rarely collide more than once or
/// twice; the bound only guards against a livelock.
pub const DEFAULT_ATTEMPTS: u32 = 32;

/// Why an update did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Every attempt lost the race to another worker.
    #[error("shared data stayed contended for every attempt")]
    Contended,
    /// The host refused the write.
    #[error("the host refused to write shared data")]
    Refused,
}

/// What a step wants written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Nothing changed.
    Keep,
    /// Replace the value.
    Put(Vec<u8>),
}

/// A worker's copy of a key's value as last read, with its CAS token.
#[derive(Debug, Default)]
pub struct Snapshot(RefCell<Option<(Vec<u8>, u32)>>);

impl Snapshot {
    fn take(&self) -> Option<(Vec<u8>, u32)> {
        self.0.borrow_mut().take()
    }

    fn keep(&self, value: Option<(Vec<u8>, u32)>) {
        // Token 0 would mean "no check" to Envoy: never keep it.
        *self.0.borrow_mut() = value.filter(|(_, cas)| *cas != 0);
    }
}

/// The result of an update and the CAS conflicts it met on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted<T> {
    /// The step's result from the attempt whose write won (or that wrote nothing).
    pub result: Result<T, StoreError>,
    /// Writes lost to another worker before that.
    pub retries: u32,
}

/// An update of one shared-data key: `Cas::new(key).run(host, step)`.
#[derive(Debug, Clone, Copy)]
pub struct Cas<'a> {
    key: &'a str,
    attempts: u32,
    snapshot: Option<&'a Snapshot>,
}

impl<'a> Cas<'a> {
    /// An update of `key` with [`DEFAULT_ATTEMPTS`] attempts and no snapshot.
    pub fn new(key: &'a str) -> Self {
        Self {
            key,
            attempts: DEFAULT_ATTEMPTS,
            snapshot: None,
        }
    }

    /// At most `attempts` writes (at least one).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Starts from `snapshot` when it holds a value, and leaves in it what a read that wrote
    /// nothing saw (see the module docs). A write consumes the snapshot: the new token is only
    /// known from the next read.
    pub fn snapshot(mut self, snapshot: &'a Snapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Runs `step` on the current value (`None` if never written) and writes what it returns
    /// with CAS, re-running it on conflicts. The step also gets the host, read-only, to read
    /// the clock only if its result depends on it.
    pub fn run<T>(
        self,
        host: &mut dyn Host,
        mut step: impl FnMut(&dyn Host, Option<&[u8]>) -> (Write, T),
    ) -> Attempted<T> {
        let mut retries = 0;
        let mut attempts = self.attempts;
        if let Some((value, cas)) = self.snapshot.and_then(Snapshot::take)
            && let (Write::Put(bytes), result) = step(&*host, Some(&value))
        {
            match host.shared_set(self.key, &bytes, Some(cas)) {
                Ok(()) => {
                    return Attempted {
                        result: Ok(result),
                        retries,
                    };
                }
                Err(SharedDataError::CasMismatch) => {
                    retries += 1;
                    attempts -= 1;
                }
                Err(SharedDataError::Refused) => {
                    return Attempted {
                        result: Err(StoreError::Refused),
                        retries,
                    };
                }
            }
        }
        for attempt in 0..attempts {
            let current = host.shared_get(self.key);
            let (write, result) = step(&*host, current.as_ref().map(|(value, _)| value.as_slice()));
            let Write::Put(bytes) = write else {
                if let Some(snapshot) = self.snapshot {
                    snapshot.keep(current);
                }
                return Attempted {
                    result: Ok(result),
                    retries,
                };
            };
            let cas = current.as_ref().map(|(_, cas)| *cas);
            match host.shared_set(self.key, &bytes, cas) {
                Ok(()) => {
                    return Attempted {
                        result: Ok(result),
                        retries,
                    };
                }
                Err(SharedDataError::CasMismatch) => {
                    if attempt + 1 < attempts {
                        retries += 1;
                    }
                }
                Err(SharedDataError::Refused) => {
                    return Attempted {
                        result: Err(StoreError::Refused),
                        retries,
                    };
                }
            }
        }
        Attempted {
            result: Err(StoreError::Contended),
            retries,
        }
    }

    /// [`Cas::run`] without the retry count.
    pub fn update<T>(
        self,
        host: &mut dyn Host,
        step: impl FnMut(&dyn Host, Option<&[u8]>) -> (Write, T),
    ) -> Result<T, StoreError> {
        self.run(host, step).result
    }
}

#[cfg(test)]
mod tests;
