//! `FeedIngestion`: what a worker does with one fetch request.
//!
//! 1. Start an attempt on the job (a job already final is reported as it is: the message was a
//!    redelivery and the work is done).
//! 2. Fetch the feed conditionally with the validators remembered for it.
//! 3. Store new entries idempotently and finish the job, or fail it on a permanent error, or put it back
//!    to `queued` and ask for a retry after an exponential, jittered delay that honours `Retry-After`,
//!    until the attempt limit.
//!
//! Store failures surface as `Err`: the caller must not acknowledge the message, so it is retried.
//!
//! The fetch (download and parse) runs in an `rss.fetch` span and the storing of entries in an
//! `rss.store` span, so a trace shows where a slow ingestion spent its time.

use std::sync::Arc;
use std::time::Duration;

use galley_kernel::Clock;
use rand::Rng as _;
use tracing::Instrument as _;

use crate::error::RssError;
use crate::feed_url::FeedUrl;
use crate::fetch::{FeedFetcher, FetchError, FetchOutcome, FetchRequest};
use crate::model::{Entry, Job, JobId, JobStatus};
use crate::ports::{EntryRepository, FeedStateRepository, JobOutcome, JobRepository};

/// When and how often transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_secs(2), max_delay: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: `base * 2^(attempt-1)` capped at `max_delay`, with "equal
    /// jitter" (a random point in its upper half) so retries of many jobs do not stampede together, and
    /// never shorter than the server's `Retry-After`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let backoff = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let jittered = backoff / 2 + backoff.mul_f64(rand::thread_rng().gen_range(0.0..0.5));
        retry_after.map_or(jittered, |server| jittered.max(server.min(self.max_delay.saturating_mul(4))))
    }
}

/// The result of processing one fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The job is final (now or from an earlier delivery): report it.
    Finished(Job),
    /// A transient failure: deliver the request again after this delay.
    RetryAfter(Duration),
    /// The job does not exist (its request was withdrawn): nothing to do.
    UnknownJob,
}

#[derive(Debug, Clone)]
pub struct FeedIngestion {
    jobs: Arc<dyn JobRepository>,
    entries: Arc<dyn EntryRepository>,
    feeds: Arc<dyn FeedStateRepository>,
    fetcher: Arc<dyn FeedFetcher>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

/// The ports ingestion works with.
#[derive(Debug, Clone)]
pub struct IngestionPorts {
    pub jobs: Arc<dyn JobRepository>,
    pub entries: Arc<dyn EntryRepository>,
    pub feeds: Arc<dyn FeedStateRepository>,
    pub fetcher: Arc<dyn FeedFetcher>,
    pub clock: Arc<dyn Clock>,
}

impl FeedIngestion {
    pub fn new(ports: IngestionPorts, retry: RetryPolicy) -> Self {
        Self {
            jobs: ports.jobs,
            entries: ports.entries,
            feeds: ports.feeds,
            fetcher: ports.fetcher,
            clock: ports.clock,
            retry,
        }
    }

    /// Processes a fetch request for `job_id` (delivery number `attempt`).
    pub async fn process(&self, job_id: JobId, url: &FeedUrl) -> Result<IngestOutcome, RssError> {
        let Some(job) = self.jobs.start_attempt(job_id, self.clock.now()).await? else {
            return Ok(IngestOutcome::UnknownJob);
        };
        if job.status.is_final() {
            return Ok(IngestOutcome::Finished(job));
        }
        let state = self.feeds.get(url).await?;
        let request = FetchRequest {
            url: url.as_str().to_owned(),
            etag: state.as_ref().and_then(|s| s.etag.clone()),
            last_modified: state.as_ref().and_then(|s| s.last_modified.clone()),
        };
        let fetching = tracing::info_span!("rss.fetch", url = %url, attempt = job.attempts);
        let outcome = match self.fetcher.fetch(&request).instrument(fetching).await {
            Ok(FetchOutcome::NotModified) => {
                let now = self.clock.now();
                self.feeds
                    .record_success(url, request.etag.as_deref(), request.last_modified.as_deref(), now)
                    .await?;
                done(0, 0)
            }
            Ok(FetchOutcome::Fetched { entries, etag, last_modified }) => {
                let now = self.clock.now();
                let entries: Vec<Entry> =
                    entries.into_iter().map(|parsed| Entry::from_parsed(url, parsed, now)).collect();
                let storing = tracing::info_span!("rss.store", entries = entries.len());
                let (inserted, skipped) = async {
                    let counts = self.entries.insert_new(job_id, &entries).await?;
                    self.feeds.record_success(url, etag.as_deref(), last_modified.as_deref(), now).await?;
                    Ok::<_, RssError>(counts)
                }
                .instrument(storing)
                .await?;
                done(inserted, skipped)
            }
            Err(FetchError::Permanent { code, detail }) => {
                tracing::info!(job = %job_id, %url, code = code.as_str(), %detail, "feed fetch failed for good");
                self.feeds.record_failure(url, code.as_str(), self.clock.now()).await?;
                failed(code.as_str())
            }
            Err(FetchError::Transient { code, retry_after, detail }) => {
                tracing::info!(job = %job_id, %url, code = code.as_str(), %detail, attempt = job.attempts, "feed fetch failed; may retry");
                let now = self.clock.now();
                self.feeds.record_failure(url, code.as_str(), now).await?;
                if job.attempts >= self.retry.max_attempts {
                    failed(code.as_str())
                } else {
                    self.jobs.requeue(job_id, code.as_str(), now).await?;
                    return Ok(IngestOutcome::RetryAfter(self.retry.delay(job.attempts, retry_after)));
                }
            }
        };
        match self.jobs.finish(job_id, &outcome, self.clock.now()).await? {
            Some(job) => Ok(IngestOutcome::Finished(job)),
            None => Ok(IngestOutcome::UnknownJob),
        }
    }
}

fn done(inserted: u64, skipped: u64) -> JobOutcome {
    JobOutcome { status: JobStatus::Done, inserted, skipped, error: None }
}

fn failed(code: &str) -> JobOutcome {
    JobOutcome { status: JobStatus::Failed, inserted: 0, skipped: 0, error: Some(code.to_owned()) }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use galley_kernel::{SystemClock, UserId};

    use super::*;
    use crate::fetch::{FetchErrorCode, MockFeedFetcher, ParsedEntry};
    use crate::ports::{FeedState, MockEntryRepository, MockFeedStateRepository, MockJobRepository};

    fn url() -> FeedUrl {
        FeedUrl::parse("https://example.com/feed").expect("url")
    }

    fn job(attempts: u32, status: JobStatus) -> Job {
        let mut job = Job::queued(url(), UserId::new("alice"), Utc::now());
        job.attempts = attempts;
        job.status = status;
        job
    }

    struct Mocks {
        jobs: MockJobRepository,
        entries: MockEntryRepository,
        feeds: MockFeedStateRepository,
        fetcher: MockFeedFetcher,
    }

    impl Mocks {
        fn new(attempts: u32) -> Self {
            let mut jobs = MockJobRepository::new();
            jobs.expect_start_attempt().returning(move |_, _| Ok(Some(job(attempts, JobStatus::Fetching))));
            jobs.expect_finish().returning(|_, outcome, _| {
                let mut finished = job(1, outcome.status);
                finished.inserted = outcome.inserted;
                finished.skipped = outcome.skipped;
                finished.error.clone_from(&outcome.error);
                Ok(Some(finished))
            });
            let mut feeds = MockFeedStateRepository::new();
            feeds.expect_get().returning(|_| {
                Ok(Some(FeedState {
                    url: url(),
                    etag: Some("\"v1\"".into()),
                    last_modified: None,
                    consecutive_failures: 0,
                    last_error: None,
                    last_fetched_at: None,
                }))
            });
            Self { jobs, entries: MockEntryRepository::new(), feeds, fetcher: MockFeedFetcher::new() }
        }

        fn ingestion(self) -> FeedIngestion {
            let ports = IngestionPorts {
                jobs: Arc::new(self.jobs),
                entries: Arc::new(self.entries),
                feeds: Arc::new(self.feeds),
                fetcher: Arc::new(self.fetcher),
                clock: Arc::new(SystemClock),
            };
            FeedIngestion::new(ports, RetryPolicy::default())
        }
    }

    fn entry(guid: &str) -> ParsedEntry {
        ParsedEntry {
            guid: Some(guid.into()),
            title: guid.into(),
            link: None,
            thumbnail: None,
            published_at: None,
            summary: None,
        }
    }

    fn finished(outcome: IngestOutcome) -> Job {
        match outcome {
            IngestOutcome::Finished(job) => job,
            other => panic!("expected a finished job, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn new_entries_are_stored_and_counted() {
        let mut mocks = Mocks::new(1);
        mocks.fetcher.expect_fetch().withf(|r| r.etag.as_deref() == Some("\"v1\"")).returning(|_| {
            Ok(FetchOutcome::Fetched {
                entries: vec![entry("a"), entry("b")],
                etag: Some("\"v2\"".into()),
                last_modified: None,
            })
        });
        mocks.entries.expect_insert_new().withf(|_, entries| entries.len() == 2).returning(|_, _| Ok((1, 1)));
        mocks
            .feeds
            .expect_record_success()
            .withf(|_, etag, _, _| *etag == Some("\"v2\""))
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let job = finished(mocks.ingestion().process(JobId::generate(), &url()).await.expect("processed"));
        assert_eq!((job.status, job.inserted, job.skipped), (JobStatus::Done, 1, 1));
    }

    #[tokio::test]
    async fn not_modified_succeeds_with_nothing_inserted() {
        let mut mocks = Mocks::new(1);
        mocks.fetcher.expect_fetch().returning(|_| Ok(FetchOutcome::NotModified));
        mocks.entries.expect_insert_new().never();
        mocks.feeds.expect_record_success().returning(|_, _, _, _| Ok(()));
        let job = finished(mocks.ingestion().process(JobId::generate(), &url()).await.expect("processed"));
        assert_eq!((job.status, job.inserted), (JobStatus::Done, 0));
    }

    #[tokio::test]
    async fn permanent_failures_fail_the_job_with_their_code() {
        let mut mocks = Mocks::new(1);
        mocks.fetcher.expect_fetch().returning(|_| {
            Err(FetchError::Permanent { code: FetchErrorCode::BlockedAddress, detail: "10.0.0.1".into() })
        });
        mocks.feeds.expect_record_failure().times(1).returning(|_, _, _| Ok(()));
        let job = finished(mocks.ingestion().process(JobId::generate(), &url()).await.expect("processed"));
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.error.as_deref(), Some("blocked_address"));
    }

    #[tokio::test]
    async fn transient_failures_retry_until_the_attempt_limit() {
        let transient = || {
            Err(FetchError::Transient {
                code: FetchErrorCode::HttpServerError,
                retry_after: Some(Duration::from_secs(30)),
                detail: "503".into(),
            })
        };
        let mut early = Mocks::new(1);
        early.fetcher.expect_fetch().returning(move |_| transient());
        early.feeds.expect_record_failure().returning(|_, _, _| Ok(()));
        early.jobs.expect_requeue().times(1).returning(|_, _, _| Ok(()));
        match early.ingestion().process(JobId::generate(), &url()).await.expect("processed") {
            IngestOutcome::RetryAfter(delay) => {
                assert!(delay >= Duration::from_secs(30), "honours Retry-After: {delay:?}")
            }
            other => panic!("expected a retry, got {other:?}"),
        }

        let mut last = Mocks::new(RetryPolicy::default().max_attempts);
        last.fetcher.expect_fetch().returning(move |_| transient());
        last.feeds.expect_record_failure().returning(|_, _, _| Ok(()));
        last.jobs.expect_requeue().never();
        let job = finished(last.ingestion().process(JobId::generate(), &url()).await.expect("processed"));
        assert_eq!(job.error.as_deref(), Some("http_server_error"));
    }

    #[tokio::test]
    async fn a_redelivered_request_for_a_final_job_fetches_nothing() {
        let mut jobs = MockJobRepository::new();
        jobs.expect_start_attempt().returning(|_, _| Ok(Some(job(1, JobStatus::Done))));
        let mut mocks = Mocks::new(1);
        mocks.jobs = jobs;
        mocks.fetcher.expect_fetch().never();
        let job = finished(mocks.ingestion().process(JobId::generate(), &url()).await.expect("processed"));
        assert_eq!(job.status, JobStatus::Done);
    }

    #[test]
    fn backoff_grows_is_jittered_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = policy.delay(1, None);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2), "{first:?}");
            let third = policy.delay(3, None);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8), "{third:?}");
            let capped = policy.delay(30, None);
            assert!(capped <= Duration::from_secs(60), "{capped:?}");
            assert!(policy.delay(1, Some(Duration::from_secs(20))) >= Duration::from_secs(20));
        }
    }
}
