//! The thin shell: the filter's configuration step, the root context (metric ids, the
//! host-crypto probe, remote JWKS ticks, metric flushes) and the per-request filter that hands
//! the request to [`crate::auth`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use meshguard_filter_core::{
    CallResponse, ConfigError, Ctx, Decision, Env, Filter, Host, HttpFilter, LogLevel, Provides,
    Root, Stats, StreamCallbacks,
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

/// The JWT authentication filter.
#[derive(Debug)]
pub struct JwtAuth;

impl Filter for JwtAuth {
    type Root = JwtRoot;
    const NAME: &'static str = "jwt_auth";

    fn configure(host: &mut dyn Host, env: &Env, config: &[u8]) -> Result<JwtRoot, ConfigError> {
        let config = parse_config(config)?;
        let plugin = if env.plugin.is_empty() {
            "jwt-auth"
        } else {
            env.plugin.as_str()
        };
        let support = if config.host_crypto {
            probe(host)
        } else {
            HostSupport::default()
        };
        let mut remotes = Vec::new();
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
                    let slot = RemoteSlot::new(plugin, index, &provider.name, remote.clone());
                    keys.push(ProviderKeys {
                        shared: Some(slot.names().clone()),
                        ..ProviderKeys::default()
                    });
                    remotes.push(slot);
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
        let holder = host.random_u64();
        let metrics = Metrics::define(host, &Stats::new(Self::NAME, plugin));
        Ok(JwtRoot {
            worker: Rc::new(RefCell::new(Worker {
                cache: TokenCache::new(config.cache_size),
                config: Rc::new(config),
                keys,
                support,
                metrics,
            })),
            remotes,
            holder,
        })
    }
}

/// The root context.
#[derive(Debug)]
pub struct JwtRoot {
    worker: Rc<RefCell<Worker>>,
    remotes: Vec<RemoteSlot>,
    holder: u64,
}

fn millis(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl JwtRoot {
    /// The worker state, for tests.
    pub fn worker(&self) -> Rc<RefCell<Worker>> {
        Rc::clone(&self.worker)
    }

    /// Adds the batched counts to the host's stats now (ticks do this periodically).
    pub fn flush_metrics(&self, host: &mut dyn Host) {
        self.worker.borrow_mut().metrics.flush(host);
    }
}

impl Root for JwtRoot {
    type Http = JwtHttp;

    fn tick_period(&self) -> Option<Duration> {
        Some(if self.remotes.is_empty() {
            METRICS_FLUSH_PERIOD
        } else {
            TICK_PERIOD
        })
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let now = millis(host.now());
        let mut worker = self.worker.borrow_mut();
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
    ) -> bool {
        let Some(slot) = self.remotes.iter_mut().find(|slot| slot.owns(token)) else {
            return false;
        };
        let now = millis(host.now());
        let mut worker = self.worker.borrow_mut();
        if let Some(keys) = worker.keys.get_mut(slot.provider) {
            let event = slot.on_response(host, now, response, keys);
            worker.metrics.increment(fetch_counter(event));
        }
        true
    }

    /// Verified claims, for the stages after this one.
    fn provides(&self) -> Provides {
        Provides {
            claims: true,
            reroutes: None,
        }
    }

    fn new_http(&self, _context_id: u32) -> JwtHttp {
        JwtHttp {
            worker: Rc::clone(&self.worker),
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
    worker: Rc<RefCell<Worker>>,
}

impl HttpFilter for JwtHttp {
    /// A token is judged on the request headers alone.
    const CALLBACKS: StreamCallbacks = StreamCallbacks::REQUEST_ONLY;

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        let mut worker = self.worker.borrow_mut();
        authenticate(ctx, &mut worker)
    }
}
