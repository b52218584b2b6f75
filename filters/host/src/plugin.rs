//! The test-facing API: start a plugin (one VM per worker, plus the main thread's), send
//! requests through it, move the virtual clock, and look at what the filter did.
//!
//! ```no_run
//! use meshguard_wasm_host::{Plugin, PluginOptions, Request, WasmModule};
//! use std::time::Duration;
//!
//! let module = WasmModule::from_file("target/filters/meshguard_stamp.wasm")?;
//! let mut plugin = Plugin::start(&module, PluginOptions::new(r#"{"value":"v1"}"#))?;
//! let outcome = plugin.send(Request::get("/api/products"))?;
//! assert_eq!(outcome.upstream_header("x-meshguard-stamp"), Some("v1"));
//! plugin.advance(Duration::from_secs(1))?; // ticks, delayed callouts, timeouts
//! # Ok::<(), meshguard_wasm_host::HostError>(())
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::callout::Callout;
use crate::error::{HostError, Result};
use crate::module::WasmModule;
use crate::options::{LogLevel, PluginOptions};
use crate::request::{
    LocalReply, LogLine, Outcome, Request, Response, UpstreamRequest, Verdict, diff_headers,
};
use crate::vm::Vm;
use crate::world::{Metric, World};

/// What the plugin remembers about a stream (the VM owns the live state).
#[derive(Debug, Clone)]
pub(crate) struct StreamRecord {
    pub vm: usize,
    pub context: u32,
    pub verdict: Verdict,
    pub request_headers: Vec<(String, String)>,
    pub final_request_headers: Option<Vec<(String, String)>>,
    pub upstream: Option<UpstreamRequest>,
    pub response: Option<Response>,
    pub local_reply: Option<LocalReply>,
    pub vm_failure: Option<String>,
}

/// A started plugin: its VMs, their shared world, and the streams sent through it.
pub struct Plugin {
    pub(crate) module: WasmModule,
    pub(crate) options: Rc<PluginOptions>,
    pub(crate) world: Rc<RefCell<World>>,
    pub(crate) vms: Vec<Vm>,
    pub(crate) first_worker: usize,
    next_worker: usize,
    pub(crate) streams: BTreeMap<u64, StreamRecord>,
    pub(crate) by_context: HashMap<(usize, u32), u64>,
    next_stream: u64,
    /// Every stream with a lower id is finished (verdicts only leave `Pending`), so the driver
    /// scans from here instead of from the first stream ever sent.
    pub(crate) settled_below: u64,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("module", &self.module)
            .field("vms", &self.vms.len())
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Plugin {
    /// Starts the plugin as Envoy does on every thread: instantiate, `_initialize`, create the
    /// root context, `proxy_on_vm_start`, `proxy_on_configure`. A rejected configuration is
    /// [`HostError::ConfigRejected`] carrying the filter's own log message.
    pub fn start(module: &WasmModule, options: PluginOptions) -> Result<Self> {
        if options.workers == 0 {
            return Err(HostError::Usage(
                "a plugin needs at least one worker (PluginOptions::workers)".into(),
            ));
        }
        let options = Rc::new(options);
        let world = Rc::new(RefCell::new(World::new(options.clone())));
        let first_worker = usize::from(options.main_thread);
        let mut plugin = Self {
            module: module.clone(),
            options: options.clone(),
            world: world.clone(),
            vms: Vec::new(),
            first_worker,
            next_worker: 0,
            streams: BTreeMap::new(),
            by_context: HashMap::new(),
            next_stream: 1,
            settled_below: 1,
        };
        for index in 0..first_worker + options.workers {
            let mut vm = Vm::new(module, index, world.clone(), options.clone())?;
            let logs_before = world.borrow().logs.len();
            if !vm.start(options.vm_configuration.len())? {
                return Err(HostError::VmStartRejected {
                    name: module.name().to_string(),
                    logs: plugin.error_logs_since(logs_before, "\n  "),
                });
            }
            if !vm.configure(options.configuration.len())? {
                let logs = plugin.error_logs_since(logs_before, "; ");
                return Err(HostError::ConfigRejected {
                    message: if logs.is_empty() {
                        "proxy_on_configure returned false without logging why".into()
                    } else {
                        logs
                    },
                });
            }
            plugin.vms.push(vm);
        }
        plugin.run_until_idle()?;
        Ok(plugin)
    }

    fn error_logs_since(&self, from: usize, separator: &str) -> String {
        let world = self.world.borrow();
        let lines: Vec<&str> = world
            .logs
            .iter()
            .skip(from)
            .filter(|l| l.level >= LogLevel::Warn)
            .map(|l| l.message.as_str())
            .collect();
        if separator.starts_with('\n') && !lines.is_empty() {
            format!("{separator}{}", lines.join(separator))
        } else {
            lines.join(separator)
        }
    }

    // === requests ===

    /// Sends a request to the next worker (round robin) and runs it as far as it goes without
    /// the clock moving. A stream waiting on a delayed callout or a tick comes back
    /// [`Verdict::Pending`]; [`Plugin::advance`] then [`Plugin::outcome`] finish it.
    pub fn send(&mut self, request: Request) -> Result<Outcome> {
        let worker = self.next_worker % self.options.workers;
        self.next_worker = self.next_worker.wrapping_add(1);
        self.send_to(worker, request)
    }

    /// Sends a request to worker `worker` (0-based).
    pub fn send_to(&mut self, worker: usize, request: Request) -> Result<Outcome> {
        let id = self.begin(worker, request)?;
        self.run_until_idle()?;
        self.outcome(id)
            .ok_or_else(|| HostError::Usage(format!("stream {id} vanished")))
    }

    /// Starts a request on a worker without running anything yet; returns its stream id.
    pub fn begin(&mut self, worker: usize, request: Request) -> Result<u64> {
        if worker >= self.options.workers {
            return Err(HostError::Usage(format!(
                "worker {worker} does not exist: the plugin has {} worker(s), numbered from 0",
                self.options.workers
            )));
        }
        let vm = self.first_worker + worker;
        let request_id = self
            .options
            .envoy_request_headers
            .then(|| self.world.borrow_mut().request_id());
        let headers = request.initial_headers(request_id);
        let id = self.next_stream;
        self.next_stream += 1;
        let mut record = StreamRecord {
            vm,
            context: 0,
            verdict: Verdict::Pending,
            request_headers: headers.clone(),
            final_request_headers: None,
            upstream: None,
            response: None,
            local_reply: None,
            vm_failure: None,
        };
        let stream = crate::stream::Stream::new(request, headers);
        let Some(machine) = self.vms.get_mut(vm) else {
            return Err(HostError::Usage(format!("no VM {vm}")));
        };
        match machine.create_stream(stream) {
            Ok(context) => {
                record.context = context;
                self.by_context.insert((vm, context), id);
                self.streams.insert(id, record);
            }
            Err(failure) => {
                crate::driver::fail_record(&mut record, &failure, "proxy_on_context_create");
                self.streams.insert(id, record);
                self.fail_vm(vm);
            }
        }
        Ok(id)
    }

    /// What happened to stream `id` so far.
    pub fn outcome(&self, id: u64) -> Option<Outcome> {
        let record = self.streams.get(&id)?;
        let world = self.world.borrow();
        let mine = |vm: usize, context: u32| vm == record.vm && context == record.context;
        let live = self
            .vms
            .get(record.vm)
            .and_then(|vm| vm.store.data().streams.get(&record.context));
        let waiting_in = live
            .filter(|s| record.verdict == Verdict::Pending && s.paused)
            .map(|s| s.phase.callback().to_string());
        let final_headers = record
            .upstream
            .as_ref()
            .map(|u| u.headers.clone())
            .or_else(|| record.final_request_headers.clone());
        Some(Outcome {
            stream: id,
            vm: record.vm,
            context_id: record.context,
            verdict: record.verdict,
            waiting_in,
            request_headers: record.request_headers.clone(),
            upstream: record.upstream.clone(),
            response: record.response.clone(),
            local_reply: record.local_reply.clone(),
            header_changes: final_headers
                .map(|after| diff_headers(&record.request_headers, &after))
                .unwrap_or_default(),
            callouts: world
                .callouts
                .iter()
                .filter(|c| mine(c.vm, c.context_id))
                .cloned()
                .collect(),
            logs: world
                .logs
                .iter()
                .filter(|l| record.context != 0 && mine(l.vm, l.context_id))
                .cloned()
                .collect(),
            vm_failure: record.vm_failure.clone(),
        })
    }

    /// Every stream's outcome, in the order they were sent.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.streams
            .keys()
            .filter_map(|id| self.outcome(*id))
            .collect()
    }

    // === time ===

    /// Moves the virtual clock forward by `by`, firing every tick, delayed callout answer and
    /// callout timeout that falls due, in time order.
    pub fn advance(&mut self, by: Duration) -> Result<()> {
        self.run_until_idle()?;
        let target = self.world.borrow().elapsed + by;
        self.run_timeline(target)
    }

    /// The virtual wall-clock time.
    pub fn now(&self) -> SystemTime {
        self.world.borrow().now()
    }

    /// Virtual time since the plugin started.
    pub fn elapsed(&self) -> Duration {
        self.world.borrow().elapsed
    }

    // === inspection ===

    /// Stats by the name the filter defined (Envoy shows them as `wasmcustom.<name>`).
    pub fn metrics(&self) -> BTreeMap<String, Metric> {
        self.world.borrow().metrics.clone()
    }

    /// One stat's value (counter or gauge; sample count for histograms).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.world.borrow().metrics.get(name).map(|m| m.value)
    }

    /// Every log line of every VM, in order.
    pub fn logs(&self) -> Vec<LogLine> {
        self.world.borrow().logs.clone()
    }

    /// Every callout made, in order.
    pub fn callouts(&self) -> Vec<Callout> {
        self.world.borrow().callouts.clone()
    }

    /// Shared data under `key`: value and CAS token.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world.borrow().shared_get(&self.options.vm_id, key)
    }

    /// Every shared data key.
    pub fn shared_keys(&self) -> Vec<String> {
        self.world.borrow().shared_keys(&self.options.vm_id)
    }

    /// Writes shared data from outside (as another plugin on the same VM id would).
    pub fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        let vm_id = self.options.vm_id.clone();
        let _ = self.world.borrow_mut().shared_set(&vm_id, key, value, 0);
    }

    /// Enqueues to a shared queue by name, waking its owner.
    pub fn enqueue(&mut self, queue: &str, value: &[u8]) -> Result<()> {
        let token = {
            let world = self.world.borrow();
            world.resolve_queue(&self.options.vm_id, queue)
        }
        .ok_or_else(|| HostError::Usage(format!("no shared queue named `{queue}`")))?;
        self.world
            .borrow_mut()
            .enqueue(token, value.to_vec())
            .map_err(|status| HostError::Usage(format!("enqueue failed: {status:?}")))?;
        self.run_until_idle()
    }

    /// Things the module did that this host does not support (unimplemented hostcalls...).
    pub fn reports(&self) -> Vec<String> {
        self.world.borrow().reports.iter().cloned().collect()
    }

    /// VMs that failed, with why.
    pub fn vm_failures(&self) -> Vec<(usize, String)> {
        self.vms
            .iter()
            .enumerate()
            .filter_map(|(i, vm)| vm.failure().map(|f| (i, f.to_string())))
            .collect()
    }

    /// The tick period the filter set on VM `vm`, if any.
    pub fn tick_period(&self, vm: usize) -> Option<Duration> {
        self.vms.get(vm).and_then(|vm| vm.store.data().tick_period)
    }

    /// Number of worker VMs.
    pub fn workers(&self) -> usize {
        self.options.workers
    }

    /// Number of VMs (workers plus the main thread's when it is on).
    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    /// The options the plugin was started with.
    pub fn options(&self) -> &PluginOptions {
        &self.options
    }

    /// The module.
    pub fn module(&self) -> &WasmModule {
        &self.module
    }
}
