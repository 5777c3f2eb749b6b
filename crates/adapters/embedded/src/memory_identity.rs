//! The short-lived identity state kept in process memory: the revocation list and failed sign-in
//! counts. Both only need to outlive the tokens or windows they describe, so losing them on restart is
//! acceptable for the single-process embedded runtime (Redis holds them when replicas share them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_identity::{AttemptState, AttemptTracker, Budget, Reservation, RevocationList, StoreError};
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

/// Revoked token and session ids, each kept for the TTL it was revoked with — and never dropped
/// earlier: an entry evicted before its TTL would make a revoked token valid again, so the list has no
/// size bound. Its size is bounded by the work behind it instead: every entry is a sign-out or a
/// revoked session, each of which needed a sign-in (one password hash), and entries expire with the
/// tokens they cover (an access-token lifetime). Two cores hash well under 100 passwords a second,
/// so 15 minutes hold at most ~90 000 entries, a few tens of megabytes.
#[derive(Debug)]
pub struct MemoryRevocationList {
    revoked: moka::future::Cache<String, Duration>,
}

impl MemoryRevocationList {
    pub fn new() -> Self {
        Self { revoked: moka::future::Cache::builder().expire_after(RevocationTtl).build() }
    }
}

impl Default for MemoryRevocationList {
    fn default() -> Self {
        Self::new()
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

/// Sign-in attempt counts in fixed windows, and remembered (username, client) successes, timed by the
/// injected clock. One mutex makes each reservation (check every budget, then charge them all) atomic.
#[derive(Debug)]
pub struct MemoryAttemptTracker {
    clock: Arc<dyn Clock>,
    windows: Mutex<Windows>,
    remembered: Mutex<Windows>,
}

impl MemoryAttemptTracker {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, windows: Mutex::new(Windows::default()), remembered: Mutex::new(Windows::default()) }
    }

    /// Every critical section leaves the map consistent (no panic between reading and writing an
    /// entry), so a poisoned lock still holds valid counts; refusing every sign-in after an unrelated
    /// panic would be worse than carrying on.
    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remembered(&self) -> MutexGuard<'_, Windows> {
        self.remembered.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[async_trait]
impl AttemptTracker for MemoryAttemptTracker {
    async fn reserve(&self, budgets: &[Budget], window: Duration) -> Result<Reservation, StoreError> {
        let now = self.clock.now();
        let mut windows = self.windows();
        windows.sweep_if_due(now);
        let spent = budgets
            .iter()
            .filter_map(|budget| {
                let open = windows.by_key.get(&budget.key).filter(|w| w.is_open(now))?;
                (open.failures >= budget.limit).then(|| open.state(now).window_left)
            })
            .max();
        if let Some(retry_after) = spent {
            return Ok(Reservation::Refused { retry_after });
        }
        let ends_at = later(now, window);
        for budget in budgets {
            let entry =
                windows.by_key.entry(budget.key.clone()).or_insert(Window { failures: 0, ends_at: now });
            if !entry.is_open(now) {
                // First attempt, or the previous window is over: counting starts over.
                *entry = Window { failures: 0, ends_at };
            }
            entry.failures = entry.failures.saturating_add(1);
        }
        Ok(Reservation::Granted)
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut windows = self.windows();
        for key in keys {
            if let Some(window) = windows.by_key.get_mut(key).filter(|w| w.is_open(now)) {
                window.failures = window.failures.saturating_sub(1);
            }
        }
        Ok(())
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

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut remembered = self.remembered();
        remembered.sweep_if_due(now);
        remembered.by_key.insert(key.to_owned(), Window { failures: 0, ends_at: later(now, ttl) });
        Ok(())
    }

    async fn is_remembered(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self.remembered().by_key.get(key).is_some_and(|window| window.is_open(now)))
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

    /// Charges one attempt to `key` (with a budget that never runs out) and reads the count back.
    async fn charge(tracker: &MemoryAttemptTracker, key: &str, window: Duration) -> AttemptState {
        let granted = tracker.reserve(&[Budget::new(key, u32::MAX)], window).await.expect("reserve");
        assert_eq!(granted, Reservation::Granted);
        tracker.state(key).await.expect("state")
    }

    #[tokio::test]
    async fn windows_end_by_the_injected_clock_and_counting_starts_over() {
        let clock = ManualClock::new();
        let tracker = MemoryAttemptTracker::new(clock.clone());
        for expected in 1..=3 {
            let state = charge(&tracker, "k", WINDOW).await;
            assert_eq!(state, AttemptState { failures: expected, window_left: WINDOW });
        }

        clock.advance(WINDOW - Duration::from_millis(1));
        assert_eq!(
            tracker.state("k").await.expect("state"),
            AttemptState { failures: 3, window_left: Duration::from_millis(1) }
        );
        // A failure late in the window does not extend it.
        let late = charge(&tracker, "k", WINDOW).await;
        assert_eq!(late, AttemptState { failures: 4, window_left: Duration::from_millis(1) });

        clock.advance(Duration::from_millis(1));
        assert_eq!(tracker.state("k").await.expect("state"), AttemptState::default());
        let fresh = charge(&tracker, "k", WINDOW).await;
        assert_eq!(fresh, AttemptState { failures: 1, window_left: WINDOW });
    }

    #[tokio::test]
    async fn expired_windows_are_swept_so_memory_stays_bounded() {
        let clock = ManualClock::new();
        let tracker = MemoryAttemptTracker::new(clock.clone());
        for i in 0..(MIN_SWEEP_LEN * 3) {
            charge(&tracker, &format!("key-{i}"), WINDOW).await;
        }
        clock.advance(WINDOW);
        // Enough new keys to pass the next sweep threshold: the old ones must go.
        for i in 0..(MIN_SWEEP_LEN * 3) {
            charge(&tracker, &format!("new-{i}"), WINDOW).await;
        }
        let windows = tracker.windows();
        assert!(windows.by_key.keys().all(|key| key.starts_with("new-")), "expired keys were kept");
        assert_eq!(windows.by_key.len(), MIN_SWEEP_LEN * 3);
    }

    #[tokio::test]
    async fn an_enormous_window_saturates_instead_of_overflowing() {
        let tracker = MemoryAttemptTracker::new(ManualClock::new());
        let state = charge(&tracker, "k", Duration::MAX).await;
        assert_eq!(state.failures, 1);
        assert!(state.window_left > Duration::from_secs(365 * 24 * 3600));
    }

    #[tokio::test]
    async fn revoking_again_never_shortens_a_revocation() {
        let list = MemoryRevocationList::new();
        list.revoke("jti", Duration::from_secs(60)).await.expect("revoke");
        list.revoke("jti", Duration::from_millis(20)).await.expect("revoke");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(list.is_revoked("jti").await.expect("is_revoked"));
    }

    #[tokio::test]
    async fn no_revocation_is_dropped_before_it_expires_however_many_there_are() {
        // More than the 100 000 entries the list used to be capped at: every one must still hold.
        const REVOCATIONS: usize = 120_000;
        let list = MemoryRevocationList::default();
        for i in 0..REVOCATIONS {
            list.revoke(&format!("jti-{i}"), Duration::from_secs(600)).await.expect("revoke");
        }
        list.revoked.run_pending_tasks().await;
        assert_eq!(list.revoked.entry_count(), REVOCATIONS as u64);
        for i in (0..REVOCATIONS).step_by(997) {
            assert!(list.is_revoked(&format!("jti-{i}")).await.expect("is_revoked"), "jti-{i} was dropped");
        }
    }
}
