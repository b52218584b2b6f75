//! The webhook's shared state: the current policy set and inventory (swapped whole when files or
//! cluster resources change, so a review always sees one consistent snapshot), what was left out
//! of the policy set and why, readiness, the metrics registry and the bound on concurrent
//! evaluations.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use meshguard_policy_engine::{CacheCounters, Inventory, PolicySet, Rejected};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::metrics::{ConstraintLabels, Metrics, StatusLabels};

/// A template or constraint that is not enforced, and why (Gatekeeper reports these in the
/// resource's status; the webhook reports them in its log, `/readyz` and the `status="error"`
/// series of `gatekeeper_constraint_templates` / `gatekeeper_constraints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEnforced {
    /// `ConstraintTemplate name` or `Kind name`.
    pub what: String,
    /// Whether it is a template (else a constraint).
    pub template: bool,
    /// The constraint's `enforcementAction` (`deny` when unset); empty for templates.
    pub enforcement_action: String,
    /// Why, naming the file and document in files mode.
    pub error: String,
}

impl NotEnforced {
    /// From a document the engine left out.
    pub fn from_rejected(rejected: &Rejected) -> Self {
        let template = rejected.is_template();
        let enforcement_action = if template {
            String::new()
        } else {
            rejected
                .document
                .value
                .pointer("/spec/enforcementAction")
                .and_then(|v| v.as_str())
                .unwrap_or("deny")
                .to_string()
        };
        Self {
            what: rejected.what(),
            template,
            enforcement_action,
            error: rejected.error.to_string(),
        }
    }
}

/// Shared state.
#[derive(Debug)]
pub struct State {
    /// Settings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Metrics,
    policies: RwLock<Arc<PolicySet>>,
    not_enforced: RwLock<Arc<Vec<NotEnforced>>>,
    inventory: RwLock<Arc<Inventory>>,
    cache_counters: Arc<CacheCounters>,
    ready: AtomicBool,
    pub(crate) limiter: Arc<Semaphore>,
    /// Reviews being evaluated or waiting for a slot (bounded, so overload is answered at
    /// once instead of queueing without bound).
    pub(crate) admitted: Arc<Semaphore>,
}

fn write<T>(slot: &RwLock<T>, value: T) {
    match slot.write() {
        Ok(mut slot) => *slot = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

fn read<T: Clone>(slot: &RwLock<T>) -> T {
    slot.read()
        .map(|v| v.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

impl State {
    /// State with no policies yet (not ready).
    pub fn new(settings: Settings) -> Arc<Self> {
        let permits = settings.max_concurrent_reviews.min(Semaphore::MAX_PERMITS);
        let admitted = permits
            .saturating_add(settings.max_queued_reviews)
            .min(Semaphore::MAX_PERMITS);
        let cache_counters = Arc::new(CacheCounters::default());
        let metrics = Metrics::new(cache_counters.clone());
        metrics.initialize(settings.failure_policy.as_str());
        Arc::new(Self {
            settings,
            metrics,
            policies: RwLock::new(Arc::new(PolicySet::new())),
            not_enforced: RwLock::new(Arc::new(Vec::new())),
            inventory: RwLock::new(Arc::new(Inventory::new())),
            cache_counters,
            ready: AtomicBool::new(false),
            limiter: Arc::new(Semaphore::new(permits)),
            admitted: Arc::new(Semaphore::new(admitted)),
        })
    }

    /// State holding a policy set, ready.
    pub fn with_policies(settings: Settings, policies: PolicySet) -> Arc<Self> {
        let state = Self::new(settings);
        state.set_policies(policies);
        state.set_ready();
        state
    }

    /// The current policy set.
    pub fn policies(&self) -> Arc<PolicySet> {
        read(&self.policies)
    }

    /// The templates and constraints of the current set's sources that are not enforced.
    pub fn not_enforced(&self) -> Arc<Vec<NotEnforced>> {
        read(&self.not_enforced)
    }

    /// Replaces the policy set, with nothing left out.
    pub fn set_policies(&self, policies: PolicySet) {
        self.set_loaded(policies, Vec::new());
    }

    /// Replaces the policy set (with the decision cache as configured, counting in the process's
    /// counters) and what its sources held that is not enforced; updates the template and
    /// constraint gauges.
    pub fn set_loaded(&self, mut policies: PolicySet, not_enforced: Vec<NotEnforced>) {
        policies.set_decision_cache(self.settings.decision_cache);
        policies.set_cache_counters(self.cache_counters.clone());
        let metrics = &self.metrics;
        metrics.constraint_templates.clear();
        let failed_templates = not_enforced.iter().filter(|n| n.template).count();
        for (status, count) in [
            ("active", policies.templates().count()),
            ("error", failed_templates),
        ] {
            metrics
                .constraint_templates
                .get_or_create(&StatusLabels { status })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        metrics.constraints.clear();
        let mut by_action: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
        for constraint in policies.constraints() {
            *by_action
                .entry((constraint.enforcement.label().to_string(), "active"))
                .or_default() += 1;
        }
        for constraint in not_enforced.iter().filter(|n| !n.template) {
            *by_action
                .entry((constraint.enforcement_action.clone(), "error"))
                .or_default() += 1;
        }
        for ((enforcement_action, status), count) in by_action {
            metrics
                .constraints
                .get_or_create(&ConstraintLabels {
                    enforcement_action,
                    status,
                })
                .set(count);
        }
        write(&self.policies, Arc::new(policies));
        write(&self.not_enforced, Arc::new(not_enforced));
    }

    /// The current inventory.
    pub fn inventory(&self) -> Arc<Inventory> {
        read(&self.inventory)
    }

    /// Replaces the inventory.
    pub fn set_inventory(&self, inventory: Inventory) {
        write(&self.inventory, Arc::new(inventory));
    }

    /// Marks the policies loaded (`/readyz` answers 200 from now on).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The bound on concurrent evaluations: one permit per review being evaluated (held by
    /// tests to simulate a saturated webhook).
    pub fn evaluation_slots(&self) -> &Arc<Semaphore> {
        &self.limiter
    }

    /// Whether policies are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What `/readyz` says: whether the webhook serves, and what it does not enforce.
    pub fn readiness(&self) -> (bool, String) {
        if !self.is_ready() {
            return (false, "policies not loaded yet\n".into());
        }
        let policies = self.policies();
        let not_enforced = self.not_enforced();
        let mut text = format!(
            "ready: {} templates and {} constraints enforced\n",
            policies.templates().count(),
            policies.constraints().count()
        );
        if !not_enforced.is_empty() {
            text.push_str(&format!("not enforced ({}):\n", not_enforced.len()));
            for item in not_enforced.iter() {
                text.push_str(&format!(
                    "  {}: {}\n",
                    item.what,
                    item.error.replace('\n', "\n    ")
                ));
            }
        }
        (true, text)
    }
}
