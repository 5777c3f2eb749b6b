//! `FetchRequests`: what rss-api does — accept a fetch request, follow its job, read entries, record
//! completions reported by workers, and sweep jobs left in limbo.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use galley_kernel::{Clock, Page, UserId, Violation};

use crate::error::RssError;
use crate::feed_url::FeedUrl;
use crate::fetch::FetchErrorCode;
use crate::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use crate::ports::{EntryRepository, FetchQueue, InsertJob, JobOutcome, JobRepository};

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// When [`FetchRequests::sweep`] steps in. A job can be left in limbo by a message the bus lost (the
/// in-process bus stopping, a broker losing an unreplicated queue: the job stays `queued`) or by a
/// worker that died mid-fetch on a message that was then dead-lettered (the job stays `fetching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// A job `queued` and untouched this long is handed to the queue again. Longer than the longest
    /// retry delay a worker asks for, or the sweeper would cut such waits short (a duplicate, harmless).
    pub queued_after: Duration,
    /// A job `fetching` and untouched this long is failed with `timeout`. Far longer than a fetch takes.
    pub fetching_deadline: Duration,
    /// Most jobs handled per state and sweep, so one sweep stays short.
    pub batch: u32,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// `queued` jobs handed to the queue again.
    pub requeued: u32,
    /// `fetching` jobs failed for exceeding the deadline.
    pub failed: u32,
}

/// `now - age`, saturating at the earliest representable time.
fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

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

    /// One pass of the sweeper: hands stale `queued` jobs to the queue again (same job, same message
    /// id) and fails stale `fetching` jobs with `timeout`, so no job stays in limbo. Each job is
    /// claimed first (see [`JobRepository::claim_stale`]), so several rss-api instances sweeping at
    /// once, or a worker moving the job meanwhile, never double-handle it. A queue that is down stops
    /// the hand-overs for this pass (the claimed job is tried again after `queued_after`).
    pub async fn sweep(&self, policy: &SweepPolicy) -> Result<SweepReport, RssError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let queued = self.jobs.list_stale(JobStatus::Queued, before(now, policy.queued_after), policy.batch);
        for job in queued.await? {
            if !self.jobs.claim_stale(job.id, JobStatus::Queued, job.updated_at, now).await? {
                continue;
            }
            if let Err(error) = self.queue.enqueue(&job).await {
                tracing::warn!(%error, job = %job.id, "sweeper could not hand a queued job over again");
                break;
            }
            tracing::info!(job = %job.id, since = %job.updated_at, "sweeper handed a stale queued job over again");
            report.requeued += 1;
        }
        let deadline = before(now, policy.fetching_deadline);
        for job in self.jobs.list_stale(JobStatus::Fetching, deadline, policy.batch).await? {
            if !self.jobs.claim_stale(job.id, JobStatus::Fetching, job.updated_at, now).await? {
                continue;
            }
            let outcome = JobOutcome {
                status: JobStatus::Failed,
                inserted: job.inserted,
                skipped: job.skipped,
                error: Some(FetchErrorCode::Timeout.as_str().to_owned()),
            };
            self.jobs.finish(job.id, &outcome, now).await?;
            tracing::warn!(job = %job.id, since = %job.updated_at, "sweeper failed a job stuck fetching");
            report.failed += 1;
        }
        Ok(report)
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
        let mut first =
            Job::queued(FeedUrl::parse("https://example.com/feed").expect("url"), alice(), Utc::now());
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
        let first =
            Job::queued(FeedUrl::parse("https://example.com/feed").expect("url"), alice(), Utc::now());
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

    /// A clock the test moves by hand.
    #[derive(Debug)]
    struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            self.0.lock().map(|now| *now).unwrap_or_default()
        }
    }

    const POLICY: SweepPolicy = SweepPolicy {
        queued_after: Duration::from_secs(30 * 60),
        fetching_deadline: Duration::from_secs(15 * 60),
        batch: 100,
    };

    fn job_updated_at(status: JobStatus, at: DateTime<Utc>) -> Job {
        let mut job = Job::queued(FeedUrl::parse("https://example.com/feed").expect("url"), alice(), at);
        job.status = status;
        job
    }

    fn sweeper(jobs: MockJobRepository, queue: MockFetchQueue, now: DateTime<Utc>) -> FetchRequests {
        FetchRequests::new(
            Arc::new(jobs),
            Arc::new(MockEntryRepository::new()),
            Arc::new(queue),
            Arc::new(ManualClock(std::sync::Mutex::new(now))),
        )
    }

    #[tokio::test]
    async fn the_sweeper_hands_stale_queued_jobs_over_again_and_fails_stuck_fetches() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let lost = job_updated_at(JobStatus::Queued, now - chrono::Duration::minutes(31));
        let stuck = job_updated_at(JobStatus::Fetching, now - chrono::Duration::minutes(16));
        let (lost_id, stuck_id) = (lost.id, stuck.id);
        let mut jobs = MockJobRepository::new();
        jobs.expect_list_stale()
            .withf(move |status, before, _| {
                *status == JobStatus::Queued && *before == now - chrono::Duration::minutes(30)
            })
            .returning(move |_, _, _| Ok(vec![lost.clone()]));
        jobs.expect_list_stale()
            .withf(move |status, before, _| {
                *status == JobStatus::Fetching && *before == now - chrono::Duration::minutes(15)
            })
            .returning(move |_, _, _| Ok(vec![stuck.clone()]));
        jobs.expect_claim_stale().times(2).returning(move |_, _, _, claimed_at| Ok(claimed_at == now));
        jobs.expect_finish()
            .withf(move |id, outcome, _| {
                *id == stuck_id
                    && outcome.status == JobStatus::Failed
                    && outcome.error.as_deref() == Some("timeout")
            })
            .times(1)
            .returning(|_, _, _| Ok(None));
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().withf(move |job| job.id == lost_id).times(1).returning(|_| Ok(()));
        let report = sweeper(jobs, queue, now).sweep(&POLICY).await.expect("swept");
        assert_eq!(report, SweepReport { requeued: 1, failed: 1 });
    }

    #[tokio::test]
    async fn the_sweeper_leaves_jobs_it_cannot_claim_alone() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let queued = job_updated_at(JobStatus::Queued, now - chrono::Duration::hours(2));
        let fetching = job_updated_at(JobStatus::Fetching, now - chrono::Duration::hours(2));
        let mut jobs = MockJobRepository::new();
        jobs.expect_list_stale().returning(move |status, _, _| {
            Ok(vec![if status == JobStatus::Queued { queued.clone() } else { fetching.clone() }])
        });
        // A worker (or another sweeper) moved both since they were listed.
        jobs.expect_claim_stale().returning(|_, _, _, _| Ok(false));
        jobs.expect_finish().never();
        let mut queue = MockFetchQueue::new();
        queue.expect_enqueue().never();
        let report = sweeper(jobs, queue, now).sweep(&POLICY).await.expect("swept");
        assert_eq!(report, SweepReport::default());
    }

    #[test]
    fn an_enormous_age_saturates_instead_of_overflowing() {
        assert_eq!(before(Utc::now(), Duration::MAX), DateTime::<Utc>::MIN_UTC);
    }

    #[tokio::test]
    async fn jobs_are_private_to_their_requester() {
        let job = Job::queued(FeedUrl::parse("https://example.com/feed").expect("url"), alice(), Utc::now());
        let id = job.id;
        let mut jobs = MockJobRepository::new();
        jobs.expect_get().returning(move |_| Ok(Some(job.clone())));
        let service = service(jobs, MockFetchQueue::new());
        assert!(service.job(&alice(), id).await.is_ok());
        assert!(matches!(service.job(&UserId::new("bob"), id).await, Err(RssError::JobNotFound)));
    }
}
