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
//! The decision core is host-agnostic (`&mut dyn Host`); the proxy-wasm shim only exports it.
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
    ConfigError, Decision, HeaderMap, Host, HttpFilter, RootFilter, StreamCallbacks,
};

pub use config::{Config, parse_config};
pub use limiter::{Engine, Verdict};

use crate::limiter::now_ns;
use crate::metrics::LimitMetrics;
use crate::table::Table;

#[cfg(target_arch = "wasm32")]
meshguard_filter_shim::export_filter!(RateLimitRoot::default());

/// How often every root context ticks (sweep lease attempts, seed refresh, stats flush).
pub const TICK: Duration = Duration::from_secs(1);

/// The root: validated config, table layouts, seeds and metric ids.
#[derive(Debug, Default)]
pub struct RateLimitRoot {
    engine: Option<Rc<Engine>>,
}

impl RateLimitRoot {
    /// The engine, once configured.
    pub fn engine(&self) -> Option<&Rc<Engine>> {
        self.engine.as_ref()
    }
}

impl RootFilter for RateLimitRoot {
    type Http = RateLimitHttp;

    fn configure(&mut self, host: &mut dyn Host, config: &[u8]) -> Result<(), ConfigError> {
        let config = parse_config(config)?;
        let plugin = host
            .property(&["plugin_name"])
            .map(|name| String::from_utf8_lossy(&name).into_owned())
            .unwrap_or_default();
        let mut tables = Vec::with_capacity(config.limits.len());
        let mut seeds = Vec::with_capacity(config.limits.len());
        let mut metrics = Vec::with_capacity(config.limits.len());
        for limit in &config.limits {
            let table = Table::new(limit, &plugin);
            let random = host.random_u64();
            seeds.push(Cell::new(table.ensure(host, random)));
            tables.push(table);
            metrics.push(LimitMetrics::define(host, &limit.name));
        }
        self.engine = Some(Rc::new(Engine {
            config,
            tables,
            seeds,
            metrics,
        }));
        Ok(())
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(TICK)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let Some(engine) = &self.engine else {
            return;
        };
        let now = now_ns(host);
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
            sweep::tick(host, limit, table, metrics, now);
            metrics.flush(host);
        }
    }

    fn new_http(&self, _context_id: u32) -> RateLimitHttp {
        RateLimitHttp {
            engine: self.engine.clone(),
            response_headers: Vec::new(),
        }
    }
}

/// Per-stream filter: judges the request, and adds rate-limit headers to the response.
#[derive(Debug)]
pub struct RateLimitHttp {
    engine: Option<Rc<Engine>>,
    response_headers: Vec<(String, String)>,
}

impl HttpFilter for RateLimitHttp {
    /// Response headers carry the rate-limit headers; nothing happens at stream end.
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: false,
        request_body: false,
    };

    fn on_request_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        let Some(engine) = &self.engine else {
            return Decision::Continue;
        };
        match engine.decide(host) {
            Verdict::Admit(headers) => {
                self.response_headers = headers;
                Decision::Continue
            }
            Verdict::Deny(response) => Decision::Respond(response),
        }
    }

    fn on_response_headers(&mut self, host: &mut dyn Host, _end_of_stream: bool) -> Decision {
        for (name, value) in self.response_headers.drain(..) {
            host.set_header(HeaderMap::Response, &name, Some(&value));
        }
        Decision::Continue
    }
}
