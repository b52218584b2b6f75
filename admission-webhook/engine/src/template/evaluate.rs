//! Evaluating a compiled template: the decision cache in front, then the VM (or the interpreter
//! for what the VM cannot decide), with the inventory loaded as `data.inventory`.

use std::time::Duration;

use regorus::Value;

use super::{Failure, Template, prepare};
use crate::decision_cache::CacheCounters;
use crate::inventory::Inventory;
use crate::vm::{self, EvalMode};
use crate::vm_rules;

impl Template {
    /// Why this template's decisions are never cached (it calls a builtin whose result is not a
    /// function of its arguments), or None.
    pub fn uncacheable(&self) -> Option<&str> {
        self.reads.impure.as_deref()
    }

    /// Why the decision cache keys this template on every `input` reference's static prefix
    /// rather than on what the parse-tree analysis found (None when the analysis was used).
    pub fn cache_fallback(&self) -> Option<&str> {
        self.reads.fallback.as_deref()
    }

    /// What the decision cache keys this template's decisions on, one line per path:
    /// `value input.review.object.spec`, `type input.review.object`, `shape
    /// input.review.object.metadata.name` (see [`crate::read_set`]).
    pub fn cache_key_paths(&self) -> Vec<String> {
        let line = |kind: &str, path: &Vec<String>| {
            let mut text = format!("{kind} input");
            for segment in path {
                text.push('.');
                text.push_str(segment);
            }
            text
        };
        let reads = &self.reads;
        reads
            .value
            .iter()
            .map(|p| line("value", p))
            .chain(reads.types.iter().map(|p| line("type", p)))
            .chain(reads.shapes.iter().map(|p| line("shape", p)))
            .collect()
    }

    /// Decides one constraint: `violation` on `input = {"review": review, "parameters":
    /// parameters}`, answered from the decision cache (counting in `cache`) when given and the
    /// template allows it.
    pub(crate) fn decide(
        &self,
        review: &Value,
        parameters: &Value,
        inventory: &Inventory,
        limit: Duration,
        mode: EvalMode,
        cache: Option<&CacheCounters>,
    ) -> Result<Value, Failure> {
        let cached = cache.filter(|_| self.reads.cacheable()).map(|counters| {
            let generation = self.uses_inventory.then(|| inventory.id());
            let key = self.reads.key(review, parameters, generation);
            let shown = self.reads.shown(review, parameters);
            (counters, key, shown)
        });
        if let Some((counters, key, shown)) = &cached {
            let found = self.cache.get(key, shown);
            counters.count(found.is_some());
            if let Some(outcome) = found {
                return outcome.map_err(Failure::Error);
            }
        }
        let mut input = Value::new_object();
        if let Ok(map) = input.as_object_mut() {
            map.insert(Value::from("review"), review.clone());
            map.insert(Value::from("parameters"), parameters.clone());
        }
        let outcome = self.evaluate(input, inventory, limit, mode);
        if let Some((_, key, shown)) = cached {
            match &outcome {
                Ok(value) => self.cache.insert(key, Ok(value.clone()), shown),
                Err(Failure::Error(message)) => self.cache.insert(key, Err(message.clone()), shown),
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
