//! A stage that pauses for a callout: the request resumes at the next stage when it continues,
//! ends when it answers; commits and the response phase follow the stages that ran.

use std::cell::RefCell;
use std::time::Duration;

use meshguard_filter_core::mock::MockHost;
use meshguard_filter_core::{
    CallResponse, ConfigError, Ctx, Decision, Env, Filter, Host, HttpCall, HttpFilter,
    LocalResponse, Root, Stream,
};

use crate::PipelineRoot;
use crate::stage::StageDef;

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(line: String) {
    LOG.with(|log| log.borrow_mut().push(line));
}

fn take_log() -> Vec<String> {
    LOG.with(|log| log.borrow_mut().drain(..).collect())
}

/// A stage that asks an authorization service before letting a request on.
struct Fetch;
struct FetchRoot;
struct FetchHttp {
    token: Option<u32>,
}

impl Filter for Fetch {
    type Root = FetchRoot;
    const NAME: &'static str = "fetch";
    fn configure(_: &mut dyn Host, _: &Env, _: &[u8]) -> Result<FetchRoot, ConfigError> {
        Ok(FetchRoot)
    }
}

impl Root for FetchRoot {
    type Http = FetchHttp;
    fn new_http(&self, _: u32) -> FetchHttp {
        FetchHttp { token: None }
    }
}

impl HttpFilter for FetchHttp {
    fn on_request_headers(&mut self, ctx: &mut Ctx<'_>, _: bool) -> Decision {
        log("fetch: request".into());
        self.token = ctx.dispatch(&HttpCall {
            cluster: "authz".into(),
            headers: vec![(":path".into(), "/check".into())],
            body: None,
            timeout: Duration::from_secs(1),
        });
        Decision::Pause
    }

    fn on_call_response(
        &mut self,
        _: &mut Ctx<'_>,
        token: u32,
        response: Option<CallResponse>,
    ) -> Decision {
        assert_eq!(Some(token), self.token);
        log("fetch: answer".into());
        match response.and_then(|r| r.status()) {
            Some(200) => Decision::Continue,
            _ => Decision::Respond(LocalResponse::new(403, "denied")),
        }
    }

    fn commit_request(&mut self, _: &mut Ctx<'_>) -> Decision {
        log("fetch: commit".into());
        Decision::Continue
    }

    fn on_response_headers(&mut self, _: &mut Ctx<'_>, _: bool) -> Decision {
        log("fetch: response".into());
        Decision::Continue
    }

    fn on_log(&mut self, _: &mut Ctx<'_>) {
        log("fetch: log".into());
    }
}

/// A stage that only records what reaches it.
struct Record;
struct RecordRoot;
struct RecordHttp;

impl Filter for Record {
    type Root = RecordRoot;
    const NAME: &'static str = "record";
    fn configure(_: &mut dyn Host, _: &Env, _: &[u8]) -> Result<RecordRoot, ConfigError> {
        Ok(RecordRoot)
    }
}

impl Root for RecordRoot {
    type Http = RecordHttp;
    fn new_http(&self, _: u32) -> RecordHttp {
        RecordHttp
    }
}

impl HttpFilter for RecordHttp {
    fn on_request_headers(&mut self, _: &mut Ctx<'_>, _: bool) -> Decision {
        log("record: request".into());
        Decision::Continue
    }

    fn commit_request(&mut self, _: &mut Ctx<'_>) -> Decision {
        log("record: commit".into());
        Decision::Continue
    }

    fn on_response_headers(&mut self, _: &mut Ctx<'_>, _: bool) -> Decision {
        log("record: response".into());
        Decision::Continue
    }

    fn on_log(&mut self, _: &mut Ctx<'_>) {
        log("record: log".into());
    }
}

const STAGES: &[StageDef] = &[
    StageDef::of::<Fetch>("fetch"),
    StageDef::of::<Record>("record"),
];

fn answer(status: &str) -> Option<CallResponse> {
    Some(CallResponse {
        headers: vec![(":status".into(), status.into())],
        body: Vec::new(),
    })
}

fn paused_request() -> (MockHost, Stream<crate::PipelineHttp>) {
    take_log();
    let mut host = MockHost::new();
    let root =
        PipelineRoot::new(&mut host, "edge", STAGES, br#"{"fetch":{},"record":{}}"#).unwrap();
    let mut stream = Stream::new(root.new_http(1));
    assert_eq!(stream.on_request_headers(&mut host, true), Decision::Pause);
    assert_eq!(
        take_log(),
        ["fetch: request"],
        "nothing after the paused stage ran"
    );
    assert_eq!(host.calls.len(), 1);
    (host, stream)
}

#[test]
fn the_request_resumes_at_the_next_stage_and_every_stage_commits() {
    let (mut host, mut stream) = paused_request();
    let token = host.calls[0].0;
    assert_eq!(
        stream.on_call_response(&mut host, token, answer("200")),
        Decision::Continue
    );
    assert_eq!(
        take_log(),
        [
            "fetch: answer",
            "record: request",
            "fetch: commit",
            "record: commit"
        ]
    );
    stream.on_response_headers(&mut host, true);
    stream.on_log(&mut host);
    assert_eq!(
        take_log(),
        [
            "record: response",
            "fetch: response",
            "record: log",
            "fetch: log"
        ],
        "the response phase runs the stages in reverse, as Envoy's encoders"
    );
}

#[test]
fn an_answer_ends_the_request_and_later_stages_never_see_it() {
    let (mut host, mut stream) = paused_request();
    let token = host.calls[0].0;
    let decision = stream.on_call_response(&mut host, token, answer("500"));
    assert!(matches!(
        decision,
        Decision::Respond(LocalResponse { status: 403, .. })
    ));
    assert_eq!(take_log(), ["fetch: answer"], "no commit, no later stage");
    stream.on_response_headers(&mut host, true);
    stream.on_log(&mut host);
    assert_eq!(take_log(), ["fetch: response", "fetch: log"]);
}
