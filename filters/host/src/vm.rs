//! One VM: a wasmtime store and instance of the module, the state its hostcalls see, and the
//! guarded calls into its `proxy_on_*` exports.
//!
//! Every call gets a fresh fuel budget, so a module that loops fails that call with a clear
//! message instead of hanging the test; memory growth is capped by a limiter that remembers
//! hitting the cap, so the resulting abort is explained as the memory limit. A VM whose call
//! traps is marked failed, as Envoy marks a crashed VM: later calls are refused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use wasmtime::{Memory, ResourceLimiter, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::callout::CallResponse;
use crate::error::{HostError, Result};
use crate::module::{WasmModule, engine};
use crate::options::PluginOptions;
use crate::stream::Stream;
use crate::world::World;

/// The `proc_exit` WASI call, surfaced as a trap.
#[derive(Debug)]
pub(crate) struct ProcExit(pub i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the module called proc_exit({})", self.0)
    }
}

impl std::error::Error for ProcExit {}

/// Caps linear memory and remembers refusing a growth.
pub(crate) struct Limiter {
    pub memory_limit: usize,
    pub refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What hostcalls see.
pub(crate) struct VmState {
    pub world: Rc<RefCell<World>>,
    pub options: Rc<PluginOptions>,
    pub index: usize,
    pub limiter: Limiter,
    pub root_context: u32,
    pub active: u32,
    pub next_context: u32,
    pub streams: HashMap<u32, Stream>,
    pub call_response: Option<CallResponse>,
    pub starting: bool,
    pub configuring: bool,
    pub tick_period: Option<Duration>,
    pub next_tick: Option<Duration>,
    pub next_http_call: u32,
    pub metric_ids: HashMap<u32, String>,
    pub next_metric_id: [u32; 3],
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    pub failed: Option<String>,
    /// The export being called (for reports).
    pub callback: &'static str,
}

impl VmState {
    /// The stream of the active context, if it is an HTTP context.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.active)
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.active)
    }
}

type Export<P, R> = Option<TypedFunc<P, R>>;

/// The callbacks a proxy-wasm module may export (ABI 0.2.1 signatures).
pub(crate) struct Exports {
    initialize: Export<(), ()>,
    start: Export<(), ()>,
    on_context_create: Export<(i32, i32), ()>,
    on_vm_start: Export<(i32, i32), i32>,
    on_configure: Export<(i32, i32), i32>,
    pub on_tick: Export<i32, ()>,
    pub on_queue_ready: Export<(i32, i32), ()>,
    pub on_request_headers: Export<(i32, i32, i32), i32>,
    pub on_request_body: Export<(i32, i32, i32), i32>,
    pub on_request_trailers: Export<(i32, i32), i32>,
    pub on_response_headers: Export<(i32, i32, i32), i32>,
    pub on_response_body: Export<(i32, i32, i32), i32>,
    pub on_response_trailers: Export<(i32, i32), i32>,
    pub on_http_call_response: Export<(i32, i32, i32, i32, i32), ()>,
    pub on_grpc_receive: Export<(i32, i32, i32), ()>,
    pub on_grpc_close: Export<(i32, i32, i32), ()>,
    pub on_log: Export<i32, ()>,
    pub on_done: Export<i32, i32>,
    pub on_delete: Export<i32, ()>,
}

/// A running instance of the module.
pub(crate) struct Vm {
    pub store: Store<VmState>,
    pub exports: Exports,
    name: String,
}

impl Vm {
    /// Instantiates the module into a new store; nothing in the module runs yet.
    pub(crate) fn new(
        module: &WasmModule,
        index: usize,
        world: Rc<RefCell<World>>,
        options: Rc<PluginOptions>,
    ) -> Result<Self> {
        let compiled = module.compiled();
        let name = compiled.name.clone();
        let state = VmState {
            world,
            index,
            limiter: Limiter {
                memory_limit: options.memory_limit,
                refused: false,
            },
            options: options.clone(),
            root_context: 1,
            active: 0,
            next_context: 2,
            streams: HashMap::new(),
            call_response: None,
            starting: false,
            configuring: false,
            tick_period: None,
            next_tick: None,
            next_http_call: 0,
            metric_ids: HashMap::new(),
            next_metric_id: [0, 1, 2],
            memory: None,
            alloc: None,
            failed: None,
            callback: "",
        };
        let mut store = Store::new(engine(), state);
        store.limiter(|state| &mut state.limiter);
        let instantiate_error = |reason: String| HostError::Instantiate {
            name: name.clone(),
            reason,
        };
        store
            .set_fuel(options.fuel)
            .map_err(|err| instantiate_error(format!("{err:#}")))?;
        let instance = compiled.pre.instantiate(&mut store).map_err(|err| {
            let hint = if store.data().limiter.refused {
                format!(
                    " (its initial memory exceeds the limit of {} bytes)",
                    options.memory_limit
                )
            } else {
                String::new()
            };
            instantiate_error(format!("{err:#}{hint}"))
        })?;
        let memory = instance.get_memory(&mut store, "memory");
        macro_rules! export {
            ($name:literal) => {{
                match instance.get_func(&mut store, $name) {
                    None => None,
                    Some(func) => match func.typed(&store) {
                        Ok(func) => Some(func),
                        Err(err) => {
                            return Err(instantiate_error(format!(
                                "export `{}` has an unexpected signature for proxy-wasm ABI \
                                 0.2.1: {err:#}",
                                $name
                            )));
                        }
                    },
                }
            }};
        }
        let alloc = match export!("proxy_on_memory_allocate") {
            Some(alloc) => Some(alloc),
            None => export!("malloc"),
        };
        let exports = Exports {
            initialize: export!("_initialize"),
            start: export!("_start"),
            on_context_create: export!("proxy_on_context_create"),
            on_vm_start: export!("proxy_on_vm_start"),
            on_configure: export!("proxy_on_configure"),
            on_tick: export!("proxy_on_tick"),
            on_queue_ready: export!("proxy_on_queue_ready"),
            on_request_headers: export!("proxy_on_request_headers"),
            on_request_body: export!("proxy_on_request_body"),
            on_request_trailers: export!("proxy_on_request_trailers"),
            on_response_headers: export!("proxy_on_response_headers"),
            on_response_body: export!("proxy_on_response_body"),
            on_response_trailers: export!("proxy_on_response_trailers"),
            on_http_call_response: export!("proxy_on_http_call_response"),
            on_grpc_receive: export!("proxy_on_grpc_receive"),
            on_grpc_close: export!("proxy_on_grpc_close"),
            on_log: export!("proxy_on_log"),
            on_done: export!("proxy_on_done"),
            on_delete: export!("proxy_on_delete"),
        };
        store.data_mut().memory = memory;
        store.data_mut().alloc = alloc;
        Ok(Self {
            store,
            exports,
            name,
        })
    }

    /// Runs the module's initialiser, creates the root context, and calls
    /// `proxy_on_vm_start`; returns false when the module refused to start.
    pub(crate) fn start(&mut self, vm_config_len: usize) -> Result<bool> {
        let start_failed = |name: &str, call: &str, reason: String| HostError::StartFailed {
            name: name.to_string(),
            call: call.to_string(),
            reason,
        };
        if let Some(init) = self.exports.initialize.clone() {
            self.call("_initialize", 0, &init, ())
                .map_err(|reason| start_failed(&self.name, "_initialize", reason))?;
        } else if let Some(start) = self.exports.start.clone() {
            match self.call("_start", 0, &start, ()) {
                Ok(()) => {}
                // A WASI command exiting with 0 is a normal end of `_start`.
                Err(reason) if reason.contains("proc_exit(0)") => {
                    self.store.data_mut().failed = None;
                }
                Err(reason) => return Err(start_failed(&self.name, "_start", reason)),
            }
        }
        let root = self.store.data().root_context;
        if let Some(create) = self.exports.on_context_create.clone() {
            self.call("proxy_on_context_create", root, &create, (as_i32(root), 0))
                .map_err(|reason| start_failed(&self.name, "proxy_on_context_create", reason))?;
        }
        let Some(vm_start) = self.exports.on_vm_start.clone() else {
            return Ok(true);
        };
        self.store.data_mut().starting = true;
        let started = self.call(
            "proxy_on_vm_start",
            root,
            &vm_start,
            (as_i32(root), len_i32(vm_config_len)),
        );
        self.store.data_mut().starting = false;
        started
            .map(|ok| ok != 0)
            .map_err(|reason| start_failed(&self.name, "proxy_on_vm_start", reason))
    }

    /// `proxy_on_configure`; `Ok(false)` when the filter rejected its configuration.
    pub(crate) fn configure(&mut self, config_len: usize) -> Result<bool> {
        let Some(configure) = self.exports.on_configure.clone() else {
            return Ok(true);
        };
        let root = self.store.data().root_context;
        self.store.data_mut().configuring = true;
        let result = self.call(
            "proxy_on_configure",
            root,
            &configure,
            (as_i32(root), len_i32(config_len)),
        );
        self.store.data_mut().configuring = false;
        result
            .map(|ok| ok != 0)
            .map_err(|reason| HostError::StartFailed {
                name: self.name.clone(),
                call: "proxy_on_configure".to_string(),
                reason,
            })
    }

    /// Creates an HTTP context and returns its id.
    pub(crate) fn create_stream(&mut self, stream: Stream) -> std::result::Result<u32, String> {
        let state = self.store.data_mut();
        let id = state.next_context;
        state.next_context += 1;
        state.streams.insert(id, stream);
        let root = state.root_context;
        if let Some(create) = self.exports.on_context_create.clone() {
            self.call(
                "proxy_on_context_create",
                id,
                &create,
                (as_i32(id), as_i32(root)),
            )?;
        }
        Ok(id)
    }

    /// Calls an export with a fresh fuel budget and `context` active; a trap fails the VM.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        export: &'static str,
        context: u32,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> std::result::Result<R, String> {
        if let Some(failure) = &self.store.data().failed {
            return Err(failure.clone());
        }
        let fuel = self.store.data().options.fuel;
        self.store.data_mut().active = context;
        self.store.data_mut().callback = export;
        if let Err(err) = self.store.set_fuel(fuel) {
            return Err(format!("{err:#}"));
        }
        match func.call(&mut self.store, params) {
            Ok(result) => Ok(result),
            Err(err) => {
                let message = describe(export, &err, self.store.data());
                self.store.data_mut().failed = Some(message.clone());
                Err(message)
            }
        }
    }

    /// Why the VM failed, if it did.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.store.data().failed.as_deref()
    }
}

/// Turns a wasmtime error from a call into a sentence about the module.
fn describe(export: &str, err: &wasmtime::Error, state: &VmState) -> String {
    if let Some(exit) = err.downcast_ref::<ProcExit>() {
        return format!("{export}: {exit}");
    }
    let memory = if state.limiter.refused {
        format!(
            " — the VM hit its memory limit of {} bytes (raise PluginOptions::memory_limit if \
             the filter legitimately needs more)",
            state.limiter.memory_limit
        )
    } else {
        String::new()
    };
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "{export} ran out of fuel after {} instructions: the callback loops or does far too \
             much work (budget: PluginOptions::fuel)",
            state.options.fuel
        ),
        Some(Trap::StackOverflow) => {
            format!("{export} overflowed the wasm stack (unbounded recursion?)")
        }
        Some(Trap::UnreachableCodeReached) => format!(
            "{export} trapped on `unreachable` (a Rust panic or abort in the module; its \
             critical log line says why){memory}"
        ),
        Some(trap) => format!("{export} trapped: {trap}{memory}"),
        None => format!("{export} failed: {err:#}{memory}"),
    }
}

pub(crate) fn as_i32(value: u32) -> i32 {
    i32::from_ne_bytes(value.to_ne_bytes())
}

pub(crate) fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}
