//! Redis adapters: the cache, the token revocation list and the failed sign-in tracker, shared by every
//! replica so that invalidations, sign-outs and lockouts hold across the fleet.
//!
//! One [`RedisConnection`] (a `redis` connection manager: multiplexed, reconnecting with backoff,
//! bounded connect and response timeouts) is shared by all three. Every key is prefixed (`galley:` by
//! default) so several deployments, or test runs, can share a server. Any Redis error is reported as
//! "unavailable": callers decide what that means (the cache is bypassed; sign-in is refused).
//!
//! Module map: [`RedisConnection`], [`RedisCache`], [`RedisRevocationList`], [`RedisAttemptTracker`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use galley_identity::{AttemptState, AttemptTracker, RevocationList};
use galley_kernel::{Cache, CacheError, StoreError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis: {0}")]
pub struct ConnectError(#[from] redis::RedisError);

/// A shared, self-healing connection with a key prefix.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Connects to `url` (`redis://[:password@]host:port/db`); fails fast if Redis is unreachable now,
    /// then reconnects by itself after outages.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ConnectError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { manager, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        let mut connection = self.manager.clone();
        command.query_async(&mut connection).await
    }

    /// Round trip for readiness probes.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn cache_error(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

fn store_error(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The cache port on Redis (`GET`, `SET … PX`, `DEL`, `INCR`).
#[derive(Debug, Clone)]
pub struct RedisCache(pub RedisConnection);

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let value: Option<Vec<u8>> =
            self.0.query(redis::cmd("GET").arg(self.0.key(key))).await.map_err(cache_error)?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let command =
            redis::cmd("SET").arg(self.0.key(key)).arg(value.as_ref()).arg("PX").arg(millis(ttl)).clone();
        self.0.query::<()>(&command).await.map_err(cache_error)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.0.query::<()>(redis::cmd("DEL").arg(self.0.key(key))).await.map_err(cache_error)
    }

    async fn increment(&self, key: &str) -> Result<u64, CacheError> {
        self.0.query(redis::cmd("INCR").arg(self.0.key(key))).await.map_err(cache_error)
    }

    async fn counter(&self, key: &str) -> Result<u64, CacheError> {
        let value: Option<u64> =
            self.0.query(redis::cmd("GET").arg(self.0.key(key))).await.map_err(cache_error)?;
        Ok(value.unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.0.ping().await.map_err(cache_error)
    }
}

/// Revoked token and session ids: `SET revoked:<id> 1 PX <ttl>`; an id is revoked while its key exists.
#[derive(Debug, Clone)]
pub struct RedisRevocationList(pub RedisConnection);

#[async_trait]
impl RevocationList for RedisRevocationList {
    async fn revoke(&self, id: &str, ttl: Duration) -> Result<(), StoreError> {
        // GT keeps the longer of two TTLs if an id is revoked twice, so a revocation is never shortened.
        let key = self.0.key(&format!("revoked:{id}"));
        let created: Option<String> = self
            .0
            .query(redis::cmd("SET").arg(&key).arg(1).arg("PX").arg(millis(ttl)).arg("NX"))
            .await
            .map_err(store_error)?;
        if created.is_none() {
            self.0
                .query::<()>(redis::cmd("PEXPIRE").arg(&key).arg(millis(ttl)).arg("GT"))
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let exists: u32 = self
            .0
            .query(redis::cmd("EXISTS").arg(self.0.key(&format!("revoked:{id}"))))
            .await
            .map_err(store_error)?;
        Ok(exists > 0)
    }
}

/// Failed sign-ins in fixed windows. The increment and the window's start happen in one Lua script, so
/// concurrent failures on several replicas are all counted and the first one starts the window.
#[derive(Debug, Clone)]
pub struct RedisAttemptTracker {
    connection: RedisConnection,
    record: redis::Script,
}

impl RedisAttemptTracker {
    pub fn new(connection: RedisConnection) -> Self {
        let record = redis::Script::new(
            r"
            local count = redis.call('INCR', KEYS[1])
            if redis.call('PTTL', KEYS[1]) < 0 then
                redis.call('PEXPIRE', KEYS[1], ARGV[1])
            end
            return {count, redis.call('PTTL', KEYS[1])}
            ",
        );
        Self { connection, record }
    }

    fn key(&self, key: &str) -> String {
        self.connection.key(&format!("attempts:{key}"))
    }
}

fn attempt_state(failures: u64, pttl: i64) -> AttemptState {
    AttemptState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        window_left: Duration::from_millis(u64::try_from(pttl).unwrap_or_default()),
    }
}

#[async_trait]
impl AttemptTracker for RedisAttemptTracker {
    async fn record_failure(&self, key: &str, window: Duration) -> Result<AttemptState, StoreError> {
        let mut connection = self.connection.manager.clone();
        let (failures, pttl): (u64, i64) = self
            .record
            .key(self.key(key))
            .arg(millis(window))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(attempt_state(failures, pttl))
    }

    async fn state(&self, key: &str) -> Result<AttemptState, StoreError> {
        let key = self.key(key);
        let mut connection = self.connection.manager.clone();
        let (failures, pttl): (Option<u64>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(attempt_state(failures.unwrap_or_default(), pttl))
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.connection.query::<()>(redis::cmd("DEL").arg(self.key(key))).await.map_err(store_error)
    }
}
