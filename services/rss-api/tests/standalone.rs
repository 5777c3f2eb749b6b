//! The standalone services together: recipes-api (the token issuer), rss-api (verifying tokens through
//! the issuer's discovery document and JWKS) and rss-worker, as separate applications sharing one
//! document store (a SQLite file, or MongoDB when `GALLEY_TEST_MONGODB_URI` names a server) and one bus;
//! and the failure drill of a broker restart while fetch requests flow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_kernel::SystemClock;
use galley_messaging::{InProcessBus, MessageBus};
use galley_platform::{HttpSettings, Shutdown};
use galley_test_support::feeds::FixtureServer;
use galley_test_support::mongodb::{self, MongoTestDatabase};
use galley_test_support::rabbitmq::{QueuePrefix, RabbitMqNode, shared_broker_url};
use rss_api::{REPLIES_QUEUE, REQUESTS_QUEUE};
use serde_json::{Value, json};

/// Entries in the fixture's `/rss.xml`.
const RSS_FIXTURE_ENTRIES: u64 = 3;

fn loopback_http() -> HttpSettings {
    HttpSettings { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..HttpSettings::default() }
}

/// How rss-api and rss-worker reach each other.
enum Wiring {
    /// One in-process bus shared by the two applications.
    InProcess,
    /// Each application connects to the RabbitMQ at `url` on its own, as separate processes do.
    RabbitMq { url: String, prefix: String },
}

/// Where the three services keep their documents.
enum Store {
    /// One SQLite file in the test's temp dir.
    Embedded,
    /// A fresh database on a MongoDB server, dropped when the guard is (also after a failure).
    MongoDb(MongoTestDatabase),
}

impl Store {
    fn settings(&self, data_dir: &std::path::Path) -> galley_platform::StoreSettings {
        let mut settings = galley_platform::StoreSettings::default();
        match self {
            Store::Embedded => settings.embedded.path = data_dir.join("galley.db"),
            Store::MongoDb(database) => {
                settings.backend = galley_platform::StoreBackend::Mongodb;
                settings.mongodb.uri = database.uri.as_str().into();
                settings.mongodb.database = database.name.clone();
            }
        }
        settings
    }
}

/// The three services running, a signed-in user and a fixture feed server.
struct Stack {
    client: reqwest::Client,
    rss_base: String,
    worker_health: String,
    token: String,
    feeds: FixtureServer,
    shutdown: Shutdown,
    _data: tempfile::TempDir,
}

impl Stack {
    async fn start(wiring: &Wiring, store: &Store) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let shutdown = Shutdown::new();
        let client = reqwest::Client::builder().no_proxy().build().expect("client");

        // The issuer.
        let recipes = recipes_api::Settings {
            http: loopback_http(),
            store: store.settings(data.path()),
            ..Default::default()
        };
        let issuer_app = recipes_api::Application::build(recipes).await.expect("recipes-api");
        let issuer = format!("http://{}/", issuer_app.local_addr().expect("bound"));
        tokio::spawn(issuer_app.run_until_stopped(shutdown.clone()));

        // rss-api and rss-worker on one bus, or each on its own connection to RabbitMQ.
        let mut bus_settings = galley_platform::BusSettings::default();
        let shared: Option<Arc<dyn MessageBus>> = match wiring {
            Wiring::InProcess => Some(Arc::new(InProcessBus::new())),
            Wiring::RabbitMq { url, prefix } => {
                bus_settings.backend = galley_platform::BusBackend::Rabbitmq;
                bus_settings.rabbitmq.prefix = prefix.clone();
                bus_settings.rabbitmq.url = url.as_str().into();
                None
            }
        };
        let mut rss = rss_api::Settings {
            http: loopback_http(),
            bus: bus_settings.clone(),
            store: store.settings(data.path()),
            // The drills retry many fetches from one address; the throttle has tests of its own.
            limits: galley_platform::LimitsSettings::disabled(),
            ..Default::default()
        };
        rss.identity.issuer = Some(issuer.clone());
        let rss_app = rss_api::Application::build_with(rss, shared.clone(), Arc::new(SystemClock))
            .await
            .expect("rss-api");
        let rss_base = format!("http://{}", rss_app.local_addr().expect("bound"));
        tokio::spawn(rss_app.run_until_stopped(shutdown.clone()));

        let mut worker = rss_worker::Settings {
            http: loopback_http(),
            bus: bus_settings,
            store: store.settings(data.path()),
            ..Default::default()
        };
        worker.fetch.allow_private_hosts = vec!["127.0.0.1/32".parse().expect("net")];
        let worker_app = rss_worker::app::Application::build_with(worker, shared).await.expect("rss-worker");
        let worker_health = format!("http://{}/health/ready", worker_app.local_addr().expect("bound"));
        tokio::spawn(worker_app.run_until_stopped(shutdown.clone()));

        let token =
            galley_test_support::accounts::signed_in_token(&client, issuer.trim_end_matches('/'), "alice")
                .await;
        let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        Self { client, rss_base, worker_health, token, feeds, shutdown, _data: data }
    }

    async fn request_fetch(&self, url: &str, idempotency_key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/rss/fetch", self.rss_base))
            .bearer_auth(&self.token)
            .json(&json!({"url": url}));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("sent")
    }

    async fn job(&self, job_id: &str) -> Value {
        json_of(self.client.get(format!("{}/rss/jobs/{job_id}", self.rss_base)).bearer_auth(&self.token))
            .await
    }

    /// Polls the job until it is done or failed, at most `within`.
    async fn final_job(&self, job_id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(job_id).await;
            if job["status"] == "done" || job["status"] == "failed" {
                return job;
            }
            assert!(Instant::now() < deadline, "job not final within {within:?}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn entries_of(&self, feed_url: &str) -> Value {
        let url = format!("{}/rss/entries", self.rss_base);
        json_of(self.client.get(url).query(&[("feed_url", feed_url), ("limit", "100")])).await
    }
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("sent").json().await.expect("json")
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

#[tokio::test]
async fn rss_api_verifies_the_issuers_tokens_and_the_worker_completes_jobs() {
    run_pipeline(Wiring::InProcess, &Store::Embedded).await;
}

#[tokio::test]
async fn the_services_work_as_separate_parts_over_rabbitmq() {
    let queues = QueuePrefix::fresh(&shared_broker_url(), &[REQUESTS_QUEUE, REPLIES_QUEUE]);
    run_pipeline(
        Wiring::RabbitMq { url: queues.url.clone(), prefix: queues.prefix.clone() },
        &Store::Embedded,
    )
    .await;
}

/// The production shape: three services, each with its own connections to MongoDB and RabbitMQ.
#[tokio::test]
#[ignore = "needs a MongoDB server: GALLEY_TEST_MONGODB_URI"]
async fn the_services_work_as_separate_parts_on_mongodb_and_rabbitmq() {
    let Some(database) = MongoTestDatabase::from_env() else {
        eprintln!("SKIPPED: GALLEY_TEST_MONGODB_URI names no MongoDB server");
        return;
    };
    let store = Store::MongoDb(database);
    let queues = QueuePrefix::fresh(&shared_broker_url(), &[REQUESTS_QUEUE, REPLIES_QUEUE]);
    let wiring = Wiring::RabbitMq { url: queues.url.clone(), prefix: queues.prefix.clone() };
    tokio::time::timeout(mongodb::TEST_TIMEOUT, run_pipeline(wiring, &store)).await.unwrap_or_else(|_| {
        panic!("the pipeline on MongoDB did not finish within {:?}", mongodb::TEST_TIMEOUT)
    });
}

async fn run_pipeline(wiring: Wiring, store: &Store) {
    let stack = Stack::start(&wiring, store).await;
    let feed = stack.feeds.url("/rss.xml");

    let forged = stack
        .client
        .post(format!("{}/rss/fetch", stack.rss_base))
        .bearer_auth("a.b.c")
        .json(&json!({"url": feed}))
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 401);
    let accepted = stack.request_fetch(&feed, None).await;
    assert_eq!(accepted.status(), 202, "the issuer's token is accepted via its JWKS");
    let job_id = accepted.json::<Value>().await.expect("json")["job_id"].as_str().expect("id").to_owned();

    let job = stack.final_job(&job_id, Duration::from_secs(15)).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["inserted"], RSS_FIXTURE_ENTRIES, "{job}");
    assert_eq!(stack.entries_of(&feed).await["total"], RSS_FIXTURE_ENTRIES);
    let health = json_of(stack.client.get(&stack.worker_health)).await;
    assert_eq!(health["status"], "up");
}

/// Failure drill: RabbitMQ is restarted while clients keep asking for feeds. A request the API could not
/// hand to the broker is answered 503 and retried by the client with the same `Idempotency-Key`; every
/// request answered 202 must complete exactly once in effect: every feed's entries stored, none twice,
/// each job `done` with all of its feed's entries inserted by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_fetch_completes_once_across_a_broker_restart() {
    const REQUESTS: usize = 16;
    const RESTART_AFTER: usize = 4;
    let node = tokio::task::spawn_blocking(RabbitMqNode::start).await.expect("node boots");
    let wiring = Wiring::RabbitMq { url: node.url(), prefix: "galley.".to_owned() };
    let mut node = Some(node);
    let stack = Stack::start(&wiring, &Store::Embedded).await;

    let mut restart = None;
    let mut accepted: Vec<(String, String)> = Vec::new(); // (feed url, job id)
    let mut refused = 0_u32;
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..REQUESTS {
        if let Some(mut node) = node.take_if(|_| i == RESTART_AFTER) {
            restart = Some(tokio::task::spawn_blocking(move || {
                node.restart();
                node
            }));
        }
        let feed = stack.feeds.url(&format!("/rss.xml?feed={i}"));
        let key = format!("drill-{i}");
        loop {
            let response = stack.request_fetch(&feed, Some(&key)).await;
            match response.status().as_u16() {
                202 => {
                    let body: Value = response.json().await.expect("json");
                    accepted.push((feed, body["job_id"].as_str().expect("id").to_owned()));
                    break;
                }
                503 => refused += 1,
                other => {
                    panic!("unexpected {other} for {feed}: {}", response.text().await.unwrap_or_default())
                }
            }
            assert!(Instant::now() < deadline, "the API did not accept {feed} again after the restart");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let _node = restart.expect("restarted").await.expect("restart finished");

    assert_eq!(accepted.len(), REQUESTS);
    for (feed, job_id) in &accepted {
        let job = stack.final_job(job_id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "done", "{feed}: {job}");
        assert_eq!(job["inserted"], RSS_FIXTURE_ENTRIES, "each entry inserted once, by its job: {job}");
        assert_eq!(job["skipped"], 0, "{job}");
        let entries = stack.entries_of(feed).await;
        assert_eq!(entries["total"], RSS_FIXTURE_ENTRIES, "no entry lost or stored twice for {feed}");
    }
    eprintln!("broker restarted during {REQUESTS} requests; {refused} refusals (503) retried by the client");
}

#[tokio::test]
async fn the_root_is_a_front_door_naming_rss_api() {
    let stack = Stack::start(&Wiring::InProcess, &Store::Embedded).await;
    let index = json_of(stack.client.get(format!("{}/", stack.rss_base))).await;
    assert_eq!(index["name"], "rss-api", "{index}");
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(index["links"]["health"], "/health/ready");
}
