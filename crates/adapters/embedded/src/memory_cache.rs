//! In-process cache on moka: bounded by total bytes, per-entry TTL, lock-free reads.
//!
//! Counters (generation numbers) live in a separate map because they must never be evicted: losing one
//! would let stale entries of an older generation be read again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use galley_kernel::{Cache, CacheError};
use moka::Expiry;

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

/// Expires each entry after the TTL it was stored with.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

#[derive(Debug)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
    counters: Mutex<HashMap<String, u64>>,
}

impl MemoryCache {
    /// A cache holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { entries, counters: Mutex::new(HashMap::new()) }
    }

    fn counters(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, u64>>, CacheError> {
        self.counters.lock().map_err(|_| CacheError::Unavailable("counter map poisoned".into()))
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(64 * 1024 * 1024)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.entries.get(key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), Entry { value, ttl }).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn increment(&self, key: &str) -> Result<u64, CacheError> {
        let mut counters = self.counters()?;
        let counter = counters.entry(key.to_owned()).or_default();
        *counter += 1;
        Ok(*counter)
    }

    async fn counter(&self, key: &str) -> Result<u64, CacheError> {
        Ok(self.counters()?.get(key).copied().unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
