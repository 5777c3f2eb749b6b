//! An in-process `galley` (the same `Application` the binary runs) on a free loopback port, and
//! `galley run <service>` processes for the distributed tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley::{Application, Settings};
use galley_platform::Shutdown;
use galley_test_support::fixtures::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct Galley {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    shutdown: Shutdown,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _data: tempfile::TempDir,
}

/// Starts galley with fetches allowed to `allowed` (loopback fixture servers) only.
pub async fn start(allowed: &[&str]) -> Galley {
    start_with(allowed, |_| {}).await
}

/// As [`start`], with the settings adjusted by `adjust` last.
pub async fn start_with(allowed: &[&str], adjust: impl FnOnce(&mut Settings)) -> Galley {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings { data_dir: data.path().to_path_buf(), ..Settings::default() };
    settings.recipes.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests ask for many fetches from one address; the throttles have tests of their own.
    settings.recipes.limits = galley_platform::LimitsSettings::disabled();
    settings.worker.fetch.allow_private_hosts =
        allowed.iter().map(|a| a.parse().expect("allowed host")).collect();
    settings.worker.fetch.total_timeout = Duration::from_secs(3);
    settings.worker.retry.base_delay = Duration::from_millis(100);
    settings.worker.retry.max_delay = Duration::from_millis(400);
    settings.worker.retry.max_attempts = 3;
    adjust(&mut settings);
    let clock = ManualClock::new(chrono::Utc::now());
    let application = Application::build_with_clock(settings, clock.clone()).await.expect("galley builds");
    let base = format!("http://{}", application.local_addr().expect("bound"));
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    Galley { base, client, clock, shutdown, server: Some(server), _data: data }
}

impl Galley {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs a new user up and in; returns the access token.
    pub async fn token(&self, username: &str) -> String {
        galley_test_support::accounts::signed_in_token(&self.client, &self.base, username).await
    }

    pub async fn request_fetch(&self, token: &str, url: &str) -> reqwest::Response {
        self.client
            .post(self.url("/rss/fetch"))
            .bearer_auth(token)
            .json(&json!({"url": url}))
            .send()
            .await
            .expect("sent")
    }

    pub async fn job(&self, token: &str, id: &str) -> Value {
        self.client
            .get(self.url(&format!("/rss/jobs/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }

    /// Polls the job until it is final (bounded: 15 s).
    pub async fn wait_for_job(&self, token: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let job = self.job(token, id).await;
            if matches!(job["status"].as_str(), Some("done" | "failed")) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} not final in time: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Requests a fetch and waits for its job to be final.
    pub async fn ingest(&self, token: &str, url: &str) -> Value {
        let accepted = self.request_fetch(token, url).await;
        assert_eq!(accepted.status(), 202, "fetch of {url} accepted");
        let body: Value = accepted.json().await.expect("json");
        self.wait_for_job(token, body["job_id"].as_str().expect("job id")).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client.get(self.url(path)).send().await.expect("sent").json().await.expect("json")
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.expect("task").expect("clean stop");
        }
    }
}

impl Drop for Galley {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Sends SIGTERM to a spawned process and waits (bounded: 30 s) for it to exit successfully.
pub async fn terminate(child: &mut Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
    assert!(signalled.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} did not stop within 30 s of SIGTERM"))
        .expect("exit status");
    assert!(status.success(), "{name}: clean exit on SIGTERM, got {status}");
}

/// Sends a request and decodes its JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("sent").json().await.expect("json")
}

/// The pre-started Redis the distributed tests share (each under its own key prefix).
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

/// The environment every process of a distributed run on RabbitMQ shares: hermetic (no config
/// files), Redis under `redis_prefix`, the broker queues of `queues`, one issuer and cookie key, and
/// `extra` (the store, for one).
pub fn rabbitmq_environment(
    data_dir: &std::path::Path,
    extra: &[(&str, String)],
    redis_prefix: &str,
    queues: &galley_test_support::rabbitmq::QueuePrefix,
    issuer: &str,
) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = vec![
        ("GALLEY_CONFIG_DIR".into(), data_dir.join("no-config").display().to_string()),
        ("GALLEY__CACHE__BACKEND".into(), "redis".into()),
        ("GALLEY__CACHE__REDIS__URL".into(), SHARED_REDIS.into()),
        ("GALLEY__CACHE__REDIS__PREFIX".into(), redis_prefix.into()),
        ("GALLEY__BUS__BACKEND".into(), "rabbitmq".into()),
        ("GALLEY__BUS__RABBITMQ__URL".into(), queues.url.clone()),
        ("GALLEY__BUS__RABBITMQ__PREFIX".into(), queues.prefix.clone()),
        ("GALLEY__IDENTITY__ISSUER".into(), issuer.into()),
        // One cookie key for every process, as a secret store would hand out.
        (
            "GALLEY__IDENTITY__COOKIE_KEY".into(),
            "Z2FsbGV5LXRlc3QtY29va2llLWtleS0zMi1ieXRlcy1sb25nLSEhIQ==".into(),
        ),
        ("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS".into(), "127.0.0.1/32".into()),
        ("GALLEY__RECIPES__SEED_SAMPLES".into(), "false".into()),
    ];
    environment.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), value.clone())));
    environment
}

/// The three services of a distributed run, as `galley run` processes.
pub struct Distributed {
    pub recipes: Service,
    pub rss: Service,
    pub worker: Service,
}

impl Distributed {
    /// Starts recipes-api, rss-api and rss-worker on `ports` with `environment`, and waits until
    /// each is ready. The issuer first: rss-api reads its discovery document to verify a token.
    pub async fn start(
        client: &reqwest::Client,
        (recipes_port, rss_port, worker_port): (u16, u16, u16),
        environment: &[(String, String)],
    ) -> Self {
        let mut recipes = Service::spawn("recipes-api", recipes_port, environment);
        recipes.ready(client).await;
        let mut rss = Service::spawn("rss-api", rss_port, environment);
        let mut worker = Service::spawn("rss-worker", worker_port, environment);
        rss.ready(client).await;
        worker.ready(client).await;
        Self { recipes, rss, worker }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One `galley run <service>` process of a distributed test, on its own loopback port.
pub struct Service {
    pub name: &'static str,
    pub child: Child,
    pub base: String,
}

impl Service {
    pub fn spawn(name: &'static str, port: u16, environment: &[(String, String)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_galley"))
            .args(["run", name])
            .envs(environment.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .env("GALLEY__HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("galley run starts");
        Self { name, child, base: format!("http://127.0.0.1:{port}") }
    }

    /// Waits (bounded) until the process answers ready.
    pub async fn ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/health/ready", self.base)).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            let exited = self.child.try_wait().expect("status");
            assert!(exited.is_none(), "{} exited while starting: {exited:?}", self.name);
            assert!(Instant::now() < deadline, "{} not ready in time", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then a bounded wait for a successful exit.
    pub async fn stop(mut self) {
        terminate(&mut self.child, self.name).await;
    }
}
