//! Which configured limit applies to a request descriptor, as envoyproxy/ratelimit decides it:
//!
//! - Entries are matched level by level against the nested descriptors. At each level the most
//!   specific descriptor wins: `key` + `value` first, then `key` + the longest matching
//!   `value*` prefix, then `key` alone (any value).
//! - A limit applies only if the match ends exactly at the request's last entry: a request of two
//!   entries does not match a one-level limit ("Example 4" of envoyproxy/ratelimit's README).
//! - A matched descriptor with neither a limit nor nested descriptors stops the walk: the request
//!   is not limited (an allow-list entry).
//! - Among the limits of one request, a limit named in another matched limit's `replaces` is
//!   dropped.
//!
//! One difference: envoyproxy/ratelimit looks wildcard values up in the domain's top level only,
//! whatever the depth; here each level has its own.

use std::sync::Arc;

use crate::config::{Domain, Level, Limit, Node};

/// The limit that applies to one descriptor, and the `rule` label its metrics use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The limit.
    pub limit: Arc<Limit>,
    /// The rule as metrics name it: the limit's rule, plus `_<value>` with `detailed_metric`.
    pub rule: String,
}

/// The limit for a descriptor of `entries` (key, value) in `domain`, if one applies.
pub fn find(domain: &Domain, entries: &[(&str, &str)]) -> Option<Applied> {
    let mut level: &Level = &domain.root;
    let mut found = None;
    for (index, (key, value)) in entries.iter().enumerate() {
        let Some(node) = lookup(level, key, value) else {
            return found;
        };
        if let Some(limit) = &node.limit
            && index + 1 == entries.len()
        {
            let rule = if limit.detailed_metric {
                format!("{}_{value}", limit.rule)
            } else {
                limit.rule.clone()
            };
            found = Some(Applied {
                limit: limit.clone(),
                rule,
            });
        }
        if node.children.is_empty() {
            break;
        }
        level = &node.children;
    }
    found
}

fn lookup<'a>(level: &'a Level, key: &str, value: &str) -> Option<&'a Node> {
    if let Some(node) = level.exact.get(&(key.to_string(), value.to_string())) {
        return Some(node);
    }
    let wildcard = level
        .wildcard
        .iter()
        .find(|(k, prefix, _)| k == key && value.starts_with(prefix.as_str()));
    if let Some((_, _, node)) = wildcard {
        return Some(node);
    }
    level.default.get(key)
}

impl Level {
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_empty()
    }
}

/// Drops every limit another matched limit `replaces` (by name).
pub fn apply_replaces(applied: &mut [Option<Applied>]) {
    let replaced: Vec<String> = applied
        .iter()
        .flatten()
        .flat_map(|a| a.limit.replaces.iter().cloned())
        .collect();
    if replaced.is_empty() {
        return;
    }
    for slot in applied.iter_mut() {
        let drop = slot
            .as_ref()
            .and_then(|a| a.limit.name.as_ref())
            .is_some_and(|name| replaced.contains(name));
        if drop {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests;
