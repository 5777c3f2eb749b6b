//! End-to-end RSS ingestion benchmark (run with `make bench-rss` or `cargo bench -p galley --bench ingest`).
//!
//! Two shapes, each measured the same way: for each round, post a fetch request for a fresh
//! 1,000-entry feed (served on loopback) and wait until its job is done, measuring POST → done
//! latency and stored entries per second; then the latency for a small feed.
//!
//! 1. embedded: the all-in-one `galley` in this process (in-process bus, SQLite);
//! 2. distributed: recipes-api, rss-api and rss-worker as three `galley run` processes sharing the
//!    local RabbitMQ (a unique queue prefix, deleted afterwards), Redis (a unique key prefix) and one
//!    SQLite file: every request and reply crosses the broker, as in production.
//!
//! Bounded: a fixed number of rounds, each with a 60 s ceiling. Loopback traffic only.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use galley::{Application, Settings};
use galley_platform::Shutdown;
use galley_test_support::feeds::FixtureServer;
use galley_test_support::rabbitmq::{QueuePrefix, shared_broker_url};
use galley_test_support::redis::PrefixCleanup;
use serde_json::{Value, json};
use support::{Distributed, SHARED_REDIS, free_port, rabbitmq_environment};

const ROUNDS: usize = 10;
const ENTRIES: usize = 1000;

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() {
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let embedded = embedded(&client, &feeds).await;
    embedded.print("embedded: galley serve in one process, in-process bus, SQLite");
    let distributed = distributed(&client, &feeds).await;
    distributed.print("distributed: three processes, RabbitMQ + Redis + a shared SQLite file");
    println!(
        "  distributed / embedded: {:.2} (entries/s of the 1,000-entry feed)",
        embedded.median_large().as_secs_f64() / distributed.median_large().as_secs_f64()
    );
}

/// The all-in-one process, in this process.
async fn embedded(client: &reqwest::Client, feeds: &FixtureServer) -> Timings {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings { data_dir: data.path().to_path_buf(), ..Settings::default() };
    settings.recipes.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.worker.fetch.allow_private_hosts = vec!["127.0.0.1/32".parse().expect("net")];
    // Twenty fetch requests from one address in a few seconds: the per-client throttle of
    // `POST /rss/fetch` would answer 429 to most of them. This measures ingestion, not the throttle.
    settings.recipes.limits.enabled = false;
    let application = Application::build(settings).await.expect("galley");
    let base = format!("http://{}", application.local_addr().expect("bound"));
    let shutdown = Shutdown::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let token = galley_test_support::accounts::signed_in_token(client, &base, "bench").await;
    let timings = measure(client, &base, &token, feeds, "embedded").await;
    shutdown.trigger();
    timings
}

/// Three `galley run` processes on the shared broker, Redis and one SQLite file.
async fn distributed(client: &reqwest::Client, feeds: &FixtureServer) -> Timings {
    let data = tempfile::tempdir().expect("temp dir");
    let redis = PrefixCleanup::fresh(SHARED_REDIS);
    let queues = QueuePrefix::fresh(&shared_broker_url(), &["rss.fetch.requested", "rss.fetch.completed"]);
    let (recipes_port, rss_port, worker_port) = (free_port(), free_port(), free_port());
    let extra = [
        ("GALLEY__STORE__EMBEDDED__PATH", data.path().join("galley.db").display().to_string()),
        ("GALLEY__LIMITS__ENABLED", "false".to_owned()),
    ];
    let issuer = format!("http://127.0.0.1:{recipes_port}/");
    let environment = rabbitmq_environment(data.path(), &extra, &redis.prefix, &queues, &issuer);
    let Distributed { recipes, rss, worker } =
        Distributed::start(client, (recipes_port, rss_port, worker_port), &environment).await;
    let token = galley_test_support::accounts::signed_in_token(client, &recipes.base, "bench").await;
    let timings = measure(client, &rss.base, &token, feeds, "distributed").await;
    for service in [worker, rss, recipes] {
        service.stop().await;
    }
    timings
}

/// POST → done of `ROUNDS` fresh 1,000-entry feeds, then of `ROUNDS` small ones, through `base`.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    feeds: &FixtureServer,
    shape: &str,
) -> Timings {
    let mut large = Vec::new();
    for round in 0..ROUNDS {
        let url = feeds.url(&format!("/generated/{ENTRIES}.xml?shape={shape}&round={round}"));
        let (elapsed, inserted) = ingest(client, base, token, url).await;
        assert_eq!(inserted, ENTRIES as u64, "every entry of a fresh feed is stored");
        large.push(elapsed);
    }
    let mut small = Vec::new();
    for round in 0..ROUNDS {
        small.push(
            ingest(client, base, token, feeds.url(&format!("/rss.xml?shape={shape}&round={round}"))).await.0,
        );
    }
    large.sort();
    small.sort();
    Timings { large, small }
}

/// One fetch request, polled until its job is done: how long it took and how many entries it stored.
async fn ingest(client: &reqwest::Client, base: &str, token: &str, url: String) -> (Duration, u64) {
    let started = Instant::now();
    let accepted: Value = client
        .post(format!("{base}/rss/fetch"))
        .bearer_auth(token)
        .json(&json!({"url": url}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let Some(id) = accepted["job_id"].as_str().map(str::to_owned) else {
        panic!("the fetch request was not accepted: {accepted}")
    };
    let deadline = started + Duration::from_secs(60);
    loop {
        let job: Value = client
            .get(format!("{base}/rss/jobs/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if job["status"] == "done" {
            return (started.elapsed(), job["inserted"].as_u64().unwrap_or_default());
        }
        assert!(job["status"] != "failed", "job failed: {job}");
        assert!(Instant::now() < deadline, "job not done within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sorted POST → done latencies of one shape.
struct Timings {
    large: Vec<Duration>,
    small: Vec<Duration>,
}

impl Timings {
    fn median_large(&self) -> Duration {
        self.large[self.large.len() / 2]
    }

    #[allow(clippy::print_stdout)]
    fn print(&self, shape: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let median = |v: &[Duration]| v[v.len() / 2];
        println!("end-to-end ingestion, {shape} ({ROUNDS} rounds each, POST /rss/fetch → job done)");
        println!(
            "  {ENTRIES}-entry feed: median {:.1} ms (min {:.1}, max {:.1}) → {:.0} entries/s stored (median)",
            ms(self.median_large()),
            ms(self.large[0]),
            ms(self.large[self.large.len() - 1]),
            ENTRIES as f64 / self.median_large().as_secs_f64(),
        );
        println!(
            "  small feed:        median {:.1} ms (min {:.1}, max {:.1})",
            ms(median(&self.small)),
            ms(self.small[0]),
            ms(self.small[self.small.len() - 1]),
        );
    }
}
