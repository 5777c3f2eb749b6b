//! Stampede protection for cache-aside reads: when a hot key is missing from the cache (first read,
//! expiry, invalidation), many requests miss at once and would all hit the store for the same value.
//! [`LoadCoalescer`] lets exactly one of them load per key while the others wait for their turn and then
//! find the value in the cache.
//!
//! Written by hand because it is small and specific: a per-key async mutex whose map entry disappears
//! with its last user (cancelled waiters included), so the map never grows with the key space.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Serializes loads of the same key within this process. Across replicas the cache still sees at most
/// one load per replica per miss.
#[derive(Debug, Default)]
pub struct LoadCoalescer {
    flights: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl LoadCoalescer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for this caller's turn to load `key`. The first caller gets it at once; concurrent callers
    /// queue behind it and, when their turn comes, should look in the cache again before loading.
    pub async fn turn(&self, key: &str) -> LoadTurn<'_> {
        let lock = Arc::clone(
            self.flights.lock().unwrap_or_else(PoisonError::into_inner).entry(key.to_owned()).or_default(),
        );
        // Built before waiting, so a caller cancelled while it waits still releases the map entry.
        let mut turn = LoadTurn { owner: self, key: key.to_owned(), lock, guard: None, waited: false };
        let guard = match Arc::clone(&turn.lock).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                turn.waited = true;
                Arc::clone(&turn.lock).lock_owned().await
            }
        };
        turn.guard = Some(guard);
        turn
    }

    /// Keys with a load in progress or waiting (for tests and metrics).
    pub fn keys_in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The right to load one key; the next waiter's turn comes when it is dropped.
#[derive(Debug)]
pub struct LoadTurn<'a> {
    owner: &'a LoadCoalescer,
    key: String,
    lock: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
    waited: bool,
}

impl LoadTurn<'_> {
    /// Whether another caller held the key first: only then may the cache have been filled meanwhile,
    /// so an uncontended miss skips the second cache read.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for LoadTurn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut flights = self.owner.flights.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this turn hold the lock: nobody waits, the entry can go. Clones are only
        // made under the map's mutex, so the count cannot grow behind our back.
        if Arc::strong_count(&self.lock) == 2 {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_caller_at_a_time_per_key_and_other_keys_do_not_wait() {
        let coalescer = Arc::new(LoadCoalescer::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let most_inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (coalescer, inside, most_inside) =
                (Arc::clone(&coalescer), Arc::clone(&inside), Arc::clone(&most_inside));
            tasks.push(tokio::spawn(async move {
                let _turn = coalescer.turn("hot").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        // Another key is not held up by the hot one.
        let other = tokio::time::timeout(Duration::from_millis(500), coalescer.turn("cold")).await;
        assert!(other.is_ok(), "an unrelated key waited");
        drop(other);
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(most_inside.load(Ordering::SeqCst), 1, "two loads of one key overlapped");
        assert_eq!(coalescer.keys_in_flight(), 0, "entries are removed with their last user");
    }

    #[tokio::test]
    async fn a_waiter_cancelled_in_the_queue_leaves_no_entry_behind() {
        let coalescer = LoadCoalescer::new();
        let holder = coalescer.turn("k").await;
        assert!(!holder.waited(), "the first caller gets its turn at once");
        let waiting = tokio::time::timeout(Duration::from_millis(20), coalescer.turn("k")).await;
        assert!(waiting.is_err(), "the second caller waits while the first holds its turn");
        drop(holder);
        assert_eq!(coalescer.keys_in_flight(), 0);
    }
}
