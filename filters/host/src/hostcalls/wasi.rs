//! The WASI preview 1 calls a proxy-wasm module built for wasm32-wasip1 makes, implemented
//! the way proxy-wasm-cpp-host does: stdout/stderr become log lines (info/error), clocks read
//! the virtual clock, randomness comes from the plugin's seeded source, the environment is the
//! configured one, and there is no filesystem (no preopened directories).

use std::time::UNIX_EPOCH;

use super::{Ctx, Fail, HResult, Registry, define, read, u32_of, write, write_u32, write_u64};
use crate::abi::Status;
use crate::options::LogLevel;
use crate::vm::ProcExit;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ESPIPE: i32 = 70;

/// Turns a memory failure into `EFAULT` (WASI's answer), keeping traps.
fn errno(result: HResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(SUCCESS),
        Err(Fail::Status(_)) => Ok(EFAULT),
        Err(Fail::Trap(err)) => Err(err),
    }
}

pub(super) fn add(r: &mut Registry<'_>) -> wasmtime::Result<()> {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        define!(
            r,
            module,
            "fd_write",
            |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, written: i32| {
                fd_write(&mut c, fd, iovs, n, written)
            }
        );
        define!(
            r,
            module,
            "fd_read",
            |mut c: Ctx<'_>, fd: i32, _iovs: i32, _n: i32, read: i32| {
                if fd != 0 {
                    return Ok(EBADF);
                }
                errno(write_u32(&mut c, read, 0))
            }
        );
        define!(r, module, "fd_close", |_c: Ctx<'_>, fd: i32| {
            Ok(if (0..=2).contains(&fd) {
                SUCCESS
            } else {
                EBADF
            })
        });
        define!(
            r,
            module,
            "fd_seek",
            |_c: Ctx<'_>, fd: i32, _off: i64, _whence: i32, _r: i32| {
                Ok(if (0..=2).contains(&fd) { ESPIPE } else { EBADF })
            }
        );
        define!(
            r,
            module,
            "fd_fdstat_get",
            |mut c: Ctx<'_>, fd: i32, p: i32| {
                if !(0..=2).contains(&fd) {
                    return Ok(EBADF);
                }
                // filetype CHARACTER_DEVICE, no flags, all rights.
                let mut stat = [0u8; 24];
                stat[0] = 2;
                stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
                errno(write(&mut c, p, &stat))
            }
        );
        define!(
            r,
            module,
            "fd_prestat_get",
            |_c: Ctx<'_>, _fd: i32, _p: i32| Ok(EBADF)
        );
        define!(
            r,
            module,
            "fd_prestat_dir_name",
            |_c: Ctx<'_>, _fd: i32, _p: i32, _l: i32| { Ok(EBADF) }
        );
        define!(
            r,
            module,
            "environ_sizes_get",
            |mut c: Ctx<'_>, count: i32, size: i32| {
                let entries = environment(&c);
                let total: usize = entries.iter().map(|e| e.len() + 1).sum();
                errno(
                    write_u32(&mut c, count, len(entries.len()))
                        .and_then(|()| write_u32(&mut c, size, len(total))),
                )
            }
        );
        define!(
            r,
            module,
            "environ_get",
            |mut c: Ctx<'_>, ptrs: i32, buf: i32| {
                let entries = environment(&c);
                errno(write_strings(&mut c, &entries, ptrs, buf))
            }
        );
        define!(
            r,
            module,
            "args_sizes_get",
            |mut c: Ctx<'_>, count: i32, size: i32| {
                errno(write_u32(&mut c, count, 0).and_then(|()| write_u32(&mut c, size, 0)))
            }
        );
        define!(
            r,
            module,
            "args_get",
            |_c: Ctx<'_>, _ptrs: i32, _buf: i32| Ok(SUCCESS)
        );
        define!(
            r,
            module,
            "clock_time_get",
            |mut c: Ctx<'_>, id: i32, _precision: i64, p: i32| {
                let Some(nanos) = clock(&c, id) else {
                    return Ok(EINVAL);
                };
                errno(write_u64(&mut c, p, nanos))
            }
        );
        define!(
            r,
            module,
            "clock_res_get",
            |mut c: Ctx<'_>, id: i32, p: i32| {
                if !(0..=3).contains(&id) {
                    return Ok(EINVAL);
                }
                errno(write_u64(&mut c, p, 1_000))
            }
        );
        define!(r, module, "random_get", |mut c: Ctx<'_>, p: i32, l: i32| {
            let mut bytes = vec![0u8; u32_of(l) as usize];
            c.data().world.borrow_mut().fill_random(&mut bytes);
            errno(write(&mut c, p, &bytes))
        });
        define!(r, module, "sched_yield", |_c: Ctx<'_>| Ok(SUCCESS));
        define!(
            r,
            module,
            "poll_oneoff",
            |_c: Ctx<'_>, _i: i32, _o: i32, _n: i32, _r: i32| { Ok(ENOSYS) }
        );
        define!(r, module, "proc_exit", |_c: Ctx<'_>,
                                         code: i32|
         -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(ProcExit(code)))
        });
    }
    Ok(())
}

fn len(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn fd_write(
    c: &mut Ctx<'_>,
    fd: i32,
    iovs: i32,
    count: i32,
    written: i32,
) -> wasmtime::Result<i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(EBADF),
    };
    let mut data = Vec::new();
    for index in 0..count.max(0) {
        let Ok(iov) = read(c, iovs.wrapping_add(index.wrapping_mul(8)), 8) else {
            return Ok(EFAULT);
        };
        let field = |at: usize| -> i32 {
            let bytes: [u8; 4] = iov
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 4]);
            i32::from_le_bytes(bytes)
        };
        match read(c, field(0), field(4)) {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(_) => return Ok(EFAULT),
        }
    }
    let message = String::from_utf8_lossy(&data).trim_end().to_string();
    if !message.is_empty() {
        let (vm, context) = (c.data().index, c.data().active);
        c.data().world.borrow_mut().log(level, message, vm, context);
    }
    errno(write_u32(c, written, len(data.len())))
}

fn environment(c: &Ctx<'_>) -> Vec<String> {
    c.data()
        .options
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn write_strings(c: &mut Ctx<'_>, entries: &[String], ptrs: i32, buf: i32) -> HResult {
    let mut offset = buf;
    for (index, entry) in entries.iter().enumerate() {
        let slot = ptrs.wrapping_add(i32::try_from(index * 4).map_err(|_| Status::BadArgument)?);
        write_u32(c, slot, u32_of(offset))?;
        let mut bytes = entry.as_bytes().to_vec();
        bytes.push(0);
        write(c, offset, &bytes)?;
        offset = offset.wrapping_add(i32::try_from(bytes.len()).map_err(|_| Status::BadArgument)?);
    }
    Ok(())
}

/// Realtime reads the virtual wall clock; the monotonic and CPU clocks count virtual time
/// since the plugin started (from an arbitrary non-zero base).
fn clock(c: &Ctx<'_>, id: i32) -> Option<u64> {
    let world = c.data().world.borrow();
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    match id {
        0 => Some(nanos(world.now().duration_since(UNIX_EPOCH).ok()?)),
        1..=3 => Some(1_000_000_000u64.saturating_add(nanos(world.elapsed))),
        _ => None,
    }
}
