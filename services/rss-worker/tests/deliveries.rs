//! How the worker treats deliveries: messages it can never process go to the dead-letter queue once,
//! and the worker goes on; a worker process killed in the middle of a job leaves the message to the
//! next worker, which completes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_embedded::SqliteStore;
use galley_kernel::{SystemClock, UserId};
use galley_messaging::{InProcessBus, MessageBus, OutgoingMessage, dead_letter_queue};
use galley_platform::Shutdown;
use galley_rss::FetchRequests;
use galley_rss::model::{Job, JobStatus};
use galley_test_support::feeds::FixtureServer;
use galley_test_support::rabbitmq::{QueuePrefix, shared_broker_url};
use galley_wiring::DocumentStore;
use rss_worker::{REQUESTS_QUEUE, Settings};

fn message(id: &str, body: &'static [u8]) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.to_owned(),
        correlation_id: None,
        reply_to: None,
        trace: None,
        body: Bytes::from_static(body),
    }
}

#[tokio::test]
async fn undecodable_requests_are_dead_lettered_not_retried() {
    let data = tempfile::tempdir().expect("temp dir");
    let store =
        DocumentStore::embedded(SqliteStore::open(&data.path().join("galley.db")).await.expect("store"));
    let bus = InProcessBus::new();
    let worker = rss_worker::app::worker(
        &store,
        None,
        Arc::new(bus.clone()),
        &Settings::default(),
        Arc::new(SystemClock),
    )
    .expect("worker");
    let shutdown = Shutdown::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let poison: [(&str, &'static [u8]); 4] = [
        ("not-json", b"\xff\xfe garbage"),
        ("not-an-envelope", br#"{"hello":"world"}"#),
        ("wrong-type", br#"{"type":"rss.fetch.completed","version":1,"message_id":"0193d1f0-0000-7000-8000-000000000001","correlation_id":"x","sent_at":"2026-01-01T00:00:00Z","payload":{"job_id":"x","status":"done","inserted":0,"skipped":0}}"#),
        ("future-version", br#"{"type":"rss.fetch.requested","version":9,"message_id":"0193d1f0-0000-7000-8000-000000000002","correlation_id":"x","sent_at":"2026-01-01T00:00:00Z","payload":{}}"#),
    ];
    for (id, body) in poison {
        bus.publish(REQUESTS_QUEUE, message(id, body)).await.expect("publish");
    }
    let dead = dead_letter_queue(REQUESTS_QUEUE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.depth(&dead) < 4 {
        assert!(Instant::now() < deadline, "poison messages not dead-lettered in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bus.depth(REQUESTS_QUEUE), 0, "nothing is retried on the main queue");
    assert_eq!(bus.depth(&dead), 4);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("worker stops")
        .expect("task")
        .expect("clean");
}

/// One `rss-worker` process (the real binary), configured through the environment like in production.
struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    fn spawn(database: &std::path::Path, queues: &QueuePrefix) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_rss-worker"))
            .env("GALLEY_CONFIG_DIR", database.with_file_name("no-config"))
            .env("GALLEY__HTTP__BIND", "127.0.0.1:0")
            .env("GALLEY__STORE__EMBEDDED__PATH", database)
            .env("GALLEY__BUS__BACKEND", "rabbitmq")
            .env("GALLEY__BUS__RABBITMQ__URL", &queues.url)
            .env("GALLEY__BUS__RABBITMQ__PREFIX", &queues.prefix)
            .env("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS", "127.0.0.1/32")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("rss-worker starts");
        Self(child)
    }

    /// SIGKILL: no shutdown, no settlement; the broker sees the connection drop.
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

/// Polls the job until `done` says so, at most `within`.
async fn wait_for_job(
    store: &DocumentStore,
    job: &Job,
    within: Duration,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let current = store.jobs.get(job.id).await.expect("store").expect("job exists");
        if done(&current) {
            return current;
        }
        assert!(Instant::now() < deadline, "job not as expected within {within:?}: {current:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Failure drill: the worker process is killed (SIGKILL) while it fetches a feed. Its unacknowledged
/// message goes back to the queue; the next worker process completes the job, inserting each entry once.
#[tokio::test]
async fn a_worker_killed_mid_job_leaves_the_message_to_the_next_worker() {
    let queues = QueuePrefix::fresh(&shared_broker_url(), &[REQUESTS_QUEUE, rss_api::REPLIES_QUEUE]);
    let data = tempfile::tempdir().expect("temp dir");
    let database = data.path().join("galley.db");
    let store = DocumentStore::embedded(SqliteStore::open(&database).await.expect("store"));
    let rabbitmq =
        Arc::new(galley_rabbitmq::RabbitMqBus::connect(&queues.url, &queues.prefix).await.expect("broker"));
    let bus: Arc<dyn MessageBus> = rabbitmq.clone();
    let requests = FetchRequests::new(
        Arc::clone(&store.jobs),
        Arc::clone(&store.entries),
        Arc::new(rss_api::queue::BusFetchQueue::new(Arc::clone(&bus))),
        Arc::new(SystemClock),
    );
    let feeds = FixtureServer::start(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).await;
    // The feed answers after 3 s: long enough to kill the first worker while it waits.
    let feed = feeds.url("/slow.xml?ms=3000");
    let job = requests.request_fetch(&UserId::new("alice"), &feed, None).await.expect("queued");

    let mut first = WorkerProcess::spawn(&database, &queues);
    wait_for_job(&store, &job, Duration::from_secs(30), |job| job.status == JobStatus::Fetching).await;
    first.kill();
    let after_crash = store.jobs.get(job.id).await.expect("store").expect("job");
    assert_eq!(after_crash.status, JobStatus::Fetching, "the killed worker finished nothing");

    let _second = WorkerProcess::spawn(&database, &queues);
    let done =
        wait_for_job(&store, &job, Duration::from_secs(30), |job| job.status != JobStatus::Fetching).await;
    assert_eq!(done.status, JobStatus::Done, "{done:?}");
    assert_eq!(done.inserted, 3, "{done:?}");
    let entries = requests
        .entries(&galley_rss::model::EntryQuery {
            feed_url: Some(galley_rss::FeedUrl::parse(&feed).expect("url")),
            ..Default::default()
        })
        .await
        .expect("entries");
    assert_eq!(entries.total, 3, "each entry stored once");
    rabbitmq.close().await;
}
