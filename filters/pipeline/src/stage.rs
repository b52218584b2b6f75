//! The stages, in the order they run, and the object-safe view of a filter the pipeline holds.
//!
//! **Adding a stage** is one line in [`STAGES`] (a filter crate implementing
//! [`meshguard_filter_core::Filter`], and its configuration section's name), in the place its
//! stage runs: the `authz` stage goes after `jwtAuth`, so it sees the verified claims. Its
//! configuration section, its `Env` (claims, route knowledge), its ticks, its callouts' answers
//! and its place in every request and response callback follow from the entry. A stage that
//! only some builds carry (`authz`, behind the crate's `authz` feature) also has an entry in
//! [`LEFT_OUT`] for the builds without it.

use std::time::Duration;

#[cfg(feature = "authz")]
use meshguard_authz::AuthzStage;
use meshguard_canary::Canary;
use meshguard_circuit_breaker::CircuitBreaker;
use meshguard_filter_core::{
    CallResponse, ConfigError, Ctx, Decision, Env, Filter, Host, HttpFilter, Provides, Root,
    StreamCallbacks,
};
use meshguard_jwt_auth::JwtAuth;
use meshguard_rate_limit::RateLimit;

/// How a stage is configured: the filter's `configure`, returning its root as a trait object.
type Configure = fn(&mut dyn Host, &Env, &[u8]) -> Result<Box<dyn StageRoot>, ConfigError>;

/// One kind of stage: its configuration section and how to configure it.
#[derive(Debug, Clone, Copy)]
pub struct StageDef {
    /// The section of the pipeline's configuration (`rateLimit`): it takes exactly the
    /// single-purpose module's schema.
    pub section: &'static str,
    /// The filter's name, as in its stats (`rate_limit`).
    pub name: &'static str,
    configure: Configure,
}

impl StageDef {
    /// The stage of filter `F`, configured from `section`.
    pub const fn of<F: Filter>(section: &'static str) -> Self {
        Self {
            section,
            name: F::NAME,
            configure: configure::<F>,
        }
    }

    /// Configures the stage from its section's JSON.
    pub fn configure(
        &self,
        host: &mut dyn Host,
        env: &Env,
        config: &[u8],
    ) -> Result<Box<dyn StageRoot>, ConfigError> {
        (self.configure)(host, env, config)
    }
}

fn configure<F: Filter>(
    host: &mut dyn Host,
    env: &Env,
    config: &[u8],
) -> Result<Box<dyn StageRoot>, ConfigError> {
    Ok(Box::new(F::configure(host, env, config)?))
}

/// Every stage, in the order they run on a request: authentication first, so no later stage
/// counts a request it refuses and every later stage can key on verified claims; then
/// authorization on those claims, before anything is counted or routed (a request the policy
/// denies costs no rate-limit budget); the circuit breaker last, closest to the upstream,
/// judging the cluster the request really goes to.
pub const STAGES: &[StageDef] = &[
    StageDef::of::<JwtAuth>("jwtAuth"),
    #[cfg(feature = "authz")]
    StageDef::of::<AuthzStage>("authz"),
    StageDef::of::<RateLimit>("rateLimit"),
    StageDef::of::<Canary>("canary"),
    StageDef::of::<CircuitBreaker>("circuitBreaker"),
];

/// Sections of stages this build leaves out, with what to use instead: a configuration naming
/// one is refused with that advice rather than as an unknown key. The `authz` stage is behind the
/// `authz` feature so that `meshguard.wasm` does not carry the Rego engine (regorus: 1.6 MB more
/// wasm, compiled by V8 in every VM, about +35 MiB of Envoy RSS at `--concurrency 2`).
pub const LEFT_OUT: &[(&str, &str)] = &[
    #[cfg(not(feature = "authz"))]
    (
        "authz",
        "this build of the meshguard module has no Rego engine; use meshguard_with_authz.wasm \
         (the same pipeline with the authz stage) or chain the single-purpose meshguard_authz.wasm \
         (see the README, \"Which module\")",
    ),
];

/// A configured stage's root, object-safe.
pub trait StageRoot {
    /// See [`Root::tick_period`].
    fn tick_period(&self) -> Option<Duration>;
    /// See [`Root::on_tick`].
    fn on_tick(&mut self, host: &mut dyn Host);
    /// See [`Root::on_call_response`].
    fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: Option<CallResponse>,
    ) -> bool;
    /// See [`Root::provides`].
    fn provides(&self) -> Provides;
    /// The callbacks the stage's streams implement.
    fn callbacks(&self) -> StreamCallbacks;
    /// A stream of the stage.
    fn new_http(&self, context_id: u32) -> Box<dyn StageHttp>;
}

impl<R: Root> StageRoot for R {
    fn tick_period(&self) -> Option<Duration> {
        Root::tick_period(self)
    }

    fn on_tick(&mut self, host: &mut dyn Host) {
        Root::on_tick(self, host);
    }

    fn on_call_response(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        response: Option<CallResponse>,
    ) -> bool {
        Root::on_call_response(self, host, token, response)
    }

    fn provides(&self) -> Provides {
        Root::provides(self)
    }

    fn callbacks(&self) -> StreamCallbacks {
        <R::Http as HttpFilter>::CALLBACKS
    }

    fn new_http(&self, context_id: u32) -> Box<dyn StageHttp> {
        Box::new(Root::new_http(self, context_id))
    }
}

/// A stage's stream, object-safe.
pub trait StageHttp {
    /// See [`HttpFilter::on_request_headers`].
    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision;
    /// See [`HttpFilter::commit_request`].
    fn commit_request(&mut self, ctx: &mut Ctx<'_>) -> Decision;
    /// See [`HttpFilter::on_request_body`].
    fn on_request_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Decision;
    /// See [`HttpFilter::on_response_headers`].
    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision;
    /// See [`HttpFilter::on_log`].
    fn on_log(&mut self, ctx: &mut Ctx<'_>);
    /// See [`HttpFilter::on_call_response`].
    fn on_call_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision;
}

impl<H: HttpFilter> StageHttp for H {
    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision {
        HttpFilter::on_request_headers(self, ctx, end_of_stream)
    }

    fn commit_request(&mut self, ctx: &mut Ctx<'_>) -> Decision {
        HttpFilter::commit_request(self, ctx)
    }

    fn on_request_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Decision {
        HttpFilter::on_request_body(self, ctx, body_size, end_of_stream)
    }

    fn on_response_headers(&mut self, ctx: &mut Ctx<'_>, end_of_stream: bool) -> Decision {
        HttpFilter::on_response_headers(self, ctx, end_of_stream)
    }

    fn on_log(&mut self, ctx: &mut Ctx<'_>) {
        HttpFilter::on_log(self, ctx);
    }

    fn on_call_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision {
        HttpFilter::on_call_response(self, ctx, token, response)
    }
}
