//! The ring of buckets and the contiguous ranges the versions own on it.
//!
//! A plain weighted pick (what an Istio VirtualService with `weight: 90` / `weight: 10` does)
//! draws a version per request: one user flips between versions from click to click, and
//! raising the weight reshuffles everyone. Here a user's position on the ring is fixed by the
//! stable hash ([`crate::hash`]), and the versions own **contiguous ranges laid out in list
//! order from bucket 0**: with `v1: 90, v2: 10`, v1 owns buckets `0..9000` and v2 owns
//! `9000..10000`.
//!
//! Only the boundaries between neighbours move when weights change, so moving weight between
//! two adjacent versions moves users only between those two, and only in the direction of the
//! change. For the usual stable-then-canary list this is the rollout guarantee: raising the
//! canary from 10 % to 20 % moves the boundary from 9000 down to 8000, which moves users from
//! `8000..9000` into the canary and nobody out of it; a rollback moves the same users back.

use meshguard_filter_core::ConfigError;

use crate::hash::BUCKETS;

/// A version of a service and its share of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Name, as set in the route header and matched by route tables (`v2`).
    pub name: String,
    /// Buckets owned: the weight in hundredths of a percent (`10 %` = 1000).
    pub buckets: u32,
}

/// Versions with their contiguous bucket ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    versions: Vec<Version>,
    /// `ends[i]` is the exclusive end of version `i`'s range; ranges start where the previous
    /// one ends, the first at 0.
    ends: Vec<u32>,
}

impl Ring {
    /// Lays out `versions` in order. Their shares must add up to the whole ring
    /// ([`BUCKETS`]); the error names no field (the caller places it).
    pub fn new(versions: Vec<Version>) -> Result<Self, ConfigError> {
        if versions.is_empty() {
            return Err(ConfigError::new(".", "at least one version is required"));
        }
        let mut ends = Vec::with_capacity(versions.len());
        let mut total: u32 = 0;
        for version in &versions {
            total = total.saturating_add(version.buckets);
            ends.push(total);
        }
        if total != BUCKETS {
            return Err(ConfigError::new(
                ".",
                format!(
                    "weights add up to {}, they must add up to 100",
                    format_weight(total)
                ),
            ));
        }
        Ok(Self { versions, ends })
    }

    /// The versions in list order.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// Index of the version owning `bucket`.
    pub fn version_at(&self, bucket: u32) -> usize {
        // Zero-weight versions own the empty range `end..end` and are never chosen.
        self.ends
            .iter()
            .position(|end| bucket < *end)
            .unwrap_or(self.versions.len().saturating_sub(1))
    }

    /// Index of the version called `name` (ASCII case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|version| version.name.eq_ignore_ascii_case(name))
    }

    /// The bucket range of version `index` (empty for an unknown index).
    pub fn range(&self, index: usize) -> std::ops::Range<u32> {
        let end = self.ends.get(index).copied().unwrap_or(0);
        let start = match index.checked_sub(1) {
            Some(previous) => self.ends.get(previous).copied().unwrap_or(0),
            None => 0,
        };
        start..end
    }
}

/// Renders a share in buckets as a percentage (`950` -> `9.5`).
pub fn format_weight(buckets: u32) -> String {
    let (whole, fraction) = (buckets / 100, buckets % 100);
    match fraction {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

#[cfg(test)]
mod tests;
