//! The webhook's shared state: the current policy set and inventory (swapped whole when files or
//! cluster resources change, so a review always sees one consistent snapshot), readiness, the
//! metrics registry and the bound on concurrent evaluations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use meshguard_policy_engine::{Inventory, PolicySet};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::metrics::Metrics;

/// Shared state.
#[derive(Debug)]
pub struct State {
    /// Settings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Metrics,
    policies: RwLock<Arc<PolicySet>>,
    inventory: RwLock<Arc<Inventory>>,
    ready: AtomicBool,
    pub(crate) limiter: Arc<Semaphore>,
    /// Reviews being evaluated or waiting for a slot (bounded, so overload is answered at
    /// once instead of queueing without bound).
    pub(crate) admitted: Arc<Semaphore>,
}

impl State {
    /// State with no policies yet (not ready).
    pub fn new(settings: Settings) -> Arc<Self> {
        let permits = settings.max_concurrent_reviews.min(Semaphore::MAX_PERMITS);
        let admitted = permits
            .saturating_add(settings.max_queued_reviews)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            settings,
            metrics: Metrics::default(),
            policies: RwLock::new(Arc::new(PolicySet::new())),
            inventory: RwLock::new(Arc::new(Inventory::new())),
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
        self.policies
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the policy set (with the decision cache as configured) and updates the
    /// template/constraint gauges.
    pub fn set_policies(&self, mut policies: PolicySet) {
        policies.set_decision_cache(self.settings.decision_cache);
        self.metrics.clear_gauge("gatekeeper_constraint_templates");
        self.metrics.set(
            "gatekeeper_constraint_templates",
            &[("status", "active")],
            policies.templates().count() as f64,
        );
        self.metrics.clear_gauge("gatekeeper_constraints");
        let mut by_action = std::collections::BTreeMap::new();
        for constraint in policies.constraints() {
            *by_action
                .entry(constraint.enforcement.label())
                .or_insert(0u64) += 1;
        }
        for (action, count) in by_action {
            self.metrics.set(
                "gatekeeper_constraints",
                &[("enforcement_action", action), ("status", "active")],
                count as f64,
            );
        }
        let policies = Arc::new(policies);
        match self.policies.write() {
            Ok(mut slot) => *slot = policies,
            Err(poisoned) => *poisoned.into_inner() = policies,
        }
    }

    /// The current inventory.
    pub fn inventory(&self) -> Arc<Inventory> {
        self.inventory
            .read()
            .map(|i| i.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the inventory.
    pub fn set_inventory(&self, inventory: Inventory) {
        let inventory = Arc::new(inventory);
        match self.inventory.write() {
            Ok(mut slot) => *slot = inventory,
            Err(poisoned) => *poisoned.into_inner() = inventory,
        }
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
}
