//! The `galley` binary as a user runs it: starts, seeds, prints its URLs, serves, stops on SIGTERM.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    base_url: String,
}

/// Starts `galley serve` on a free loopback port and waits (bounded) for it to print its URLs.
async fn start(data_dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        // Hermetic: no config files, no inherited GALLEY__ overrides that could change the defaults.
        .env("GALLEY_CONFIG_DIR", data_dir.join("no-config"))
        .env("RUST_LOG", "warn")
        // The default issuer is derived from the bound address, which changes with port 0; a real
        // deployment names its public URL, as here.
        .env("GALLEY__IDENTITY__ISSUER", "http://galley.test/")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("galley starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base_url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(url) = line.trim().strip_prefix("Recipes:") {
                return url.trim().trim_end_matches("/recipes").to_owned();
            }
        }
        panic!("galley exited without printing its URLs");
    })
    .await
    .expect("galley announced itself in time");
    // Keep reading so the rest of stdout has somewhere to go, as a terminal would.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, base_url }
}

impl Running {
    async fn json(&self, path: &str) -> Value {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    async fn terminate(mut self) {
        support::terminate(&mut self.child, "galley").await;
    }
}

#[tokio::test]
async fn serves_seeded_recipes_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    let galley = start(data.path()).await;

    let page = galley.json("/recipes").await;
    assert_eq!(page["total"], 50);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(20));
    assert_eq!(galley.json("/health/ready").await["status"], "up");
    assert_eq!(galley.json("/").await["name"], "galley", "the front door names the process");
    assert!(galley.json("/openapi.json").await["paths"]["/recipes"].is_object());
    let id = page["items"][0]["id"].as_str().expect("id").to_owned();
    galley.terminate().await;

    // Samples are stored once per data directory, and signing keys persist: a token issued before a
    // restart is still accepted after it.
    let galley = start(data.path()).await;
    assert_eq!(galley.json("/recipes").await["total"], 50, "data survived the restart, not seeded twice");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let access_token =
        galley_test_support::accounts::signed_in_token(&client, &galley.base_url, "cook").await;
    let deleted = client
        .delete(format!("{}/recipes/{id}", galley.base_url))
        .bearer_auth(&access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 403, "sample recipes are read-only");
    galley.terminate().await;

    let galley = start(data.path()).await;
    assert_eq!(galley.json("/recipes").await["total"], 50);
    let me = client
        .get(format!("{}/auth/me", galley.base_url))
        .bearer_auth(&access_token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200, "a restart logs nobody out");
    galley.terminate().await;
}

/// Runs `galley <args>` on the repository's real `config/` with `GALLEY_PROFILE=production` and the
/// given variables, and returns its exit status and stderr once it exits (bounded).
async fn run_in_production(args: &[&str], data_dir: &Path, variables: &[(&str, &str)]) -> (bool, String) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_galley"));
    command
        .args(args)
        .current_dir(data_dir)
        .env("GALLEY_CONFIG_DIR", config)
        .env("GALLEY_PROFILE", "production")
        .env("GALLEY__HTTP__BIND", "127.0.0.1:0")
        .env("GALLEY__STORE__EMBEDDED__PATH", data_dir.join("galley.db"))
        .env("GALLEY__IDENTITY__ISSUER", "http://127.0.0.1:9/")
        .env_remove("GALLEY__IDENTITY__COOKIE_KEY")
        .env_remove("GALLEY__CACHE__BACKEND")
        .env_remove("GALLEY__ENVIRONMENT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in variables {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("a refused start ends at once")
        .expect("galley runs");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn production_refuses_to_start_without_an_own_cookie_key() {
    let data = tempfile::tempdir().expect("temp dir");
    let (started, stderr) = run_in_production(&["run", "recipes-api"], data.path(), &[]).await;
    assert!(!started, "no cookie key: {stderr}");
    assert!(stderr.contains("GALLEY__IDENTITY__COOKIE_KEY"), "the error says what to set: {stderr}");

    let development_key = galley_platform::deployment::DEVELOPMENT_COOKIE_KEY;
    let variables = [("GALLEY__IDENTITY__COOKIE_KEY", development_key)];
    let (started, stderr) = run_in_production(&["run", "recipes-api"], data.path(), &variables).await;
    assert!(!started, "the published development key: {stderr}");
    assert!(stderr.contains("development identity.cookie_key"), "{stderr}");
}

#[tokio::test]
async fn production_refuses_a_standalone_rss_api_with_process_local_revocations() {
    let data = tempfile::tempdir().expect("temp dir");
    let own_key = "c2VjcmV0LWtleS1vZi10aGlzLWRlcGxveW1lbnQtMDEyMzQ1Njc4OQ==";
    let variables = [("GALLEY__IDENTITY__COOKIE_KEY", own_key)];
    let (started, stderr) = run_in_production(&["run", "rss-api"], data.path(), &variables).await;
    assert!(!started, "memory revocations in production: {stderr}");
    assert!(stderr.contains("cache.backend = \"redis\""), "the error says what to set: {stderr}");
}
