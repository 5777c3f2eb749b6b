//! The worker's metrics, derived from use-case results here at the service layer so the RSS domain
//! knows nothing of them (ADR 0026):
//!
//! - `galley_rss_fetches_total{result}`: `fetched`, `not_modified`, or the fetch error code
//!   (`timeout`, `blocked_address`, ...), and `galley_rss_fetch_duration_seconds`, from a decorator
//!   around the [`FeedFetcher`] port;
//! - `galley_rss_jobs_total{state}`: how each delivery's ingestion ended (`done`, `failed`,
//!   `retry_scheduled`, `unknown_job`, `error`);
//! - `galley_rss_entries_total{result}`: entries `inserted` and `skipped` by finished jobs;
//! - `galley_rss_fetch_body_bytes`: sizes of the downloaded bodies, recorded by the fetch adapter
//!   through a plain handle ([`body_sizes`]).
//!
//! Every handle is registered when the worker is built (the label values are a closed set).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use galley_platform::Metrics;
use galley_rss::fetch::{FeedFetcher, FetchError, FetchErrorCode, FetchOutcome, FetchRequest};
use galley_rss::model::{Job, JobStatus};
use metrics::{Counter, Histogram, Unit};

const FETCHES: &str = "galley_rss_fetches_total";
const FETCH_DURATION: &str = "galley_rss_fetch_duration_seconds";
const JOBS: &str = "galley_rss_jobs_total";
const ENTRIES: &str = "galley_rss_entries_total";
const BODY_BYTES: &str = "galley_rss_fetch_body_bytes";

/// The histogram of downloaded feed sizes, which the fetch adapter records into.
pub fn body_sizes(metrics: &Metrics) -> Histogram {
    metrics.describe_histogram(BODY_BYTES, Unit::Bytes, "Sizes of the feed bodies downloaded.");
    metrics.histogram(BODY_BYTES, &[])
}

/// A [`FeedFetcher`] that counts outcomes and times fetches.
#[derive(Debug)]
pub struct MeteredFetcher {
    inner: Arc<dyn FeedFetcher>,
    fetched: Counter,
    not_modified: Counter,
    failed: HashMap<FetchErrorCode, Counter>,
    duration: Histogram,
}

impl MeteredFetcher {
    /// `inner` measured into `metrics`; with metrics off, `inner` itself.
    pub fn wrap(inner: Arc<dyn FeedFetcher>, metrics: &Metrics) -> Arc<dyn FeedFetcher> {
        if !metrics.is_enabled() {
            return inner;
        }
        metrics.describe_counter(FETCHES, Unit::Count, "Feed fetches by result (error code on failure).");
        metrics.describe_histogram(FETCH_DURATION, Unit::Seconds, "Time to fetch and parse a feed.");
        let result = |value: &'static str| metrics.counter(FETCHES, &[("result", value.into())]);
        Arc::new(Self {
            fetched: result("fetched"),
            not_modified: result("not_modified"),
            failed: FetchErrorCode::ALL.into_iter().map(|code| (code, result(code.as_str()))).collect(),
            duration: metrics.histogram(FETCH_DURATION, &[]),
            inner,
        })
    }
}

#[async_trait]
impl FeedFetcher for MeteredFetcher {
    async fn fetch(&self, request: &FetchRequest) -> Result<FetchOutcome, FetchError> {
        let started = Instant::now();
        let result = self.inner.fetch(request).await;
        self.duration.record(started.elapsed().as_secs_f64());
        match &result {
            Ok(FetchOutcome::Fetched { .. }) => self.fetched.increment(1),
            Ok(FetchOutcome::NotModified) => self.not_modified.increment(1),
            Err(error) => {
                if let Some(counter) = self.failed.get(&error.code()) {
                    counter.increment(1);
                }
            }
        }
        result
    }
}

/// How ingestion ended, per delivery, and the entries finished jobs stored.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    done: Counter,
    failed: Counter,
    retry_scheduled: Counter,
    unknown_job: Counter,
    error: Counter,
    inserted: Counter,
    skipped: Counter,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new(&Metrics::disabled())
    }
}

impl WorkerMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        metrics.describe_counter(
            JOBS,
            Unit::Count,
            "Fetch requests processed, by how their ingestion ended.",
        );
        metrics.describe_counter(
            ENTRIES,
            Unit::Count,
            "Feed entries stored (inserted) or already known (skipped).",
        );
        let state = |value: &'static str| metrics.counter(JOBS, &[("state", value.into())]);
        let entries = |value: &'static str| metrics.counter(ENTRIES, &[("result", value.into())]);
        Self {
            done: state("done"),
            failed: state("failed"),
            retry_scheduled: state("retry_scheduled"),
            unknown_job: state("unknown_job"),
            error: state("error"),
            inserted: entries("inserted"),
            skipped: entries("skipped"),
        }
    }

    pub(crate) fn finished(&self, job: &Job) {
        if job.status == JobStatus::Done {
            self.done.increment(1)
        } else {
            self.failed.increment(1)
        }
        self.inserted.increment(job.inserted);
        self.skipped.increment(job.skipped);
    }

    pub(crate) fn retry_scheduled(&self) {
        self.retry_scheduled.increment(1);
    }

    pub(crate) fn unknown_job(&self) {
        self.unknown_job.increment(1);
    }

    pub(crate) fn error(&self) {
        self.error.increment(1);
    }
}
