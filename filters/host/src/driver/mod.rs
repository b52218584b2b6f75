//! The event loop that moves streams through their phases the way Envoy's filter manager
//! does, and delivers what the timeline holds (callout answers, queue wake-ups, ticks).
//!
//! After every callback the deferred actions it requested are applied, as Envoy applies its
//! "after VM call" actions: a local reply wins over everything (and, sent while decoding, goes
//! back through this filter's `on_response_headers` like Envoy's `sendLocalReply`), then a
//! reset, then the return value (`Continue` moves on, `Pause` stops until
//! `proxy_continue_stream`). Answers and wake-ups are never delivered inside a callback.

mod router;

use std::time::Duration;

pub(crate) use router::fail_record;
use router::{advance_phase, local_reply_headers};

use crate::abi::{ACTION_CONTINUE, ACTION_STOP_ITERATION};
use crate::callout::CalloutState;
use crate::error::{HostError, Result};
use crate::plugin::Plugin;
use crate::request::{LocalReply, Verdict};
use crate::stream::{Phase, Stream};
use crate::vm::{as_i32, len_i32};
use crate::world::Event;

/// Upper bound on loop iterations per settle, so a module that keeps waking itself (queue
/// ping-pong) fails loudly instead of hanging.
const MAX_STEPS: usize = 1_000_000;

impl Plugin {
    /// Delivers due events and runs runnable streams until nothing can move without time.
    pub(crate) fn run_until_idle(&mut self) -> Result<()> {
        for _ in 0..MAX_STEPS {
            let event = self.world.borrow_mut().pop_due();
            if let Some(event) = event {
                self.deliver(event);
                continue;
            }
            while self
                .streams
                .get(&self.settled_below)
                .is_some_and(|r| r.verdict != Verdict::Pending)
            {
                self.settled_below += 1;
            }
            match self.next_runnable() {
                Some((vm, context)) => self.step(vm, context),
                None => return Ok(()),
            }
        }
        Err(HostError::Usage(format!(
            "the plugin did not settle after {MAX_STEPS} steps (a queue or callout loop?)"
        )))
    }

    /// Runs ticks and timed events up to `target` (virtual time since start).
    pub(crate) fn run_timeline(&mut self, target: Duration) -> Result<()> {
        loop {
            let next_tick = self
                .vms
                .iter()
                .filter(|vm| vm.failure().is_none())
                .filter_map(|vm| vm.store.data().next_tick)
                .min();
            let next_event = self.world.borrow().next_event_at();
            let next = match (next_tick, next_event) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(next) => next,
                    None => break,
                },
            };
            if next > target {
                break;
            }
            {
                let mut world = self.world.borrow_mut();
                world.elapsed = world.elapsed.max(next);
            }
            for index in 0..self.vms.len() {
                self.tick_if_due(index, next);
            }
            self.run_until_idle()?;
        }
        self.world.borrow_mut().elapsed = target;
        self.run_until_idle()
    }

    fn tick_if_due(&mut self, index: usize, now: Duration) {
        let Some(vm) = self.vms.get_mut(index) else {
            return;
        };
        let state = vm.store.data_mut();
        let (Some(due), Some(period)) = (state.next_tick, state.tick_period) else {
            return;
        };
        if due > now || state.failed.is_some() {
            return;
        }
        state.next_tick = Some(now + period);
        let root = state.root_context;
        if let Some(on_tick) = vm.exports.on_tick.clone()
            && vm
                .call("proxy_on_tick", root, &on_tick, as_i32(root))
                .is_err()
        {
            self.fail_vm(index);
            return;
        }
        self.settle_flagged(index);
    }

    fn next_runnable(&self) -> Option<(usize, u32)> {
        self.streams
            .range(self.settled_below..)
            .map(|(_, record)| record)
            .filter(|r| r.verdict == Verdict::Pending)
            .find(|r| {
                self.vms
                    .get(r.vm)
                    .and_then(|vm| vm.store.data().streams.get(&r.context))
                    .is_some_and(|s| !s.paused && s.phase != Phase::Done)
            })
            .map(|r| (r.vm, r.context))
    }

    fn stream_mut(&mut self, vm: usize, context: u32) -> Option<&mut Stream> {
        self.vms
            .get_mut(vm)?
            .store
            .data_mut()
            .streams
            .get_mut(&context)
    }

    /// Runs the stream's current phase.
    fn step(&mut self, vm: usize, context: u32) {
        let Some(stream) = self.stream_mut(vm, context) else {
            return;
        };
        let phase = stream.phase;
        let id = as_i32(context);
        let no_trailers = stream.request_trailers.is_none();
        let result = match phase {
            Phase::RequestHeaders => {
                stream.request_headers_open = true;
                let eos = stream.request.body.is_empty() && no_trailers;
                stream.end_of_stream = eos;
                let n = len_i32(stream.request_headers.0.len());
                self.call3(
                    vm,
                    "proxy_on_request_headers",
                    |e| e.on_request_headers.clone(),
                    (id, n, i32::from(eos)),
                )
            }
            Phase::RequestBody(index) => {
                let chunk = stream.request.body.get(index).cloned().unwrap_or_default();
                stream.request_body.extend_from_slice(&chunk);
                stream.request_body_open = true;
                let eos = index + 1 >= stream.request.body.len() && no_trailers;
                stream.end_of_stream = eos;
                let n = len_i32(stream.request_body.len());
                self.call3(
                    vm,
                    "proxy_on_request_body",
                    |e| e.on_request_body.clone(),
                    (id, n, i32::from(eos)),
                )
            }
            Phase::RequestTrailers => {
                stream.request_trailers_open = true;
                let n = len_i32(stream.request_trailers.as_ref().map_or(0, |t| t.0.len()));
                self.call2(
                    vm,
                    "proxy_on_request_trailers",
                    |e| e.on_request_trailers.clone(),
                    (id, n),
                )
            }
            Phase::Upstream => {
                self.forward(vm, context);
                return;
            }
            Phase::ResponseHeaders => {
                stream.response_headers_open = true;
                let eos = stream.response_body.is_empty() && stream.response_trailers.is_none();
                stream.end_of_stream = eos;
                let n = len_i32(stream.response_headers.0.len());
                self.call3(
                    vm,
                    "proxy_on_response_headers",
                    |e| e.on_response_headers.clone(),
                    (id, n, i32::from(eos)),
                )
            }
            Phase::ResponseBody => {
                stream.response_body_open = true;
                let eos = stream.response_trailers.is_none();
                stream.end_of_stream = eos;
                let n = len_i32(stream.response_body.len());
                self.call3(
                    vm,
                    "proxy_on_response_body",
                    |e| e.on_response_body.clone(),
                    (id, n, i32::from(eos)),
                )
            }
            Phase::ResponseTrailers => {
                stream.response_trailers_open = true;
                let n = len_i32(stream.response_trailers.as_ref().map_or(0, |t| t.0.len()));
                self.call2(
                    vm,
                    "proxy_on_response_trailers",
                    |e| e.on_response_trailers.clone(),
                    (id, n),
                )
            }
            Phase::Log => {
                self.finish_stream(vm, context);
                return;
            }
            Phase::Done => return,
        };
        match result {
            Ok(action) => {
                self.settle(vm, context, Some(action));
                self.settle_flagged(vm);
            }
            Err(_) => self.fail_vm(vm),
        }
    }

    fn call3(
        &mut self,
        vm: usize,
        name: &'static str,
        pick: impl Fn(&crate::vm::Exports) -> Option<wasmtime::TypedFunc<(i32, i32, i32), i32>>,
        params: (i32, i32, i32),
    ) -> std::result::Result<i32, String> {
        let Some(machine) = self.vms.get_mut(vm) else {
            return Ok(ACTION_CONTINUE);
        };
        match pick(&machine.exports) {
            Some(func) => machine.call(name, params.0.cast_unsigned(), &func, params),
            None => Ok(ACTION_CONTINUE),
        }
    }

    fn call2(
        &mut self,
        vm: usize,
        name: &'static str,
        pick: impl Fn(&crate::vm::Exports) -> Option<wasmtime::TypedFunc<(i32, i32), i32>>,
        params: (i32, i32),
    ) -> std::result::Result<i32, String> {
        let Some(machine) = self.vms.get_mut(vm) else {
            return Ok(ACTION_CONTINUE);
        };
        match pick(&machine.exports) {
            Some(func) => machine.call(name, params.0.cast_unsigned(), &func, params),
            None => Ok(ACTION_CONTINUE),
        }
    }

    /// Applies deferred actions to every stream of `vm` that has some.
    fn settle_flagged(&mut self, vm: usize) {
        let flagged: Vec<u32> = self
            .vms
            .get(vm)
            .map(|machine| {
                machine
                    .store
                    .data()
                    .streams
                    .iter()
                    .filter(|(_, s)| {
                        s.reset
                            || s.pending_reply.is_some()
                            || s.resume_request
                            || s.resume_response
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for context in flagged {
            self.settle(vm, context, None);
        }
    }

    /// Decides where a stream goes after a callback (`returned`: the phase callback's action).
    fn settle(&mut self, vm: usize, context: u32, returned: Option<i32>) {
        let Some(id) = self.by_context.get(&(vm, context)).copied() else {
            return;
        };
        let hold_headers = self.options.allow_on_headers_stop_iteration;
        let Some(stream) = self.stream_mut(vm, context) else {
            return;
        };
        let (resume_request, resume_response) = (
            std::mem::take(&mut stream.resume_request),
            std::mem::take(&mut stream.resume_response),
        );
        if std::mem::take(&mut stream.reset) {
            stream.paused = false;
            stream.phase = Phase::Log;
            if let Some(record) = self.streams.get_mut(&id) {
                record.verdict = Verdict::Reset;
            }
            self.mark_reset(id);
            return;
        }
        if let Some(reply) = stream.pending_reply.take() {
            let before_response = stream.phase.is_request() || stream.phase == Phase::Upstream;
            let headers = local_reply_headers(&reply);
            // Request maps stay as they are: a filter that stopped iteration still holds them
            // while its own local reply is encoded (Envoy only clears them on continue).
            stream.response_headers_open = false;
            stream.response_body_open = false;
            stream.response_trailers_open = false;
            stream.response_headers = headers;
            stream.response_body = reply.body.clone();
            stream.response_trailers = None;
            stream.has_response = true;
            stream.paused = false;
            // Sent while decoding, the reply goes through the encoder path (this filter
            // included); sent while encoding, Envoy sends it directly.
            stream.phase = if before_response {
                Phase::ResponseHeaders
            } else {
                Phase::Log
            };
            stream.local_reply = Some(reply.clone());
            let final_headers = stream.request_headers.0.clone();
            if let Some(record) = self.streams.get_mut(&id) {
                record.local_reply = Some(reply);
                record.final_request_headers.get_or_insert(final_headers);
            }
            return;
        }
        let phase = stream.phase;
        let resumed =
            (phase.is_request() && resume_request) || (!phase.is_request() && resume_response);
        match returned {
            Some(ACTION_CONTINUE) => advance_phase(stream),
            Some(_) if resumed => advance_phase(stream),
            // With `allow_on_headers_stop_iteration`, StopIteration holds the headers and the
            // body still reaches the filter (the upstream sees nothing until it continues).
            Some(ACTION_STOP_ITERATION)
                if phase == Phase::RequestHeaders
                    && hold_headers
                    && !stream.request.body.is_empty() =>
            {
                stream.request_headers_open = false;
                stream.phase = Phase::RequestBody(0);
            }
            Some(_) => match phase {
                // StopIterationAndBuffer on a chunk that is not the last: keep buffering.
                Phase::RequestBody(index) if index + 1 < stream.request.body.len() => {
                    stream.phase = Phase::RequestBody(index + 1);
                }
                _ => stream.paused = true,
            },
            None if stream.paused && resumed => advance_phase(stream),
            None => {}
        }
    }

    /// Delivers a timeline event.
    fn deliver(&mut self, event: Event) {
        match event {
            Event::CalloutAnswer { callout, response } => {
                let (vm, context, token) = {
                    let mut world = self.world.borrow_mut();
                    let Some(record) = world.callouts.get_mut(callout) else {
                        return;
                    };
                    if record.state != CalloutState::Pending {
                        return;
                    }
                    record.state = match (response.grpc, response.status()) {
                        (Some(grpc_status), _) => CalloutState::GrpcAnswered { grpc_status },
                        (None, Some(status)) if !response.failed => {
                            CalloutState::Answered { status }
                        }
                        _ => CalloutState::Failed,
                    };
                    (record.vm, record.context_id, record.token)
                };
                let Some(machine) = self.vms.get_mut(vm) else {
                    return;
                };
                let result = match response.grpc {
                    // A unary gRPC call: the message on success, the status otherwise.
                    Some(status) => {
                        let size = len_i32(response.body.len());
                        machine.store.data_mut().call_response = Some(response);
                        let result = if status == 0 {
                            machine.exports.on_grpc_receive.clone().map(|func| {
                                machine.call(
                                    "proxy_on_grpc_receive",
                                    context,
                                    &func,
                                    (as_i32(context), as_i32(token), size),
                                )
                            })
                        } else {
                            machine.exports.on_grpc_close.clone().map(|func| {
                                machine.call(
                                    "proxy_on_grpc_close",
                                    context,
                                    &func,
                                    (as_i32(context), as_i32(token), as_i32(status)),
                                )
                            })
                        };
                        machine.store.data_mut().call_response = None;
                        result
                    }
                    None => {
                        let Some(func) = machine.exports.on_http_call_response.clone() else {
                            return;
                        };
                        let (headers, body, trailers) = if response.failed {
                            (0, 0, 0)
                        } else {
                            (
                                len_i32(response.headers.len()),
                                len_i32(response.body.len()),
                                len_i32(response.trailers.len()),
                            )
                        };
                        machine.store.data_mut().call_response = Some(response);
                        let result = machine.call(
                            "proxy_on_http_call_response",
                            context,
                            &func,
                            (as_i32(context), as_i32(token), headers, body, trailers),
                        );
                        machine.store.data_mut().call_response = None;
                        Some(result)
                    }
                };
                match result {
                    None => {}
                    Some(Err(_)) => self.fail_vm(vm),
                    Some(Ok(())) => self.settle_flagged(vm),
                }
            }
            Event::UpstreamReady {
                vm,
                context,
                timed_out,
            } => {
                let id = self.by_context.get(&(vm, context)).copied();
                let Some(stream) = self.stream_mut(vm, context) else {
                    return;
                };
                if stream.phase != Phase::ResponseHeaders || !stream.paused {
                    return;
                }
                stream.paused = false;
                if timed_out {
                    let reply = LocalReply {
                        status: 504,
                        headers: Vec::new(),
                        body: b"upstream request timeout".to_vec(),
                        details: "upstream_response_timeout".into(),
                        sent_in: "router".into(),
                    };
                    stream.response_headers = local_reply_headers(&reply);
                    stream.response_body = reply.body.clone();
                    stream.response_trailers = None;
                    stream.local_reply = Some(reply.clone());
                    if let Some(record) = id.and_then(|id| self.streams.get_mut(&id)) {
                        record.local_reply = Some(reply);
                    }
                }
            }
            Event::QueueReady { vm, context, queue } => {
                let Some(machine) = self.vms.get_mut(vm) else {
                    return;
                };
                let Some(func) = machine.exports.on_queue_ready.clone() else {
                    return;
                };
                let params = (as_i32(context), as_i32(queue));
                if machine
                    .call("proxy_on_queue_ready", context, &func, params)
                    .is_err()
                {
                    self.fail_vm(vm);
                } else {
                    self.settle_flagged(vm);
                }
            }
        }
    }
}
