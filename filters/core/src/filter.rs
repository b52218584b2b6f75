//! The three traits a filter implements, in the order a plugin lives through them:
//!
//! 1. [`Filter`]: the plugin before it is configured. Its only job is [`Filter::configure`],
//!    which turns the operator's JSON into a configured [`Root`] or refuses it naming the field.
//! 2. [`Root`]: one per plugin and worker (and Envoy's main thread), holding the validated
//!    configuration and worker-wide state; it ticks, receives its own callouts' answers, and
//!    creates one [`HttpFilter`] per stream.
//! 3. [`HttpFilter`]: one per HTTP stream, seeing the exchange through a [`Ctx`].
//!
//! **Fail closed by construction.** A [`Root`] only exists after its configuration was
//! accepted, and an [`HttpFilter`] is only made by a [`Root`], so every stream holds its
//! configuration by value: there is no "not configured" state a request could slip through (a
//! JWT filter cannot fail open). The shim answers streams of a plugin whose configuration was
//! refused with a local 503, never by running the filter.

use std::time::Duration;

use crate::{CallResponse, ConfigError, Ctx, Decision, Host};

/// What the module around a filter offers it, fixed at configure time.
///
/// A single-purpose module gives its filter [`Env::single`]; the `meshguard` pipeline module
/// tells each stage what the stages before it provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The plugin's name (Envoy's `plugin_name` property): scopes stats (`meshguard.<filter>.
    /// <plugin>.<stat>`) and shared-data keys, so two plugins never share state by accident.
    pub plugin: String,
    /// Verified JWT claims are available to this filter ([`Ctx::claim`]): a JWT stage runs
    /// before it in the same module. Filters refuse `claim` sources without them, at configure
    /// time, instead of never finding a claim.
    pub claims: bool,
    /// What [`Ctx::cluster`] can say about the route when this filter runs.
    pub route: RouteKnowledge,
}

/// What a filter can know about the cluster a request goes to ([`Ctx::cluster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKnowledge {
    /// The route Envoy chose for the request as it arrived (`xds.cluster_name`). Envoy 1.40
    /// only re-selects the route when the router runs, so a filter after another one that
    /// changed routing headers still sees the first choice: in a chain of modules, put a
    /// cluster-matched breaker where nothing before it re-routes, or use the pipeline.
    AsArrived,
    /// As arrived, unless an earlier stage re-routed the request; every such stage declares
    /// the cluster it sends to, so the fact is always the cluster the request really goes to.
    Declared,
    /// An earlier stage may re-route requests without knowing the cluster (a canary version
    /// without `cluster`): the cluster of a re-routed request is unknown.
    Unknown,
}

impl Env {
    /// The environment of a single-purpose module: nothing runs before the filter.
    pub fn single(plugin: impl Into<String>) -> Self {
        Self {
            plugin: plugin.into(),
            claims: false,
            route: RouteKnowledge::AsArrived,
        }
    }
}

/// What a configured root tells the stages after it (the pipeline builds their [`Env`] from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provides {
    /// Verified claims are published with [`Ctx::set_identity`].
    pub claims: bool,
    /// Requests may be re-routed (routing headers changed); `Some(true)` when every re-route
    /// declares its cluster, `Some(false)` when some do not.
    pub reroutes: Option<bool>,
}

/// The plugin before configuration.
pub trait Filter: 'static {
    /// The configured root this filter becomes.
    type Root: Root;

    /// The name used in stats (`meshguard.<NAME>.<plugin>...`) and logs: `rate_limit`.
    const NAME: &'static str;

    /// Parses and validates the plugin configuration. On error the shim logs the message (which
    /// names the offending field) and refuses the configuration, so Envoy rejects it.
    fn configure(host: &mut dyn Host, env: &Env, config: &[u8]) -> Result<Self::Root, ConfigError>;
}

/// A configured plugin in one worker: validated configuration and worker-wide state.
pub trait Root: 'static {
    /// The per-stream filter type.
    type Http: HttpFilter;

    /// How often [`Root::on_tick`] should run; `None` for never.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    /// Periodic work (every root context ticks: the main thread's and each worker's).
    fn on_tick(&mut self, _host: &mut dyn Host) {}

    /// The answer to an HTTP call (`None`: the call failed). Returns whether `token` was one of
    /// this root's calls, so a module holding several roots can find the owner.
    fn on_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: Option<CallResponse>,
    ) -> bool {
        false
    }

    /// What this root gives the stages after it in a pipeline.
    fn provides(&self) -> Provides {
        Provides::default()
    }

    /// A filter for a new HTTP stream.
    fn new_http(&self, context_id: u32) -> Self::Http;
}

/// The stream callbacks, beyond request headers, that an [`HttpFilter`] implements.
///
/// Envoy makes no call into the VM for a callback the module does not export, and each call
/// it skips is work saved on every request (about 0.5-1 µs of Envoy CPU here, measured with
/// `cargo xtask bench`). The shim records this in the module and `cargo xtask build-filters`
/// removes the exports of the callbacks a filter leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCallbacks {
    /// [`HttpFilter::on_response_headers`] is implemented.
    pub response_headers: bool,
    /// [`HttpFilter::on_log`] is implemented.
    pub log: bool,
    /// [`HttpFilter::on_request_body`] is implemented (Envoy calls it for every body chunk).
    pub request_body: bool,
}

impl StreamCallbacks {
    /// Every callback: the safe default, for a filter that has not said otherwise.
    pub const ALL: Self = Self {
        response_headers: true,
        log: true,
        request_body: true,
    };
    /// Request headers only.
    pub const REQUEST_ONLY: Self = Self {
        response_headers: false,
        log: false,
        request_body: false,
    };

    /// The callbacks of either.
    pub const fn union(self, other: Self) -> Self {
        Self {
            response_headers: self.response_headers || other.response_headers,
            log: self.log || other.log,
            request_body: self.request_body || other.request_body,
        }
    }
}

/// The per-stream part of a filter. Every callback sees the exchange through a [`Ctx`]: reads
/// are answered from the request model (each header or property read from the host at most
/// once), writes keep it coherent, and results of earlier stages (verified claims, the chosen
/// route) are there without hostcalls.
pub trait HttpFilter: 'static {
    /// The optional callbacks this filter implements. A callback left out here is never
    /// called in Envoy (its export is removed from the module), so a filter that overrides
    /// [`HttpFilter::on_response_headers`], [`HttpFilter::on_request_body`] or
    /// [`HttpFilter::on_log`] must list it.
    const CALLBACKS: StreamCallbacks = StreamCallbacks::ALL;

    /// Request headers arrived.
    fn on_request_headers(&mut self, _ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        Decision::Continue
    }

    /// Every filter of the module let the request go on (a pipeline's later stages too): make
    /// what was decided at request headers take effect. The rate limiter charges its budget
    /// here, so a request a later stage answers locally (an open breaker) costs no budget. A
    /// filter that answers here (a late denial) answers for the module. Called right after
    /// [`HttpFilter::on_request_headers`] (or the call response that resumed the request) in a
    /// single-purpose module.
    fn commit_request(&mut self, _ctx: &mut Ctx<'_>) -> Decision {
        Decision::Continue
    }

    /// A chunk of the request body arrived; `body_size` is what Envoy holds buffered so far
    /// (read it with [`Host::request_body`]). `Pause` buffers (Envoy's
    /// `StopIterationAndBuffer`), `Continue` lets the request go on with what is buffered (and
    /// commits it, [`HttpFilter::commit_request`], when the filter held it at its headers).
    fn on_request_body(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Decision {
        Decision::Continue
    }

    /// Response headers arrived (from the upstream or a local reply).
    fn on_response_headers(&mut self, _ctx: &mut Ctx<'_>, _end_of_stream: bool) -> Decision {
        Decision::Continue
    }

    /// The stream ended (completed, reset or timed out); used to record outcomes.
    fn on_log(&mut self, _ctx: &mut Ctx<'_>) {}

    /// The answer to an HTTP call this stream dispatched while paused. `Continue` resumes the
    /// request, `Respond` answers locally, `Pause` keeps waiting.
    fn on_call_response(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _token: u32,
        _response: Option<CallResponse>,
    ) -> Decision {
        Decision::Continue
    }
}
