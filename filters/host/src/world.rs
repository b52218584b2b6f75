//! State shared by every VM of a plugin, as Envoy shares it between its workers: the virtual
//! clock, shared data with CAS tokens, shared queues, stats, logs, the random source, callout
//! records and the timeline of events waiting to be delivered.
//!
//! The VMs run one at a time on the caller's thread, so interleavings are explicit and
//! repeatable; CAS semantics follow proxy-wasm-cpp-host's `SharedData` exactly (a global
//! counter starting at 1, skipping 0; a write with a stale non-zero CAS fails).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::abi::{MetricType, Status};
use crate::callout::{CallResponse, Callout};
use crate::options::{LogLevel, PluginOptions};
use crate::request::LogLine;

/// A stat as Envoy keeps it (Envoy shows these as `wasmcustom.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metric {
    /// Kind.
    pub kind: MetricType,
    /// Counter or gauge value (for histograms: the number of samples).
    pub value: i64,
    /// Histogram samples.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<u64>,
}

/// Something that happens at a virtual time.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// Deliver a callout's answer.
    CalloutAnswer {
        callout: usize,
        response: CallResponse,
    },
    /// Tell a root context that its queue has data.
    QueueReady { vm: usize, context: u32, queue: u32 },
    /// A delayed upstream answers (or the route times out first).
    UpstreamReady {
        vm: usize,
        context: u32,
        timed_out: bool,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub vm_id: String,
    pub name: String,
    pub owner: Option<(usize, u32)>,
    pub items: std::collections::VecDeque<Vec<u8>>,
}

pub(crate) struct World {
    pub options: Rc<PluginOptions>,
    pub elapsed: Duration,
    shared_data: HashMap<(String, String), (Vec<u8>, u32)>,
    next_cas: u32,
    pub queues: Vec<Queue>,
    pub metrics: BTreeMap<String, Metric>,
    pub logs: Vec<LogLine>,
    rng: u64,
    pub callouts: Vec<Callout>,
    pub callout_rule_uses: BTreeMap<usize, u32>,
    events: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    pub reports: BTreeSet<String>,
}

impl World {
    pub(crate) fn new(options: Rc<PluginOptions>) -> Self {
        let rng = options.seed;
        Self {
            options,
            elapsed: Duration::ZERO,
            shared_data: HashMap::new(),
            next_cas: 1,
            queues: Vec::new(),
            metrics: BTreeMap::new(),
            logs: Vec::new(),
            rng,
            callouts: Vec::new(),
            callout_rule_uses: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            reports: BTreeSet::new(),
        }
    }

    // === clock ===

    /// Virtual wall-clock time.
    pub(crate) fn now(&self) -> SystemTime {
        self.options.start_time + self.elapsed
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    // === randomness ===

    /// SplitMix64: deterministic per seed, good enough for ids and hash seeds.
    pub(crate) fn random_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn fill_random(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.random_u64().to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or(&bytes));
        }
    }

    /// A UUID-shaped request id.
    pub(crate) fn request_id(&mut self) -> String {
        let (a, b) = (self.random_u64(), self.random_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    // === shared data ===

    pub(crate) fn shared_get(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared_data
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    pub(crate) fn shared_set(
        &mut self,
        vm_id: &str,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<(), Status> {
        let cas_token = self.next_cas;
        let entry = (vm_id.to_string(), key.to_string());
        if let Some((_, current)) = self.shared_data.get(&entry)
            && cas != 0
            && cas != *current
        {
            return Err(Status::CasMismatch);
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.shared_data.insert(entry, (value.to_vec(), cas_token));
        Ok(())
    }

    /// Every key of a VM id (for inspection).
    pub(crate) fn shared_keys(&self, vm_id: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .shared_data
            .keys()
            .filter(|(id, _)| id == vm_id)
            .map(|(_, key)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    // === queues ===

    /// Registers (or re-registers: the last registrant owns it) a queue; tokens start at 1.
    pub(crate) fn register_queue(&mut self, vm_id: &str, name: &str, owner: (usize, u32)) -> u32 {
        let existing = self
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name);
        let index = existing.unwrap_or_else(|| {
            self.queues.push(Queue {
                vm_id: vm_id.to_string(),
                name: name.to_string(),
                ..Queue::default()
            });
            self.queues.len() - 1
        });
        if let Some(queue) = self.queues.get_mut(index) {
            queue.owner = Some(owner);
        }
        u32::try_from(index + 1).unwrap_or(u32::MAX)
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .and_then(|index| u32::try_from(index + 1).ok())
    }

    pub(crate) fn queue_mut(&mut self, token: u32) -> Option<&mut Queue> {
        let index = usize::try_from(token).ok()?.checked_sub(1)?;
        self.queues.get_mut(index)
    }

    pub(crate) fn enqueue(&mut self, token: u32, value: Vec<u8>) -> Result<(), Status> {
        let queue = self.queue_mut(token).ok_or(Status::NotFound)?;
        queue.items.push_back(value);
        if let Some((vm, context)) = queue.owner {
            self.schedule(
                Duration::ZERO,
                Event::QueueReady {
                    vm,
                    context,
                    queue: token,
                },
            );
        }
        Ok(())
    }

    // === metrics ===

    pub(crate) fn metric_mut(&mut self, name: &str, kind: MetricType) -> &mut Metric {
        self.metrics.entry(name.to_string()).or_insert(Metric {
            kind,
            value: 0,
            samples: Vec::new(),
        })
    }

    // === logs ===

    pub(crate) fn log(&mut self, level: LogLevel, message: String, vm: usize, context_id: u32) {
        if level < self.options.log_level {
            return;
        }
        let at_ms = self.elapsed_ms();
        self.logs.push(LogLine {
            level,
            message,
            vm,
            context_id,
            at_ms,
        });
    }

    // === events ===

    pub(crate) fn schedule(&mut self, after: Duration, event: Event) {
        self.seq += 1;
        self.events.insert((self.elapsed + after, self.seq), event);
    }

    /// The earliest event due at or before `elapsed`.
    pub(crate) fn pop_due(&mut self) -> Option<Event> {
        let (&key, _) = self.events.first_key_value()?;
        if key.0 > self.elapsed {
            return None;
        }
        self.events.remove(&key)
    }

    /// When the next event is due.
    pub(crate) fn next_event_at(&self) -> Option<Duration> {
        self.events.first_key_value().map(|((at, _), _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(Rc::new(PluginOptions::default()))
    }

    #[test]
    fn cas_follows_proxy_wasm_cpp_host() {
        let mut world = world();
        assert_eq!(world.shared_get("vm", "k"), None);
        // A CAS on a missing key still writes (Envoy only compares existing entries).
        world.shared_set("vm", "k", b"1", 99).unwrap();
        let (_, cas) = world.shared_get("vm", "k").unwrap();
        assert_eq!(cas, 1);
        world.shared_set("vm", "k", b"2", cas).unwrap();
        assert_eq!(
            world.shared_set("vm", "k", b"3", cas),
            Err(Status::CasMismatch)
        );
        world.shared_set("vm", "k", b"4", 0).unwrap();
        assert_eq!(world.shared_get("vm", "k").unwrap(), (b"4".to_vec(), 3));
        assert_eq!(world.shared_get("other", "k"), None);
    }

    #[test]
    fn queues_are_owned_by_the_last_registrant_and_signal_it() {
        let mut world = world();
        let token = world.register_queue("vm", "q", (1, 1));
        assert_eq!(world.register_queue("vm", "q", (2, 1)), token);
        assert_eq!(world.resolve_queue("vm", "q"), Some(token));
        assert_eq!(world.resolve_queue("vm", "nope"), None);
        world.enqueue(token, b"x".to_vec()).unwrap();
        assert!(matches!(
            world.pop_due(),
            Some(Event::QueueReady {
                vm: 2,
                context: 1,
                ..
            })
        ));
        assert_eq!(world.enqueue(77, Vec::new()), Err(Status::NotFound));
    }

    #[test]
    fn random_source_is_deterministic_per_seed() {
        let (mut a, mut b) = (world(), world());
        assert_eq!(a.random_u64(), b.random_u64());
        let id = a.request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
    }
}
