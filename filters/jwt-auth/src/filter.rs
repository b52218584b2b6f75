//! The thin shell: the root context (configuration, metric ids, the host-crypto probe, remote
//! JWKS ticks, metric flushes) and the per-request filter that hands the request to
//! [`crate::auth`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use meshguard_filter_core::{
    CallResponse, ConfigError, Decision, Host, HttpFilter, LogLevel, RootFilter, StreamCallbacks,
};

use crate::auth::authenticate;
use crate::cache::TokenCache;
use crate::config::{Config, KeySource, parse_config};
use crate::crypto::{HostSupport, probe};
use crate::metrics::{Counter, Metrics};
use crate::remote::{FetchEvent, ProviderKeys, RemoteSlot};

/// How often roots tick when a provider has a remote JWKS.
pub const TICK_PERIOD: Duration = Duration::from_millis(200);
/// How often roots tick otherwise (to add the batched counts to Envoy's stats).
pub const METRICS_FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// One worker's state, shared by its root and its streams.
#[derive(Debug)]
pub struct Worker {
    /// Validated configuration.
    pub config: Rc<Config>,
    /// Current keys per provider.
    pub keys: Vec<ProviderKeys>,
    /// Verified tokens.
    pub cache: TokenCache,
    /// What the host's `verify_signature` is trusted with.
    pub support: HostSupport,
    /// Metric ids and pending counts.
    pub metrics: Metrics,
}

/// The root context.
#[derive(Debug, Default)]
pub struct JwtRoot {
    worker: Option<Rc<RefCell<Worker>>>,
    remotes: Vec<RemoteSlot>,
    holder: u64,
}

fn seconds(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn millis(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl JwtRoot {
    /// The worker state (after a successful `configure`), for tests.
    pub fn worker(&self) -> Option<Rc<RefCell<Worker>>> {
        self.worker.clone()
    }

    /// Adds the batched counts to the host's stats now (ticks do this periodically).
    pub fn flush_metrics(&self, host: &mut dyn Host) {
        if let Some(worker) = &self.worker {
            worker.borrow_mut().metrics.flush(host);
        }
    }
}

impl RootFilter for JwtRoot {
    type Http = JwtHttp;

    fn configure(&mut self, host: &mut dyn Host, config: &[u8]) -> Result<(), ConfigError> {
        let config = parse_config(config)?;
        let plugin = host
            .property(&["plugin_name"])
            .and_then(|name| String::from_utf8(name).ok())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "jwt-auth".to_string());
        let support = if config.host_crypto {
            probe(host)
        } else {
            HostSupport::default()
        };
        self.remotes.clear();
        let mut keys = Vec::with_capacity(config.providers.len());
        for (index, provider) in config.providers.iter().enumerate() {
            match &provider.keys {
                KeySource::Inline(set) => keys.push(ProviderKeys {
                    set: Some(set.clone()),
                    generation: 1,
                    wants_refresh: false,
                    shared: None,
                }),
                KeySource::Remote(remote) => {
                    let slot = RemoteSlot::new(&plugin, index, &provider.name, remote.clone());
                    keys.push(ProviderKeys {
                        shared: Some(slot.names().clone()),
                        ..ProviderKeys::default()
                    });
                    self.remotes.push(slot);
                }
            }
        }
        host.log(
            LogLevel::Info,
            &format!(
                "jwt-auth `{plugin}`: {} providers, {} rules; Envoy verify_signature used for RSA: {}, ECDSA: {}",
                config.providers.len(),
                config.rules.len(),
                support.rsa,
                support.ecdsa
            ),
        );
        self.holder = host.random_u64();
        self.worker = Some(Rc::new(RefCell::new(Worker {
            cache: TokenCache::new(config.cache_size),
            config: Rc::new(config),
            keys,
            support,
            metrics: Metrics::define(host, &plugin),
        })));
        Ok(())
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(if self.remotes.is_empty() {
            METRICS_FLUSH_PERIOD
        } else {
            TICK_PERIOD
        })
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let Some(worker) = &self.worker else { return };
        let now = millis(host.now());
        let mut worker = worker.borrow_mut();
        let worker = &mut *worker;
        for slot in &mut self.remotes {
            let Some(keys) = worker.keys.get_mut(slot.provider) else {
                continue;
            };
            if let Some(event) = slot.tick(host, now, self.holder, keys) {
                worker.metrics.increment(fetch_counter(event));
            }
        }
        worker.metrics.flush(host);
    }

    fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: Option<CallResponse>,
    ) {
        let Some(worker) = &self.worker else { return };
        let now = millis(host.now());
        let mut worker = worker.borrow_mut();
        for slot in &mut self.remotes {
            if !slot.owns(token) {
                continue;
            }
            let Some(keys) = worker.keys.get_mut(slot.provider) else {
                continue;
            };
            let event = slot.on_response(host, now, response, keys);
            worker.metrics.increment(fetch_counter(event));
            return;
        }
    }

    fn new_http(&self, _context_id: u32) -> JwtHttp {
        JwtHttp {
            worker: self.worker.clone(),
        }
    }
}

fn fetch_counter(event: FetchEvent) -> Counter {
    match event {
        FetchEvent::Fetched => Counter::JwksFetchOk,
        FetchEvent::Failed => Counter::JwksFetchFailed,
    }
}

/// The per-request filter.
#[derive(Debug)]
pub struct JwtHttp {
    worker: Option<Rc<RefCell<Worker>>>,
}

impl HttpFilter for JwtHttp {
    /// A token is judged on the request headers alone.
    const CALLBACKS: StreamCallbacks = StreamCallbacks::REQUEST_ONLY;

    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        let Some(worker) = &self.worker else {
            return Decision::Continue;
        };
        let now = seconds(host.now());
        let mut worker = worker.borrow_mut();
        authenticate(host, &mut worker, now)
    }
}
