//! The `meshguard` module: every meshguard filter as a stage of one pipeline.
//!
//! The commerce edge gateway runs JWT authentication, authorization in Rego, rate limiting,
//! canary routing and circuit breaking on every request. As separate modules that is a V8 VM
//! per module and worker (Envoy's memory grows with each), a stream context and a set of
//! callbacks per module and request, and the path, the host and the same headers read by each.
//! As one module it is one VM per worker and one pass:
//!
//! - **One pass per request.** The stages ([`stage::STAGES`]) run in a fixed order inside one
//!   `on_request_headers`: authentication, authorization, rate limiting, canary routing,
//!   circuit breaking. The first stage that answers locally ends the request: a request JWT
//!   refused is never counted by the limiter or the breaker. Once every stage let the request go on, each commits
//!   ([`HttpFilter::commit_request`]): the limiter charges its budget only then, so a request
//!   an open breaker answers costs no budget.
//! - **Stages share results without hostcalls.** All stages see the request through one
//!   request model ([`meshguard_filter_core::Ctx`]): a header the JWT stage read (it reads the
//!   whole map once) is free for every later stage, a header it wrote or removed is what they
//!   see, its verified claims are theirs to key on (`claim: sub`), and the cluster the canary
//!   stage moved the request to is the breaker's (Envoy itself reports the old route until the
//!   router runs).
//! - **A stage may pause.** A stage that returns [`Decision::Pause`] (it made a callout) gets
//!   the callout's answer; when it continues, the pipeline resumes at the next stage.
//! - **A stage may hold the request for its body.** The `authz` stage with
//!   `withRequestBody` pauses at the headers of a request that has a body; the body's chunks
//!   then reach it (Envoy buffers them, bounded by `maxRequestBytes`), and once it decides on
//!   the whole body the later stages run and every stage commits, in the body's last callback,
//!   exactly as they would have at the headers. A stage paused for a callout keeps the body
//!   buffered until its answer, and a body that came in meanwhile is handed to the stage that
//!   holds for it as soon as that stage runs. A request that is not held passes its body straight through:
//!   the callback returns at once, with no hostcall (Envoy calls it only for requests that
//!   have a body).
//! - **One callback per response phase.** Response headers and the stream's end reach every
//!   stage that ran, in reverse order (as Envoy runs a filter chain's encoders), in one call
//!   each.
//!
//! **Two builds.** The `authz` stage links the Rego engine (regorus, about 1.6 MB of wasm), and V8
//! compiles the whole module in every VM, so it is behind the crate's `authz` feature:
//! `meshguard.wasm` is built without it and refuses an `authz` section at configure time
//! ([`stage::LEFT_OUT`]); `meshguard_with_authz.wasm` is the same source built with it. Without
//! the feature no stage reads bodies, and the module does not export the body callback.
//!
//! The configuration has one optional section per stage, each with exactly the schema of the
//! single-purpose module ([`config`]). The stages' stats and shared data are the single
//! modules' (`meshguard.<filter>.<plugin>.<stat>`), under this plugin's name.

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
pub mod stage;

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use meshguard_filter_core::{
    CallResponse, ConfigError, Ctx, Decision, Env, Filter, Host, HttpFilter, Provides, Root,
    StreamCallbacks,
};

use crate::config::Configured;
use crate::stage::{STAGES, StageDef, StageHttp};

/// The `meshguard` pipeline filter.
#[derive(Debug)]
pub struct Pipeline;

impl Filter for Pipeline {
    type Root = PipelineRoot;
    const NAME: &'static str = "pipeline";

    fn configure(
        host: &mut dyn Host,
        env: &Env,
        config: &[u8],
    ) -> Result<PipelineRoot, ConfigError> {
        PipelineRoot::new(host, &env.plugin, STAGES, config)
    }
}

/// One configured stage and when it next ticks.
struct RootStage {
    configured: Configured,
    next_tick: Option<SystemTime>,
}

/// The pipeline's root: every configured stage's root.
pub struct PipelineRoot {
    stages: Vec<RootStage>,
    period: Option<Duration>,
    /// Per stage: whether it reads request bodies (only those get body chunks).
    reads_bodies: Rc<[bool]>,
}

impl std::fmt::Debug for PipelineRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRoot")
            .field("stages", &self.stage_names())
            .field("period", &self.period)
            .finish()
    }
}

impl PipelineRoot {
    /// Configures `stages` (a subset of [`STAGES`] or, in tests, other stages) from `config`.
    pub fn new(
        host: &mut dyn Host,
        plugin: &str,
        stages: &[StageDef],
        config: &[u8],
    ) -> Result<Self, ConfigError> {
        let configured = config::configure(host, plugin, stages, config)?;
        let period = configured.iter().filter_map(|stage| stage.period).min();
        let reads_bodies = configured
            .iter()
            .map(|stage| stage.root.callbacks().request_body)
            .collect();
        Ok(Self {
            reads_bodies,
            stages: configured
                .into_iter()
                .map(|configured| RootStage {
                    configured,
                    next_tick: None,
                })
                .collect(),
            period,
        })
    }

    /// The configured stages' sections, in the order they run.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .map(|stage| stage.configured.def.section)
            .collect()
    }
}

impl Root for PipelineRoot {
    type Http = PipelineHttp;

    /// The shortest of the stages' periods; each stage still ticks at its own.
    fn tick_period(&self) -> Option<Duration> {
        self.period
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        let Some(period) = self.period else {
            return;
        };
        let now = host.now();
        for stage in &mut self.stages {
            let Some(own) = stage.configured.period else {
                continue;
            };
            if stage.next_tick.is_some_and(|due| now < due) {
                continue;
            }
            stage.configured.root.on_tick(host);
            // Half a pipeline tick early, so jitter never makes a stage skip a whole tick.
            stage.next_tick = Some(now + own.saturating_sub(period / 2));
        }
    }

    fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: Option<CallResponse>,
    ) -> bool {
        // The stage that dispatched the call claims its answer (callouts are rare: JWKS
        // fetches, so the copies cost nothing on the request path).
        self.stages.iter_mut().any(|stage| {
            stage
                .configured
                .root
                .on_call_response(host, token, response.clone())
        })
    }

    fn provides(&self) -> Provides {
        let mut provides = Provides::default();
        for stage in &self.stages {
            let stage = stage.configured.root.provides();
            provides.claims |= stage.claims;
            provides.reroutes = match (provides.reroutes, stage.reroutes) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), _) | (_, Some(true)) => Some(true),
                (None, None) => None,
            };
        }
        provides
    }

    fn new_http(&self, context_id: u32) -> PipelineHttp {
        PipelineHttp {
            stages: self
                .stages
                .iter()
                .map(|stage| stage.configured.root.new_http(context_id))
                .collect(),
            reads_bodies: Rc::clone(&self.reads_bodies),
            ran: 0,
            paused: None,
            end_of_stream: false,
            body_seen: None,
        }
    }
}

/// One request through the pipeline.
pub struct PipelineHttp {
    stages: Vec<Box<dyn StageHttp>>,
    reads_bodies: Rc<[bool]>,
    /// How many stages' request phase ran (the response phase reaches only those).
    ran: usize,
    /// The stage waiting for a callout's answer or for the body.
    paused: Option<usize>,
    end_of_stream: bool,
    /// The request body Envoy has buffered so far and whether it is complete, once a chunk
    /// arrived while the request was held.
    body_seen: Option<(usize, bool)>,
}

impl std::fmt::Debug for PipelineHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHttp")
            .field("stages", &self.stages.len())
            .field("ran", &self.ran)
            .field("paused", &self.paused)
            .finish()
    }
}

impl PipelineHttp {
    /// Runs the request phase from stage `start` on: the first local answer ends the request,
    /// a pause waits for its callout, and when every stage continued, every stage commits.
    fn run_from(&mut self, ctx: &mut Ctx<'_>, start: usize) -> Decision {
        for (index, stage) in self.stages.iter_mut().enumerate().skip(start) {
            self.ran = index + 1;
            let mut decision = stage.on_request_headers(ctx, self.end_of_stream);
            // A stage holding the request for its body gets what Envoy buffered while an
            // earlier stage waited for a callout (Envoy will not offer those chunks again).
            if decision == Decision::Pause
                && self.reads_bodies.get(index).copied().unwrap_or(false)
                && let Some((size, end_of_stream)) = self.body_seen
            {
                decision = stage.on_request_body(ctx, size, end_of_stream);
            }
            match decision {
                Decision::Continue => {}
                Decision::Pause => {
                    self.paused = Some(index);
                    return Decision::Pause;
                }
                answer @ Decision::Respond(_) => return answer,
            }
        }
        Decision::Continue
    }

    /// Every stage let the request go on: each commits, in order.
    fn commit(&mut self, ctx: &mut Ctx<'_>) -> Decision {
        for stage in &mut self.stages {
            match stage.commit_request(ctx) {
                Decision::Continue => {}
                other => return other,
            }
        }
        Decision::Continue
    }
}

impl HttpFilter for PipelineHttp {
    /// Every stage's callbacks: the request body (the `authz` stage's `withRequestBody`, so
    /// only in a build with that stage), response headers (RateLimit headers, the pin cookie,
    /// the breaker's outcome, authz's `response_headers_to_add`) and the stream's end (the
    /// breaker's resets and timeouts).
    const CALLBACKS: StreamCallbacks = StreamCallbacks {
        response_headers: true,
        log: true,
        request_body: cfg!(feature = "authz"),
    };

    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision {
        self.end_of_stream = end_of_stream;
        self.run_from(ctx, 0)
    }

    fn commit_request(&mut self, ctx: &mut Ctx<'_>) -> Decision {
        self.commit(ctx)
    }

    /// A body chunk. Not held: it passes (no hostcall). Held by a stage that reads bodies: that
    /// stage decides, and once it lets the request go on the later stages run (the stream then
    /// commits every stage). Held for a callout: the chunk stays buffered until the answer.
    fn on_request_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Decision {
        let Some(index) = self.paused else {
            return Decision::Continue;
        };
        self.body_seen = Some((body_size, end_of_stream));
        if !self.reads_bodies.get(index).copied().unwrap_or(false) {
            return Decision::Pause;
        }
        let Some(stage) = self.stages.get_mut(index) else {
            return Decision::Continue;
        };
        match stage.on_request_body(ctx, body_size, end_of_stream) {
            Decision::Continue => {
                self.paused = None;
                self.run_from(ctx, index + 1)
            }
            Decision::Pause => Decision::Pause,
            answer @ Decision::Respond(_) => {
                self.paused = None;
                answer
            }
        }
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision {
        let ran = self.ran;
        for stage in self.stages.iter_mut().take(ran).rev() {
            if let answer @ Decision::Respond(_) = stage.on_response_headers(ctx, end_of_stream) {
                return answer;
            }
        }
        Decision::Continue
    }

    fn on_log(&mut self, ctx: &mut Ctx<'_>) {
        let ran = self.ran;
        for stage in self.stages.iter_mut().take(ran).rev() {
            stage.on_log(ctx);
        }
    }

    /// The paused stage's callout answered: it decides, and if it continues, the request
    /// resumes at the next stage.
    fn on_call_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision {
        let Some(index) = self.paused.take() else {
            return Decision::Continue;
        };
        let Some(stage) = self.stages.get_mut(index) else {
            return Decision::Continue;
        };
        match stage.on_call_response(ctx, token, response) {
            Decision::Continue => self.run_from(ctx, index + 1),
            Decision::Pause => {
                self.paused = Some(index);
                Decision::Pause
            }
            answer @ Decision::Respond(_) => answer,
        }
    }
}

#[cfg(test)]
mod tests;
