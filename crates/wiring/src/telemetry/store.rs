//! Measuring decorators around every repository port of the [`DocumentStore`](crate::DocumentStore):
//! `galley_store_operation_duration_seconds{repository, operation}` (a histogram, successes and
//! failures alike) and `galley_store_errors_total{repository, operation}` (infrastructure failures
//! only: a duplicate username or a revision mismatch is an answer, not a store error).
//!
//! `repository` is the port (`recipes`, `users`, `jobs`, ...) and `operation` the method name: both a
//! closed set, registered when the decorator is built, so recording is two atomic operations and a
//! short scan of at most nine names. The adapters stay unaware of metrics, and SQLite and MongoDB are
//! measured the same way, from the use case's side of the port.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_identity::{
    ConsumeOutcome, InsertUserError, ProviderSession, ProviderSessionStore, RefreshRecord, RefreshTokenStore,
    SigningKeyStore, StoredSigningKey, User, UserRepository,
};
use galley_kernel::{Page, StoreError, UserId};
use galley_platform::Metrics;
use galley_recipes::{
    Recipe, RecipeId, RecipeQuery, RecipeRepository, RepositoryError, Revision, WriteOutcome,
};
use galley_rss::feed_url::FeedUrl;
use galley_rss::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use galley_rss::ports::{
    EntryRepository, FeedState, FeedStateRepository, InsertJob, JobOutcome, JobRepository,
};
use metrics::{Counter, Histogram, Unit};

use crate::DocumentStore;

pub const OPERATION_DURATION: &str = "galley_store_operation_duration_seconds";
pub const ERRORS: &str = "galley_store_errors_total";

/// Every repository of `store` measured into `metrics`; with metrics off, `store` unchanged.
pub(crate) fn instrument(store: DocumentStore, metrics: &Metrics) -> DocumentStore {
    if !metrics.is_enabled() {
        return store;
    }
    metrics.describe_histogram(
        OPERATION_DURATION,
        Unit::Seconds,
        "Time of a document-store operation, per repository port and method.",
    );
    metrics.describe_counter(
        ERRORS,
        Unit::Count,
        "Document-store operations that failed (unavailable or internal).",
    );
    let meter = |repository, operations| Meter::new(metrics, repository, operations);
    DocumentStore {
        recipes: Arc::new(Measured { inner: store.recipes, meter: meter("recipes", RECIPE_OPERATIONS) }),
        users: Arc::new(Measured { inner: store.users, meter: meter("users", USER_OPERATIONS) }),
        refresh_tokens: Arc::new(Measured {
            inner: store.refresh_tokens,
            meter: meter("refresh_tokens", REFRESH_TOKEN_OPERATIONS),
        }),
        signing_keys: Arc::new(Measured {
            inner: store.signing_keys,
            meter: meter("signing_keys", SIGNING_KEY_OPERATIONS),
        }),
        provider_sessions: Arc::new(Measured {
            inner: store.provider_sessions,
            meter: meter("provider_sessions", PROVIDER_SESSION_OPERATIONS),
        }),
        jobs: Arc::new(Measured { inner: store.jobs, meter: meter("jobs", JOB_OPERATIONS) }),
        entries: Arc::new(Measured { inner: store.entries, meter: meter("entries", ENTRY_OPERATIONS) }),
        feeds: Arc::new(Measured { inner: store.feeds, meter: meter("feeds", FEED_OPERATIONS) }),
        health: store.health,
        backend: store.backend,
    }
}

/// Whether an error is the store's failure (counted) or a domain answer carried as an error.
trait StoreFailure {
    fn is_store_failure(&self) -> bool;
}

impl StoreFailure for StoreError {
    fn is_store_failure(&self) -> bool {
        true
    }
}

impl StoreFailure for RepositoryError {
    fn is_store_failure(&self) -> bool {
        true
    }
}

impl StoreFailure for InsertUserError {
    fn is_store_failure(&self) -> bool {
        matches!(self, InsertUserError::Store(_))
    }
}

/// The handles of one repository's operations, registered once.
#[derive(Debug, Clone)]
struct Meter {
    operations: Arc<[Operation]>,
}

#[derive(Debug)]
struct Operation {
    name: &'static str,
    duration: Histogram,
    errors: Counter,
}

impl Meter {
    fn new(metrics: &Metrics, repository: &'static str, operations: &[&'static str]) -> Self {
        let operations = operations
            .iter()
            .map(|&name| {
                let labels = [("repository", repository.into()), ("operation", name.into())];
                Operation {
                    name,
                    duration: metrics.histogram(OPERATION_DURATION, &labels),
                    errors: metrics.counter(ERRORS, &labels),
                }
            })
            .collect();
        Self { operations }
    }

    /// Runs `work`, recording its duration and whether the store failed.
    async fn time<T, E: StoreFailure>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = work.await;
        let handles = self.operations.iter().find(|handles| handles.name == operation);
        debug_assert!(handles.is_some(), "{operation} is missing from its repository's operation list");
        if let Some(handles) = handles {
            handles.duration.record(started.elapsed().as_secs_f64());
            if result.as_ref().is_err_and(StoreFailure::is_store_failure) {
                handles.errors.increment(1);
            }
        }
        result
    }
}

/// A repository port measured by its [`Meter`]; one generic decorator, one `impl` per port.
#[derive(Debug)]
struct Measured<P: ?Sized> {
    inner: Arc<P>,
    meter: Meter,
}

const RECIPE_OPERATIONS: &[&str] = &["insert", "get", "list", "update", "delete", "count", "ping"];

#[async_trait]
impl RecipeRepository for Measured<dyn RecipeRepository> {
    async fn insert(&self, recipe: &Recipe) -> Result<(), RepositoryError> {
        self.meter.time("insert", self.inner.insert(recipe)).await
    }
    async fn get(&self, id: RecipeId) -> Result<Option<Recipe>, RepositoryError> {
        self.meter.time("get", self.inner.get(id)).await
    }
    async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RepositoryError> {
        self.meter.time("list", self.inner.list(query)).await
    }
    async fn update(&self, recipe: &Recipe, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        self.meter.time("update", self.inner.update(recipe, expected)).await
    }
    async fn delete(&self, id: RecipeId, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        self.meter.time("delete", self.inner.delete(id, expected)).await
    }
    async fn count(&self) -> Result<u64, RepositoryError> {
        self.meter.time("count", self.inner.count()).await
    }
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.meter.time("ping", self.inner.ping()).await
    }
}

const USER_OPERATIONS: &[&str] = &["insert", "find_by_username", "find_by_id", "ping"];

#[async_trait]
impl UserRepository for Measured<dyn UserRepository> {
    async fn insert(&self, user: &User) -> Result<(), InsertUserError> {
        self.meter.time("insert", self.inner.insert(user)).await
    }
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.meter.time("find_by_username", self.inner.find_by_username(username)).await
    }
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.meter.time("find_by_id", self.inner.find_by_id(id)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.meter.time("ping", self.inner.ping()).await
    }
}

const REFRESH_TOKEN_OPERATIONS: &[&str] = &["insert", "consume", "revoke_family"];

#[async_trait]
impl RefreshTokenStore for Measured<dyn RefreshTokenStore> {
    async fn insert(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        self.meter.time("insert", self.inner.insert(record)).await
    }
    async fn consume(&self, token_hash: &str) -> Result<ConsumeOutcome, StoreError> {
        self.meter.time("consume", self.inner.consume(token_hash)).await
    }
    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError> {
        self.meter.time("revoke_family", self.inner.revoke_family(family_id)).await
    }
}

const SIGNING_KEY_OPERATIONS: &[&str] = &["load", "insert", "retire", "delete", "replace_private_pem"];

#[async_trait]
impl SigningKeyStore for Measured<dyn SigningKeyStore> {
    async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.meter.time("load", self.inner.load()).await
    }
    async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        self.meter.time("insert", self.inner.insert(key)).await
    }
    async fn retire(&self, kid: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.meter.time("retire", self.inner.retire(kid, at)).await
    }
    async fn delete(&self, kid: &str) -> Result<(), StoreError> {
        self.meter.time("delete", self.inner.delete(kid)).await
    }
    async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
        self.meter.time("replace_private_pem", self.inner.replace_private_pem(kid, private_pem)).await
    }
}

const PROVIDER_SESSION_OPERATIONS: &[&str] = &["put", "find", "delete"];

#[async_trait]
impl ProviderSessionStore for Measured<dyn ProviderSessionStore> {
    async fn put(&self, session: &ProviderSession) -> Result<(), StoreError> {
        self.meter.time("put", self.inner.put(session)).await
    }
    async fn find(&self, key: &str) -> Result<Option<ProviderSession>, StoreError> {
        self.meter.time("find", self.inner.find(key)).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.meter.time("delete", self.inner.delete(key)).await
    }
}

const JOB_OPERATIONS: &[&str] =
    &["insert", "get", "delete", "start_attempt", "requeue", "finish", "list_stale", "claim_stale", "ping"];

#[async_trait]
impl JobRepository for Measured<dyn JobRepository> {
    async fn insert<'a>(&self, job: &Job, idempotency_key: Option<&'a str>) -> Result<InsertJob, StoreError> {
        self.meter.time("insert", self.inner.insert(job, idempotency_key)).await
    }
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.meter.time("get", self.inner.get(id)).await
    }
    async fn delete(&self, id: JobId) -> Result<(), StoreError> {
        self.meter.time("delete", self.inner.delete(id)).await
    }
    async fn start_attempt(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<Job>, StoreError> {
        self.meter.time("start_attempt", self.inner.start_attempt(id, now)).await
    }
    async fn requeue(&self, id: JobId, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.meter.time("requeue", self.inner.requeue(id, error, now)).await
    }
    async fn finish(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        self.meter.time("finish", self.inner.finish(id, outcome, now)).await
    }
    async fn list_stale(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        self.meter.time("list_stale", self.inner.list_stale(status, before, limit)).await
    }
    async fn claim_stale(
        &self,
        id: JobId,
        status: JobStatus,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.meter.time("claim_stale", self.inner.claim_stale(id, status, seen, now)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.meter.time("ping", self.inner.ping()).await
    }
}

const ENTRY_OPERATIONS: &[&str] = &["insert_new", "list"];

#[async_trait]
impl EntryRepository for Measured<dyn EntryRepository> {
    async fn insert_new(&self, job: JobId, entries: &[Entry]) -> Result<(u64, u64), StoreError> {
        self.meter.time("insert_new", self.inner.insert_new(job, entries)).await
    }
    async fn list(&self, query: &EntryQuery) -> Result<Page<Entry>, StoreError> {
        self.meter.time("list", self.inner.list(query)).await
    }
}

const FEED_OPERATIONS: &[&str] = &["get", "record_success", "record_failure"];

#[async_trait]
impl FeedStateRepository for Measured<dyn FeedStateRepository> {
    async fn get(&self, url: &FeedUrl) -> Result<Option<FeedState>, StoreError> {
        self.meter.time("get", self.inner.get(url)).await
    }
    async fn record_success<'a>(
        &self,
        url: &FeedUrl,
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.meter.time("record_success", self.inner.record_success(url, etag, last_modified, now)).await
    }
    async fn record_failure(&self, url: &FeedUrl, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.meter.time("record_failure", self.inner.record_failure(url, error, now)).await
    }
}

#[cfg(test)]
mod tests {
    use galley_embedded::SqliteStore;

    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(galley_platform::BuildInfo { service: "test", version: "0" })
    }

    async fn store(dir: &tempfile::TempDir, metrics: &Metrics) -> DocumentStore {
        let sqlite = SqliteStore::open(&dir.path().join("galley.db")).await.expect("store");
        instrument(DocumentStore::embedded(sqlite), metrics)
    }

    fn line_value(rendered: &str, prefix: &str) -> Option<f64> {
        rendered.lines().find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn operations_are_timed_per_repository_and_method() {
        let dir = tempfile::tempdir().expect("temp dir");
        let metrics = metrics();
        let store = store(&dir, &metrics).await;
        assert_eq!(store.recipes.count().await.expect("count"), 0);
        assert_eq!(store.recipes.count().await.expect("count"), 0);
        assert!(store.users.find_by_username("nobody").await.expect("find").is_none());
        assert!(store.jobs.get(JobId::generate()).await.expect("get").is_none());

        let rendered = metrics.render().expect("enabled");
        let count = |labels: &str| {
            line_value(&rendered, &format!("{OPERATION_DURATION}_count{{{labels}}}")).unwrap_or_default()
        };
        assert_eq!(count(r#"repository="recipes",operation="count""#), 2.0, "{rendered}");
        assert_eq!(count(r#"repository="users",operation="find_by_username""#), 1.0, "{rendered}");
        assert_eq!(count(r#"repository="jobs",operation="get""#), 1.0, "{rendered}");
        assert_eq!(count(r#"repository="recipes",operation="list""#), 0.0, "registered, not yet used");
        assert!(rendered.contains(&format!("{OPERATION_DURATION}_bucket{{")), "a histogram, not a summary");
        assert!(
            !rendered.lines().any(|line| line.starts_with(ERRORS) && !line.trim_end().ends_with(" 0")),
            "no failures yet:\n{rendered}"
        );
    }

    #[tokio::test]
    async fn store_failures_are_counted_and_domain_answers_are_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let metrics = metrics();
        let store = store(&dir, &metrics).await;
        let user = User {
            id: UserId::new("user-1"),
            username: "ada".to_owned(),
            email: "ada@example.com".to_owned(),
            given_name: None,
            password_hash: "hash".to_owned(),
            created_at: Utc::now(),
        };
        store.users.insert(&user).await.expect("first insert");
        let duplicate = store.users.insert(&user).await;
        assert!(matches!(duplicate, Err(InsertUserError::Duplicate(_))), "{duplicate:?}");
        store.close().await;
        assert!(store.recipes.count().await.is_err(), "a closed store fails");

        let rendered = metrics.render().expect("enabled");
        let errors =
            |labels: &str| line_value(&rendered, &format!("{ERRORS}{{{labels}}}")).unwrap_or_default();
        assert_eq!(
            errors(r#"repository="users",operation="insert""#),
            0.0,
            "a duplicate is an answer: {rendered}"
        );
        assert_eq!(errors(r#"repository="recipes",operation="count""#), 1.0, "{rendered}");
    }

    #[tokio::test]
    async fn disabled_metrics_leave_the_store_as_it_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(&dir, &Metrics::disabled()).await;
        assert_eq!(store.recipes.count().await.expect("count"), 0);
    }

    #[test]
    fn every_operation_list_names_each_method_once() {
        for operations in [
            RECIPE_OPERATIONS,
            USER_OPERATIONS,
            REFRESH_TOKEN_OPERATIONS,
            SIGNING_KEY_OPERATIONS,
            PROVIDER_SESSION_OPERATIONS,
            JOB_OPERATIONS,
            ENTRY_OPERATIONS,
            FEED_OPERATIONS,
        ] {
            let unique: std::collections::HashSet<_> = operations.iter().collect();
            assert_eq!(unique.len(), operations.len(), "{operations:?}");
        }
    }
}
