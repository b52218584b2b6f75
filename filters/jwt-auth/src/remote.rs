//! Remote JWKS: fetched once per Envoy (not once per worker) from a root-context tick, shared
//! with every worker through proxy-wasm shared data.
//!
//! Per provider, two shared-data entries:
//! - `…/lease`: the fetch job's lease ([`meshguard_filter_core::lease`]), which every root
//!   context (the main thread's and each worker's) reads on each tick. A fetch is due when the
//!   lease's `next_due` has passed and nobody holds it; the root that takes it makes the HTTP
//!   callout (callouts cannot be made at VM start, which is why this runs from ticks). The hold
//!   expires on its own after the fetch timeout, so a VM that disappears mid-fetch blocks nobody
//!   for long. The lease's payload is the [`FetchState`]: the published generation, failures in
//!   a row, the last early refresh and when the keys were fetched.
//! - `…/jwks`: `"<generation>\n<JWKS JSON>"`, written by the lease holder after a successful
//!   fetch. Workers parse it once when the generation in the lease moves, never per request.
//!
//! Success schedules the next fetch `cacheDuration` later; failure keeps the last good keys and
//! retries with exponential backoff (1 s doubling, capped at the cache duration and one minute).
//! A token whose `kid` is unknown asks for one early refresh, granted at most once per
//! [`early_refresh_interval`] (the `cacheDuration`) and never for keys younger than
//! [`MIN_KEY_AGE`] (a `kid` missing from a JWKS fetched a moment ago is not a rotation), so
//! rotated keys are picked up quickly while random `kid`s cannot make the filter hammer the
//! identity provider.

use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::lease::{Lease, LeaseState};
use meshguard_filter_core::{CallResponse, Host, HttpCall, LogLevel};

use crate::config::RemoteJwks;
use crate::keys::{KeySet, Strictness, parse_jwks};

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// The fetch job's own state: the payload of its lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchState {
    /// Generation of the JWKS under the `jwks` key (0: none fetched yet).
    pub generation: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// When the last early refresh was granted (ms since the epoch).
    pub early_at_ms: u64,
    /// When the keys under `jwks` were fetched (0: never).
    pub fetched_at_ms: u64,
}

impl FetchState {
    /// The payload's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(28);
        bytes.extend_from_slice(&self.generation.to_le_bytes());
        bytes.extend_from_slice(&self.failures.to_le_bytes());
        bytes.extend_from_slice(&self.early_at_ms.to_le_bytes());
        bytes.extend_from_slice(&self.fetched_at_ms.to_le_bytes());
        bytes
    }

    /// Decodes a payload (short or empty: a fresh state).
    pub fn decode(bytes: &[u8]) -> Self {
        let u64_at = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let failures = bytes
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        Self {
            generation: u64_at(0),
            failures,
            early_at_ms: u64_at(12),
            fetched_at_ms: u64_at(20),
        }
    }
}

/// Where one remote provider's entries live in shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNames {
    /// The fetch job's lease.
    pub lease: String,
    /// `"<generation>\n<JWKS>"`.
    pub jwks: String,
    /// Provider name (for logs).
    pub provider: String,
}

impl SharedNames {
    /// The names for provider `provider` of plugin `plugin`.
    pub fn new(plugin: &str, provider: &str) -> Self {
        let base = format!("meshguard.jwt_auth/{plugin}/{provider}");
        Self {
            lease: format!("{base}/lease"),
            jwks: format!("{base}/jwks"),
            provider: provider.to_string(),
        }
    }
}

fn read_state(host: &dyn Host, names: &SharedNames) -> Option<FetchState> {
    Lease::new(names.lease.clone())
        .read(host)
        .map(|lease| FetchState::decode(&lease.payload))
}

/// A provider's current keys in one worker.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeys {
    /// The key set, once there is one.
    pub set: Option<Rc<KeySet>>,
    /// Its generation (cache entries remember it).
    pub generation: u64,
    /// A request saw an unknown `kid` since the last tick.
    pub wants_refresh: bool,
    /// Shared-data names, for a remote provider.
    pub shared: Option<SharedNames>,
}

impl ProviderKeys {
    /// Adopts the JWKS another root context published, if its generation moved; returns whether
    /// the keys changed. Requests call this when they find no keys or an unknown `kid`, so a
    /// worker never waits for its own tick to use keys another worker already fetched.
    pub fn sync(&mut self, host: &dyn Host) -> bool {
        let Some(names) = self.shared.clone() else {
            return false;
        };
        match read_state(host, &names) {
            Some(state) => self.sync_with(host, &names, &state),
            None => false,
        }
    }

    fn sync_with(&mut self, host: &dyn Host, names: &SharedNames, state: &FetchState) -> bool {
        if state.generation == self.generation {
            return false;
        }
        let Some((bytes, _)) = host.shared_get(&names.jwks) else {
            return false;
        };
        let text = String::from_utf8_lossy(&bytes);
        let Some((generation, document)) = text.split_once('\n') else {
            return false;
        };
        let Ok(generation) = generation.parse::<u64>() else {
            return false;
        };
        if generation == self.generation {
            return false;
        }
        match parse_jwks(document, false, Strictness::Lenient) {
            Ok(set) => {
                self.set = Some(Rc::new(set));
                self.generation = generation;
                true
            }
            Err(err) => {
                host.log(
                    LogLevel::Error,
                    &format!(
                        "jwt-auth: shared JWKS of provider `{}` is unusable: {err}",
                        names.provider
                    ),
                );
                false
            }
        }
    }
}

/// Keys fetched less than this long ago (or the cache duration, if shorter) are not refreshed
/// early.
pub const MIN_KEY_AGE: Duration = Duration::from_secs(5);

/// The shortest time between two early refreshes: the refresh interval itself, so unknown
/// `kid`s can add at most one fetch per `cacheDuration` to the scheduled one.
pub fn early_refresh_interval(remote: &RemoteJwks) -> Duration {
    remote.cache_duration
}

fn backoff(remote: &RemoteJwks, failures: u32) -> Duration {
    let exponential = Duration::from_secs(1u64 << failures.saturating_sub(1).min(10));
    exponential
        .min(remote.cache_duration)
        .min(Duration::from_secs(60))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One remote provider as seen by one root context.
#[derive(Debug)]
pub struct RemoteSlot {
    /// Index of the provider.
    pub provider: usize,
    /// Provider name (for logs).
    pub name: String,
    /// Endpoint.
    pub remote: RemoteJwks,
    names: SharedNames,
    lease: Lease,
    /// Token of this root's in-flight callout.
    pending: Option<u32>,
}

/// What a tick or a callout answer did (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchEvent {
    /// A fetch succeeded and its keys were published.
    Fetched,
    /// A fetch failed (or could not be dispatched).
    Failed,
}

/// A fresh lease record: due at once, nothing fetched.
fn fresh() -> LeaseState {
    LeaseState {
        payload: FetchState::default().encode(),
        ..LeaseState::default()
    }
}

impl RemoteSlot {
    /// A slot for provider `provider` of plugin `plugin`.
    pub fn new(plugin: &str, provider: usize, name: &str, remote: RemoteJwks) -> Self {
        let names = SharedNames::new(plugin, name);
        Self {
            provider,
            name: name.to_string(),
            remote,
            lease: Lease::new(names.lease.clone()),
            names,
            pending: None,
        }
    }

    /// Where this provider's entries live in shared data.
    pub fn names(&self) -> &SharedNames {
        &self.names
    }

    /// Changes the fetch state (and through `state` the schedule) with CAS; `change` returns
    /// `false` to write nothing.
    fn update(
        &self,
        host: &mut dyn Host,
        mut change: impl FnMut(&mut LeaseState, &mut FetchState) -> bool,
    ) -> Option<()> {
        self.lease.update(host, |state| {
            let mut fetch = FetchState::decode(&state.payload);
            if !change(state, &mut fetch) {
                return None;
            }
            state.payload = fetch.encode();
            Some(())
        })
    }

    /// One tick: adopt new keys, ask for an early refresh if wanted, and fetch if due and the
    /// lease is won.
    pub fn tick(
        &mut self,
        host: &mut dyn Host,
        now_ms: u64,
        holder: u64,
        keys: &mut ProviderKeys,
    ) -> Option<FetchEvent> {
        let Some(lease) = self.lease.read(host) else {
            // First sighting: create the record; the job is taken from the next tick on.
            self.lease.ensure(host, fresh());
            return None;
        };
        keys.sync_with(host, &self.names, &FetchState::decode(&lease.payload));
        if std::mem::take(&mut keys.wants_refresh) {
            let interval = millis(early_refresh_interval(&self.remote));
            let min_age = millis(MIN_KEY_AGE.min(self.remote.cache_duration));
            let granted = self.update(host, |state, fetch| {
                let allowed = (fetch.early_at_ms == 0
                    || now_ms >= fetch.early_at_ms.saturating_add(interval))
                    && now_ms >= fetch.fetched_at_ms.saturating_add(min_age);
                if !allowed || state.next_due_ms <= now_ms {
                    return false;
                }
                fetch.early_at_ms = now_ms;
                state.next_due_ms = now_ms;
                true
            });
            if granted.is_some() {
                host.log(
                    LogLevel::Info,
                    &format!(
                        "jwt-auth: unknown kid for provider `{}`: refreshing its JWKS early",
                        self.name
                    ),
                );
            }
        }
        if self.pending.is_some() {
            return None;
        }
        let hold_ms = millis(self.remote.timeout) + 1000;
        self.lease.acquire(host, now_ms, holder, hold_ms)?;
        let call = HttpCall {
            cluster: self.remote.cluster.clone(),
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), self.remote.path.clone()),
                (":authority".into(), self.remote.authority.clone()),
                ("accept".into(), "application/json".into()),
                ("user-agent".into(), "meshguard-jwt-auth".into()),
            ],
            body: None,
            timeout: self.remote.timeout,
        };
        match host.dispatch(&call) {
            Some(token) => {
                self.pending = Some(token);
                None
            }
            None => {
                self.failed(host, now_ms, "the callout could not be dispatched");
                Some(FetchEvent::Failed)
            }
        }
    }

    /// Whether `token` is this slot's callout.
    pub fn owns(&self, token: u32) -> bool {
        self.pending == Some(token)
    }

    /// The callout's answer.
    pub fn on_response(
        &mut self,
        host: &mut dyn Host,
        now_ms: u64,
        response: Option<CallResponse>,
        keys: &mut ProviderKeys,
    ) -> FetchEvent {
        self.pending = None;
        let body = match response {
            None => Err("the fetch failed (reset, timeout or no healthy upstream)".to_string()),
            Some(response) if response.status() != Some(200) => Err(format!(
                "the JWKS endpoint answered {:?}",
                response.status()
            )),
            Some(response) if response.body.len() > MAX_JWKS_BYTES => {
                Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"))
            }
            Some(response) => {
                String::from_utf8(response.body).map_err(|_| "the JWKS is not UTF-8".to_string())
            }
        };
        let parsed = body.and_then(|text| {
            parse_jwks(&text, false, Strictness::Lenient)
                .map(|set| (text, set))
                .map_err(|err| err.to_string())
        });
        let (text, set) = match parsed {
            Ok(ok) => ok,
            Err(reason) => {
                self.failed(host, now_ms, &reason);
                return FetchEvent::Failed;
            }
        };
        let generation = read_state(host, &self.names)
            .map_or(0, |state| state.generation)
            .max(keys.generation)
            + 1;
        let document = format!("{generation}\n{text}");
        if host
            .shared_set(&self.names.jwks, document.as_bytes(), None)
            .is_err()
        {
            self.failed(host, now_ms, "shared data refused the JWKS");
            return FetchEvent::Failed;
        }
        let next = now_ms.saturating_add(millis(self.remote.cache_duration));
        self.update(host, |state, fetch| {
            fetch.generation = generation;
            fetch.fetched_at_ms = now_ms;
            fetch.failures = 0;
            state.next_due_ms = next;
            state.held_until_ms = 0;
            true
        });
        for skipped in &set.skipped {
            host.log(
                LogLevel::Debug,
                &format!("jwt-auth: provider `{}`: skipped {skipped}", self.name),
            );
        }
        keys.set = Some(Rc::new(set));
        keys.generation = generation;
        FetchEvent::Fetched
    }

    fn failed(&self, host: &mut dyn Host, now_ms: u64, reason: &str) {
        let mut failures = 0;
        self.update(host, |state, fetch| {
            fetch.failures = fetch.failures.saturating_add(1);
            failures = fetch.failures;
            state.next_due_ms =
                now_ms.saturating_add(millis(backoff(&self.remote, fetch.failures)));
            state.held_until_ms = 0;
            true
        });
        host.log(
            LogLevel::Warn,
            &format!(
                "jwt-auth: fetching the JWKS of provider `{}` from {} failed ({failures} in a row): {reason}; keeping the last good keys",
                self.name, self.remote.uri
            ),
        );
    }
}

#[cfg(test)]
mod tests;
