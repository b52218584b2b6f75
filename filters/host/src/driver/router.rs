//! The stream's end of the pipeline: the router (route, upstream answer, timeouts), local
//! replies as Envoy builds them, moving between phases, finishing a stream
//! (`on_log`/`on_done`/`on_delete`), and failing a VM's streams the way Envoy fails them.

use crate::callout::CalloutState;
use crate::plugin::{Plugin, StreamRecord};
use crate::request::{LocalReply, Response, UpstreamRequest, UpstreamResponse, Verdict};
use crate::stream::{Headers, Phase, Stream};
use crate::vm::as_i32;
use crate::world::Event;

/// Marks a record as failed by its VM: Envoy answers 503 (`wasm_fail_stream`).
pub(crate) fn fail_record(record: &mut StreamRecord, failure: &str, sent_in: &str) {
    record.verdict = Verdict::VmFailed;
    record.vm_failure = Some(failure.to_string());
    record.local_reply = Some(LocalReply {
        status: 503,
        headers: Vec::new(),
        body: Vec::new(),
        details: "wasm_fail_stream".into(),
        sent_in: sent_in.to_string(),
    });
    record.response = Some(Response {
        status: 503,
        headers: vec![(":status".into(), "503".into())],
        body: Vec::new(),
        trailers: Vec::new(),
    });
}

impl Plugin {
    pub(super) fn mark_reset(&mut self, id: u64) {
        if let Some(record) = self.streams.get_mut(&id) {
            record.response = None;
        }
    }

    /// The router: picks the cluster from the request headers as the filter left them, and
    /// answers with the upstream's response (or a 404 when no route matches).
    pub(super) fn forward(&mut self, vm: usize, context: u32) {
        let options = self.options.clone();
        let Some(id) = self.by_context.get(&(vm, context)).copied() else {
            return;
        };
        let Some(stream) = self.stream_mut(vm, context) else {
            return;
        };
        let headers = stream.request_headers.0.clone();
        let Some(cluster) = options.route_for(&headers).map(str::to_string) else {
            let reply = LocalReply {
                status: 404,
                headers: Vec::new(),
                body: Vec::new(),
                details: "route_not_found".into(),
                sent_in: "router".into(),
            };
            stream.pending_reply = Some(reply);
            self.settle(vm, context, None);
            return;
        };
        stream.cluster = Some(cluster.clone());
        let upstream = UpstreamRequest {
            cluster: cluster.clone(),
            headers: headers.clone(),
            body: stream.request_body_forwarded.clone(),
            trailers: stream
                .request_trailers
                .as_ref()
                .map(|t| t.0.clone())
                .unwrap_or_default(),
        };
        let answer = stream
            .request
            .upstream
            .clone()
            .or_else(|| options.upstreams.get(&cluster).cloned())
            .unwrap_or_default();
        let (response_headers, body) = upstream_answer(&answer, &cluster, &upstream);
        stream.response_headers = response_headers;
        stream.response_body = body;
        stream.response_trailers = (!answer.trailers.is_empty()).then(|| {
            let mut t = Headers::default();
            t.set_all(answer.trailers.clone());
            t
        });
        stream.has_response = true;
        stream.phase = Phase::ResponseHeaders;
        if !answer.delay.is_zero() {
            // The response phases wait for the (virtual) upstream, or the route timeout.
            stream.paused = true;
            let timed_out = answer.delay >= options.route_timeout;
            let event = Event::UpstreamReady {
                vm,
                context,
                timed_out,
            };
            let after = answer.delay.min(options.route_timeout);
            self.world.borrow_mut().schedule(after, event);
        }
        if let Some(record) = self.streams.get_mut(&id) {
            record.upstream = Some(upstream);
        }
    }

    /// `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`; records the final response.
    pub(super) fn finish_stream(&mut self, vm: usize, context: u32) {
        let Some(id) = self.by_context.get(&(vm, context)).copied() else {
            return;
        };
        let Some(machine) = self.vms.get_mut(vm) else {
            return;
        };
        let id32 = as_i32(context);
        let mut failure = None;
        if let Some(stream) = machine.store.data_mut().streams.get_mut(&context) {
            stream.log_phase = true;
            stream.close_request_maps();
        }
        if let Some(on_log) = machine.exports.on_log.clone()
            && let Err(err) = machine.call("proxy_on_log", context, &on_log, id32)
        {
            failure = Some(err);
        }
        if let Some(on_done) = machine.exports.on_done.clone()
            && failure.is_none()
            && let Err(err) = machine.call("proxy_on_done", context, &on_done, id32)
        {
            failure = Some(err);
        }
        if let Some(on_delete) = machine.exports.on_delete.clone()
            && failure.is_none()
            && let Err(err) = machine.call("proxy_on_delete", context, &on_delete, id32)
        {
            failure = Some(err);
        }
        let stream = machine.store.data_mut().streams.remove(&context);
        self.cancel_callouts(vm, context);
        if let (Some(record), Some(stream)) = (self.streams.get_mut(&id), stream) {
            if record.verdict != Verdict::Reset {
                record.verdict = if record.local_reply.is_some() {
                    Verdict::LocalReply
                } else {
                    Verdict::Forwarded
                };
                record.response = Some(final_response(&stream));
            }
            record
                .final_request_headers
                .get_or_insert(stream.request_headers.0);
            record.vm_failure = failure.clone();
        }
        if failure.is_some() {
            self.fail_vm(vm);
        }
    }

    pub(super) fn cancel_callouts(&mut self, vm: usize, context: u32) {
        for callout in self.world.borrow_mut().callouts.iter_mut() {
            if callout.vm == vm
                && callout.context_id == context
                && callout.state == CalloutState::Pending
            {
                callout.state = CalloutState::Cancelled;
            }
        }
    }

    /// A VM failed: every stream it still serves gets Envoy's 503.
    pub(crate) fn fail_vm(&mut self, vm: usize) {
        let Some(machine) = self.vms.get_mut(vm) else {
            return;
        };
        let failure = machine.failure().unwrap_or("the VM failed").to_string();
        let callback = machine.store.data().callback;
        let streams: Vec<u32> = machine
            .store
            .data_mut()
            .streams
            .drain()
            .map(|(id, _)| id)
            .collect();
        for context in streams {
            self.cancel_callouts(vm, context);
            if let Some(id) = self.by_context.get(&(vm, context)).copied()
                && let Some(record) = self.streams.get_mut(&id)
                && record.verdict == Verdict::Pending
            {
                fail_record(record, &failure, callback.trim_start_matches("proxy_"));
            }
        }
    }
}

/// Moves a stream to its next phase, handing buffered data on.
pub(super) fn advance_phase(stream: &mut Stream) {
    let has_body = !stream.request.body.is_empty();
    let has_trailers = stream.request_trailers.is_some();
    stream.paused = false;
    stream.phase = match stream.phase {
        Phase::RequestHeaders => {
            stream.request_headers_open = false;
            if has_body {
                Phase::RequestBody(0)
            } else if has_trailers {
                Phase::RequestTrailers
            } else {
                Phase::Upstream
            }
        }
        Phase::RequestBody(index) => {
            let buffered = std::mem::take(&mut stream.request_body);
            stream.request_body_forwarded.extend_from_slice(&buffered);
            stream.request_body_open = false;
            if index + 1 < stream.request.body.len() {
                Phase::RequestBody(index + 1)
            } else if has_trailers {
                Phase::RequestTrailers
            } else {
                Phase::Upstream
            }
        }
        Phase::RequestTrailers => {
            stream.request_trailers_open = false;
            Phase::Upstream
        }
        Phase::ResponseHeaders => {
            stream.response_headers_open = false;
            if !stream.response_body.is_empty() {
                Phase::ResponseBody
            } else if stream.response_trailers.is_some() {
                Phase::ResponseTrailers
            } else {
                Phase::Log
            }
        }
        Phase::ResponseBody => {
            stream.response_body_open = false;
            if stream.response_trailers.is_some() {
                Phase::ResponseTrailers
            } else {
                Phase::Log
            }
        }
        Phase::ResponseTrailers => {
            stream.response_trailers_open = false;
            Phase::Log
        }
        other => other,
    };
}

/// The headers of a local reply as Envoy builds them: `:status`, the filter's headers, and
/// for a non-empty body `content-length` and (unless set) `content-type: text/plain`.
pub(super) fn local_reply_headers(reply: &LocalReply) -> Headers {
    let mut headers = Headers::default();
    headers.add(":status", &reply.status.to_string());
    for (name, value) in &reply.headers {
        headers.add(name, value);
    }
    if !reply.body.is_empty() {
        headers.replace("content-length", &reply.body.len().to_string());
        if headers.get("content-type").is_none() {
            headers.add("content-type", "text/plain");
        }
    }
    headers
}

/// The upstream's response headers and body; `body: None` echoes the request as JSON, like
/// the testkit's upstream.
fn upstream_answer(
    answer: &UpstreamResponse,
    cluster: &str,
    request: &UpstreamRequest,
) -> (Headers, Vec<u8>) {
    let mut headers = Headers::default();
    headers.add(":status", &answer.status.to_string());
    let body = match &answer.body {
        Some(body) => body.clone().into_bytes(),
        None => {
            let mut seen = serde_json::Map::new();
            for (name, value) in request.headers.iter().filter(|(k, _)| !k.starts_with(':')) {
                let entry = seen
                    .entry(name.clone())
                    .or_insert_with(|| serde_json::Value::String(String::new()));
                if let serde_json::Value::String(existing) = entry {
                    if !existing.is_empty() {
                        existing.push_str(", ");
                    }
                    existing.push_str(value);
                }
            }
            let header = |name: &str| crate::request::header(&request.headers, name).unwrap_or("");
            headers.add("content-type", "application/json");
            headers.add("x-upstream", cluster);
            serde_json::json!({
                "upstream": cluster,
                "method": header(":method"),
                "path": header(":path"),
                "headers": seen,
                "body": String::from_utf8_lossy(&request.body),
            })
            .to_string()
            .into_bytes()
        }
    };
    for (name, value) in &answer.headers {
        headers.replace(name, value);
    }
    headers.replace("content-length", &body.len().to_string());
    (headers, body)
}

fn final_response(stream: &Stream) -> Response {
    let status = stream
        .response_headers
        .get(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        headers: stream.response_headers.0.clone(),
        body: stream.response_body.clone(),
        trailers: stream
            .response_trailers
            .as_ref()
            .map(|t| t.0.clone())
            .unwrap_or_default(),
    }
}
