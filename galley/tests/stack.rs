//! `galley stack` end to end: `init` + `up` in a temp state directory on free loopback ports (Redis, a
//! private RabbitMQ node, moto and OpenBao sealed by its KMS, two recipes-api replicas, rss-api, rss-worker, nginx with TLS), then every
//! flow over HTTPS/2 through nginx with a client that trusts only the generated CA; a worker and a
//! replica killed and restarted; `down` leaving no process behind. When Debian's `prometheus` is
//! installed, the stack's Prometheus scrapes every replica (`up` in its targets API). The stack is always brought down by
//! a drop guard, also when an assertion fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use galley_test_support::accounts::PASSWORD;
use galley_test_support::feeds::FixtureServer;
use reqwest::{StatusCode, Version};
use serde_json::{Value, json};

/// The whole test, stack boot included (RabbitMQ alone may take a minute on a loaded machine).
const TEST_TIMEOUT: Duration = Duration::from_secs(420);

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A stack in a temp directory, brought down when dropped.
struct Stack {
    state: tempfile::TempDir,
    https_port: u16,
    http_port: u16,
}

impl Stack {
    /// `galley stack --state-dir STATE ARGS...`: (success, stdout, stderr).
    fn galley(&self, args: &[&str]) -> (bool, String, String) {
        galley_in(self.state.path(), args)
    }

    fn status(&self) -> (bool, Value) {
        let (success, stdout, stderr) = self.galley(&["status", "--json"]);
        let report =
            serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("status JSON: {stdout}{stderr}"));
        (success, report)
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.https_port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let (_, stdout, stderr) = galley_in(self.state.path(), &["down", "--grace", "5"]);
        if std::thread::panicking() {
            eprintln!("galley stack down:\n{stdout}{stderr}");
            for log in ["recipes-api", "rss-api", "rss-worker", "nginx", "rabbitmq", "prometheus"] {
                let path = self.state.path().join("logs").join(format!("{log}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {log}.log (last lines, newest first)\n{}", tail.join("\n"));
            }
        }
    }
}

fn galley_in(state: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_galley"))
        .arg("stack")
        .arg("--state-dir")
        .arg(state)
        .args(args)
        // Hermetic: nothing from the developer's environment picks another store or configuration.
        .env_remove("GALLEY_STACK_MONGODB_URI")
        .env_remove("GALLEY_CONFIG_DIR")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("galley runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A process counts as gone when /proc has no entry or it is a zombie nobody reaped.
/// No secret sits in the services' configuration: each service logs in to OpenBao with its AppRole,
/// takes the cookie key from KV and leases its own Redis (and RabbitMQ) user.
fn assert_services_read_their_secrets_from_openbao(state: &Path) {
    let config = std::fs::read_to_string(state.join("config/galley/stack.toml")).expect("stack.toml");
    let cookie_key = std::fs::read_to_string(state.join("cookie.key")).expect("cookie key");
    assert!(!config.contains(cookie_key.trim()) && !config.contains("guest"), "no secret in\n{config}");
    let redis_conf = state.join("config/redis.conf");
    assert_eq!(std::fs::metadata(&redis_conf).expect("redis.conf").permissions().mode() & 0o077, 0);
    for (service, leases) in
        [("recipes-api", &["galley-cache"][..]), ("rss-worker", &["galley-cache", "galley-bus"])]
    {
        let log = std::fs::read_to_string(state.join(format!("logs/{service}.log"))).expect("log");
        if service == "recipes-api" {
            assert!(
                log.contains("identity.cookie_key") && log.contains("from the secrets backend"),
                "{service} takes the cookie key from OpenBao:\n{log}"
            );
        }
        for lease in leases {
            assert!(
                log.contains("leased credentials") && log.contains(lease),
                "{service} leases {lease}:\n{log}"
            );
        }
    }
}

/// Whether `galley stack up` runs Prometheus: it looks for the binary on PATH the same way.
fn prometheus_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("prometheus").is_file()))
}

/// Polls Prometheus's targets API (at most 60 s) until every service replica is scraped with
/// `health: "up"`, labelled with its service and its name.
async fn assert_prometheus_scrapes_every_replica(url: &str, replicas: &[(&str, &str)]) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let targets: Value = match client.get(format!("{url}api/v1/targets")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        let active = targets["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let up = |(instance, service): &(&str, &str)| {
            active.iter().any(|target| {
                target["labels"]["instance"] == *instance
                    && target["labels"]["service"] == *service
                    && target["health"] == "up"
            })
        };
        if replicas.iter().all(up) {
            return;
        }
        assert!(Instant::now() < deadline, "every replica up in Prometheus within 60 s: {targets}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn process_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

fn component<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["components"]
        .as_array()
        .and_then(|components| components.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

fn ca_client(state: &Path, https_port: u16) -> reqwest::Client {
    let pem = std::fs::read(state.join("ca.pem")).expect("CA written by init");
    let ca = reqwest::Certificate::from_pem(&pem).expect("CA PEM");
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], https_port)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_stack_serves_every_flow_through_nginx_survives_killed_instances_and_leaves_nothing_behind() {
    tokio::time::timeout(TEST_TIMEOUT, run()).await.expect("the stack test finished in time");
}

async fn run() {
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let stack = Stack {
        state: tempfile::tempdir().expect("temp dir"),
        https_port: free_port(),
        http_port: free_port(),
    };
    let state: PathBuf = stack.state.path().to_path_buf();

    let (initialised, stdout, stderr) = stack.galley(&["init"]);
    assert!(initialised, "init: {stdout}{stderr}");
    let ca = std::fs::read_to_string(state.join("ca.pem")).expect("ca");
    let (again, stdout, stderr) = stack.galley(&["init"]);
    assert!(again, "init again: {stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(state.join("ca.pem")).expect("ca"), ca, "init is idempotent");

    let (https, http) = (stack.https_port.to_string(), stack.http_port.to_string());
    let up_args = [
        "up",
        "--https-port",
        &https,
        "--http-port",
        &http,
        "--replicas",
        "recipes-api=2",
        "--allow-private-hosts",
        "127.0.0.1/32",
    ];
    let (up, stdout, stderr) = stack.galley(&up_args);
    assert!(up, "up: {stdout}{stderr}");
    assert!(stdout.contains("initialised"), "a fresh OpenBao is initialised: {stdout}");
    assert!(state.join("data/openbao/approles.txt").exists(), "and bootstrapped: {stdout}");
    assert_services_read_their_secrets_from_openbao(&state);
    assert!(stdout.contains("embedded SQLite"), "the shared embedded store is said plainly: {stdout}");
    assert!(prometheus_installed() || stdout.contains("prometheus: skipped"), "said in one line: {stdout}");
    let (_, stdout, _) = stack.galley(&["up"]);
    assert!(stdout.contains("recipes-api-2  running"), "a second up starts nothing: {stdout}");

    let (healthy, report) = stack.status();
    assert!(healthy, "status exits 0 when all is healthy: {report}");
    let mut names = vec![
        "redis",
        "rabbitmq",
        "moto",
        "openbao",
        "recipes-api",
        "recipes-api-2",
        "rss-api",
        "rss-worker",
        "nginx",
    ];
    let prometheus = prometheus_installed();
    if prometheus {
        names.push("prometheus");
    }
    for name in &names {
        let line = component(&report, name);
        assert_eq!(line["health"], "healthy", "{name}: {report}");
        assert!(line["pid"].as_i64().is_some_and(process_alive), "{name} pid: {report}");
        assert!(line["uptime_s"].is_u64() && line["restarts"] == 0, "{name}: {report}");
    }
    assert_eq!(report["urls"]["https"], format!("https://localhost:{https}/"));
    if prometheus {
        let url = report["urls"]["prometheus"].as_str().expect("status shows Prometheus's URL").to_owned();
        let (_, text, _) = stack.galley(&["status"]);
        assert!(text.contains(&format!("PROMETHEUS {url}")), "{text}");
        let replicas = [
            ("recipes-api", "recipes-api"),
            ("recipes-api-2", "recipes-api"),
            ("rss-api", "rss-api"),
            ("rss-worker", "rss-worker"),
        ];
        assert_prometheus_scrapes_every_replica(&url, &replicas).await;
    } else {
        eprintln!("SKIPPED: the Prometheus part (apt-get install prometheus)");
        assert!(report["urls"].get("prometheus").is_none(), "{report}");
    }

    let client = ca_client(&state, stack.https_port);
    let base = stack.base();

    // The front door, over HTTP/2, with the security headers and no nginx version.
    let front = client.get(format!("{base}/")).send().await.expect("front door");
    assert_eq!(front.status(), StatusCode::OK);
    assert_eq!(front.version(), Version::HTTP_2, "nginx speaks HTTP/2");
    let headers = front.headers().clone();
    assert_eq!(front.json::<Value>().await.expect("json")["name"], "recipes-api");
    assert!(headers["strict-transport-security"].to_str().expect("hsts").contains("max-age="));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"].to_str().expect("csp").contains("default-src 'none'"));
    assert_eq!(headers["server"], "nginx", "server_tokens off");
    assert!(headers.contains_key("x-request-id"), "a request id is generated");
    let docs = client.get(format!("{base}/docs/")).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.headers()["content-security-policy"].to_str().expect("csp").contains("script-src 'self'"));
    let openapi = client.get(format!("{base}/openapi.json")).send().await.expect("openapi");
    assert_eq!(openapi.status(), StatusCode::OK);
    let echoed = client.get(format!("{base}/recipes")).header("X-Request-Id", "stack-e2e-1").send().await;
    assert_eq!(echoed.expect("recipes").headers()["x-request-id"], "stack-e2e-1", "a client's id passes");
    assert_eq!(client.get(format!("{base}/metrics")).send().await.expect("sent").status(), 404);
    let gzipped =
        client.get(format!("{base}/recipes?limit=20")).header("Accept-Encoding", "gzip").send().await;
    assert_eq!(gzipped.expect("sent").status(), StatusCode::OK);

    // Plain HTTP is only a redirect.
    let plain = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build();
    let redirected = plain
        .expect("client")
        .get(format!("http://127.0.0.1:{http}/recipes?limit=1"))
        .send()
        .await
        .expect("sent");
    assert_eq!(redirected.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirected.headers()["location"], format!("https://127.0.0.1:{https}/recipes?limit=1"));

    // Accounts and recipes through nginx; the session cookie is Secure behind TLS.
    let signup = json!({"email": "stack@example.com", "username": "stacker", "password": PASSWORD});
    let created = client.post(format!("{base}/auth/signup")).json(&signup).send().await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signin = json!({"username": "stacker", "password": PASSWORD});
    let signed_in = client.post(format!("{base}/auth/signin")).json(&signin).send().await.expect("sent");
    assert_eq!(signed_in.status(), StatusCode::OK);
    for cookie in signed_in.headers().get_all("set-cookie") {
        assert!(cookie.to_str().expect("cookie").contains("Secure"), "{cookie:?}");
    }
    let tokens: Value = signed_in.json().await.expect("json");
    let token = tokens["access_token"].as_str().expect("access token").to_owned();

    let recipe = json!({"name": "Bún chả", "tags": ["Vietnamese"], "ingredients": ["pork"], "instructions": ["Grill."]});
    let created = client.post(format!("{base}/recipes")).bearer_auth(&token).json(&recipe).send().await;
    let created = created.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let etag = created.headers()["etag"].to_str().expect("etag").to_owned();
    let id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let path = format!("{base}/recipes/{id}");
    let renamed = json!({"name": "Bún chả Hà Nội", "tags": ["vietnamese"], "ingredients": ["pork"], "instructions": ["Grill."]});
    let updated = client.put(&path).bearer_auth(&token).header("If-Match", &etag).json(&renamed).send().await;
    assert_eq!(updated.expect("sent").status(), StatusCode::OK);
    let read: Value = client.get(&path).send().await.expect("sent").json().await.expect("json");
    assert_eq!(read["name"], "Bún chả Hà Nội");

    // RSS: fetch a loopback fixture feed (allow-listed), the worker completes the job, entries listed.
    let feed = feeds.url("/atom.xml");
    let accepted =
        client.post(format!("{base}/rss/fetch")).bearer_auth(&token).json(&json!({"url": feed})).send().await;
    let accepted = accepted.expect("sent");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job_id = accepted.json::<Value>().await.expect("json")["job_id"].as_str().expect("job").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job: Value = client
            .get(format!("{base}/rss/jobs/{job_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        if job["status"] == "done" || job["status"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "job not final in time: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "done", "{job}");
    let entries: Value = client
        .get(format!("{base}/rss/entries"))
        .query(&[("feed_url", feed.as_str())])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(entries["total"], 2, "{entries}");

    // Delete, sign out: both APIs refuse the token at once (the revocation is in the stack's Redis).
    assert_eq!(client.delete(&path).bearer_auth(&token).send().await.expect("sent").status(), 204);
    let signed_out = client.post(format!("{base}/auth/signout")).bearer_auth(&token).send().await;
    assert_eq!(signed_out.expect("sent").status(), StatusCode::NO_CONTENT);
    let me = client.get(format!("{base}/auth/me")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "recipes-api refuses a signed-out token");
    let refused =
        client.post(format!("{base}/rss/fetch")).bearer_auth(&token).json(&json!({"url": feed})).send().await;
    assert_eq!(refused.expect("sent").status(), StatusCode::UNAUTHORIZED, "so does rss-api");

    // Ten fast wrong sign-ins from one address: throttled (nginx's limit_req or Galley's own budget).
    let wrong = json!({"username": "stacker", "password": "not the password"});
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = client.post(format!("{base}/auth/signin")).json(&wrong).send().await.expect("sent");
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.contains(&429), "some of ten wrong sign-ins are refused with 429: {statuses:?}");

    // Kill a worker and a recipes-api replica: status says so, the other replica keeps serving.
    let worker_pid = component(&report, "rss-worker")["pid"].as_i64().expect("pid");
    let replica_pid = component(&report, "recipes-api-2")["pid"].as_i64().expect("pid");
    for pid in [worker_pid, replica_pid] {
        let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill runs");
        assert!(killed.success());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(worker_pid) || process_alive(replica_pid) {
        assert!(Instant::now() < deadline, "killed processes gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (healthy, degraded) = stack.status();
    assert!(!healthy, "status exits non-zero with instances down: {degraded}");
    assert_eq!(component(&degraded, "rss-worker")["health"], "down", "{degraded}");
    assert_eq!(component(&degraded, "recipes-api-2")["health"], "down", "{degraded}");
    assert_eq!(component(&degraded, "recipes-api")["health"], "healthy", "{degraded}");
    for _ in 0..6 {
        let served = client.get(format!("{base}/recipes?limit=5")).send().await.expect("sent");
        assert_eq!(served.status(), StatusCode::OK, "the other replica serves");
    }

    for name in ["rss-worker", "recipes-api-2"] {
        let (restarted, stdout, stderr) = stack.galley(&["restart", name]);
        assert!(restarted, "restart {name}: {stdout}{stderr}");
    }
    let (healthy, restored) = stack.status();
    assert!(healthy, "all healthy again: {restored}");
    assert_eq!(component(&restored, "rss-worker")["restarts"], 1, "{restored}");
    assert_eq!(component(&restored, "recipes-api-2")["restarts"], 1, "{restored}");

    // Logs are kept per instance.
    let (logged, stdout, _) = stack.galley(&["logs", "nginx", "--lines", "5"]);
    assert!(logged, "logs: {stdout}");

    // Down leaves no process behind.
    let pids: Vec<i64> = restored["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["pid"].as_i64())
        .collect();
    assert_eq!(pids.len(), names.len(), "{restored}");
    let (stopped, stdout, stderr) = stack.galley(&["down"]);
    assert!(stopped, "down: {stdout}{stderr}");
    let worker_log = std::fs::read_to_string(state.join("logs/rss-worker.log")).expect("worker log");
    assert!(
        worker_log.contains("revoked leased credentials"),
        "a graceful stop revokes leases:\n{worker_log}"
    );
    let still_running: Vec<i64> = pids.iter().copied().filter(|pid| process_alive(*pid)).collect();
    assert!(still_running.is_empty(), "processes left after down: {still_running:?}\n{stdout}");
    let (healthy, after) = stack.status();
    assert!(!healthy, "{after}");
    assert!(after["components"].as_array().expect("components").iter().all(|c| c["health"] == "down"));
}
