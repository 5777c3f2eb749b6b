//! The embedded identity adapters run the shared identity port contract suites: the SQLite stores on a
//! fresh database per case, the in-memory ones on a fresh instance with the real clock.

use std::sync::Arc;

use galley_embedded::{
    MemoryAttemptTracker, MemoryRevocationList, SqliteProviderSessionStore, SqliteRefreshTokenStore,
    SqliteSigningKeyStore, SqliteStore, SqliteUserRepository,
};
use galley_identity::{
    AttemptTracker, ProviderSessionStore, RefreshTokenStore, RevocationList, SigningKeyStore, UserRepository,
};
use galley_kernel::SystemClock;
use tempfile::TempDir;

/// A fresh database in its own temporary directory, removed when the returned guard drops.
async fn fresh_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("galley.db")).await.expect("open store");
    (store, dir)
}

async fn fresh_users() -> Option<(Arc<dyn UserRepository>, TempDir)> {
    let (store, dir) = fresh_store().await;
    Some((Arc::new(SqliteUserRepository::new(&store)), dir))
}

async fn fresh_refresh_tokens() -> Option<(Arc<dyn RefreshTokenStore>, TempDir)> {
    let (store, dir) = fresh_store().await;
    Some((Arc::new(SqliteRefreshTokenStore::new(&store)), dir))
}

async fn fresh_provider_sessions() -> Option<(Arc<dyn ProviderSessionStore>, TempDir)> {
    let (store, dir) = fresh_store().await;
    Some((Arc::new(SqliteProviderSessionStore::new(&store)), dir))
}

async fn fresh_signing_keys() -> Option<(Arc<dyn SigningKeyStore>, TempDir)> {
    let (store, dir) = fresh_store().await;
    Some((Arc::new(SqliteSigningKeyStore::new(&store)), dir))
}

async fn fresh_revocation_list() -> Option<(Arc<dyn RevocationList>, ())> {
    Some((Arc::new(MemoryRevocationList::new()), ()))
}

async fn fresh_attempt_tracker() -> Option<(Arc<dyn AttemptTracker>, ())> {
    Some((Arc::new(MemoryAttemptTracker::new(Arc::new(SystemClock))), ()))
}

mod sqlite_user_repository {
    use super::*;
    galley_test_support::user_repository_contract_tests!(fresh_users());
}

mod sqlite_refresh_token_store {
    use super::*;
    galley_test_support::refresh_token_store_contract_tests!(fresh_refresh_tokens());
}

mod sqlite_provider_session_store {
    use super::*;
    galley_test_support::provider_session_store_contract_tests!(fresh_provider_sessions());
}

mod sqlite_signing_key_store {
    use super::*;
    galley_test_support::signing_key_store_contract_tests!(fresh_signing_keys());
}

mod memory_revocation_list {
    use super::*;
    galley_test_support::revocation_list_contract_tests!(fresh_revocation_list());
}

mod memory_attempt_tracker {
    use super::*;
    galley_test_support::attempt_tracker_contract_tests!(fresh_attempt_tracker());
}
