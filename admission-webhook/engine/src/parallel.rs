//! Evaluating many objects on every core with the results in input order, for the front ends
//! that review a batch (`meshguard policy check`, audit): a review is independent of the others
//! and a [`crate::PolicySet`] is shared by reference (its decision caches are shared too, so the
//! second replica of a Deployment hits whichever thread evaluated the first).
//!
//! Plain scoped threads pulling the next index from an atomic counter: work is spread as it
//! finishes (one slow object does not hold up a pre-assigned chunk), and no thread pool or new
//! dependency is needed for a batch that runs once per command.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applies `f` to every item on up to `threads` threads (all cores when None); the results come
/// back in the order of `items`.
pub fn map_in_order<T, R, F>(items: &[T], threads: Option<NonZeroUsize>, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            break;
                        };
                        out.push((index, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(results) => results,
                // A panicking review is a bug; surface it where it happened.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_input_order_on_many_threads() {
        let items: Vec<u64> = (0..1000).collect();
        let four = NonZeroUsize::new(4);
        let out = map_in_order(&items, four, |n| {
            // Uneven work, so threads finish out of order.
            if n % 7 == 0 {
                std::thread::yield_now();
            }
            n * 2
        });
        assert_eq!(out, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert!(map_in_order(&[] as &[u64], four, |n| *n).is_empty());
        assert_eq!(map_in_order(&[5u64], None, |n| *n + 1), [6]);
    }

    #[test]
    fn every_thread_takes_part() {
        let items: Vec<u64> = (0..64).collect();
        let ids = map_in_order(&items, NonZeroUsize::new(2), |_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            std::thread::current().id()
        });
        let mut distinct = ids.clone();
        distinct.sort_by_key(|id| format!("{id:?}"));
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "both threads reviewed some items");
    }
}
