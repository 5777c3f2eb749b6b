//! RSS ports. Storage ports report infrastructure trouble as `galley_kernel::StoreError`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_kernel::{Page, StoreError};

use crate::feed_url::FeedUrl;
use crate::model::{Entry, EntryQuery, Job, JobId, JobStatus};

/// What inserting a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertJob {
    Created,
    /// A job with the same requester and idempotency key exists: the request is a retry.
    Existing(Job),
}

/// Fetch jobs. Every transition is conditional on the job not being final, so redelivered messages and
/// late replies cannot move a finished job.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait JobRepository: Send + Sync + std::fmt::Debug {
    /// Stores a new job. With an idempotency key, `(requested_by, key)` is unique: a second insert
    /// returns the first job instead.
    async fn insert<'a>(&self, job: &Job, idempotency_key: Option<&'a str>) -> Result<InsertJob, StoreError>;
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    /// Removes a job that could not be queued.
    async fn delete(&self, id: JobId) -> Result<(), StoreError>;
    /// Marks a non-final job `fetching` and counts one attempt. `None` when the job is missing;
    /// a final job is returned unchanged.
    async fn start_attempt(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<Job>, StoreError>;
    /// Puts a non-final job back to `queued`, noting the transient failure's code.
    async fn requeue(&self, id: JobId, error: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Finishes a non-final job (`Done` or `Failed`); a final job is left as it is. Returns the job as
    /// stored afterwards.
    async fn finish(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError>;
    /// Jobs in `status` last updated before `before`, least recently updated first, at most `limit`:
    /// what the sweeper looks at.
    async fn list_stale(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;
    /// Sets `updated_at = now` on the job if it is still in `status` and last updated at `seen`, and
    /// says whether it did: the sweeper claims a stale job this way, so a job a worker moved on since
    /// it was listed (or another sweeper claimed) is left alone.
    async fn claim_stale(
        &self,
        id: JobId,
        status: JobStatus,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub status: JobStatus,
    pub inserted: u64,
    pub skipped: u64,
    pub error: Option<String>,
}

/// Feed entries, unique by id (which encodes the feed and the entry's identity).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EntryRepository: Send + Sync + std::fmt::Debug {
    /// Stores the entries not stored yet, remembering `job` as the one that stored them, and returns
    /// `(inserted, skipped)` for this job: entries this job stored, and the rest. Calling it again for
    /// the same job and entries (a redelivered message) returns the same counts.
    async fn insert_new(&self, job: JobId, entries: &[Entry]) -> Result<(u64, u64), StoreError>;
    /// Entries, newest first (publication time, else fetch time), with an accurate total.
    async fn list(&self, query: &EntryQuery) -> Result<Page<Entry>, StoreError>;
}

/// What Galley remembers about a feed between fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    pub url: FeedUrl,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Failures since the last success (mature readers back off on failing feeds).
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_fetched_at: Option<DateTime<Utc>>,
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FeedStateRepository: Send + Sync + std::fmt::Debug {
    async fn get(&self, url: &FeedUrl) -> Result<Option<FeedState>, StoreError>;
    /// Remembers the validators of a successful fetch and clears the failure count.
    async fn record_success<'a>(
        &self,
        url: &FeedUrl,
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn record_failure(&self, url: &FeedUrl, error: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetch queue unavailable: {0}")]
pub struct QueueError(pub String);

/// Hands jobs to workers (a message bus in practice). `enqueue` returns once the request is durably
/// queued.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FetchQueue: Send + Sync + std::fmt::Debug {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
}
