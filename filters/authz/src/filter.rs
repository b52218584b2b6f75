//! The thin shell on the filter API: the root context (configuration, counters, their flush)
//! and the per-request filter that hands the request to [`crate::stage`], holds it for its
//! body when the policy reads the body, and applies the decision.
//!
//! Two filters share it, differing only in where the verified JWT claims come from:
//! - [`Authz`], the single-purpose module `meshguard_authz.wasm`: from the filter state the
//!   JWT module before it in the chain wrote ([`meshguard_filter_core::claims`]);
//! - [`AuthzStage`], the `authz` stage of the `meshguard` pipeline: from the identities the
//!   pipeline's `jwtAuth` stage published in the same pass ([`Ctx::identities`]), with no
//!   hostcall.
//!
//! Never from a header. The request facts are read on demand through the request model
//! ([`HostFacts`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::claims;
use meshguard_filter_core::{
    ConfigError, Ctx, Decision, Env, Filter, HeaderMap, Host, HttpFilter, LogLevel, Root, Stats,
    StreamCallbacks,
};

use crate::body::Body;
use crate::input::{Claims, RequestFacts, VerifiedClaims};
use crate::metrics::Metrics;
use crate::stage::{Action, Authorizer, Prepared, prepare};

/// How often roots add the batched counts to Envoy's stats.
pub const METRICS_FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// The authorization filter before configuration (what `meshguard_authz.wasm` exports).
#[derive(Debug)]
pub struct Authz;

impl Filter for Authz {
    type Root = AuthzRoot;
    const NAME: &'static str = "authz";

    fn configure(host: &mut dyn Host, env: &Env, config: &[u8]) -> Result<AuthzRoot, ConfigError> {
        AuthzRoot::configure(host, env, config, ClaimsFrom::FilterState)
    }
}

/// The authorization filter as the `meshguard` pipeline's `authz` stage (after `jwtAuth`): the
/// same configuration, policy, cache and decisions as [`Authz`], with the verified claims taken
/// from the pipeline's request model instead of Envoy.
#[derive(Debug)]
pub struct AuthzStage;

impl Filter for AuthzStage {
    type Root = AuthzRoot;
    const NAME: &'static str = "authz";

    fn configure(host: &mut dyn Host, env: &Env, config: &[u8]) -> Result<AuthzRoot, ConfigError> {
        AuthzRoot::configure(host, env, config, ClaimsFrom::Identities)
    }
}

/// Where a stream's verified claims come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsFrom {
    /// The filter state `meshguard.jwt_authn` the JWT module before this one wrote.
    FilterState,
    /// The identities an earlier stage of the same module published ([`Ctx::identities`]),
    /// each with its `payloadInMetadata` object.
    Identities,
}

/// One worker's state, shared by its root and its streams.
#[derive(Debug)]
pub struct Worker {
    /// The stage.
    pub authorizer: Authorizer,
    /// Counters.
    pub metrics: Metrics,
    /// The plugin name (for log lines).
    pub plugin: String,
    /// Where the verified claims come from.
    pub claims_from: ClaimsFrom,
}

/// The configured root context.
#[derive(Debug)]
pub struct AuthzRoot {
    worker: Rc<RefCell<Worker>>,
}

impl AuthzRoot {
    fn configure(
        host: &mut dyn Host,
        env: &Env,
        config: &[u8],
        claims_from: ClaimsFrom,
    ) -> Result<Self, ConfigError> {
        Self::with_prepared(host, env, prepare(config)?, claims_from)
    }

    /// A root from a configuration already parsed and compiled ([`prepare`]): the checks that
    /// depend on the module around the filter, the log line, the counters and a fresh worker
    /// (its own VM and decision cache). What configuring does after compiling, so a caller that
    /// configures many roots from one configuration (the fuzz harness, a fresh root per input)
    /// compiles it once.
    ///
    /// # Errors
    /// The policy reads the verified claims and, as a pipeline stage, no `jwtAuth` stage
    /// publishes them.
    pub fn with_prepared(
        host: &mut dyn Host,
        env: &Env,
        prepared: Rc<Prepared>,
        claims_from: ClaimsFrom,
    ) -> Result<Self, ConfigError> {
        if claims_from == ClaimsFrom::Identities
            && !env.claims
            && let Some(path) = prepared.policy.reads_claims()
        {
            return Err(ConfigError::new(
                "modules",
                format!(
                    "the policy reads the verified JWT payload ({path}), but no `jwtAuth` stage \
                     runs before `authz` in this module: add a `jwtAuth` section whose providers \
                     set `payloadInMetadata`"
                ),
            ));
        }
        let plugin = env.plugin.clone();
        host.log(
            LogLevel::Info,
            &format!("authz `{plugin}`: {}", prepared.summary()),
        );
        let metrics = Metrics::define(host, &Stats::new(Authz::NAME, &plugin));
        Ok(Self {
            worker: Rc::new(RefCell::new(Worker {
                authorizer: Authorizer::new(prepared),
                metrics,
                plugin,
                claims_from,
            })),
        })
    }

    /// The worker state, for tests.
    pub fn worker(&self) -> Rc<RefCell<Worker>> {
        Rc::clone(&self.worker)
    }

    /// Adds the batched counts to the host's stats now (ticks do this periodically).
    pub fn flush_metrics(&self, host: &mut dyn Host) {
        self.worker.borrow().metrics.flush(host);
    }
}

impl Root for AuthzRoot {
    type Http = AuthzHttp;

    fn tick_period(&self) -> Option<Duration> {
        Some(METRICS_FLUSH_PERIOD)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        self.flush_metrics(host);
    }

    fn new_http(&self, _context_id: u32) -> AuthzHttp {
        AuthzHttp {
            worker: Rc::clone(&self.worker),
            waiting_for_body: false,
            held_headers: None,
            response_headers: Vec::new(),
        }
    }
}

/// The per-request filter.
#[derive(Debug)]
pub struct AuthzHttp {
    worker: Rc<RefCell<Worker>>,
    waiting_for_body: bool,
    /// The request headers as they were when the filter held them for the body: the policy
    /// sees them as ext_authz does (a snapshot taken with the headers), and hosts that close
    /// the header map once the headers phase is over still show them.
    held_headers: Option<Vec<(String, String)>>,
    response_headers: Vec<(String, String)>,
}

impl HttpFilter for AuthzHttp {
    /// Bodies, for policies that read them; response headers, for `response_headers_to_add`.
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: false,
        request_body: true,
    };

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision {
        let worker = Rc::clone(&self.worker);
        let mut worker = worker.borrow_mut();
        let prepared = Rc::clone(worker.authorizer.prepared());
        if prepared.waits_for_body() && !end_of_stream {
            let host: &mut dyn Host = ctx;
            let max = prepared.config.max_request_bytes.unwrap_or_default();
            let declared = host
                .header(HeaderMap::Request, "content-length")
                .and_then(|length| length.trim().parse::<u64>().ok());
            if declared.is_some_and(|length| length > max as u64) {
                worker.metrics.body_too_large();
                return Decision::Respond(worker.authorizer.body_too_large());
            }
            // Held (with Envoy's `allow_on_headers_stop_iteration`) until the body is in.
            self.waiting_for_body = true;
            self.held_headers = Some(host.headers(HeaderMap::Request));
            return Decision::Pause;
        }
        let body = prepared.waits_for_body().then(Body::default);
        self.decide(ctx, &mut worker, body.as_ref())
    }

    fn on_request_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Decision {
        if !self.waiting_for_body {
            return Decision::Continue;
        }
        let worker = Rc::clone(&self.worker);
        let mut worker = worker.borrow_mut();
        let max = worker
            .authorizer
            .prepared()
            .config
            .max_request_bytes
            .unwrap_or_default();
        if body_size > max {
            self.waiting_for_body = false;
            worker.metrics.body_too_large();
            return Decision::Respond(worker.authorizer.body_too_large());
        }
        if !end_of_stream {
            return Decision::Pause;
        }
        self.waiting_for_body = false;
        let body = Body(ctx.request_body(0, body_size).unwrap_or_default());
        self.decide(ctx, &mut worker, Some(&body))
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            ctx.add_header(HeaderMap::Response, &name, &value);
        }
        Decision::Continue
    }
}

impl AuthzHttp {
    fn decide(&mut self, ctx: &mut Ctx<'_>, worker: &mut Worker, body: Option<&Body>) -> Decision {
        let decided = {
            let mut facts = HostFacts {
                host: &*ctx,
                held: self.held_headers.take(),
            };
            match worker.claims_from {
                ClaimsFrom::FilterState => {
                    let mut claims = FilterStateClaims { host: &*ctx };
                    worker.authorizer.decide(&mut facts, &mut claims, body)
                }
                ClaimsFrom::Identities => {
                    let mut claims = IdentityClaims { ctx: &*ctx };
                    worker.authorizer.decide(&mut facts, &mut claims, body)
                }
            }
        };
        let host: &mut dyn Host = ctx;
        worker.metrics.record(&decided);
        if let Some((kind, reason)) = &decided.error {
            host.log(
                LogLevel::Warn,
                &format!(
                    "authz `{}`: {} error, decided by onError: {reason}",
                    worker.plugin,
                    kind.name()
                ),
            );
        }
        if let Some(explained) = &decided.explained {
            let what = match &decided.action {
                Action::Allow(_) => "allowed".to_string(),
                Action::Deny(response) => format!("denied ({})", response.status),
            };
            host.log(
                LogLevel::Info,
                &format!("authz `{}`: {what} by {explained}", worker.plugin),
            );
        }
        match decided.action {
            Action::Deny(response) => Decision::Respond(response),
            Action::Allow(verdict) => {
                for name in &verdict.request_headers_to_remove {
                    host.set_header(HeaderMap::Request, name, None);
                }
                for (name, value) in &verdict.headers {
                    host.set_header(HeaderMap::Request, name, Some(value));
                }
                self.response_headers
                    .extend(verdict.response_headers_to_add.iter().cloned());
                Decision::Continue
            }
        }
    }
}

/// Request facts read from the host on demand.
pub struct HostFacts<'a> {
    /// The host of the current stream.
    pub host: &'a dyn Host,
    /// The request headers taken when the request was held for its body, if it was.
    pub held: Option<Vec<(String, String)>>,
}

impl RequestFacts for HostFacts<'_> {
    fn header(&mut self, name: &str) -> Option<String> {
        match &self.held {
            Some(held) => held
                .iter()
                .find(|(held, _)| held.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone()),
            None => self.host.header(HeaderMap::Request, name),
        }
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        match &self.held {
            Some(held) => held.clone(),
            None => self.host.headers(HeaderMap::Request),
        }
    }

    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        self.host.property(path)
    }
}

/// The claims the JWT filter verified for this stream, from its filter state.
pub struct FilterStateClaims<'a> {
    /// The host of the current stream.
    pub host: &'a dyn Host,
}

impl VerifiedClaims for FilterStateClaims<'_> {
    fn payloads(&mut self) -> Option<Claims> {
        self.host
            .property(&[claims::FILTER_STATE])
            .map(Claims::Json)
    }
}

/// The claims the pipeline's JWT stage verified in this pass, from the request model: each
/// identity's `payloadInMetadata` object, merged as the JWT filter merges them into filter
/// state, so the policy sees the same document either way.
pub struct IdentityClaims<'a, 'c> {
    /// The callback's view of the exchange.
    pub ctx: &'a Ctx<'c>,
}

impl VerifiedClaims for IdentityClaims<'_, '_> {
    fn payloads(&mut self) -> Option<Claims> {
        let identities = self.ctx.identities();
        let objects: Vec<&[u8]> = identities
            .iter()
            .filter_map(|identity| identity.metadata.as_deref())
            .collect();
        meshguard_filter_core::claims::merge_objects(&objects).map(Claims::Json)
    }
}

#[cfg(test)]
mod tests;
