//! The files operators write for `meshguard filter run` (a request file) and `filter test` (a
//! suite), and their conversion into the wasmtime host's types.
//!
//! Both share the environment a filter runs in: workers, properties, clusters and routes,
//! upstream answers, scripted callouts. Everything is `deny_unknown_fields` and camelCase, so a
//! typo is an error naming the field and its line, never a silently ignored key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use meshguard_wasm_host::options::duration_text;
use meshguard_wasm_host::{
    CalloutAnswer, CalloutRule, PluginOptions, PropertyValue, Request, Route, UpstreamResponse,
};

pub use super::headers::Headers;

// === environment ===

/// An upstream's answer.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamSpec {
    status: Option<u16>,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    #[serde(default)]
    trailers: Headers,
    #[serde(default, with = "duration_text")]
    delay: Duration,
}

impl UpstreamSpec {
    fn to_host(&self) -> UpstreamResponse {
        UpstreamResponse {
            status: self.status.unwrap_or(200),
            headers: self.headers.0.clone(),
            body: self.body.clone(),
            trailers: self.trailers.0.clone(),
            delay: self.delay,
        }
    }
}

/// A scripted callout answer.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CalloutSpec {
    cluster: String,
    #[serde(default)]
    path: String,
    status: Option<u16>,
    #[serde(default)]
    headers: Headers,
    #[serde(default)]
    body: String,
    #[serde(default, with = "duration_text")]
    delay: Duration,
    #[serde(default)]
    reset: bool,
    #[serde(default)]
    timeout: bool,
    forward: Option<String>,
    times: Option<u32>,
}

impl CalloutSpec {
    fn to_host(&self) -> anyhow::Result<CalloutRule> {
        let answers = [
            self.status.is_some(),
            self.reset,
            self.timeout,
            self.forward.is_some(),
        ];
        if answers.iter().filter(|a| **a).count() != 1 {
            bail!(
                "callout for cluster `{}`: give exactly one of `status` (a scripted answer), \
                 `reset: true`, `timeout: true` or `forward: http://127.0.0.1:PORT`",
                self.cluster
            );
        }
        let answer = if let Some(status) = self.status {
            CalloutAnswer::Respond {
                status,
                headers: self.headers.0.clone(),
                body: self.body.clone(),
            }
        } else if self.reset {
            CalloutAnswer::Reset
        } else if self.timeout {
            CalloutAnswer::Timeout
        } else {
            CalloutAnswer::Forward {
                url: self.forward.clone().unwrap_or_default(),
            }
        };
        let mut rule = CalloutRule::new(&self.cluster, answer)
            .path(&self.path)
            .delay(self.delay);
        rule.times = self.times;
        Ok(rule)
    }
}

/// The environment shared by request files and suites.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// Plugin name (also root id and VM id).
    pub name: Option<String>,
    /// Worker VMs.
    pub workers: Option<usize>,
    #[serde(default)]
    properties: BTreeMap<String, PropertyValue>,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamSpec>,
    #[serde(default)]
    callouts: Vec<CalloutSpec>,
    /// Start of the virtual clock in seconds since the Unix epoch (default: now).
    start_time: Option<u64>,
}

impl Environment {
    /// Host options for this environment and a configuration.
    pub fn options(&self, configuration: Vec<u8>) -> anyhow::Result<PluginOptions> {
        let mut options = PluginOptions::new(configuration);
        if let Some(name) = &self.name {
            options = options.named(name.clone());
        }
        if let Some(workers) = self.workers {
            if workers == 0 {
                bail!("`workers` must be at least 1");
            }
            options.workers = workers;
        }
        options.properties = self.properties.clone();
        options.clusters = self.clusters.clone();
        options.routes = self.routes.clone();
        options.upstreams = self
            .upstreams
            .iter()
            .map(|(cluster, spec)| (cluster.clone(), spec.to_host()))
            .collect();
        options.callouts = self
            .callouts
            .iter()
            .map(CalloutSpec::to_host)
            .collect::<anyhow::Result<_>>()?;
        if let Some(seconds) = self.start_time {
            options.start_time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
        }
        Ok(options)
    }

    /// Fills fields this environment leaves unset from `base`.
    pub fn over(mut self, base: &Environment) -> Environment {
        self.name = self.name.or_else(|| base.name.clone());
        self.workers = self.workers.or(base.workers);
        for (k, v) in &base.properties {
            self.properties
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        self.clusters.extend(base.clusters.iter().cloned());
        if self.routes.is_empty() {
            self.routes = base.routes.clone();
        }
        for (k, v) in &base.upstreams {
            self.upstreams.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.callouts.extend(base.callouts.iter().cloned());
        self.start_time = self.start_time.or(base.start_time);
        self
    }
}

// === requests and steps ===

/// A request as written in a file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default = "get")]
    method: String,
    #[serde(default = "slash")]
    path: String,
    authority: Option<String>,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    #[serde(default)]
    trailers: Headers,
    source: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, PropertyValue>,
    upstream: Option<UpstreamSpec>,
}

fn get() -> String {
    "GET".to_string()
}

fn slash() -> String {
    "/".to_string()
}

impl RequestSpec {
    /// The host request.
    pub fn to_host(&self) -> Request {
        let mut request = Request::new(self.method.to_ascii_uppercase(), self.path.clone());
        if let Some(authority) = &self.authority {
            request = request.authority(authority.clone());
        }
        for (name, value) in &self.headers.0 {
            request = request.header(name.clone(), value.clone());
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        for (name, value) in &self.trailers.0 {
            request = request.trailer(name.clone(), value.clone());
        }
        if let Some(source) = &self.source {
            request = request.source(source.clone());
        }
        request.properties = self.properties.clone();
        request.upstream = self.upstream.as_ref().map(UpstreamSpec::to_host);
        request
    }

    /// `GET /path`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }
}

/// One step: send a request (possibly repeated), or let time pass.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepSpec {
    /// The request to send.
    pub request: Option<RequestSpec>,
    /// How many times to send it.
    #[serde(default = "one")]
    pub repeat: u32,
    /// Which worker (0-based) serves it; default round robin.
    pub worker: Option<usize>,
    /// Virtual time to let pass (`500ms`, `2s`).
    #[serde(default, with = "optional_duration")]
    pub advance: Option<Duration>,
    /// What must hold (suites only).
    pub expect: Option<super::expect::Expect>,
}

fn one() -> u32 {
    1
}

mod optional_duration {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        meshguard_wasm_host::options::duration_text::deserialize(d).map(Some)
    }
}

impl StepSpec {
    /// Checks that a step does one thing.
    pub fn check(&self, at: &str) -> anyhow::Result<()> {
        if self.request.is_some() == self.advance.is_some() {
            bail!("{at}: a step has either `request` or `advance`");
        }
        if self.repeat == 0 {
            bail!("{at}: `repeat` must be at least 1");
        }
        Ok(())
    }
}

// === request file ===

/// A request file (`meshguard filter run --request FILE`), parsed: `request` (optionally
/// `repeat`ed) or `steps`, with an optional `env`.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Environment.
    pub env: Environment,
    /// Steps in order.
    pub steps: Vec<StepSpec>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRunFile {
    #[serde(default)]
    env: Environment,
    request: Option<RequestSpec>,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default)]
    steps: Vec<StepSpec>,
}

/// Reads a request file.
pub fn read_run_plan(path: &Path) -> anyhow::Result<RunPlan> {
    let raw: RawRunFile = read_yaml(path)?;
    let mut steps = raw.steps;
    if let Some(request) = raw.request {
        if !steps.is_empty() {
            bail!(
                "{}: give either `request` (one request) or `steps`, not both",
                path.display()
            );
        }
        steps.push(StepSpec {
            request: Some(request),
            repeat: raw.repeat,
            worker: None,
            advance: None,
            expect: None,
        });
    }
    if steps.is_empty() {
        bail!(
            "{}: nothing to run: add `request: {{method: GET, path: /}}` or a list of `steps`",
            path.display()
        );
    }
    for (index, step) in steps.iter().enumerate() {
        step.check(&format!("{}: steps[{index}]", path.display()))?;
        if step.expect.is_some() {
            bail!(
                "{}: steps[{index}]: `expect` belongs in a suite (`meshguard filter test`)",
                path.display()
            );
        }
    }
    Ok(RunPlan {
        env: raw.env,
        steps,
    })
}

// === suite ===

/// A filter configuration: a YAML/JSON value (sent as JSON) or a string sent as is.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ConfigSpec {
    /// Sent verbatim.
    Text(String),
    /// Serialised to JSON.
    Value(serde_json::Value),
}

impl ConfigSpec {
    /// The bytes handed to `proxy_on_configure`.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.clone().into_bytes(),
            Self::Value(value) => value.to_string().into_bytes(),
        }
    }
}

/// A test case of a suite.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestSpec {
    /// Name shown in the report.
    pub name: String,
    /// Overrides the suite's configuration.
    pub config: Option<ConfigSpec>,
    /// Overrides parts of the suite's environment.
    #[serde(default)]
    pub env: Environment,
    /// Steps.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// The configuration must be rejected with a message containing this text.
    pub expect_config_error: Option<String>,
}

/// `meshguard filter test SUITE.yaml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suite {
    /// Name shown in the report.
    pub name: Option<String>,
    /// The module, relative to the suite file.
    pub module: PathBuf,
    /// The configuration every test starts from.
    pub config: Option<ConfigSpec>,
    /// A configuration file (JSON), relative to the suite file.
    pub config_file: Option<PathBuf>,
    /// The environment every test starts from.
    #[serde(default)]
    pub env: Environment,
    /// The tests.
    pub tests: Vec<TestSpec>,
}

/// Reads a suite and resolves its paths against the suite's directory.
pub fn read_suite(path: &Path) -> anyhow::Result<Suite> {
    let mut suite: Suite = read_yaml(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    suite.module = dir.join(&suite.module);
    if let Some(file) = suite.config_file.take() {
        if suite.config.is_some() {
            bail!(
                "{}: give `config` or `configFile`, not both",
                path.display()
            );
        }
        let file = dir.join(file);
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "reading configFile {} named by {}",
                file.display(),
                path.display()
            )
        })?;
        suite.config = Some(ConfigSpec::Text(text));
    }
    if suite.tests.is_empty() {
        bail!("{}: the suite has no `tests`", path.display());
    }
    for (index, test) in suite.tests.iter().enumerate() {
        for (step_index, step) in test.steps.iter().enumerate() {
            step.check(&format!(
                "{}: tests[{index}] ({}): steps[{step_index}]",
                path.display(),
                test.name
            ))?;
        }
        if test.steps.is_empty() && test.expect_config_error.is_none() {
            bail!(
                "{}: tests[{index}] ({}) has no steps and no expectConfigError",
                path.display(),
                test.name
            );
        }
    }
    Ok(suite)
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (check the path)", path.display()))?;
    serde_yaml::from_str(&text).map_err(|err| {
        anyhow::anyhow!(
            "{}: {err} (see the examples in filters/host/examples/)",
            path.display()
        )
    })
}
