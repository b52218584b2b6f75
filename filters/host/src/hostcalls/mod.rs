//! The imports a proxy-wasm module calls: the `env` hostcalls of ABI 0.2.1 and the WASI
//! preview 1 calls a Rust module makes.
//!
//! Each hostcall mirrors Envoy's implementation (`context.cc`, proxy-wasm-cpp-host's
//! `exports.cc`): same statuses in the same situations, so a module that would get
//! `BadArgument` (and, with the Rust SDK, panic) in Envoy gets it here too. Guest pointers are
//! bounds-checked; data going back to the guest is allocated through the module's own
//! `proxy_on_memory_allocate`. Imports this host does not implement are linked to stubs that
//! return `Unimplemented` (WASI: `ENOSYS`) and are reported, so a module using them fails
//! predictably instead of crashing the host.

mod http;
mod state;
mod wasi;

use std::collections::HashSet;

use wasmtime::{Caller, ExternType, Linker, Module, Val, ValType};

use crate::abi::Status;
use crate::options::LogLevel;
use crate::vm::{VmState, len_i32};

pub(crate) type Ctx<'a> = Caller<'a, VmState>;

/// A hostcall's failure: a status for the guest, or a trap (from a nested guest call).
pub(crate) enum Fail {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fail {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

pub(crate) type HResult<T = ()> = std::result::Result<T, Fail>;

/// Converts a hostcall result to the `i32` status the guest gets (or a trap).
pub(crate) fn finish(result: HResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(Status::Ok.code()),
        Err(Fail::Status(status)) => Ok(status.code()),
        Err(Fail::Trap(err)) => Err(err),
    }
}

/// Builds the linker for `module`: every hostcall, plus reported stubs for unknown imports.
pub(crate) fn link(module: &Module) -> wasmtime::Result<Linker<VmState>> {
    let mut linker = Linker::new(module.engine());
    let mut defined = HashSet::new();
    {
        let mut registry = Registry {
            linker: &mut linker,
            defined: &mut defined,
        };
        http::add(&mut registry)?;
        state::add(&mut registry)?;
        wasi::add(&mut registry)?;
    }
    for import in module.imports() {
        let key = (import.module().to_string(), import.name().to_string());
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        if defined.contains(&key) {
            continue;
        }
        let is_wasi = import.module() != "env";
        let label = format!("{}::{}", import.module(), import.name());
        let result_types: Vec<ValType> = ty.results().collect();
        let returns_i32 = matches!(result_types.as_slice(), [ValType::I32]);
        linker.func_new(
            import.module(),
            import.name(),
            ty.clone(),
            move |mut caller: Ctx<'_>, _params, results| {
                let answer = if is_wasi { "ENOSYS" } else { "Unimplemented" };
                report(
                    &mut caller,
                    format!("{label} is not implemented by this host (answered {answer})"),
                );
                if returns_i32 && let Some(slot) = results.first_mut() {
                    *slot = Val::I32(if is_wasi {
                        52
                    } else {
                        Status::Unimplemented.code()
                    });
                } else {
                    // Zero of each declared type (an i64 or f32 result must not get an i32).
                    for (slot, ty) in results.iter_mut().zip(&result_types) {
                        *slot = Val::default_for_ty(ty).unwrap_or(Val::I32(0));
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(linker)
}

/// Records a report once and logs it at warn level.
pub(crate) fn report(caller: &mut Ctx<'_>, what: String) {
    let (vm, context) = (caller.data().index, caller.data().active);
    if let Ok(mut world) = caller.data().world.try_borrow_mut()
        && world.reports.insert(what.clone())
    {
        world.log(
            LogLevel::Warn,
            format!("meshguard-wasm-host: {what}"),
            vm,
            context,
        );
    }
}

/// Registers names as they are defined, so unknown imports can be stubbed.
pub(crate) struct Registry<'a> {
    pub linker: &'a mut Linker<VmState>,
    pub defined: &'a mut HashSet<(String, String)>,
}

impl Registry<'_> {
    pub(crate) fn note(&mut self, module: &str, name: &str) {
        self.defined.insert((module.to_string(), name.to_string()));
    }
}

/// Defines a hostcall and notes its name.
macro_rules! define {
    ($registry:expr, $module:expr, $name:literal, $func:expr) => {{
        $registry.linker.func_wrap($module, $name, $func)?;
        $registry.note($module, $name);
    }};
}
pub(crate) use define;

// === guest memory ===

/// An `i32` from the guest as the `u32` it stands for (pointers, sizes, ids, CAS tokens).
pub(crate) fn u32_of(value: i32) -> u32 {
    u32::from_ne_bytes(value.to_ne_bytes())
}

fn guest(value: i32) -> usize {
    u32_of(value) as usize
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> HResult<Vec<u8>> {
    let (ptr, len) = (guest(ptr), guest(len));
    if len == 0 {
        return Ok(Vec::new());
    }
    let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let end = ptr.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data(&*caller)
        .get(ptr..end)
        .map(<[u8]>::to_vec)
        .ok_or(Fail::Status(Status::InvalidMemoryAccess))
}

/// Reads a UTF-8 string (lossy: names and keys are treated as text, as Envoy does).
pub(crate) fn read_string(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> HResult<String> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

/// Writes bytes at `ptr`.
pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> HResult {
    if bytes.is_empty() {
        return Ok(());
    }
    let ptr = guest(ptr);
    let memory = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let end = ptr
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    memory
        .data_mut(&mut *caller)
        .get_mut(ptr..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> HResult {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> HResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates guest memory with the module's allocator, copies `bytes` there and stores the
/// pointer and size at `ptr_ptr` / `size_ptr` (Envoy's `copyToPointerSize`).
pub(crate) fn copy_out(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> HResult {
    let alloc = caller.data().alloc.clone().ok_or(Status::InternalFailure)?;
    let ptr = alloc
        .call(&mut *caller, len_i32(bytes.len()))
        .map_err(Fail::Trap)?;
    if ptr == 0 && !bytes.is_empty() {
        return Err(Status::InvalidMemoryAccess.into());
    }
    write(caller, ptr, bytes)?;
    write_u32(caller, ptr_ptr, u32::from_ne_bytes(ptr.to_ne_bytes()))?;
    write_u32(
        caller,
        size_ptr,
        u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    )
}
