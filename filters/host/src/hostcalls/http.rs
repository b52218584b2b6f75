//! Hostcalls about the HTTP stream: header maps, bodies, local responses, continuing or
//! resetting the stream, and HTTP callouts.

use std::time::Duration;

use super::{
    Ctx, Fail, HResult, Registry, copy_out, define, finish, read, read_string, u32_of, write_u32,
};
use crate::abi::{BufferType, MapType, Status, StreamType, decode_pairs, encode_pairs};
use crate::callout::{self, CallResponse, Callout, CalloutAnswer, CalloutState};
use crate::request::LocalReply;
use crate::stream::Headers;
use crate::world::Event;

pub(super) fn add(r: &mut Registry<'_>) -> wasmtime::Result<()> {
    define!(
        r,
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, pp: i32, sp: i32| {
            finish(get_header_map_pairs(&mut c, map, pp, sp))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, p: i32, l: i32| {
            finish(set_header_map_pairs(&mut c, map, p, l))
        }
    );
    define!(
        r,
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, pp: i32, sp: i32| {
            finish(get_header_map_value(&mut c, map, kp, kl, pp, sp))
        }
    );
    define!(
        r,
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            finish(mutate(
                &mut c,
                map,
                kp,
                kl,
                Some((vp, vl)),
                Mutation::Replace,
            ))
        }
    );
    define!(
        r,
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            finish(mutate(&mut c, map, kp, kl, Some((vp, vl)), Mutation::Add))
        }
    );
    define!(
        r,
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, kl: i32| {
            finish(mutate(&mut c, map, kp, kl, None, Mutation::Remove))
        }
    );
    define!(
        r,
        "env",
        "proxy_get_header_map_size",
        |mut c: Ctx<'_>, map: i32, sp: i32| { finish(get_header_map_size(&mut c, map, sp)) }
    );
    define!(
        r,
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, ty: i32, start: i32, max: i32, pp: i32, sp: i32| {
            finish(get_buffer_bytes(&mut c, ty, start, max, pp, sp))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, ty: i32, start: i32, len: i32, dp: i32, dl: i32| {
            finish(set_buffer_bytes(&mut c, ty, start, len, dp, dl))
        }
    );
    define!(
        r,
        "env",
        "proxy_continue_stream",
        |mut c: Ctx<'_>, ty: i32| { finish(continue_stream(&mut c, StreamType::from_raw(ty))) }
    );
    define!(r, "env", "proxy_continue_request", |mut c: Ctx<'_>| {
        finish(continue_stream(&mut c, Some(StreamType::Request)))
    });
    define!(r, "env", "proxy_continue_response", |mut c: Ctx<'_>| {
        finish(continue_stream(&mut c, Some(StreamType::Response)))
    });
    define!(r, "env", "proxy_close_stream", |mut c: Ctx<'_>, ty: i32| {
        finish(close_stream(&mut c, StreamType::from_raw(ty)))
    });
    define!(
        r,
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32| {
            finish(send_local_response(
                &mut c,
                status,
                (dp, dl),
                (bp, bl),
                (hp, hl),
            ))
        }
    );
    define!(
        r,
        "env",
        "proxy_http_call",
        |mut c: Ctx<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         timeout: i32,
         token: i32| {
            finish(http_call(
                &mut c,
                [(up, ul), (hp, hl), (bp, bl), (tp, tl)],
                timeout,
                token,
            ))
        }
    );
    define!(
        r,
        "env",
        "proxy_grpc_call",
        |mut c: Ctx<'_>,
         up: i32,
         ul: i32,
         sp: i32,
         sl: i32,
         mp: i32,
         ml: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         timeout: i32,
         token: i32| {
            finish(grpc_call(
                &mut c,
                [(up, ul), (sp, sl), (mp, ml), (hp, hl), (bp, bl)],
                timeout,
                token,
            ))
        }
    );
    Ok(())
}

// === header maps ===

fn map_type(raw: i32) -> HResult<MapType> {
    MapType::from_raw(raw).ok_or(Fail::Status(Status::BadArgument))
}

/// The readable map, or `None` where Envoy holds no pointer.
fn readable(c: &Ctx<'_>, map: MapType) -> Option<Vec<(String, String)>> {
    let state = c.data();
    match map {
        MapType::CallResponseHeaders => state.call_response.as_ref().map(|r| r.headers.clone()),
        MapType::CallResponseTrailers => state.call_response.as_ref().map(|r| r.trailers.clone()),
        _ => state.stream()?.readable(map).map(|h| h.0.clone()),
    }
}

fn get_header_map_pairs(c: &mut Ctx<'_>, map: i32, pp: i32, sp: i32) -> HResult {
    let map = map_type(map)?;
    let pairs = readable(c, map).unwrap_or_default();
    copy_out(c, &encode_pairs(&pairs), pp, sp)
}

fn get_header_map_value(c: &mut Ctx<'_>, map: i32, kp: i32, kl: i32, pp: i32, sp: i32) -> HResult {
    let map = map_type(map)?;
    let key = read_string(c, kp, kl)?.to_ascii_lowercase();
    let pairs = readable(c, map).ok_or(Status::BadArgument)?;
    let value = pairs
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .ok_or(Status::NotFound)?;
    copy_out(c, value.as_bytes(), pp, sp)
}

fn get_header_map_size(c: &mut Ctx<'_>, map: i32, sp: i32) -> HResult {
    let map = map_type(map)?;
    let pairs = readable(c, map).ok_or(Status::BadArgument)?;
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    write_u32(c, sp, u32::try_from(size).unwrap_or(u32::MAX))
}

fn set_header_map_pairs(c: &mut Ctx<'_>, map: i32, p: i32, l: i32) -> HResult {
    let map = map_type(map)?;
    let bytes = read(c, p, l)?;
    let pairs = decode_pairs(&bytes).ok_or(Status::BadArgument)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    let target = stream.writable(map)?;
    target.set_all(
        pairs
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect(),
    );
    Ok(())
}

enum Mutation {
    Replace,
    Add,
    Remove,
}

fn mutate(
    c: &mut Ctx<'_>,
    map: i32,
    kp: i32,
    kl: i32,
    value: Option<(i32, i32)>,
    mutation: Mutation,
) -> HResult {
    let map = map_type(map)?;
    let key = read_string(c, kp, kl)?;
    let value = match value {
        Some((vp, vl)) => read_string(c, vp, vl)?,
        None => String::new(),
    };
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    let target: &mut Headers = stream.writable(map)?;
    match mutation {
        Mutation::Replace => target.replace(&key, &value),
        Mutation::Add => target.add(&key, &value),
        Mutation::Remove => target.remove(&key),
    }
    Ok(())
}

// === buffers ===

fn buffer(c: &Ctx<'_>, ty: BufferType) -> Option<Vec<u8>> {
    let state = c.data();
    let stream = state.stream();
    match ty {
        BufferType::VmConfiguration => Some(state.options.vm_configuration.clone()),
        BufferType::PluginConfiguration => state
            .configuring
            .then(|| state.options.configuration.clone()),
        BufferType::CallResponseBody => state.call_response.as_ref().map(|r| r.body.clone()),
        BufferType::RequestBody => Some(
            stream
                .filter(|s| s.request_body_open)
                .map(|s| s.request_body.clone())
                .unwrap_or_default(),
        ),
        BufferType::ResponseBody => Some(
            stream
                .filter(|s| s.response_body_open)
                .map(|s| s.response_body.clone())
                .unwrap_or_default(),
        ),
        BufferType::GrpcReceive => Some(
            state
                .call_response
                .as_ref()
                .filter(|r| r.grpc.is_some())
                .map(|r| r.body.clone())
                .unwrap_or_default(),
        ),
        BufferType::DownstreamData | BufferType::UpstreamData | BufferType::CallData => {
            Some(Vec::new())
        }
    }
}

fn get_buffer_bytes(c: &mut Ctx<'_>, ty: i32, start: i32, max: i32, pp: i32, sp: i32) -> HResult {
    let ty = BufferType::from_raw(ty).ok_or(Status::BadArgument)?;
    let data = buffer(c, ty).ok_or(Status::NotFound)?;
    let start = u32_of(start) as usize;
    let max = u32_of(max) as usize;
    if start.checked_add(max).is_none() {
        return Err(Status::BadArgument.into());
    }
    let end = (start + max).min(data.len());
    match data.get(start..end) {
        Some(slice) if !slice.is_empty() => copy_out(c, slice, pp, sp),
        _ => Ok(()),
    }
}

fn set_buffer_bytes(c: &mut Ctx<'_>, ty: i32, start: i32, len: i32, dp: i32, dl: i32) -> HResult {
    let ty = BufferType::from_raw(ty).ok_or(Status::BadArgument)?;
    let data = read(c, dp, dl)?;
    let (start, len) = (u32_of(start) as usize, u32_of(len) as usize);
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    let buffer = match ty {
        BufferType::RequestBody if stream.request_body_open => &mut stream.request_body,
        BufferType::ResponseBody if stream.response_body_open => &mut stream.response_body,
        _ => return Err(Status::BadArgument.into()),
    };
    // Envoy's Buffer::copyFrom: replace a prefix (start 0) or append (start at the end).
    if start == 0 {
        buffer.drain(..len.min(buffer.len()));
        buffer.splice(0..0, data);
    } else if start >= buffer.len() {
        buffer.extend_from_slice(&data);
    } else {
        return Err(Status::BadArgument.into());
    }
    Ok(())
}

// === stream control ===

fn continue_stream(c: &mut Ctx<'_>, ty: Option<StreamType>) -> HResult {
    let ty = ty.ok_or(Status::BadArgument)?;
    if ty == StreamType::Upstream {
        return Err(Status::Unimplemented.into());
    }
    if let Some(stream) = c.data_mut().stream_mut() {
        match ty {
            StreamType::Request => stream.resume_request = true,
            StreamType::Response => stream.resume_response = true,
            _ => return Ok(()),
        }
        // Envoy clears its request-direction pointers right away (context.cc continueStream).
        stream.close_request_maps();
    }
    Ok(())
}

fn close_stream(c: &mut Ctx<'_>, ty: Option<StreamType>) -> HResult {
    let ty = ty.ok_or(Status::BadArgument)?;
    if let Some(stream) = c.data_mut().stream_mut()
        && matches!(ty, StreamType::Request | StreamType::Response)
    {
        stream.reset = true;
    }
    Ok(())
}

fn send_local_response(
    c: &mut Ctx<'_>,
    status: i32,
    details: (i32, i32),
    body: (i32, i32),
    headers: (i32, i32),
) -> HResult {
    let details = read_string(c, details.0, details.1)?;
    let body = read(c, body.0, body.1)?;
    let headers = read(c, headers.0, headers.1)?;
    let headers = decode_pairs(&headers).ok_or(Status::BadArgument)?;
    let callback = c.data().callback.trim_start_matches("proxy_").to_string();
    let Some(stream) = c.data_mut().stream_mut() else {
        super::report(
            c,
            "proxy_send_local_response outside an HTTP context has no effect (as in Envoy)".into(),
        );
        return Ok(());
    };
    let sent_in = callback;
    stream.pending_reply = Some(LocalReply {
        status: u16::try_from(status).unwrap_or(500),
        headers: headers
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect(),
        body,
        details: details.split_whitespace().collect::<Vec<_>>().join("_"),
        sent_in,
    });
    Ok(())
}

// === callouts ===

fn http_call(c: &mut Ctx<'_>, parts: [(i32, i32); 4], timeout: i32, token_ptr: i32) -> HResult {
    let [cluster, headers, body, trailers] = parts;
    let cluster = read_string(c, cluster.0, cluster.1)?;
    let headers = read(c, headers.0, headers.1)?;
    let body = read(c, body.0, body.1)?;
    let trailers = read(c, trailers.0, trailers.1)?;
    let to_strings = |pairs: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(String, String)> {
        pairs
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    };
    let headers = to_strings(decode_pairs(&headers).ok_or(Status::BadArgument)?);
    let _trailers = to_strings(decode_pairs(&trailers).ok_or(Status::BadArgument)?);
    if timeout < 0 {
        return Err(Status::BadArgument.into());
    }
    if !c.data().options.cluster_exists(&cluster) {
        super::report(
            c,
            format!(
                "proxy_http_call to unknown cluster `{cluster}` answered BadArgument (declare it \
                 with a callout rule or PluginOptions::cluster)"
            ),
        );
        return Err(Status::BadArgument.into());
    }
    let has = |name: &str| headers.iter().any(|(k, _)| k == name);
    if !has(":path") || !has(":method") || !has(":authority") {
        return Err(Status::BadArgument.into());
    }
    let timeout = Duration::from_millis(u64::from(u32_of(timeout)));
    let token = place(c, cluster, headers, body, timeout, false)?;
    write_u32(c, token_ptr, token)
}

/// A unary gRPC call: recorded and answered as Envoy sends it (`POST /<service>/<method>`).
/// Like Envoy, an unknown cluster is refused with `ParseFailure` (Envoy first tries to read
/// the argument as a `GrpcService` proto, then as a cluster name).
fn grpc_call(c: &mut Ctx<'_>, parts: [(i32, i32); 5], timeout: i32, token_ptr: i32) -> HResult {
    let [cluster, service, method, metadata, message] = parts;
    let cluster = read_string(c, cluster.0, cluster.1)?;
    let service = read_string(c, service.0, service.1)?;
    let method = read_string(c, method.0, method.1)?;
    let metadata = read(c, metadata.0, metadata.1)?;
    let message = read(c, message.0, message.1)?;
    let metadata = if metadata.is_empty() {
        Vec::new()
    } else {
        decode_pairs(&metadata).ok_or(Status::BadArgument)?
    };
    if !c.data().options.cluster_exists(&cluster) {
        super::report(
            c,
            format!(
                "proxy_grpc_call to unknown cluster `{cluster}` answered ParseFailure (declare it \
                 with a callout rule or PluginOptions::cluster)"
            ),
        );
        return Err(Status::ParseFailure.into());
    }
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), format!("/{service}/{method}")),
        (":authority".to_string(), cluster.clone()),
        ("content-type".to_string(), "application/grpc".to_string()),
    ];
    headers.extend(metadata.into_iter().map(|(k, v)| {
        (
            String::from_utf8_lossy(&k).to_ascii_lowercase(),
            String::from_utf8_lossy(&v).into_owned(),
        )
    }));
    let timeout = Duration::from_millis(u64::from(u32_of(timeout)));
    let token = place(c, cluster, headers, message, timeout, true)?;
    write_u32(c, token_ptr, token)
}

/// Records a callout and schedules its answer; returns its token.
fn place(
    c: &mut Ctx<'_>,
    cluster: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
    grpc: bool,
) -> HResult<u32> {
    let state = c.data_mut();
    state.next_http_call += 1;
    let token = state.next_http_call;
    let (vm, context) = (state.index, state.active);
    let options = state.options.clone();
    let world = state.world.clone();
    let mut world = world
        .try_borrow_mut()
        .map_err(|_| Status::InternalFailure)?;
    let path = crate::request::header(&headers, ":path")
        .unwrap_or("")
        .to_string();
    let rule = callout::pick(
        &options.callouts,
        &mut world.callout_rule_uses,
        &cluster,
        &path,
    );
    let (delay, response) = match rule.map(|r| (r.delay, &r.answer)) {
        Some((
            delay,
            CalloutAnswer::Respond {
                status,
                headers,
                body,
            },
        )) => (
            Some(delay),
            CallResponse::respond(*status, headers, body.as_bytes()),
        ),
        Some((delay, CalloutAnswer::Reset)) => (Some(delay), CallResponse::reset()),
        Some((delay, CalloutAnswer::Grpc { status, message })) if grpc => {
            (Some(delay), CallResponse::grpc(*status, message))
        }
        Some((delay, CalloutAnswer::Grpc { .. })) => (Some(delay), CallResponse::reset()),
        Some((_, CalloutAnswer::Forward { .. })) if grpc => {
            // Forwarding needs an HTTP/2 gRPC client, which this host does not carry.
            (Some(Duration::ZERO), CallResponse::reset())
        }
        Some((_, CalloutAnswer::Forward { url })) => (
            Some(Duration::ZERO),
            callout::forward(url, &headers, &body, timeout),
        ),
        Some((_, CalloutAnswer::Timeout)) | None => (None, CallResponse::timeout()),
    };
    // An answer slower than the timeout becomes the router's timeout reply.
    let (at, response) = match delay {
        Some(delay) if timeout.is_zero() || delay < timeout => (Some(delay), response),
        _ if timeout.is_zero() => (None, response),
        _ => (Some(timeout), CallResponse::timeout()),
    };
    let response = if grpc { response.into_grpc() } else { response };
    let index = world.callouts.len();
    let at_ms = world.elapsed_ms();
    world.callouts.push(Callout {
        token,
        vm,
        context_id: context,
        cluster,
        headers,
        body,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        at_ms,
        state: CalloutState::Pending,
    });
    if let Some(at) = at {
        world.schedule(
            at,
            Event::CalloutAnswer {
                callout: index,
                response,
            },
        );
    }
    drop(world);
    Ok(token)
}
