//! Evaluating a compiled template: the decision cache in front, then the VM (or the interpreter
//! for what the VM cannot decide), with the inventory loaded as `data.inventory`.

use std::time::Duration;

use regorus::Value;

use super::{Failure, Template, prepare};
use crate::decision_cache::{self, CacheStats};
use crate::inventory::Inventory;
use crate::vm::{self, EvalMode};
use crate::vm_rules;

impl Template {
    /// Why this template's decisions are never cached (it calls a builtin whose result is not a
    /// function of its arguments), or None.
    pub fn uncacheable(&self) -> Option<&str> {
        self.reads.impure.as_deref()
    }

    /// Hits and misses of this template's decision cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Decides one constraint: `violation` on `input = {"review": review, "parameters":
    /// parameters}`, answered from the decision cache when `cached` and the template allows it.
    pub(crate) fn decide(
        &self,
        review: &Value,
        parameters: &Value,
        inventory: &Inventory,
        limit: Duration,
        mode: EvalMode,
        cached: bool,
    ) -> Result<Value, Failure> {
        let key = (cached && self.reads.cacheable()).then(|| {
            let generation = self.uses_inventory.then(|| inventory.id());
            decision_cache::key(&self.reads, review, parameters, generation)
        });
        if let Some(key) = &key
            && let Some(outcome) = self.cache.get(key)
        {
            return outcome.map_err(Failure::Error);
        }
        let mut input = Value::new_object();
        if let Ok(map) = input.as_object_mut() {
            map.insert(Value::from("review"), review.clone());
            map.insert(Value::from("parameters"), parameters.clone());
        }
        let outcome = self.evaluate(input, inventory, limit, mode);
        if let Some(key) = key {
            match &outcome {
                Ok(value) => self.cache.insert(key, Ok(value.clone())),
                Err(Failure::Error(message)) => self.cache.insert(key, Err(message.clone())),
                Err(Failure::Timeout) => {}
            }
        }
        outcome
    }

    /// Evaluates `violation` for one input; returns the set of results, or why it failed.
    pub(crate) fn evaluate(
        &self,
        input: Value,
        inventory: &Inventory,
        limit: Duration,
        mode: EvalMode,
    ) -> Result<Value, Failure> {
        if let (EvalMode::Vm, Ok(program)) = (mode, &self.program) {
            let data = self.uses_inventory.then(|| {
                let mut data = Value::new_object();
                if let Ok(map) = data.as_object_mut() {
                    map.insert(Value::from("inventory"), inventory.value().clone());
                }
                data
            });
            let outcome = vm::evaluate(program, input.clone(), data, limit);
            let conflict =
                self.vm_checks_conflicts && outcome.as_ref().is_ok_and(vm_rules::reports_conflict);
            if !conflict {
                return outcome;
            }
            // Two definitions of a complete rule disagree: the interpreter reports OPA's error.
        }
        let mut engine = if self.uses_inventory {
            self.engine_with(inventory)?
        } else {
            self.base.clone()
        };
        engine.set_execution_timer_config(vm::timer(limit));
        engine.set_input(input);
        engine.eval_rule(self.rule.clone()).map_err(Failure::from)
    }

    fn engine_with(&self, inventory: &Inventory) -> Result<regorus::Engine, Failure> {
        let mut cache = self
            .with_inventory
            .lock()
            .map_err(|_| Failure::Error("inventory cache poisoned".into()))?;
        if let Some((id, engine)) = cache.as_ref()
            && *id == inventory.id()
        {
            return Ok(engine.clone());
        }
        let mut engine = self.base.clone();
        let mut data = Value::new_object();
        if let Ok(map) = data.as_object_mut() {
            map.insert(Value::from("inventory"), inventory.value().clone());
        }
        engine
            .add_data(data)
            .map_err(|err| Failure::Error(format!("loading data.inventory: {err}")))?;
        // Prepares the engine (analysis, scheduling) once for this inventory.
        let _ = prepare(&mut engine, &self.rule);
        *cache = Some((inventory.id(), engine.clone()));
        Ok(engine)
    }
}
