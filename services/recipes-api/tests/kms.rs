//! recipes-api with `kms.key_id`: the signing keys are sealed at rest by AWS KMS (moto, on loopback).
//! The binary runs as a child process, as in production: its AWS credentials come from the default
//! chain (the environment), which a test cannot give an in-process app without touching its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_crypto::{KeyPolicy, KeyRing};
use galley_embedded::{SqliteSigningKeyStore, SqliteStore};
use galley_identity::{SigningKeyStore as _, StoredSigningKey};
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};
use galley_test_support::process::{OwnedProcess, free_port, temp_dir, wait_for_port};

/// The tokens' issuer, fixed so that tokens stay valid when the port changes between runs.
const ISSUER: &str = "http://galley.test/";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment of one run: the data directory's database, KMS key `key_id` on moto, AWS
/// credentials for moto only (no profile files, no instance metadata).
fn environment(data: &Path, port: u16, key_id: &str) -> Vec<(String, String)> {
    for empty in ["no-aws-config", "no-aws-credentials"] {
        std::fs::write(data.join(empty), "").expect("empty AWS file");
    }
    [
        ("GALLEY_CONFIG_DIR", data.join("no-config").display().to_string()),
        ("GALLEY__HTTP__BIND", format!("127.0.0.1:{port}")),
        ("GALLEY__STORE__EMBEDDED__PATH", data.join("galley.db").display().to_string()),
        ("GALLEY__IDENTITY__ISSUER", ISSUER.to_owned()),
        ("GALLEY__LIMITS__ENABLED", "false".to_owned()),
        ("GALLEY__KMS__KEY_ID", key_id.to_owned()),
        ("GALLEY__KMS__REGION", REGION.to_owned()),
        ("GALLEY__KMS__ENDPOINT", MotoServer::shared().endpoint()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("AWS_CONFIG_FILE", data.join("no-aws-config").display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", data.join("no-aws-credentials").display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A running recipes-api (stopped with SIGTERM when dropped).
struct Running {
    base: String,
    _process: OwnedProcess,
}

/// Starts the binary on `data` with `key_id` and waits until it is ready.
async fn start(data: &Path, key_id: &str) -> Running {
    let port = free_port();
    let dir = temp_dir("recipes-kms");
    let log = dir.join("recipes-api.log");
    let environment = environment(data, port, key_id);
    let envs: Vec<(&str, &str)> = environment.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut process =
        OwnedProcess::spawn(Path::new(env!("CARGO_BIN_EXE_recipes-api")), &[], &envs, dir, &log);
    wait_for_port(&mut process.child, port, START_TIMEOUT, "recipes-api", &log);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    while !client().get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "recipes-api not ready; see {}", log.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Running { base, _process: process }
}

/// Runs the binary on `data` with `key_id` expecting it to refuse to start; returns its stderr.
fn refused_start(data: &Path, key_id: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recipes-api"))
        .envs(environment(data, free_port(), key_id))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("recipes-api started with the wrong KMS key");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    assert!(!status.success(), "it must not start: {stderr}");
    stderr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

async fn me_status(base: &str, token: &str) -> u16 {
    client().get(format!("{base}/auth/me")).bearer_auth(token).send().await.expect("me").status().as_u16()
}

/// The signing keys as the database holds them (below the sealing).
async fn raw_keys(data: &Path) -> Vec<StoredSigningKey> {
    let store = SqliteStore::open(&data.join("galley.db")).await.expect("store");
    let keys = SqliteSigningKeyStore::new(&store).load().await.expect("keys");
    store.close().await;
    keys
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

#[tokio::test]
async fn signing_keys_are_sealed_by_kms_survive_restarts_and_a_wrong_key_stops_the_start() {
    let moto = MotoServer::shared();
    let (key, other_key) = (moto.create_kms_key().await, moto.create_kms_key().await);
    let data = tempfile::tempdir().expect("data dir");

    let first = start(data.path(), &key).await;
    let token = galley_test_support::accounts::signed_in_token(&client(), &first.base, "sealed").await;
    assert_eq!(me_status(&first.base, &token).await, 200);
    drop(first);

    let stored = raw_keys(data.path()).await;
    assert_eq!(stored.len(), 1);
    for key in &stored {
        assert!(!key.private_pem.contains("BEGIN"), "no PEM at rest: {}", &key.private_pem[..40]);
        assert!(key.private_pem.starts_with("sealed:"), "an envelope");
    }
    assert!(!data.path().join("galley-at-rest.key").exists(), "with KMS no local key file is made");

    let again = start(data.path(), &key).await;
    assert_eq!(me_status(&again.base, &token).await, 200, "a token from before the restart verifies");
    drop(again);

    let stderr = refused_start(data.path(), &other_key);
    let error = stderr.lines().find(|line| line.starts_with("Error: ")).unwrap_or_default();
    let kid = &stored[0].kid;
    assert!(
        error.contains(&format!("signing key {kid} cannot be opened with KMS key {other_key}")),
        "one clear line naming the key: {stderr}"
    );
    assert_eq!(raw_keys(data.path()).await, stored, "nothing was replaced or added");
}

#[tokio::test]
async fn a_plain_key_from_before_is_sealed_on_first_start_and_keeps_signing() {
    let moto = MotoServer::shared();
    let key = moto.create_kms_key().await;
    let data = tempfile::tempdir().expect("data dir");
    // A key ring as older releases kept it: the PEM in plain text.
    let store = SqliteStore::open(&data.path().join("galley.db")).await.expect("store");
    let plain = Arc::new(SqliteSigningKeyStore::new(&store));
    let clock = Arc::new(galley_kernel::SystemClock);
    KeyRing::open(plain.clone(), clock, KeyPolicy::default()).await.expect("plain key made");
    let before = plain.load().await.expect("keys");
    store.close().await;
    assert!(before[0].private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let running = start(data.path(), &key).await;
    let token = galley_test_support::accounts::signed_in_token(&client(), &running.base, "migrated").await;
    assert_eq!(kid_of(&token), before[0].kid, "the same key signs after the migration");
    drop(running);
    let after = raw_keys(data.path()).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].private_pem.starts_with("sealed:") && !after[0].private_pem.contains("BEGIN"));
    assert_eq!((after[0].created_at, after[0].retired_at), (before[0].created_at, before[0].retired_at));
}
