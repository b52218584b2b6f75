//! `rate-limit`: governor's GCRA with its per-key state in Envoy shared data, so every worker
//! enforces one limiter, with a bounded key table that a flood of distinct keys cannot grow.
//!
//! Why it looks like this:
//! - **One limiter across workers.** Envoy runs one wasm VM per worker; a limiter held in VM
//!   memory would admit `workers x quota`. The GCRA state (one timestamp per key) lives in
//!   shared data and every update is a compare-and-swap, so counts are exact at any
//!   concurrency ([`store`], [`limiter`]).
//! - **governor decides.** The algorithm is governor's, driven through its `StateStore` and
//!   `Clock` seams ([`store`]): the filter supplies where the timestamp lives and what time it
//!   is (the host's), governor supplies the decision, the remaining burst and the wait.
//! - **All limits or none.** A request is checked against every matching limit before any is
//!   charged; only admitted requests consume ([`limiter`]).
//! - **Bounded memory.** Each limit owns a fixed set of shared-data buckets (`maxKeys` keys);
//!   idle keys are reused or swept, and keys that find no room share one overflow cell, so a key
//!   flood can neither grow Envoy's memory nor buy fresh budgets ([`table`], [`sweep`]).
//!
//! The decision core is host-agnostic: it sees the request through the shared request model
//! ([`meshguard_filter_core::Ctx`]) and shared data through the [`Host`] seam, and is exported
//! on its own (`module.rs`) or as a stage of the `meshguard` pipeline.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod global;
pub mod headers;
pub mod limiter;
pub mod metrics;
pub mod request;
pub mod store;
pub mod sweep;
pub mod table;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use meshguard_filter_core::{
    CallResponse, ConfigError, Ctx, Decision, Env, Filter, HeaderMap, Host, HttpFilter, Root,
    Stats, StreamCallbacks,
};

pub use config::{Config, parse_config};
pub use limiter::{Checked, Engine, Pending, Verdict};

use crate::global::{Asked, Globals, Outcome};
use crate::headers::LimitStatus;
use crate::limiter::now_ns;
use crate::metrics::LimitMetrics;
use crate::table::Table;

/// How often every root context ticks (sweep lease attempts, seed refresh, stats flush).
pub const TICK: Duration = Duration::from_secs(1);

/// The rate-limit filter.
#[derive(Debug)]
pub struct RateLimit;

impl Filter for RateLimit {
    type Root = RateLimitRoot;
    const NAME: &'static str = "rate_limit";

    fn configure(
        host: &mut dyn Host,
        env: &Env,
        config: &[u8],
    ) -> Result<RateLimitRoot, ConfigError> {
        let mut config = parse_config(config)?;
        config.check_env(env)?;
        let stats = Stats::new(Self::NAME, &env.plugin);
        let mut tables = Vec::with_capacity(config.limits.len());
        let mut seeds = Vec::with_capacity(config.limits.len());
        let mut metrics = Vec::with_capacity(config.limits.len());
        for limit in &config.limits {
            let table = Table::new(limit, &env.plugin);
            let random = host.random_u64();
            seeds.push(Cell::new(table.ensure(host, random)));
            tables.push(table);
            metrics.push(LimitMetrics::define(host, &stats, &limit.name));
        }
        let holder = host.random_u64();
        let limits = std::mem::take(&mut config.globals);
        let globals = Globals::new(host, &stats, &env.plugin, limits, holder);
        Ok(RateLimitRoot {
            engine: Rc::new(Engine {
                config,
                tables,
                seeds,
                metrics,
                globals,
            }),
            holder,
        })
    }
}

/// The root: validated config, table layouts, seeds and metric ids.
#[derive(Debug)]
pub struct RateLimitRoot {
    engine: Rc<Engine>,
    /// This root's identity in sweep leases.
    holder: u64,
}

impl RateLimitRoot {
    /// The engine.
    pub fn engine(&self) -> &Rc<Engine> {
        &self.engine
    }
}

impl Root for RateLimitRoot {
    type Http = RateLimitHttp;

    fn tick_period(&self) -> Option<Duration> {
        Some(TICK)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let engine = &self.engine;
        let now_ms = now_ns(host) / 1_000_000;
        for (index, limit) in engine.config.limits.iter().enumerate() {
            let (Some(table), Some(seed), Some(metrics)) = (
                engine.tables.get(index),
                engine.seeds.get(index),
                engine.metrics.get(index),
            ) else {
                continue;
            };
            // Heals a seed chosen in a configure race: everyone converges on the stored one.
            if let Some(stored) = table.read_seed(host) {
                seed.set(stored);
            }
            sweep::tick(host, limit, table, metrics, now_ms, self.holder);
            metrics.flush(host);
        }
        engine.globals.flush(host);
    }

    fn new_http(&self, _context_id: u32) -> RateLimitHttp {
        RateLimitHttp {
            engine: Rc::clone(&self.engine),
            pending: None,
            asked: None,
            global_statuses: Vec::new(),
            response_headers: Vec::new(),
        }
    }
}

/// Per-stream filter: checks the local limits, asks the rate-limit service about the global
/// ones (only when every local limit admitted), charges the local limits once the module lets
/// the request go on, and adds rate-limit headers to the response.
#[derive(Debug)]
pub struct RateLimitHttp {
    engine: Rc<Engine>,
    /// Admitted by the local check, to be charged at commit.
    pending: Option<Pending>,
    /// The global call this stream waits for.
    asked: Option<Asked>,
    /// The global limits' state from the service's answer, for the RateLimit headers.
    global_statuses: Vec<LimitStatus>,
    response_headers: Vec<(String, String)>,
}

impl RateLimitHttp {
    /// Applies what the service's answer (or its absence) means.
    fn conclude(&mut self, ctx: &mut Ctx<'_>, outcome: Outcome) -> Decision {
        match outcome {
            Outcome::Deny(response) => {
                // Nothing local is charged: the request does not go on.
                self.pending = None;
                Decision::Respond(response)
            }
            Outcome::Admit {
                request_headers,
                response_headers,
                statuses,
            } => {
                for (name, value) in &request_headers {
                    ctx.set_header(HeaderMap::Request, name, Some(value));
                }
                self.response_headers.extend(response_headers);
                self.global_statuses = statuses;
                Decision::Continue
            }
        }
    }
}

impl HttpFilter for RateLimitHttp {
    /// Response headers carry the rate-limit headers; nothing happens at stream end.
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: false,
        request_body: false,
    };

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        match self.engine.check(ctx) {
            Checked::Unlimited => {}
            Checked::Denied(response) => return Decision::Respond(response),
            Checked::Pending(pending) => self.pending = Some(pending),
        }
        // Local first: only a request every local limit admitted costs a call.
        let engine = Rc::clone(&self.engine);
        let Some((call, matched)) = engine.globals.request(ctx) else {
            return Decision::Continue;
        };
        match ctx.dispatch_grpc(&call) {
            Some(token) => {
                self.asked = Some(Asked { token, matched });
                Decision::Pause
            }
            None => {
                let now = now_ns(ctx);
                let reason = format!(
                    "Envoy refused the call (is `{}` a cluster of this proxy?)",
                    call.cluster
                );
                let outcome = engine.globals.fail(ctx, &matched, &reason, now);
                self.conclude(ctx, outcome)
            }
        }
    }

    /// The request goes on: charge every local limit that admitted it.
    fn commit_request(&mut self, ctx: &mut Ctx<'_>) -> Decision {
        let statuses = std::mem::take(&mut self.global_statuses);
        let Some(pending) = self.pending.take() else {
            if !statuses.is_empty() {
                let style = self.engine.config.headers;
                self.response_headers
                    .extend(crate::headers::render(style, &statuses));
            }
            return Decision::Continue;
        };
        match self.engine.commit_with(ctx, pending, &statuses) {
            Verdict::Admit(headers) => {
                self.response_headers.extend(headers);
                Decision::Continue
            }
            Verdict::Deny(response) => Decision::Respond(response),
        }
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        for (name, value) in self.response_headers.drain(..) {
            ctx.set_header(HeaderMap::Response, &name, Some(&value));
        }
        Decision::Continue
    }

    /// The rate-limit service answered (or the call failed or timed out).
    fn on_call_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision {
        let Some(asked) = self.asked.take_if(|asked| asked.token == token) else {
            // Not this stream's call: keep waiting for ours.
            return Decision::Pause;
        };
        let engine = Rc::clone(&self.engine);
        let now = now_ns(ctx);
        let outcome = engine.globals.answer(
            ctx,
            &asked.matched,
            response,
            &engine.config.response,
            engine.config.headers,
            now,
        );
        self.conclude(ctx, outcome)
    }
}
