//! The Redis adapters run the cache, revocation-list and attempt-tracker contract suites against a real
//! Redis: `GALLEY_TEST_REDIS_URL`, else the one on 127.0.0.1:6379. Each run uses its own key prefix.
//! Without a reachable Redis these tests fail and say what to install: they never pass silently.

use std::sync::Arc;

use galley_identity::{AttemptTracker, RevocationList};
use galley_kernel::Cache;
use galley_redis::{RedisAttemptTracker, RedisCache, RedisConnection, RedisRevocationList};

use galley_test_support::redis::PrefixCleanup as Cleanup;

async fn connection() -> (RedisConnection, Cleanup) {
    let url = std::env::var("GALLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let cleanup = Cleanup::fresh(&url);
    let connection = RedisConnection::connect(&url, &cleanup.prefix).await.unwrap_or_else(|error| {
        panic!(
            "Redis is needed at {url} ({error}). Install and start it (`apt-get install redis-server && \
             redis-server --daemonize yes --port 6379 --save ''`) or point GALLEY_TEST_REDIS_URL at one."
        )
    });
    (connection, cleanup)
}

async fn cache() -> Option<(Arc<dyn Cache>, Cleanup)> {
    let (connection, cleanup) = connection().await;
    Some((Arc::new(RedisCache(connection)), cleanup))
}

async fn revocations() -> Option<(Arc<dyn RevocationList>, Cleanup)> {
    let (connection, cleanup) = connection().await;
    Some((Arc::new(RedisRevocationList(connection)), cleanup))
}

async fn attempts() -> Option<(Arc<dyn AttemptTracker>, Cleanup)> {
    let (connection, cleanup) = connection().await;
    Some((Arc::new(RedisAttemptTracker::new(connection)), cleanup))
}

mod redis_cache {
    use super::*;
    galley_test_support::cache_contract_tests!(cache());
}

mod redis_revocation_list {
    use super::*;
    galley_test_support::revocation_list_contract_tests!(revocations());
}

mod redis_attempt_tracker {
    use super::*;
    galley_test_support::attempt_tracker_contract_tests!(attempts());
}
