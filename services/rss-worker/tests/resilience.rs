//! A worker under hostile feeds and at shutdown: feeds built to stall the parser fail or finish in
//! seconds while the worker goes on serving other feeds; SIGTERM lets jobs in progress finish within
//! `http.shutdown_grace` and hands the others back to the queue instead of losing or holding them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_embedded::SqliteStore;
use galley_kernel::{SystemClock, UserId};
use galley_messaging::{InProcessBus, MessageBus};
use galley_platform::Shutdown;
use galley_rss::FetchRequests;
use galley_rss::model::{Job, JobStatus};
use galley_test_support::feeds::FixtureServer;
use galley_wiring::DocumentStore;
use rss_worker::{REQUESTS_QUEUE, Settings};

struct Harness {
    _data: tempfile::TempDir,
    store: DocumentStore,
    bus: InProcessBus,
    requests: FetchRequests,
    feeds: FixtureServer,
}

impl Harness {
    async fn new() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let store =
            DocumentStore::embedded(SqliteStore::open(&data.path().join("galley.db")).await.expect("store"));
        let bus = InProcessBus::new();
        let shared: Arc<dyn MessageBus> = Arc::new(bus.clone());
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            Arc::new(rss_api::queue::BusFetchQueue::new(shared)),
            Arc::new(SystemClock),
        );
        let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        Self { _data: data, store, bus, requests, feeds }
    }

    /// A running worker; `adjust` changes the defaults (which allow the fixture server).
    fn start_worker(
        &self,
        adjust: impl FnOnce(&mut Settings),
    ) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let mut settings = Settings::default();
        settings.fetch.allow_private_hosts = vec!["127.0.0.1/32".parse().expect("allow-list entry")];
        // Unoptimised test builds parse about 20 times slower than release ones.
        settings.fetch.parse_timeout = Duration::from_secs(120);
        adjust(&mut settings);
        let worker = rss_worker::app::worker(
            &self.store,
            None,
            Arc::new(self.bus.clone()),
            &settings,
            Arc::new(SystemClock),
        )
        .expect("worker");
        let shutdown = Shutdown::new();
        (shutdown.clone(), tokio::spawn(worker.run(shutdown)))
    }

    async fn request(&self, path: &str) -> Job {
        self.requests.request_fetch(&UserId::new("alice"), &self.feeds.url(path), None).await.expect("queued")
    }

    /// Polls the job until `done` says so, at most `within`.
    async fn wait_for(&self, job: &Job, within: Duration, done: impl Fn(&Job) -> bool) -> Job {
        let deadline = Instant::now() + within;
        loop {
            let current = self.store.jobs.get(job.id).await.expect("store").expect("job exists");
            if done(&current) {
                return current;
            }
            assert!(Instant::now() < deadline, "job not as expected within {within:?}: {current:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn is_final(job: &Job) -> bool {
    job.status.is_final()
}

/// Both hostile feeds occupy the worker's two slots first; the ordinary feed behind them is still
/// served, and everything is final within a bound a stalled parser would blow by hours.
#[tokio::test]
async fn hostile_feeds_do_not_stall_the_worker() {
    let harness = Harness::new().await;
    let (shutdown, running) = harness.start_worker(|settings| settings.worker.concurrency = 2);
    let divs = harness.request("/hostile/divs.xml").await;
    let deep = harness.request("/hostile/deep.xml").await;
    let ordinary = harness.request("/rss.xml").await;

    let bound = Duration::from_secs(60);
    let ordinary = harness.wait_for(&ordinary, bound, is_final).await;
    assert_eq!((ordinary.status, ordinary.inserted), (JobStatus::Done, 3), "{ordinary:?}");
    let divs = harness.wait_for(&divs, bound, is_final).await;
    assert_eq!((divs.status, divs.inserted), (JobStatus::Done, 1), "{divs:?}");
    let deep = harness.wait_for(&deep, bound, is_final).await;
    assert_eq!(deep.status, JobStatus::Failed, "the XML reader refuses such depth: {deep:?}");
    assert_eq!(deep.error.as_deref(), Some("unparseable_feed"), "{deep:?}");

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops")
        .expect("task")
        .expect("clean");
}

/// A job that finishes within the grace completes; one that cannot is handed back to the queue (not
/// acknowledged, not lost) and the worker stops long before that fetch would have ended.
#[tokio::test]
async fn shutdown_finishes_what_fits_in_the_grace_and_hands_back_the_rest() {
    let harness = Harness::new().await;
    let (shutdown, running) = harness.start_worker(|settings| {
        settings.http.shutdown_grace = Duration::from_secs(3);
        // Long enough that only the hand-back can end the slow fetch before the test's bound.
        settings.fetch.total_timeout = Duration::from_secs(300);
    });
    let quick = harness.request("/slow.xml?ms=1000").await;
    let stuck = harness.request("/slow.xml?ms=240000").await;
    let fetching = |job: &Job| job.status == JobStatus::Fetching;
    harness.wait_for(&quick, Duration::from_secs(30), fetching).await;
    harness.wait_for(&stuck, Duration::from_secs(30), fetching).await;

    let stopping = Instant::now();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the worker stops within the grace plus the hand-back")
        .expect("task")
        .expect("clean");
    eprintln!("worker stopped {:?} after the shutdown signal", stopping.elapsed());

    let quick = harness.store.jobs.get(quick.id).await.expect("store").expect("job");
    assert_eq!((quick.status, quick.inserted), (JobStatus::Done, 3), "finished within the grace: {quick:?}");
    let stuck = harness.store.jobs.get(stuck.id).await.expect("store").expect("job");
    assert!(!stuck.status.is_final(), "handed back, not finished: {stuck:?}");
    assert_eq!(harness.bus.depth(REQUESTS_QUEUE), 1, "the unfinished request is back on the queue");
}
