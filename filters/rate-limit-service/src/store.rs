//! Where the counts live: Redis, one `EVALSHA` of the GCRA script ([`crate::gcra::SCRIPT`]) per
//! decision, covering every limited descriptor of the request atomically.
//!
//! Why the `redis` crate and not `limitador`: limitador 0.12-0.14 does not build with its Redis
//! storage alone; its Redis key encoding sits in the disk-storage module, whose RocksDB is built
//! from C++ source and needs libclang, minutes of CI for a dependency we would not run. Its
//! counters are also fixed windows, not the filter's GCRA. The `redis` crate with one script is
//! the smaller and the exact fit.
//!
//! Connections: a small pool of `ConnectionManager`s, each one multiplexed connection on which
//! concurrent decisions are pipelined, reconnected by the manager when it drops. They connect
//! lazily, so the service starts (and answers `UNKNOWN`) while Redis is still down. Every
//! decision is bounded by the configured timeout; a decision that cannot reach Redis in it fails
//! with a [`StoreError`] and the service answers `UNKNOWN`. There is no in-process fallback: a
//! count kept in one replica would silently multiply the limit by the number of replicas.
//!
//! The script uses several keys at once, so the service needs one Redis (a primary, or a proxy
//! in front of one); Redis Cluster would need every key of a request in one hash slot.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::gcra::{Cost, SCRIPT, Tat};

/// What the script does with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Charge the cost if it fits.
    Charge,
    /// Give the cost back (`is_negative_hits`).
    Refund,
    /// Refuse without charging (a limit of zero requests).
    Refuse,
}

/// One limited descriptor of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The counter's Redis key.
    pub key: String,
    /// What the hits cost.
    pub cost: Cost,
    /// The fraction denominator of the TAT (`requests_per_unit`, at least 1).
    pub per_unit: u32,
    /// The tolerance in microseconds (the unit).
    pub tau_micros: u64,
    /// A refusal refuses the request (`false`: shadow mode).
    pub enforced: bool,
    /// What to do.
    pub mode: Mode,
}

/// A decision's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Redis's clock, microseconds since the epoch.
    pub now: u64,
    /// An enforced item refused: nothing was charged.
    pub refused: bool,
    /// Per item, in order: whether it fit, and the TAT to report from.
    pub items: Vec<(bool, Tat)>,
}

/// Why a decision could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached.
    #[error("redis is unreachable: {0}")]
    Unavailable(String),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error.
    #[error("redis answered with an error: {0}")]
    Redis(String),
    /// Redis answered something the script never returns.
    #[error("unexpected answer from redis: {0}")]
    Malformed(String),
}

impl StoreError {
    /// The metric label for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Redis(_) => "redis",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// Runs decisions. The service's only implementation is [`RedisStore`]; tests of the decision
/// logic use a reference store.
pub trait Store: Send + Sync + 'static {
    /// Decides `items` atomically.
    fn decide(&self, items: &[Item]) -> impl Future<Output = Result<Outcome, StoreError>> + Send;
}

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Multiplexed connections to spread decisions over.
    pub connections: usize,
    /// The bound on one decision, connection included.
    pub timeout: Duration,
}

/// The Redis store.
pub struct RedisStore {
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    script: redis::Script,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("connections", &self.pool.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStore {
    /// A store whose connections are made on first use (call inside a Tokio runtime).
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|err| StoreError::Unavailable(format!("invalid redis url: {err}")))?;
        // One quick reconnect attempt per failure: a decision waits at most `timeout` anyway,
        // and the next decision tries again.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.timeout))
            .set_connection_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let pool = (0..settings.connections.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        Ok(Self {
            pool,
            next: AtomicUsize::new(0),
            script: redis::Script::new(SCRIPT),
            timeout: settings.timeout,
        })
    }
}

impl Store for RedisStore {
    async fn decide(&self, items: &[Item]) -> Result<Outcome, StoreError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len().max(1);
        let Some(connection) = self.pool.get(index) else {
            return Err(StoreError::Unavailable("no connection".into()));
        };
        let mut connection = connection.clone();
        let mut invocation = self.script.prepare_invoke();
        for item in items {
            invocation.key(&item.key);
        }
        for item in items {
            let mode = match item.mode {
                Mode::Charge => 0,
                Mode::Refund => 1,
                Mode::Refuse => 2,
            };
            invocation
                .arg(item.cost.floor)
                .arg(item.cost.frac)
                .arg(item.per_unit.max(1))
                .arg(item.tau_micros)
                .arg(u8::from(item.enforced))
                .arg(mode);
        }
        let reply: Vec<i64> = match tokio::time::timeout(
            self.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        {
            Err(_) => return Err(StoreError::Timeout(self.timeout)),
            Ok(Err(err)) => return Err(classify(&err, self.timeout)),
            Ok(Ok(reply)) => reply,
        };
        parse_reply(&reply, items.len())
    }
}

fn classify(err: &redis::RedisError, timeout: Duration) -> StoreError {
    if err.is_timeout() {
        StoreError::Timeout(timeout)
    } else if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
    {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Redis(err.to_string())
    }
}

/// Reads `[now, refused, (admitted, floor, frac) * n]`.
pub fn parse_reply(reply: &[i64], count: usize) -> Result<Outcome, StoreError> {
    let malformed = || StoreError::Malformed(format!("{reply:?} for {count} keys"));
    if reply.len() != 2 + 3 * count {
        return Err(malformed());
    }
    let unsigned = |value: i64| u64::try_from(value).map_err(|_| malformed());
    let (head, rest) = reply.split_at(2);
    let now = unsigned(*head.first().ok_or_else(malformed)?)?;
    let refused = *head.get(1).ok_or_else(malformed)? == 1;
    let items = rest
        .chunks_exact(3)
        .map(|chunk| match chunk {
            [admitted, floor, frac] => Ok((
                *admitted == 1,
                Tat {
                    floor: unsigned(*floor)?,
                    frac: unsigned(*frac)?,
                },
            )),
            _ => Err(malformed()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Outcome {
        now,
        refused,
        items,
    })
}

#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
mod tests;
