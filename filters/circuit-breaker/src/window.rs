//! Sliding windows of call outcomes, as Resilience4j defines them.
//!
//! A count window keeps the last N outcomes (two bits each: failed, slow) in a ring plus running
//! totals, so recording is O(1) and the window stays a few hundred bytes in shared data. A time
//! window keeps one bucket per second of the last N seconds; a bucket is reused (reset) when its
//! second comes round again, and only buckets inside the window count.

use crate::machine::Now;

/// Totals over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aggregate {
    /// Calls recorded.
    pub calls: u32,
    /// Of which failed.
    pub failures: u32,
    /// Of which slow.
    pub slow: u32,
}

impl Aggregate {
    /// Failure rate in percent (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        rate(self.failures, self.calls)
    }

    /// Slow-call rate in percent (0 when empty).
    pub fn slow_rate(&self) -> f64 {
        rate(self.slow, self.calls)
    }
}

fn rate(part: u32, calls: u32) -> f64 {
    if calls == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(calls)
    }
}

/// A sliding window of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// The last N calls.
    Count(CountWindow),
    /// The last N seconds.
    Time(TimeWindow),
}

impl Window {
    /// Records one outcome at `now` (only a time window asks for it).
    pub fn record(&mut self, now: impl Now, failed: bool, slow: bool) {
        match self {
            Self::Count(window) => window.record(failed, slow),
            Self::Time(window) => window.record(now.ms() / 1000, failed, slow),
        }
    }

    /// Totals as of `now` (only a time window asks for it).
    pub fn aggregate(&self, now: impl Now) -> Aggregate {
        match self {
            Self::Count(window) => window.aggregate(),
            Self::Time(window) => window.aggregate(now.ms() / 1000),
        }
    }

    /// Forgets everything (the window of a freshly closed breaker).
    pub fn clear(&mut self) {
        match self {
            Self::Count(window) => *window = CountWindow::new(window.size),
            Self::Time(window) => *window = TimeWindow::new(window.seconds()),
        }
    }
}

// === impl CountWindow ===

const FAILED_BIT: u8 = 0b01;
const SLOW_BIT: u8 = 0b10;

/// The last `size` outcomes in a ring of two-bit slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountWindow {
    pub(crate) size: u32,
    /// Slots filled (at most `size`).
    pub(crate) len: u32,
    /// Next slot to write.
    pub(crate) head: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
    /// Four slots per byte.
    pub(crate) slots: Vec<u8>,
}

impl CountWindow {
    /// An empty window of `size` calls (at least 1).
    pub fn new(size: u32) -> Self {
        let size = size.max(1);
        Self {
            size,
            len: 0,
            head: 0,
            failures: 0,
            slow: 0,
            slots: vec![0; Self::slot_bytes(size)],
        }
    }

    /// Bytes needed for `size` slots.
    pub fn slot_bytes(size: u32) -> usize {
        (size as usize).div_ceil(4)
    }

    fn slot(&self, index: u32) -> u8 {
        let shift = (index % 4) * 2;
        self.slots
            .get((index / 4) as usize)
            .map_or(0, |byte| (byte >> shift) & 0b11)
    }

    fn set_slot(&mut self, index: u32, value: u8) {
        let shift = (index % 4) * 2;
        if let Some(byte) = self.slots.get_mut((index / 4) as usize) {
            *byte = (*byte & !(0b11 << shift)) | ((value & 0b11) << shift);
        }
    }

    /// Records one outcome, evicting the oldest when full.
    pub fn record(&mut self, failed: bool, slow: bool) {
        if self.len == self.size {
            let evicted = self.slot(self.head);
            if evicted & FAILED_BIT != 0 {
                self.failures = self.failures.saturating_sub(1);
            }
            if evicted & SLOW_BIT != 0 {
                self.slow = self.slow.saturating_sub(1);
            }
        } else {
            self.len += 1;
        }
        let value = (if failed { FAILED_BIT } else { 0 }) | (if slow { SLOW_BIT } else { 0 });
        self.set_slot(self.head, value);
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
        self.head = (self.head + 1) % self.size;
    }

    /// Totals.
    pub fn aggregate(&self) -> Aggregate {
        Aggregate {
            calls: self.len,
            failures: self.failures,
            slow: self.slow,
        }
    }

    /// Whether the running totals agree with the slots (decoded data is checked with this).
    pub(crate) fn is_consistent(&self) -> bool {
        if self.size == 0
            || self.len > self.size
            || self.head >= self.size
            || self.slots.len() != Self::slot_bytes(self.size)
        {
            return false;
        }
        let (mut failures, mut slow) = (0, 0);
        for index in 0..self.size {
            let value = self.slot(index);
            failures += u32::from(value & FAILED_BIT != 0);
            slow += u32::from(value & SLOW_BIT != 0);
        }
        failures == self.failures && slow == self.slow
    }
}

// === impl TimeWindow ===

/// One second of outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    /// The second (since the epoch) this bucket counts; 0 for never used.
    pub second: u32,
    /// Calls in that second.
    pub calls: u32,
    /// Of which failed.
    pub failures: u32,
    /// Of which slow.
    pub slow: u32,
}

/// One bucket per second of the last `buckets.len()` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    pub(crate) buckets: Vec<Bucket>,
}

impl TimeWindow {
    /// An empty window of `seconds` seconds (at least 1).
    pub fn new(seconds: u32) -> Self {
        Self {
            buckets: vec![Bucket::default(); seconds.max(1) as usize],
        }
    }

    /// Window length in seconds.
    pub fn seconds(&self) -> u32 {
        self.buckets.len() as u32
    }

    /// Records one outcome in the bucket of `now_s`.
    pub fn record(&mut self, now_s: u64, failed: bool, slow: bool) {
        let second = u32::try_from(now_s).unwrap_or(u32::MAX);
        let len = self.buckets.len().max(1);
        if let Some(bucket) = self.buckets.get_mut(second as usize % len) {
            if bucket.second != second {
                *bucket = Bucket {
                    second,
                    ..Bucket::default()
                };
            }
            bucket.calls = bucket.calls.saturating_add(1);
            bucket.failures = bucket.failures.saturating_add(u32::from(failed));
            bucket.slow = bucket.slow.saturating_add(u32::from(slow));
        }
    }

    /// Totals of the buckets within the window ending at `now_s`.
    pub fn aggregate(&self, now_s: u64) -> Aggregate {
        let oldest = now_s.saturating_sub(u64::from(self.seconds())) + 1;
        self.buckets
            .iter()
            .filter(|bucket| {
                bucket.calls > 0 && (oldest..=now_s).contains(&u64::from(bucket.second))
            })
            .fold(Aggregate::default(), |total, bucket| Aggregate {
                calls: total.calls.saturating_add(bucket.calls),
                failures: total.failures.saturating_add(bucket.failures),
                slow: total.slow.saturating_add(bucket.slow),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_evicts_the_oldest_outcome() {
        let mut window = CountWindow::new(3);
        window.record(true, false);
        window.record(false, true);
        window.record(false, false);
        assert_eq!(
            window.aggregate(),
            Aggregate {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        // The failure falls out; the slow call is still inside.
        window.record(false, false);
        assert_eq!(
            window.aggregate(),
            Aggregate {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
        window.record(true, true);
        window.record(true, true);
        assert_eq!(
            window.aggregate(),
            Aggregate {
                calls: 3,
                failures: 2,
                slow: 2
            }
        );
        assert!(window.is_consistent());
    }

    #[test]
    fn count_window_slots_pack_four_to_a_byte_across_many_wraps() {
        for size in [1, 2, 3, 4, 5, 7, 8, 9, 100] {
            let mut window = CountWindow::new(size);
            let mut reference = std::collections::VecDeque::new();
            for call in 0..(size * 5 + 3) {
                let (failed, slow) = (call % 3 == 0, call % 5 == 0);
                window.record(failed, slow);
                reference.push_back((failed, slow));
                if reference.len() > size as usize {
                    reference.pop_front();
                }
                let expected = Aggregate {
                    calls: reference.len() as u32,
                    failures: reference.iter().filter(|(f, _)| *f).count() as u32,
                    slow: reference.iter().filter(|(_, s)| *s).count() as u32,
                };
                assert_eq!(window.aggregate(), expected, "size {size}, call {call}");
            }
            assert!(window.is_consistent());
            assert_eq!(window.slots.len(), CountWindow::slot_bytes(size));
        }
    }

    #[test]
    fn time_window_counts_only_the_last_seconds() {
        let mut window = TimeWindow::new(10);
        let start = 1_700_000_000;
        window.record(start, true, false);
        window.record(start, false, false);
        window.record(start + 5, false, true);
        assert_eq!(window.aggregate(start + 5).calls, 3);
        // At start+9 the first second is still inside (start+9-10+1 = start).
        assert_eq!(window.aggregate(start + 9).calls, 3);
        // At start+10 it has left the window.
        assert_eq!(
            window.aggregate(start + 10),
            Aggregate {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
        assert_eq!(window.aggregate(start + 15), Aggregate::default());
    }

    #[test]
    fn time_window_reuses_a_bucket_when_its_second_comes_round() {
        let mut window = TimeWindow::new(2);
        let start = 1_700_000_000;
        window.record(start, true, false);
        window.record(start + 2, false, false);
        // start and start+2 share a bucket: the old failure is gone, not added.
        assert_eq!(
            window.aggregate(start + 2),
            Aggregate {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(window.buckets.iter().filter(|b| b.calls > 0).count(), 1);
    }

    #[test]
    fn rates_are_percentages_and_zero_when_empty() {
        let aggregate = Aggregate {
            calls: 8,
            failures: 2,
            slow: 6,
        };
        assert_eq!(aggregate.failure_rate(), 25.0);
        assert_eq!(aggregate.slow_rate(), 75.0);
        assert_eq!(Aggregate::default().failure_rate(), 0.0);
    }

    #[test]
    fn clear_keeps_the_shape() {
        let mut window = Window::Time(TimeWindow::new(5));
        window.record(100, true, true);
        window.clear();
        assert_eq!(window, Window::Time(TimeWindow::new(5)));
        let mut window = Window::Count(CountWindow::new(7));
        window.record(0, true, false);
        window.clear();
        assert_eq!(window, Window::Count(CountWindow::new(7)));
    }
}
