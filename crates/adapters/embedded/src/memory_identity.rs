//! The short-lived identity state kept in process memory: the revocation list and failed sign-in
//! counts. Both only need to outlive the tokens or windows they describe, so losing them on restart is
//! acceptable for the single-process embedded runtime (Redis holds them when replicas share them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_identity::{AttemptState, AttemptTracker, RevocationList, StoreError};
use galley_kernel::Clock;
use moka::Expiry;

// ---------------------------------------------------------------------------------------------------
// Revocation list

/// Expires each revocation after the TTL it was stored with. Revoking an id again never shortens its
/// remaining life: a revocation must last at least as long as the longest-lived token it covers.
struct RevocationTtl;

impl Expiry<String, Duration> for RevocationTtl {
    fn expire_after_create(&self, _id: &String, ttl: &Duration, _created_at: Instant) -> Option<Duration> {
        Some(*ttl)
    }

    fn expire_after_update(
        &self,
        _id: &String,
        ttl: &Duration,
        _updated_at: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining.map_or(*ttl, |remaining| remaining.max(*ttl)))
    }
}

/// Revoked token and session ids, each kept for the TTL it was revoked with.
#[derive(Debug)]
pub struct MemoryRevocationList {
    revoked: moka::future::Cache<String, Duration>,
}

impl MemoryRevocationList {
    /// Capacity of [`Default`]. An entry evicted before its TTL would make a revoked token valid again,
    /// so the bound must exceed the sign-outs possible within one access-token lifetime: every sign-out
    /// costs a password hash on sign-in, so reaching this in 15 minutes is out of reach of one machine,
    /// while the worst case stays a few tens of megabytes.
    pub const DEFAULT_CAPACITY: u64 = 100_000;

    /// A list holding at most `max_entries` revocations (bounded memory).
    pub fn new(max_entries: u64) -> Self {
        let revoked =
            moka::future::Cache::builder().max_capacity(max_entries).expire_after(RevocationTtl).build();
        Self { revoked }
    }
}

impl Default for MemoryRevocationList {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl RevocationList for MemoryRevocationList {
    async fn revoke(&self, id: &str, ttl: Duration) -> Result<(), StoreError> {
        self.revoked.insert(id.to_owned(), ttl).await;
        Ok(())
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        // `get` never returns an expired entry, even before moka has evicted it.
        Ok(self.revoked.get(id).await.is_some())
    }
}

// ---------------------------------------------------------------------------------------------------
// Attempt tracker

/// Expired windows are swept when the map has grown to this many keys (or twice its size after the
/// last sweep), so sweeping costs O(1) amortised per call and memory stays proportional to the live
/// windows.
const MIN_SWEEP_LEN: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    ends_at: DateTime<Utc>,
}

impl Window {
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.ends_at > now
    }

    fn state(&self, now: DateTime<Utc>) -> AttemptState {
        AttemptState {
            failures: self.failures,
            window_left: (self.ends_at - now).to_std().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default)]
struct Windows {
    by_key: HashMap<String, Window>,
    sweep_at_len: usize,
}

impl Windows {
    fn sweep_if_due(&mut self, now: DateTime<Utc>) {
        if self.by_key.len() >= self.sweep_at_len {
            self.by_key.retain(|_, window| window.is_open(now));
            self.sweep_at_len = (self.by_key.len() * 2).max(MIN_SWEEP_LEN);
        }
    }
}

/// Failed sign-in counts in fixed windows, timed by the injected clock.
#[derive(Debug)]
pub struct MemoryAttemptTracker {
    clock: Arc<dyn Clock>,
    windows: Mutex<Windows>,
}

impl MemoryAttemptTracker {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, windows: Mutex::new(Windows::default()) }
    }

    /// Every critical section leaves the map consistent (no panic between reading and writing an
    /// entry), so a poisoned lock still holds valid counts; refusing every sign-in after an unrelated
    /// panic would be worse than carrying on.
    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AttemptTracker for MemoryAttemptTracker {
    async fn record_failure(&self, key: &str, window: Duration) -> Result<AttemptState, StoreError> {
        let now = self.clock.now();
        let ends_at = chrono::Duration::from_std(window)
            .ok()
            .and_then(|window| now.checked_add_signed(window))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut windows = self.windows();
        windows.sweep_if_due(now);
        let entry = windows.by_key.entry(key.to_owned()).or_insert(Window { failures: 0, ends_at: now });
        if !entry.is_open(now) {
            // First failure, or the previous window is over: counting starts over.
            *entry = Window { failures: 0, ends_at };
        }
        entry.failures = entry.failures.saturating_add(1);
        Ok(entry.state(now))
    }

    async fn state(&self, key: &str) -> Result<AttemptState, StoreError> {
        let now = self.clock.now();
        let mut windows = self.windows();
        match windows.by_key.get(key) {
            Some(window) if window.is_open(now) => Ok(window.state(now)),
            Some(_) => {
                windows.by_key.remove(key);
                Ok(AttemptState::default())
            }
            None => Ok(AttemptState::default()),
        }
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.windows().by_key.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that moves only when told to, so window expiry is tested without sleeping.
    #[derive(Debug)]
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn new() -> Arc<Self> {
            let start = DateTime::from_timestamp(1_767_268_800, 0).expect("valid instant");
            Arc::new(Self(Mutex::new(start)))
        }

        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().expect("clock lock");
            *now += chrono::Duration::from_std(by).expect("small duration");
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock lock")
        }
    }

    const WINDOW: Duration = Duration::from_secs(15 * 60);

    #[tokio::test]
    async fn windows_end_by_the_injected_clock_and_counting_starts_over() {
        let clock = ManualClock::new();
        let tracker = MemoryAttemptTracker::new(clock.clone());
        for expected in 1..=3 {
            let state = tracker.record_failure("k", WINDOW).await.expect("record");
            assert_eq!(state, AttemptState { failures: expected, window_left: WINDOW });
        }

        clock.advance(WINDOW - Duration::from_millis(1));
        assert_eq!(
            tracker.state("k").await.expect("state"),
            AttemptState { failures: 3, window_left: Duration::from_millis(1) }
        );
        // A failure late in the window does not extend it.
        let late = tracker.record_failure("k", WINDOW).await.expect("record");
        assert_eq!(late, AttemptState { failures: 4, window_left: Duration::from_millis(1) });

        clock.advance(Duration::from_millis(1));
        assert_eq!(tracker.state("k").await.expect("state"), AttemptState::default());
        let fresh = tracker.record_failure("k", WINDOW).await.expect("record");
        assert_eq!(fresh, AttemptState { failures: 1, window_left: WINDOW });
    }

    #[tokio::test]
    async fn expired_windows_are_swept_so_memory_stays_bounded() {
        let clock = ManualClock::new();
        let tracker = MemoryAttemptTracker::new(clock.clone());
        for i in 0..(MIN_SWEEP_LEN * 3) {
            tracker.record_failure(&format!("key-{i}"), WINDOW).await.expect("record");
        }
        clock.advance(WINDOW);
        // Enough new keys to pass the next sweep threshold: the old ones must go.
        for i in 0..(MIN_SWEEP_LEN * 3) {
            tracker.record_failure(&format!("new-{i}"), WINDOW).await.expect("record");
        }
        let windows = tracker.windows();
        assert!(windows.by_key.keys().all(|key| key.starts_with("new-")), "expired keys were kept");
        assert_eq!(windows.by_key.len(), MIN_SWEEP_LEN * 3);
    }

    #[tokio::test]
    async fn an_enormous_window_saturates_instead_of_overflowing() {
        let tracker = MemoryAttemptTracker::new(ManualClock::new());
        let state = tracker.record_failure("k", Duration::MAX).await.expect("record");
        assert_eq!(state.failures, 1);
        assert!(state.window_left > Duration::from_secs(365 * 24 * 3600));
    }

    #[tokio::test]
    async fn revoking_again_never_shortens_a_revocation() {
        let list = MemoryRevocationList::new(16);
        list.revoke("jti", Duration::from_secs(60)).await.expect("revoke");
        list.revoke("jti", Duration::from_millis(20)).await.expect("revoke");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(list.is_revoked("jti").await.expect("is_revoked"));
    }
}
