//! The cache port.
//!
//! A deliberately small byte-oriented contract so that an in-process map and Redis implement it the
//! same way. Use cases apply it *cache-aside*: read the cache, fall back to the store, fill the cache.
//!
//! Error contract: every method may fail with [`CacheError::Unavailable`]. Callers treat the cache as an
//! optimisation and must keep working (by going to the store) when it fails; they log the failure.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache could not be reached or answered with an error; the message is for logs only.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Cache: Send + Sync + std::fmt::Debug {
    /// The value stored under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;

    /// Stores `value` under `key` for at most `ttl`.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError>;

    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), CacheError>;

    /// Atomically adds one to the counter at `key` (a missing key counts as 0) and returns the new value.
    /// Counters never expire; they are used as generation numbers for invalidation.
    async fn increment(&self, key: &str) -> Result<u64, CacheError>;

    /// Reads the counter at `key` without changing it (0 when missing).
    async fn counter(&self, key: &str) -> Result<u64, CacheError>;

    /// Reads the counter at `counter` (0 when missing) and the value under `key`, as one operation
    /// where the backend allows (Redis: one `MGET` round trip): what a generation-checked read needs.
    async fn get_with_counter(&self, counter: &str, key: &str) -> Result<(u64, Option<Bytes>), CacheError> {
        let generation = self.counter(counter).await?;
        Ok((generation, self.get(key).await?))
    }

    /// Cheap round trip for readiness probes.
    async fn ping(&self) -> Result<(), CacheError>;
}
