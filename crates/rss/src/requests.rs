//! `FetchRequests`: what rss-api does — accept a fetch request, follow its job, read entries, and
//! record completions reported by workers.

use std::sync::Arc;

use galley_kernel::{Clock, Page, UserId, Violation};

use crate::error::RssError;
use crate::feed_url::FeedUrl;
use crate::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use crate::ports::{EntryRepository, FetchQueue, InsertJob, JobOutcome, JobRepository};

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

#[derive(Debug, Clone)]
pub struct FetchRequests {
    jobs: Arc<dyn JobRepository>,
    entries: Arc<dyn EntryRepository>,
    queue: Arc<dyn FetchQueue>,
    clock: Arc<dyn Clock>,
}

impl FetchRequests {
    pub fn new(
        jobs: Arc<dyn JobRepository>,
        entries: Arc<dyn EntryRepository>,
        queue: Arc<dyn FetchQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { jobs, entries, queue, clock }
    }

    /// Records a job and queues it for a worker.
    ///
    /// A hand-over to the queue that fails is answered `Unavailable` (503), but its outcome can be
    /// unknown: the broker may have stored the message and lost only the confirmation, and a worker may
    /// already be processing the job. So:
    /// - without an idempotency key the job is removed (the client cannot name it again, and must not
    ///   find a job that sits `queued` forever);
    /// - with a key the job is kept, and a retry with the same key returns that job, handing it to the
    ///   queue again while it is still `queued`. Workers tolerate the extra copy (a final job never
    ///   changes again; entries are stored once). A retry of a job that has moved on queues nothing.
    pub async fn request_fetch(
        &self,
        requested_by: &UserId,
        url: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Job, RssError> {
        let url = FeedUrl::parse(url)?;
        let key = idempotency_key.map(str::trim);
        if let Some(key) = key {
            if key.is_empty() {
                return Err(Violation::new("Idempotency-Key", "blank").into());
            }
            if key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
                return Err(Violation::new("Idempotency-Key", "too_long")
                    .with("max", MAX_IDEMPOTENCY_KEY_CHARS)
                    .into());
            }
        }
        let job = Job::queued(url, requested_by.clone(), self.clock.now());
        match self.jobs.insert(&job, key).await? {
            InsertJob::Existing(existing) if existing.status == JobStatus::Queued => {
                self.queue
                    .enqueue(&existing)
                    .await
                    .map_err(|error| RssError::Unavailable(error.to_string()))?;
                Ok(existing)
            }
            InsertJob::Existing(existing) => Ok(existing),
            InsertJob::Created => match self.queue.enqueue(&job).await {
                Ok(()) => Ok(job),
                Err(error) => {
                    if key.is_none()
                        && let Err(cleanup) = self.jobs.delete(job.id).await
                    {
                        tracing::error!(%cleanup, job = %job.id, "could not remove a job that was never queued");
                    }
                    Err(RssError::Unavailable(error.to_string()))
                }
            },
        }
    }

    /// A job, visible only to whoever requested it.
    pub async fn job(&self, requested_by: &UserId, id: JobId) -> Result<Job, RssError> {
        match self.jobs.get(id).await? {
            Some(job) if &job.requested_by == requested_by => Ok(job),
            _ => Err(RssError::JobNotFound),
        }
    }

    pub async fn entries(&self, query: &EntryQuery) -> Result<Page<Entry>, RssError> {
        Ok(self.entries.list(query).await?)
    }

    /// Applies a worker's reported outcome; idempotent (a final job is not changed again).
    pub async fn record_completion(&self, id: JobId, outcome: &JobOutcome) -> Result<(), RssError> {
        self.jobs.finish(id, outcome, self.clock.now()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use galley_kernel::SystemClock;

    use super::*;
    use crate::ports::{MockEntryRepository, MockFetchQueue, MockJobRepository, QueueError};

    fn service(jobs: MockJobRepository, queue: MockFetchQueue) -> FetchRequests {
        FetchRequests::new(
            Arc::new(jobs),
            Arc::new(MockEntryRepository::new()),
            Arc::new(queue),
            Arc::new(SystemClock),
        )
    }

    fn alice() -> UserId {
        UserId::new("alice")
    }

    #[tokio::test]
    async fn a_request_is_stored_then_queued() {
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert().times(1).returning(|_, _| Ok(InsertJob::Created));
        let mut queue = MockFetchQueue::new();
        queue
            .expect_enqueue()
            .withf(|job| job.url.as_str() == "https://example.com/feed")
            .times(1)
            .returning(|_| Ok(()));
        let job = service(jobs, queue)
            .request_fetch(&alice(), "https://example.com/feed", None)
            .await
            .expect("queued");
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.requested_by, alice());
    }

    #[tokio::test]
    async fn a_retry_of_a_job_that_moved_on_returns_it_and_queues_nothing() {
        let mut first = Job::queued(
            FeedUrl::parse("https://example.com/feed").expect("url"),
            alice(),
            chrono::Utc::now(),
        );
        first.status = JobStatus::Fetching;
        let existing = first.clone();
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert()
            .withf(|_, key| *key == Some("k-1"))
            .returning(move |_, _| Ok(InsertJob::Existing(existing.clone())));
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().never();
        let job = service(jobs, queue)
            .request_fetch(&alice(), "https://example.com/feed", Some(" k-1 "))
            .await
            .expect("job");
        assert_eq!(job.id, first.id);
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_queued_is_removed() {
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert().returning(|_, _| Ok(InsertJob::Created));
        jobs.expect_delete().times(1).returning(|_| Ok(()));
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().returning(|_| Err(QueueError("broker down".into())));
        let result = service(jobs, queue).request_fetch(&alice(), "https://example.com/feed", None).await;
        assert!(matches!(result, Err(RssError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_keyed_job_that_cannot_be_queued_is_kept_for_the_retry() {
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert().returning(|_, _| Ok(InsertJob::Created));
        jobs.expect_delete().never();
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().returning(|_| Err(QueueError("confirmation lost".into())));
        let result =
            service(jobs, queue).request_fetch(&alice(), "https://example.com/feed", Some("k-1")).await;
        assert!(matches!(result, Err(RssError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_retry_of_a_still_queued_job_hands_the_same_job_over_again() {
        let first = Job::queued(
            FeedUrl::parse("https://example.com/feed").expect("url"),
            alice(),
            chrono::Utc::now(),
        );
        let (existing, first_id) = (first.clone(), first.id);
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert().returning(move |_, _| Ok(InsertJob::Existing(existing.clone())));
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().withf(move |job| job.id == first_id).times(1).returning(|_| Ok(()));
        let job = service(jobs, queue)
            .request_fetch(&alice(), "https://example.com/feed", Some("k-1"))
            .await
            .expect("handed over again");
        assert_eq!(job.id, first.id);
    }

    #[tokio::test]
    async fn bad_urls_and_keys_change_nothing() {
        let mut jobs = MockJobRepository::new();
        jobs.expect_insert().never();
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().never();
        let service = service(jobs, queue);
        let bad_url = service.request_fetch(&alice(), "ftp://example.com", None).await;
        assert!(matches!(bad_url, Err(RssError::Invalid(v)) if v.contains("url", "unsupported_scheme")));
        let long_key = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
        let bad_key = service.request_fetch(&alice(), "https://example.com/f", Some(&long_key)).await;
        assert!(matches!(bad_key, Err(RssError::Invalid(v)) if v.contains("Idempotency-Key", "too_long")));
    }

    #[tokio::test]
    async fn jobs_are_private_to_their_requester() {
        let job = Job::queued(
            FeedUrl::parse("https://example.com/feed").expect("url"),
            alice(),
            chrono::Utc::now(),
        );
        let id = job.id;
        let mut jobs = MockJobRepository::new();
        jobs.expect_get().returning(move |_| Ok(Some(job.clone())));
        let service = service(jobs, MockFetchQueue::new());
        assert!(service.job(&alice(), id).await.is_ok());
        assert!(matches!(service.job(&UserId::new("bob"), id).await, Err(RssError::JobNotFound)));
    }
}
