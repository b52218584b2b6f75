//! Hostcalls about everything but the stream: logs, time and ticks, properties, shared data
//! and queues, metrics, foreign functions, the effective context and call status.

use std::time::{Duration, UNIX_EPOCH};

use super::{
    Ctx, HResult, Registry, copy_out, define, finish, read, read_string, u32_of, write_u32,
    write_u64,
};
use crate::abi::{MetricType, Status, decode_path};
use crate::options::LogLevel;
use crate::properties::{self, Scope};

pub(super) fn add(r: &mut Registry<'_>) -> wasmtime::Result<()> {
    define!(
        r,
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, p: i32, l: i32| { finish(log(&mut c, level, p, l)) }
    );
    define!(r, "env", "proxy_get_log_level", |mut c: Ctx<'_>, p: i32| {
        let level = c.data().options.log_level.raw();
        finish(write_u32(&mut c, p, u32_of(level)))
    });
    define!(
        r,
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, p: i32| {
            let now = c.data().world.borrow().now();
            let nanos = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            finish(write_u64(&mut c, p, nanos))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, ms: i32| {
            let period = Duration::from_millis(u64::from(u32_of(ms)));
            let elapsed = c.data().world.borrow().elapsed;
            let state = c.data_mut();
            state.tick_period = (!period.is_zero()).then_some(period);
            state.next_tick = state.tick_period.map(|p| elapsed + p);
            Ok(Status::Ok.code())
        }
    );
    define!(
        r,
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, p: i32, l: i32, pp: i32, sp: i32| {
            finish(get_property(&mut c, p, l, pp, sp))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, p: i32, l: i32, vp: i32, vl: i32| {
            finish(set_property(&mut c, p, l, vp, vl))
        }
    );
    define!(
        r,
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, pp: i32, sp: i32, cas: i32| {
            finish(get_shared_data(&mut c, kp, kl, pp, sp, cas))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| {
            finish(set_shared_data(&mut c, kp, kl, vp, vl, cas))
        }
    );
    define!(
        r,
        "env",
        "proxy_register_shared_queue",
        |mut c: Ctx<'_>, p: i32, l: i32, rp: i32| { finish(register_queue(&mut c, p, l, rp)) }
    );
    define!(
        r,
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Ctx<'_>, vp: i32, vl: i32, np: i32, nl: i32, rp: i32| {
            finish(resolve_queue(&mut c, (vp, vl), (np, nl), rp))
        }
    );
    define!(
        r,
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Ctx<'_>, id: i32, pp: i32, sp: i32| { finish(dequeue(&mut c, id, pp, sp)) }
    );
    define!(
        r,
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Ctx<'_>, id: i32, p: i32, l: i32| { finish(enqueue(&mut c, id, p, l)) }
    );
    define!(
        r,
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, ty: i32, p: i32, l: i32, rp: i32| {
            finish(define_metric(&mut c, ty, p, l, rp))
        }
    );
    define!(
        r,
        "env",
        "proxy_increment_metric",
        |mut c: Ctx<'_>, id: i32, offset: i64| { finish(increment_metric(&mut c, id, offset)) }
    );
    define!(
        r,
        "env",
        "proxy_record_metric",
        |mut c: Ctx<'_>, id: i32, value: i64| { finish(record_metric(&mut c, id, value)) }
    );
    define!(
        r,
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: i32, rp: i32| { finish(get_metric(&mut c, id, rp)) }
    );
    define!(
        r,
        "env",
        "proxy_call_foreign_function",
        |mut c: Ctx<'_>, np: i32, nl: i32, ap: i32, al: i32, pp: i32, sp: i32| {
            finish(call_foreign(&mut c, (np, nl), (ap, al), pp, sp))
        }
    );
    define!(
        r,
        "env",
        "proxy_set_effective_context",
        |mut c: Ctx<'_>, id: i32| {
            let id = u32_of(id);
            let state = c.data_mut();
            if id == state.root_context || state.streams.contains_key(&id) {
                state.active = id;
                Ok(Status::Ok.code())
            } else {
                Ok(Status::BadArgument.code())
            }
        }
    );
    define!(r, "env", "proxy_done", |_c: Ctx<'_>| Ok(Status::Ok.code()));
    define!(
        r,
        "env",
        "proxy_get_status",
        |mut c: Ctx<'_>, cp: i32, pp: i32, sp: i32| {
            let response = c.data().call_response.as_ref();
            let failed = response.is_some_and(|r| r.failed);
            let grpc = response.and_then(|r| r.grpc);
            let (code, message): (u32, &[u8]) = match grpc {
                Some(status) => (status, b""),
                None if failed => (11, b"reset"),
                None => (0, b""),
            };
            finish(write_u32(&mut c, cp, code).and_then(|()| copy_out(&mut c, message, pp, sp)))
        }
    );
    Ok(())
}

fn log(c: &mut Ctx<'_>, level: i32, p: i32, l: i32) -> HResult {
    let level = LogLevel::from_raw(level).ok_or(Status::BadArgument)?;
    let message = read_string(c, p, l)?;
    let (vm, context) = (c.data().index, c.data().active);
    c.data().world.borrow_mut().log(level, message, vm, context);
    Ok(())
}

fn get_property(c: &mut Ctx<'_>, p: i32, l: i32, pp: i32, sp: i32) -> HResult {
    let path = decode_path(&read(c, p, l)?);
    let value = {
        let state = c.data();
        let scope = Scope {
            options: &state.options,
            stream: state.stream(),
            started: state.world.borrow().now(),
        };
        properties::lookup(&scope, &path)?
    };
    copy_out(c, &value, pp, sp)
}

fn set_property(c: &mut Ctx<'_>, p: i32, l: i32, vp: i32, vl: i32) -> HResult {
    let path = decode_path(&read(c, p, l)?).join(".");
    let value = read(c, vp, vl)?;
    let stream = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
    stream.filter_state.insert(path, value);
    Ok(())
}

// === shared data and queues ===

fn get_shared_data(c: &mut Ctx<'_>, kp: i32, kl: i32, pp: i32, sp: i32, cas_ptr: i32) -> HResult {
    let key = read_string(c, kp, kl)?;
    let entry = c
        .data()
        .world
        .borrow()
        .shared_get(&c.data().options.vm_id, &key);
    let (value, cas) = entry.ok_or(Status::NotFound)?;
    copy_out(c, &value, pp, sp)?;
    write_u32(c, cas_ptr, cas)
}

fn set_shared_data(c: &mut Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> HResult {
    let key = read_string(c, kp, kl)?;
    let value = read(c, vp, vl)?;
    let vm_id = c.data().options.vm_id.clone();
    c.data()
        .world
        .borrow_mut()
        .shared_set(&vm_id, &key, &value, u32_of(cas))?;
    Ok(())
}

fn register_queue(c: &mut Ctx<'_>, p: i32, l: i32, rp: i32) -> HResult {
    let name = read_string(c, p, l)?;
    let state = c.data();
    let owner = (state.index, state.root_context);
    let token = state
        .world
        .borrow_mut()
        .register_queue(&state.options.vm_id, &name, owner);
    write_u32(c, rp, token)
}

fn resolve_queue(c: &mut Ctx<'_>, vm_id: (i32, i32), name: (i32, i32), rp: i32) -> HResult {
    let vm_id = read_string(c, vm_id.0, vm_id.1)?;
    let name = read_string(c, name.0, name.1)?;
    let vm_id = if vm_id.is_empty() {
        c.data().options.vm_id.clone()
    } else {
        vm_id
    };
    let token = c
        .data()
        .world
        .borrow()
        .resolve_queue(&vm_id, &name)
        .ok_or(Status::NotFound)?;
    write_u32(c, rp, token)
}

fn dequeue(c: &mut Ctx<'_>, id: i32, pp: i32, sp: i32) -> HResult {
    let item = {
        let mut world = c.data().world.borrow_mut();
        let queue = world.queue_mut(u32_of(id)).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)?
    };
    copy_out(c, &item, pp, sp)
}

fn enqueue(c: &mut Ctx<'_>, id: i32, p: i32, l: i32) -> HResult {
    let value = read(c, p, l)?;
    c.data().world.borrow_mut().enqueue(u32_of(id), value)?;
    Ok(())
}

// === metrics ===

fn metric_kind(id: u32) -> Option<MetricType> {
    MetricType::from_raw(i32::try_from(id & 3).ok()?)
}

fn define_metric(c: &mut Ctx<'_>, ty: i32, p: i32, l: i32, rp: i32) -> HResult {
    let kind = MetricType::from_raw(ty).ok_or(Status::BadArgument)?;
    let name = read_string(c, p, l)?;
    let state = c.data_mut();
    let slot = kind.raw() as usize;
    let id = state.next_metric_id.get(slot).copied().unwrap_or(0);
    if let Some(next) = state.next_metric_id.get_mut(slot) {
        *next += 4;
    }
    state.metric_ids.insert(id, name.clone());
    state.world.borrow_mut().metric_mut(&name, kind);
    write_u32(c, rp, id)
}

fn with_metric(
    c: &mut Ctx<'_>,
    id: i32,
    apply: impl FnOnce(MetricType, &mut crate::world::Metric) -> Result<(), Status>,
) -> HResult {
    let id = u32_of(id);
    let kind = metric_kind(id).ok_or(Status::BadArgument)?;
    let name = c
        .data()
        .metric_ids
        .get(&id)
        .cloned()
        .ok_or(Status::NotFound)?;
    let mut world = c.data().world.borrow_mut();
    apply(kind, world.metric_mut(&name, kind))?;
    Ok(())
}

fn increment_metric(c: &mut Ctx<'_>, id: i32, offset: i64) -> HResult {
    with_metric(c, id, |kind, metric| match kind {
        MetricType::Counter if offset > 0 => {
            metric.value = metric.value.saturating_add(offset);
            Ok(())
        }
        MetricType::Gauge => {
            metric.value = metric.value.saturating_add(offset);
            Ok(())
        }
        _ => Err(Status::BadArgument),
    })
}

fn record_metric(c: &mut Ctx<'_>, id: i32, value: i64) -> HResult {
    let value = u64::from_ne_bytes(value.to_ne_bytes());
    with_metric(c, id, |kind, metric| {
        let signed = i64::try_from(value).unwrap_or(i64::MAX);
        match kind {
            MetricType::Counter => metric.value = metric.value.saturating_add(signed),
            MetricType::Gauge => metric.value = signed,
            MetricType::Histogram => {
                metric.samples.push(value);
                metric.value = i64::try_from(metric.samples.len()).unwrap_or(i64::MAX);
            }
        }
        Ok(())
    })
}

fn get_metric(c: &mut Ctx<'_>, id: i32, rp: i32) -> HResult {
    let mut value = 0;
    with_metric(c, id, |kind, metric| match kind {
        MetricType::Histogram => Err(Status::BadArgument),
        _ => {
            value = u64::from_ne_bytes(metric.value.to_ne_bytes());
            Ok(())
        }
    })?;
    write_u64(c, rp, value)
}

// === foreign functions ===

fn call_foreign(c: &mut Ctx<'_>, name: (i32, i32), args: (i32, i32), pp: i32, sp: i32) -> HResult {
    let name = read_string(c, name.0, name.1)?;
    let args = read(c, args.0, args.1)?;
    let Some(function) = c.data().options.foreign_functions.get(&name).cloned() else {
        super::report(
            c,
            format!("foreign function `{name}` is not registered (answered NotFound)"),
        );
        return Err(Status::NotFound.into());
    };
    let result = function(&args)?;
    if result.is_empty() {
        return Ok(());
    }
    copy_out(c, &result, pp, sp)
}
