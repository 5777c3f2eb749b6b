//! End-to-end RSS ingestion benchmark (run with `make bench-rss` or `cargo bench -p galley --bench ingest`).
//!
//! Starts the all-in-one `galley` in-process and a loopback fixture feed server, then for each round
//! posts a fetch request for a fresh 1,000-entry feed and waits for its job to be done, measuring
//! POST → done latency and stored entries per second. Also measures the latency for a small feed.
//! Bounded: a fixed number of rounds, each with a 60 s ceiling. Loopback traffic only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use galley::{Application, Settings};
use galley_platform::Shutdown;
use galley_test_support::feeds::FixtureServer;
use serde_json::{Value, json};

const ROUNDS: usize = 10;
const ENTRIES: usize = 1000;

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() {
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
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let token = galley_test_support::accounts::signed_in_token(&client, &base, "bench").await;

    let ingest = |url: String| {
        let client = client.clone();
        let base = base.clone();
        let token = token.clone();
        async move {
            let started = Instant::now();
            let accepted: Value = client
                .post(format!("{base}/rss/fetch"))
                .bearer_auth(&token)
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
                    .bearer_auth(&token)
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
    };

    let mut large = Vec::new();
    for round in 0..ROUNDS {
        let (elapsed, inserted) = ingest(feeds.url(&format!("/generated/{ENTRIES}.xml?round={round}"))).await;
        assert_eq!(inserted, ENTRIES as u64, "every entry of a fresh feed is stored");
        large.push(elapsed);
    }
    let mut small = Vec::new();
    for round in 0..ROUNDS {
        small.push(ingest(feeds.url(&format!("/rss.xml?round={round}"))).await.0);
    }
    shutdown.trigger();

    large.sort();
    small.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let entries_per_sec = |d: Duration| ENTRIES as f64 / d.as_secs_f64();
    println!(
        "end-to-end ingestion ({ROUNDS} rounds each, POST /rss/fetch → job done, in-process bus, SQLite)"
    );
    println!(
        "  {ENTRIES}-entry feed: median {:.1} ms (min {:.1}, max {:.1}) → {:.0} entries/s stored (median)",
        median(&large).as_secs_f64() * 1e3,
        large[0].as_secs_f64() * 1e3,
        large[large.len() - 1].as_secs_f64() * 1e3,
        entries_per_sec(median(&large)),
    );
    println!(
        "  small feed:        median {:.1} ms (min {:.1}, max {:.1})",
        median(&small).as_secs_f64() * 1e3,
        small[0].as_secs_f64() * 1e3,
        small[small.len() - 1].as_secs_f64() * 1e3,
    );
}
