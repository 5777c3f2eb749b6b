//! Failure drills on AWS SQS (a private moto for the test binary): real `rss-worker` processes on
//! `GALLEY__BUS__BACKEND=sqs` with a short visibility timeout. A worker killed mid-job leaves the
//! message to the next worker after the visibility timeout, which completes the job once; a job
//! slower than the visibility timeout is not handed to a second worker while its worker lives (the
//! heartbeat); a message that kills every worker it reaches moves to the dead-letter queue after
//! `MAX_RECEIVES` receives, and the sweeper then fails its job.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_embedded::SqliteStore;
use galley_kernel::{SystemClock, UserId};
use galley_messaging::{MessageBus, Settle, dead_letter_queue};
use galley_rss::model::{Job, JobStatus};
use galley_rss::{FetchRequests, SweepPolicy};
use galley_sqs::{SqsBus, SqsOptions};
use galley_test_support::feeds::FixtureServer;
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};
use galley_wiring::DocumentStore;
use rss_worker::REQUESTS_QUEUE;

/// One drill's queues (a unique prefix on the shared moto) and its SQS settings.
struct Drill {
    options: SqsOptions,
    bus: SqsBus,
}

impl Drill {
    async fn new(visibility_timeout: Duration, max_receives: u32) -> Self {
        let options = SqsOptions {
            queue_prefix: format!("drill{}-", &uuid::Uuid::now_v7().simple().to_string()[20..]),
            visibility_timeout,
            wait_time: Duration::from_secs(1),
            max_receives,
            create_queues: true,
        };
        let credentials =
            aws_sdk_sqs::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "tests");
        let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(MotoServer::shared().endpoint())
            .credentials_provider(credentials)
            .load()
            .await;
        let bus = SqsBus::connect_with_sdk_config(&sdk_config, options.clone()).await.expect("moto answers");
        Self { options, bus }
    }

    /// The variables a worker process needs to use the same queues.
    fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GALLEY__BUS__BACKEND", "sqs".into()),
            ("GALLEY__BUS__SQS__REGION", REGION.into()),
            ("GALLEY__BUS__SQS__ENDPOINT", MotoServer::shared().endpoint()),
            ("GALLEY__BUS__SQS__QUEUE_PREFIX", self.options.queue_prefix.clone()),
            ("GALLEY__BUS__SQS__VISIBILITY_TIMEOUT", self.options.visibility_timeout.as_secs().to_string()),
            ("GALLEY__BUS__SQS__WAIT_TIME", self.options.wait_time.as_secs().to_string()),
            ("GALLEY__BUS__SQS__MAX_RECEIVES", self.options.max_receives.to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ]
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        self.bus.close();
        let bus = self.bus.clone();
        // Each drill runs on a multi-threaded runtime, so the guard may block one worker.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                for url in bus.known_queue_urls() {
                    let _ = bus.client().delete_queue().queue_url(url).send().await;
                }
            });
        });
    }
}

/// One `rss-worker` process (the real binary), configured through the environment like in production.
struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    fn spawn(database: &Path, drill: &Drill) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_rss-worker"))
            .env("GALLEY_CONFIG_DIR", database.with_file_name("no-config"))
            .env("GALLEY__HTTP__BIND", "127.0.0.1:0")
            .env("GALLEY__STORE__EMBEDDED__PATH", database)
            .env("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS", "127.0.0.1/32")
            .env("GALLEY__FETCH__TOTAL_TIMEOUT", "120")
            .envs(drill.environment())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("rss-worker starts");
        Self(child)
    }

    /// SIGKILL: no shutdown, no settlement, no more heartbeats.
    fn kill(&mut self) {
        self.0.kill().expect("killed");
        self.0.wait().expect("reaped");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Harness {
    _data: tempfile::TempDir,
    database: std::path::PathBuf,
    store: DocumentStore,
    requests: FetchRequests,
    feeds: FixtureServer,
}

impl Harness {
    async fn new(drill: &Drill) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let database = data.path().join("galley.db");
        let store = DocumentStore::embedded(SqliteStore::open(&database).await.expect("store"));
        let bus: Arc<dyn MessageBus> = Arc::new(drill.bus.clone());
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            Arc::new(rss_api::queue::BusFetchQueue::new(bus)),
            Arc::new(SystemClock),
        );
        let feeds = FixtureServer::start(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).await;
        Self { _data: data, database, store, requests, feeds }
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

    async fn entries_of(&self, path: &str) -> u64 {
        let query = galley_rss::model::EntryQuery {
            feed_url: Some(galley_rss::FeedUrl::parse(&self.feeds.url(path)).expect("url")),
            ..Default::default()
        };
        self.requests.entries(&query).await.expect("entries").total
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_leaves_the_message_to_the_next_worker_after_the_visibility_timeout() {
    let visibility = Duration::from_secs(3);
    let drill = Drill::new(visibility, 5).await;
    let harness = Harness::new(&drill).await;
    let feed = "/slow.xml?ms=3000";
    let job = harness.request(feed).await;

    let mut first = WorkerProcess::spawn(&harness.database, &drill);
    harness.wait_for(&job, Duration::from_secs(30), |job| job.status == JobStatus::Fetching).await;
    first.kill();
    let killed_at = Instant::now();
    let after_crash = harness.store.jobs.get(job.id).await.expect("store").expect("job");
    assert_eq!(after_crash.status, JobStatus::Fetching, "the killed worker finished nothing");

    let _second = WorkerProcess::spawn(&harness.database, &drill);
    let retried = harness.wait_for(&job, Duration::from_secs(60), |job| job.attempts >= 2).await;
    eprintln!("the second worker took the job over {:?} after the kill", killed_at.elapsed());
    assert_eq!(retried.attempts, 2, "{retried:?}");
    let done = harness.wait_for(&job, Duration::from_secs(60), |job| job.status.is_final()).await;
    assert_eq!((done.status, done.inserted), (JobStatus::Done, 3), "{done:?}");
    assert_eq!(harness.entries_of(feed).await, 3, "each entry stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_slower_than_the_visibility_timeout_is_not_handed_to_a_second_worker() {
    let visibility = Duration::from_secs(2);
    let drill = Drill::new(visibility, 5).await;
    let harness = Harness::new(&drill).await;
    // Two workers compete for the queue; the feed takes more than three visibility timeouts.
    let _first = WorkerProcess::spawn(&harness.database, &drill);
    let _second = WorkerProcess::spawn(&harness.database, &drill);
    let feed = "/slow.xml?ms=7000";
    let job = harness.request(feed).await;

    let done = harness.wait_for(&job, Duration::from_secs(60), |job| job.status.is_final()).await;
    assert_eq!((done.status, done.inserted), (JobStatus::Done, 3), "{done:?}");
    assert_eq!(done.attempts, 1, "delivered once: {done:?}");
    assert_eq!(harness.feeds.requests_to("/slow.xml").len(), 1, "fetched by one worker only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_kills_every_worker_is_dead_lettered_after_max_receives_and_its_job_failed() {
    let max_receives = 2;
    let drill = Drill::new(Duration::from_secs(2), max_receives).await;
    let harness = Harness::new(&drill).await;
    let mut dead = drill.bus.subscribe(&dead_letter_queue(REQUESTS_QUEUE), 1).await.expect("subscribe dlq");
    // The feed never answers in time: every worker that takes the job dies with it.
    let job = harness.request("/slow.xml?ms=100000").await;
    for receive in 1..=max_receives {
        let mut worker = WorkerProcess::spawn(&harness.database, &drill);
        harness.wait_for(&job, Duration::from_secs(60), |job| job.attempts >= receive).await;
        worker.kill();
    }
    // The next receive moves the message to the dead-letter queue instead of handing it out.
    let _healthy = WorkerProcess::spawn(&harness.database, &drill);
    let buried = tokio::time::timeout(Duration::from_secs(60), dead.next())
        .await
        .expect("dead-lettered in time")
        .expect("bus open");
    assert_eq!(buried.message.correlation_id.as_deref(), Some(job.id.to_string().as_str()));
    buried.settle(Settle::Ack).await.expect("ack");
    let stuck = harness.store.jobs.get(job.id).await.expect("store").expect("job");
    assert_eq!((stuck.status, stuck.attempts), (JobStatus::Fetching, max_receives), "{stuck:?}");

    // rss-api's sweeper fails a job stuck fetching (here with a zero deadline instead of waiting).
    let policy =
        SweepPolicy { queued_after: Duration::from_secs(3600), fetching_deadline: Duration::ZERO, batch: 10 };
    let report = harness.requests.sweep(&policy).await.expect("sweep");
    assert_eq!(report.failed, 1, "{report:?}");
    let failed = harness.store.jobs.get(job.id).await.expect("store").expect("job");
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    assert_eq!(failed.error.as_deref(), Some("timeout"), "{failed:?}");
}
