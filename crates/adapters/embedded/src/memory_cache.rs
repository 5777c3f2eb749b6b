//! In-process cache on moka: bounded by total bytes, per-entry TTL, lock-free reads.
//!
//! Counters (generation numbers) live in a separate map because they must never be evicted: losing one
//! would let stale entries of an older generation be read again. They are atomics under a read-mostly
//! lock: every cached read loads one, so reading must not serialise readers (the write lock is only
//! taken the first time a counter is created).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
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
    counters: RwLock<HashMap<String, AtomicU64>>,
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
        Self { entries, counters: RwLock::new(HashMap::new()) }
    }

    fn poisoned<T>(_: T) -> CacheError {
        CacheError::Unavailable("counter map poisoned".into())
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
        if let Some(counter) = self.counters.read().map_err(Self::poisoned)?.get(key) {
            return Ok(counter.fetch_add(1, Ordering::AcqRel) + 1);
        }
        let mut counters = self.counters.write().map_err(Self::poisoned)?;
        let counter = counters.entry(key.to_owned()).or_insert_with(|| AtomicU64::new(0));
        Ok(counter.fetch_add(1, Ordering::AcqRel) + 1)
    }

    async fn counter(&self, key: &str) -> Result<u64, CacheError> {
        let counters = self.counters.read().map_err(Self::poisoned)?;
        Ok(counters.get(key).map_or(0, |counter| counter.load(Ordering::Acquire)))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
