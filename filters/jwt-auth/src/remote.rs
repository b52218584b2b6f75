//! Remote JWKS: fetched once per Envoy (not once per worker) from a root-context tick, shared
//! with every worker through proxy-wasm shared data.
//!
//! Per provider, two shared-data entries:
//! - `…/state`: a small [`FetchState`] record that every root context (the main thread's and
//!   each worker's) reads on each tick. A fetch is due when `next_fetch_ms` has passed and no
//!   lease is held; the root that wins the compare-and-swap on the lease makes the HTTP callout
//!   (callouts cannot be made at VM start, which is why this runs from ticks). A lease expires on
//!   its own after the fetch timeout, so a VM that disappears mid-fetch blocks nobody for long.
//! - `…/jwks`: `"<generation>\n<JWKS JSON>"`, written by the lease holder after a successful
//!   fetch. Workers parse it once when the generation in `state` moves, never per request.
//!
//! Success schedules the next fetch `cacheDuration` later; failure keeps the last good keys and
//! retries with exponential backoff (1 s doubling, capped at the cache duration and one minute).
//! A token whose `kid` is unknown asks for one early refresh, granted at most once per
//! [`early_refresh_interval`] (the `cacheDuration`) and never for keys younger than
//! [`MIN_KEY_AGE`] (a `kid` missing from a JWKS fetched a moment ago is not a rotation), so
//! rotated keys are picked up quickly while random `kid`s cannot make the filter hammer the
//! identity provider.
//!
//! The state record is created (without a lease) by whichever root first finds it missing, and
//! a lease is only ever taken with the CAS token of a read of an existing record: Envoy accepts
//! any CAS on a missing key, so taking a lease in the same tick as creating the record could let
//! two workers both win.

use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::{CallResponse, Host, HttpCall, LogLevel, SharedDataError};
use serde::{Deserialize, Serialize};

use crate::config::RemoteJwks;
use crate::keys::{KeySet, Strictness, parse_jwks};

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// The shared schedule of one provider's fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchState {
    /// Generation of the JWKS under the `jwks` key (0: none fetched yet).
    pub generation: u64,
    /// When the next fetch is due (ms since the epoch).
    pub next_fetch_ms: u64,
    /// A fetch is in flight until then (0: none).
    pub lease_until_ms: u64,
    /// Which root context holds the lease.
    pub holder: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// When the last early refresh was granted.
    pub early_at_ms: u64,
    /// When the keys under `jwks` were fetched (0: never).
    #[serde(default)]
    pub fetched_at_ms: u64,
}

/// Where one remote provider's entries live in shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNames {
    /// The [`FetchState`] record.
    pub state: String,
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
            state: format!("{base}/state"),
            jwks: format!("{base}/jwks"),
            provider: provider.to_string(),
        }
    }
}

fn read_state(host: &dyn Host, names: &SharedNames) -> Option<(FetchState, u32)> {
    let (bytes, cas) = host.shared_get(&names.state)?;
    let state = serde_json::from_slice(&bytes).ok()?;
    Some((state, cas))
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
            Some((state, _)) => self.sync_with(host, &names, &state),
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

impl RemoteSlot {
    /// A slot for provider `provider` of plugin `plugin`.
    pub fn new(plugin: &str, provider: usize, name: &str, remote: RemoteJwks) -> Self {
        Self {
            provider,
            name: name.to_string(),
            remote,
            names: SharedNames::new(plugin, name),
            pending: None,
        }
    }

    /// Where this provider's entries live in shared data.
    pub fn names(&self) -> &SharedNames {
        &self.names
    }

    fn read(&self, host: &dyn Host) -> Option<(FetchState, u32)> {
        read_state(host, &self.names)
    }

    /// Read-modify-write of the state with CAS retries; `change` returns false to give up.
    fn update(
        &self,
        host: &mut dyn Host,
        change: &mut dyn FnMut(&mut FetchState) -> bool,
    ) -> Option<FetchState> {
        for _ in 0..8 {
            let (mut state, cas) = self.read(host)?;
            if !change(&mut state) {
                return None;
            }
            let bytes = serde_json::to_vec(&state).ok()?;
            match host.shared_set(&self.names.state, &bytes, Some(cas)) {
                Ok(()) => return Some(state),
                Err(SharedDataError::CasMismatch) => continue,
                Err(SharedDataError::Refused) => return None,
            }
        }
        None
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
        let Some((state, _)) = self.read(host) else {
            // First sighting: create the record; leases are taken from the next tick on.
            let fresh = serde_json::to_vec(&FetchState::default()).unwrap_or_default();
            let _ = host.shared_set(&self.names.state, &fresh, None);
            return None;
        };
        keys.sync_with(host, &self.names, &state);
        if std::mem::take(&mut keys.wants_refresh) {
            let interval = millis(early_refresh_interval(&self.remote));
            let min_age = millis(MIN_KEY_AGE.min(self.remote.cache_duration));
            let granted = self.update(host, &mut |state| {
                let allowed = (state.early_at_ms == 0
                    || now_ms >= state.early_at_ms.saturating_add(interval))
                    && now_ms >= state.fetched_at_ms.saturating_add(min_age);
                if !allowed || state.next_fetch_ms <= now_ms {
                    return false;
                }
                state.early_at_ms = now_ms;
                state.next_fetch_ms = now_ms;
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
        let lease_ms = millis(self.remote.timeout) + 1000;
        let leased = self.update(host, &mut |state| {
            if now_ms < state.next_fetch_ms || now_ms < state.lease_until_ms {
                return false;
            }
            state.lease_until_ms = now_ms + lease_ms;
            state.holder = holder;
            true
        });
        leased?;
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
        let generation = self
            .read(host)
            .map_or(0, |(state, _)| state.generation)
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
        self.update(host, &mut |state| {
            state.generation = generation;
            state.fetched_at_ms = now_ms;
            state.next_fetch_ms = next;
            state.lease_until_ms = 0;
            state.failures = 0;
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
        self.update(host, &mut |state| {
            state.failures = state.failures.saturating_add(1);
            failures = state.failures;
            state.next_fetch_ms =
                now_ms.saturating_add(millis(backoff(&self.remote, state.failures)));
            state.lease_until_ms = 0;
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
