//! The embedded RSS stores run the RSS storage contract suites.

use std::sync::Arc;

use galley_embedded::{SqliteEntryRepository, SqliteFeedStateRepository, SqliteJobRepository, SqliteStore};
use galley_rss::ports::{EntryRepository, FeedStateRepository, JobRepository};
use tempfile::TempDir;

async fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("galley.db")).await.expect("open store");
    (store, dir)
}

async fn jobs() -> Option<(Arc<dyn JobRepository>, TempDir)> {
    let (store, dir) = store().await;
    Some((Arc::new(SqliteJobRepository::new(&store)), dir))
}

async fn entries() -> Option<(Arc<dyn EntryRepository>, TempDir)> {
    let (store, dir) = store().await;
    Some((Arc::new(SqliteEntryRepository::new(&store)), dir))
}

async fn feeds() -> Option<(Arc<dyn FeedStateRepository>, TempDir)> {
    let (store, dir) = store().await;
    Some((Arc::new(SqliteFeedStateRepository::new(&store)), dir))
}

galley_test_support::rss_store_contract_tests!(jobs: jobs(), entries: entries(), feeds: feeds());
