//! The local compose stack end to end (deploy/compose/compose.local.yaml, issue 14): the base image
//! (debootstrap, cached), the Redis, RabbitMQ, nginx and Galley images built with podman, the stack up
//! under a project name of its own, then every user flow over HTTPS through the nginx container — sign-up,
//! sign-in, recipe CRUD, an RSS fetch of a feed served by a fixture container on the project's network —
//! and a worker container killed while it downloads a feed: the other replica finishes the job. `down`
//! must leave no container, network or volume of the project behind.
//!
//! Traffic stays on loopback (the published nginx port) and on the podman network the test's project
//! creates. Skipped with one line where podman cannot run containers at all (no podman, not root, no
//! podman-compose, or neither debootstrap nor a cached base image).

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use galley_test_support::accounts::PASSWORD;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The whole test: image builds from a cold cache (about a minute and a half here) included.
const TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Entries in the fast and the slow fixture feed.
const FAST_ENTRIES: usize = 3;
const SLOW_ENTRIES: usize = 40;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run_containers() -> Option<String> {
    let podman_works =
        Command::new("podman").args(["info", "--format", "{{.Host.OCIRuntime.Name}}"]).output();
    if !podman_works.is_ok_and(|output| output.status.success()) {
        return Some("podman is not installed or cannot run here".to_owned());
    }
    if !root().join(".tools/venv/bin/podman-compose").is_file() {
        return Some("podman-compose is not installed (scripts/python-tools.sh)".to_owned());
    }
    let cached_base = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cache/galley/debian-base-bookworm.tar"))
        .is_some_and(|tar| tar.is_file());
    let debootstrap = ["/usr/sbin/debootstrap", "/sbin/debootstrap"].iter().any(|p| Path::new(p).is_file());
    if !cached_base && !debootstrap {
        return Some(
            "neither debootstrap nor a cached base image (scripts/test-prerequisites.sh)".to_owned(),
        );
    }
    None
}

/// The test's compose project: brought down (containers, networks, volumes) when dropped.
struct Project {
    name: String,
    https_port: u16,
    feeds: tempfile::TempDir,
    /// Set once the test brought the project down itself.
    down: bool,
    /// CONTAINERS_CONF and CONTAINERS_STORAGE_CONF as scripts/containers.sh sets them, read once.
    podman_env: Vec<(String, String)>,
}

impl Project {
    /// `scripts/containers.sh ARGS` for this project.
    fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new(root().join("scripts/containers.sh"));
        command
            .args(args)
            .current_dir(root())
            .env("GALLEY_COMPOSE_PROJECT", &self.name)
            .env("GALLEY_HTTPS_PORT", self.https_port.to_string())
            .env("GALLEY_COMPOSE_OVERRIDES", fixtures().join("compose.test.yaml"))
            .env("GALLEY_TEST_FEEDS", self.feeds.path())
            .env("GALLEY_TEST_FIXTURES", fixtures());
        command
    }

    /// `podman ARGS` with the project's podman configuration; stdout (empty when podman fails).
    fn podman(&self, args: &[&str]) -> String {
        let output = Command::new("podman").args(args).envs(self.podman_env.clone()).output();
        output.map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).unwrap_or_default()
    }

    fn containers(&self, service: &str) -> Vec<String> {
        let label = format!("label=io.podman.compose.project={}", self.name);
        let service = format!("label=io.podman.compose.service={service}");
        let listed = self.podman(&["ps", "--filter", &label, "--filter", &service, "--format", "{{.Names}}"]);
        listed.lines().map(str::to_owned).collect()
    }

    /// Names of what the project left behind: containers, networks, volumes.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=io.podman.compose.project={}", self.name);
        let mut left = Vec::new();
        for kind in ["container", "network", "volume"] {
            let format = if kind == "container" { "{{.Names}}" } else { "{{.Name}}" };
            let listed = self.podman(&[kind, "ls", "--all", "--filter", &label, "--format", format]);
            left.extend(listed.lines().map(|name| format!("{kind} {name}")));
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for container in self
                .podman(&[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("label=io.podman.compose.project={}", self.name),
                    "--format",
                    "{{.Names}}",
                ])
                .lines()
            {
                let logs = Command::new("podman")
                    .args(["logs", "--tail", "20", container])
                    .envs(self.podman_env.clone())
                    .output();
                if let Ok(logs) = logs {
                    eprintln!(
                        "--- {container}\n{}{}",
                        String::from_utf8_lossy(&logs.stdout),
                        String::from_utf8_lossy(&logs.stderr)
                    );
                }
            }
        }
        if !self.down {
            let _ = self.script(&["down"]).status();
        }
    }
}

fn fixtures() -> PathBuf {
    root().join("galley/tests/fixtures/compose")
}

/// CONTAINERS_CONF and CONTAINERS_STORAGE_CONF as scripts/containers.sh sets them.
fn podman_environment() -> Vec<(String, String)> {
    let printed = Command::new(root().join("scripts/containers.sh")).arg("env").output().expect("env runs");
    String::from_utf8_lossy(&printed.stdout)
        .trim()
        .trim_start_matches("export ")
        .split_whitespace()
        .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// An RSS 2.0 document with `count` items, each with a description of `padding` bytes.
fn feed(title: &str, count: usize, padding: usize) -> String {
    let mut items = String::new();
    for n in 1..=count {
        items.push_str(&format!(
            "<item><title>{title} {n}</title><link>https://example.com/{title}/{n}</link>\
             <guid>{title}-{n}</guid><description>{}</description></item>",
            "x".repeat(padding)
        ));
    }
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{title}</title>\
         <link>https://example.com/{title}</link><description>{title}</description>{items}</channel></rss>"
    )
}

/// The fast and the slow feed, readable by the feed server's worker processes.
fn write_feeds(dir: &Path) {
    std::fs::create_dir_all(dir.join("fast")).expect("fast dir");
    std::fs::create_dir_all(dir.join("slow")).expect("slow dir");
    std::fs::write(dir.join("fast/feed.xml"), feed("fast", FAST_ENTRIES, 16)).expect("fast feed");
    // About 24 KiB at 3 KiB/s: some eight seconds on the wire.
    std::fs::write(dir.join("slow/feed.xml"), feed("slow", SLOW_ENTRIES, 560)).expect("slow feed");
    for path in [dir.to_path_buf(), dir.join("fast"), dir.join("slow")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn client(https_port: u16) -> reqwest::Client {
    let dir = std::env::var_os("GALLEY_CONTAINERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/containers"));
    let pem = std::fs::read(dir.join("ca/ca.crt")).expect("the CA containers.sh made");
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], https_port)))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_compose_stack_runs_every_flow_survives_a_killed_worker_and_leaves_nothing_behind() {
    if let Some(reason) = cannot_run_containers() {
        eprintln!("SKIPPED: the compose stack test: {reason}");
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, run()).await.expect("the compose test finished in time");
}

async fn run() {
    let mut project = Project {
        name: format!("galley-test-{}", std::process::id()),
        https_port: free_port(),
        feeds: tempfile::tempdir().expect("temp dir"),
        down: false,
        podman_env: podman_environment(),
    };
    write_feeds(project.feeds.path());
    let binary = env!("CARGO_BIN_EXE_galley");
    let started = Instant::now();
    let up = tokio::process::Command::from(project.script(&["up", binary])).kill_on_drop(true).output().await;
    let up = up.expect("containers.sh runs");
    assert!(
        up.status.success(),
        "containers.sh up:\n{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    eprintln!("compose: images built and containers started in {:?}", started.elapsed());
    let healthcheck = project.podman(&[
        "image",
        "inspect",
        "localhost/galley:local",
        "--format",
        "{{.Config.Healthcheck.Test}}",
    ]);
    assert!(healthcheck.contains("galley health"), "built in docker format, HEALTHCHECK kept: {healthcheck}");

    let client = client(project.https_port);
    let base = "https://localhost:".to_owned() + &project.https_port.to_string();

    // The services wait for Redis and RabbitMQ; nginx is restarted until its upstreams resolve.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut last = Vec::new();
        for path in ["/recipes?limit=1", "/rss/entries?limit=1"] {
            match client.get(format!("{base}{path}")).send().await {
                Ok(response) if response.status() == StatusCode::OK => {}
                Ok(response) => last.push(format!("{path}: {}", response.status())),
                Err(error) => last.push(format!("{path}: {error:?}")),
            }
        }
        if last.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the stack answers through nginx in time: {last:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("compose: serving through nginx {:?} after start", started.elapsed());
    assert_eq!(project.containers("rss-worker").len(), 2, "two worker replicas");

    // Accounts.
    let signup = json!({"email": "compose@example.com", "username": "composer", "password": PASSWORD});
    let created = client.post(format!("{base}/auth/signup")).json(&signup).send().await.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signin = json!({"username": "composer", "password": PASSWORD});
    let signed_in = client.post(format!("{base}/auth/signin")).json(&signin).send().await.expect("sent");
    assert_eq!(signed_in.status(), StatusCode::OK);
    let tokens: Value = signed_in.json().await.expect("json");
    let token = tokens["access_token"].as_str().expect("access token").to_owned();

    // Recipe CRUD.
    let recipe = json!({"name": "Phở bò", "tags": ["vietnamese"], "ingredients": ["beef"], "instructions": ["Simmer."]});
    let created = client.post(format!("{base}/recipes")).bearer_auth(&token).json(&recipe).send().await;
    let created = created.expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let etag = created.headers()["etag"].to_str().expect("etag").to_owned();
    let id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let path = format!("{base}/recipes/{id}");
    let renamed = json!({"name": "Phở bò tái", "tags": ["vietnamese"], "ingredients": ["beef"], "instructions": ["Simmer."]});
    let updated = client.put(&path).bearer_auth(&token).header("If-Match", &etag).json(&renamed).send().await;
    assert_eq!(updated.expect("sent").status(), StatusCode::OK);
    let listed = get_json(client.get(format!("{base}/recipes?tag=vietnamese"))).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["name"], "Phở bò tái", "{listed}");
    assert_eq!(client.delete(&path).bearer_auth(&token).send().await.expect("sent").status(), 204);
    assert_eq!(client.get(&path).send().await.expect("sent").status(), StatusCode::NOT_FOUND);

    // RSS: a feed from the fixture container, fetched by a worker, listed by rss-api.
    let fast = "http://feeds:8080/fast/feed.xml";
    let job = fetch(&client, &base, &token, fast).await;
    let job = wait_for_job(&client, &base, &token, &job, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(entries(&client, &base, fast).await, FAST_ENTRIES);

    // A worker killed while it downloads the slow feed: the other replica finishes the job.
    let slow = "http://feeds:8080/slow/feed.xml";
    let job_id = fetch(&client, &base, &token, slow).await;
    let holder = worker_downloading(&project, Duration::from_secs(30)).await;
    let killed = project.podman(&["kill", "--signal", "KILL", &holder]);
    assert!(!killed.trim().is_empty(), "podman kill {holder}");
    let interim = job_status(&client, &base, &token, &job_id).await;
    assert_ne!(interim["status"], "done", "the job was still in progress when its worker died: {interim}");
    let job = wait_for_job(&client, &base, &token, &job_id, Duration::from_secs(90)).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(entries(&client, &base, slow).await, SLOW_ENTRIES, "every entry, stored once");

    // Down: nothing of the project is left.
    let down = project.script(&["down"]).output().expect("down runs");
    project.down = true;
    assert!(down.status.success(), "down: {}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(project.leftovers(), Vec::<String>::new(), "down removes containers, networks and volumes");
    eprintln!("compose: whole test {:?}", started.elapsed());
}

async fn fetch(client: &reqwest::Client, base: &str, token: &str, url: &str) -> String {
    let accepted =
        client.post(format!("{base}/rss/fetch")).bearer_auth(token).json(&json!({"url": url})).send().await;
    let accepted = accepted.expect("sent");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    accepted.json::<Value>().await.expect("json")["job_id"].as_str().expect("job id").to_owned()
}

async fn job_status(client: &reqwest::Client, base: &str, token: &str, job_id: &str) -> Value {
    get_json(client.get(format!("{base}/rss/jobs/{job_id}")).bearer_auth(token)).await
}

async fn wait_for_job(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    job_id: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let job = job_status(client, base, token, job_id).await;
        if job["status"] == "done" || job["status"] == "failed" {
            return job;
        }
        assert!(Instant::now() < deadline, "job not final in time: {job}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends a GET and reads its JSON body.
async fn get_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.expect("sent").json().await.expect("json")
}

async fn entries(client: &reqwest::Client, base: &str, feed: &str) -> usize {
    let listed =
        get_json(client.get(format!("{base}/rss/entries")).query(&[("feed_url", feed), ("limit", "100")]))
            .await;
    listed["total"].as_u64().unwrap_or_else(|| panic!("total in {listed}")) as usize
}

/// The worker container with an open connection to the feed server, read off the feed container's
/// `/proc/net/tcp` (minbase has no `ss`): the established connections to its port 8080.
async fn worker_downloading(project: &Project, limit: Duration) -> String {
    let feeds = project.containers("feeds").into_iter().next().expect("the feed container runs");
    let workers: Vec<(String, String)> = project
        .containers("rss-worker")
        .into_iter()
        .map(|name| {
            let address = project.podman(&[
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &name,
            ]);
            (name, address.trim().to_owned())
        })
        .collect();
    let deadline = Instant::now() + limit;
    loop {
        let table = project.podman(&["exec", &feeds, "cat", "/proc/net/tcp"]);
        for peer in established_peers(&table, 8080) {
            if let Some((name, _)) = workers.iter().find(|(_, address)| *address == peer) {
                return name.clone();
            }
        }
        assert!(Instant::now() < deadline, "no worker downloaded the slow feed in time ({workers:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Remote IPv4 addresses of the ESTABLISHED connections to local `port` in a `/proc/net/tcp` table.
fn established_peers(table: &str, port: u16) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let local_port = u16::from_str_radix(local.split(':').nth(1)?, 16).ok()?;
            if local_port != port || *state != "01" {
                return None;
            }
            let address = u32::from_str_radix(remote.split(':').next()?, 16).ok()?;
            // The kernel prints the address in host byte order of a little-endian u32.
            Some(std::net::Ipv4Addr::from(address.swap_bytes()).to_string())
        })
        .collect()
}

#[test]
fn reads_peers_off_a_proc_net_tcp_table() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
                 0: 00000000:1F90 00000000:0000 0A 00000000:00000000\n\
                 1: 0500590A:1F90 0700590A:A1B2 01 00000000:00000000\n\
                 2: 0500590A:0050 0800590A:A1B3 01 00000000:00000000\n";
    assert_eq!(established_peers(table, 8080), vec!["10.89.0.7".to_owned()]);
}
