//! Redis adapters: the cache, the token revocation list and the failed sign-in tracker, shared by every
//! replica so that invalidations, sign-outs and lockouts hold across the fleet.
//!
//! One [`RedisConnection`] (a `redis` connection manager: multiplexed, reconnecting with backoff,
//! bounded connect and response timeouts) is shared by all three. Every key is prefixed (`galley:` by
//! default) so several deployments, or test runs, can share a server. Any Redis error is reported as
//! "unavailable": callers decide what that means (the cache is bypassed; sign-in is refused).
//!
//! Module map: [`RedisConnection`], [`RedisCache`], [`RedisRevocationList`], [`RedisAttemptTracker`].

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use galley_identity::{AttemptState, AttemptTracker, Budget, Reservation, RevocationList};
use galley_kernel::{Cache, CacheError, StoreError};
use galley_platform::secret::ExposeSecret as _;
use galley_platform::{Credentials, CredentialsFeed};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis: {0}")]
pub struct ConnectError(#[from] redis::RedisError);

/// A shared, self-healing connection with a key prefix.
#[derive(Clone)]
pub struct RedisConnection {
    /// Replaced as a whole when leased credentials rotate ([`RedisConnection::connect_following`]);
    /// a command clones the manager it starts on, so commands in flight finish on the old one.
    manager: Arc<RwLock<ConnectionManager>>,
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
        let first = manager(redis::Client::open(url)?).await?;
        Ok(Self { manager: Arc::new(RwLock::new(first)), prefix: prefix.to_owned() })
    }

    /// Connects to `url` (which carries no credentials) as the user `credentials` names now, and
    /// follows them: on every change a connection with the new credentials is opened and swapped in
    /// for the commands that follow (the old user's connection serves the commands already running).
    /// The leased users need no `@dangerous` command (see the README for the ACL a role grants).
    pub async fn connect_following(
        url: &str,
        prefix: &str,
        mut credentials: CredentialsFeed,
    ) -> Result<Self, ConnectError> {
        let current = credentials.borrow_and_update().clone();
        let first = manager(client_as(url, &current)?).await?;
        let shared = Arc::new(RwLock::new(first));
        let swapped = Arc::downgrade(&shared);
        let url = url.to_owned();
        tokio::spawn(async move {
            // Ends when the feed closes (the lease is revoked) or the connection is dropped.
            while credentials.changed().await.is_ok() {
                let Some(target) = swapped.upgrade() else { return };
                let next = credentials.borrow_and_update().clone();
                match client_as(&url, &next) {
                    Ok(client) => match manager(client).await {
                        Ok(replacement) => {
                            *target.write().unwrap_or_else(PoisonError::into_inner) = replacement;
                            tracing::info!(username = %next.username, "Redis connection swapped to new credentials");
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot connect with the new Redis credentials; keeping the current connection")
                        }
                    },
                    Err(error) => tracing::warn!(%error, "invalid Redis URL for the new credentials"),
                }
            }
        });
        Ok(Self { manager: shared, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        self.manager.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        let mut connection = self.connection();
        command.query_async(&mut connection).await
    }

    /// Round trip for readiness probes.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

/// The connection manager every Redis connection uses: bounded connect and response times, a few
/// quick retries, reconnection with backoff.
async fn manager(client: redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}

/// A client for `url` logging in as `credentials`.
fn client_as(url: &str, credentials: &Credentials) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo as _;
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_username(&credentials.username)
        .set_password(credentials.password.expose_secret());
    redis::Client::open(info.set_redis_settings(settings))
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

/// The cache port on Redis (`GET`, `SET … PX`, `DEL`, `INCR`; a counter and an entry together with
/// one `MGET`).
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

    async fn get_with_counter(&self, counter: &str, key: &str) -> Result<(u64, Option<Bytes>), CacheError> {
        let command = redis::cmd("MGET").arg(self.0.key(counter)).arg(self.0.key(key)).clone();
        let (generation, value): (Option<u64>, Option<Vec<u8>>) =
            self.0.query(&command).await.map_err(cache_error)?;
        Ok((generation.unwrap_or_default(), value.map(Bytes::from)))
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

/// Sign-in attempt budgets in fixed windows. A reservation is one Lua script: it reads every budget and
/// charges them all only if none is spent, so concurrent attempts on several replicas cannot race past a
/// limit (Redis runs a script without interleaving other commands). The script touches several keys,
/// so it needs them on one node: a single primary (with replicas), not Redis Cluster.
#[derive(Debug, Clone)]
pub struct RedisAttemptTracker {
    connection: RedisConnection,
    reserve: redis::Script,
    release: redis::Script,
}

/// `KEYS`: the budgets' keys; `ARGV[1]`: window (ms); `ARGV[i + 1]`: the limit of `KEYS[i]`.
/// Returns `{1, 0}` when granted, `{0, longest PTTL of a spent budget}` when refused.
const RESERVE_SCRIPT: &str = r"
local longest = 0
local refused = false
for i, key in ipairs(KEYS) do
    local count = tonumber(redis.call('GET', key) or '0')
    if count >= tonumber(ARGV[i + 1]) then
        refused = true
        local ttl = redis.call('PTTL', key)
        if ttl > longest then longest = ttl end
    end
end
if refused then return {0, longest} end
for _, key in ipairs(KEYS) do
    redis.call('INCR', key)
    if redis.call('PTTL', key) < 0 then
        redis.call('PEXPIRE', key, ARGV[1])
    end
end
return {1, 0}
";

/// Takes one attempt back from each key still counting (DECR keeps the key's TTL).
const RELEASE_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') > 0 then
        redis.call('DECR', key)
    end
end
return 0
";

impl RedisAttemptTracker {
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            connection,
            reserve: redis::Script::new(RESERVE_SCRIPT),
            release: redis::Script::new(RELEASE_SCRIPT),
        }
    }

    fn key(&self, key: &str) -> String {
        self.connection.key(&format!("attempts:{key}"))
    }

    fn known_key(&self, key: &str) -> String {
        self.connection.key(&format!("known:{key}"))
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
    async fn reserve(&self, budgets: &[Budget], window: Duration) -> Result<Reservation, StoreError> {
        let mut invocation = self.reserve.prepare_invoke();
        invocation.arg(millis(window));
        for budget in budgets {
            invocation.key(self.key(&budget.key)).arg(budget.limit);
        }
        let mut connection = self.connection.connection();
        let (granted, pttl): (u8, i64) =
            invocation.invoke_async(&mut connection).await.map_err(store_error)?;
        Ok(if granted == 1 {
            Reservation::Granted
        } else {
            Reservation::Refused {
                retry_after: Duration::from_millis(u64::try_from(pttl).unwrap_or_default()),
            }
        })
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut invocation = self.release.prepare_invoke();
        for key in keys {
            invocation.key(self.key(key));
        }
        let mut connection = self.connection.connection();
        invocation.invoke_async::<()>(&mut connection).await.map_err(store_error)
    }

    async fn state(&self, key: &str) -> Result<AttemptState, StoreError> {
        let key = self.key(key);
        let mut connection = self.connection.connection();
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

    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let command = redis::cmd("SET").arg(self.known_key(key)).arg(1).arg("PX").arg(millis(ttl)).clone();
        self.connection.query::<()>(&command).await.map_err(store_error)
    }

    async fn is_remembered(&self, key: &str) -> Result<bool, StoreError> {
        let exists: u32 = self
            .connection
            .query(redis::cmd("EXISTS").arg(self.known_key(key)))
            .await
            .map_err(store_error)?;
        Ok(exists > 0)
    }
}
