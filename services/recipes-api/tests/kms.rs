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

/// The environment of one run: the data directory's database, KMS key `key_id` on moto (none: the
/// local key file), AWS credentials for moto only (no profile files, no instance metadata).
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
    start_with(data, key_id, &[]).await
}

/// Like [`start`], with `extra` variables added to the environment.
async fn start_with(data: &Path, key_id: &str, extra: &[(&str, &str)]) -> Running {
    let port = free_port();
    let dir = temp_dir("recipes-kms");
    let log = dir.join("recipes-api.log");
    let mut environment = environment(data, port, key_id);
    environment.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
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

/// A change of KMS key: with `GALLEY__KMS__PREVIOUS_KEY_ID` naming the old key the keys are re-sealed
/// under the new one on start, tokens issued before still verify, and the old key is needed no more.
#[tokio::test]
async fn a_key_change_reseals_the_signing_keys_under_the_new_kms_key() {
    let moto = MotoServer::shared();
    let (old_key, new_key) = (moto.create_kms_key().await, moto.create_kms_key().await);
    let data = tempfile::tempdir().expect("data dir");
    let first = start(data.path(), &old_key).await;
    let token = galley_test_support::accounts::signed_in_token(&client(), &first.base, "rewrapped").await;
    drop(first);
    let sealed_by_old = raw_keys(data.path()).await;

    let changing = start_with(data.path(), &new_key, &[("GALLEY__KMS__PREVIOUS_KEY_ID", &old_key)]).await;
    assert_eq!(me_status(&changing.base, &token).await, 200, "the same key still verifies");
    drop(changing);
    let sealed_by_new = raw_keys(data.path()).await;
    assert_eq!(sealed_by_new.len(), sealed_by_old.len());
    assert_ne!(sealed_by_new[0].private_pem, sealed_by_old[0].private_pem, "re-sealed and written back");
    assert!(sealed_by_new[0].private_pem.starts_with("sealed:"));

    let after = start(data.path(), &new_key).await;
    assert_eq!(me_status(&after.base, &token).await, 200, "the new key alone opens them now");
    drop(after);
    let stderr = refused_start(data.path(), &old_key);
    assert!(stderr.contains("cannot be opened with KMS key"), "the old key alone no longer does: {stderr}");
}

/// From the data directory's key file to KMS: while the file is there it is the previous key, so the
/// first start with `kms.key_id` re-seals the keys under KMS; after that the file can go.
#[tokio::test]
async fn an_embedded_store_moving_to_kms_reseals_what_its_key_file_sealed() {
    let moto = MotoServer::shared();
    let key = moto.create_kms_key().await;
    let data = tempfile::tempdir().expect("data dir");
    let key_file = data.path().join(galley_crypto::LocalKeyFileEnvelope::FILE_NAME);
    {
        // Sealed by the key file, as `galley serve` and standalone services without KMS do.
        let store = SqliteStore::open(&data.path().join("galley.db")).await.expect("store");
        let envelope = galley_crypto::LocalKeyFileEnvelope::open_or_create(&key_file).expect("key file");
        let sealed = Arc::new(galley_identity::at_rest::SealedSigningKeyStore::new(
            Arc::new(SqliteSigningKeyStore::new(&store)),
            Arc::new(envelope),
        ));
        KeyRing::open(sealed, Arc::new(galley_kernel::SystemClock), KeyPolicy::default()).await.expect("key");
        store.close().await;
    }
    let before = raw_keys(data.path()).await;

    let moving = start(data.path(), &key).await;
    let token = galley_test_support::accounts::signed_in_token(&client(), &moving.base, "moved").await;
    assert_eq!(kid_of(&token), before[0].kid, "the key made under the key file still signs");
    drop(moving);
    assert_ne!(raw_keys(data.path()).await[0].private_pem, before[0].private_pem, "re-sealed under KMS");

    std::fs::remove_file(&key_file).expect("the key file can go");
    let without_file = start(data.path(), &key).await;
    assert_eq!(me_status(&without_file.base, &token).await, 200, "KMS alone opens the keys now");
    assert!(!key_file.exists(), "with KMS no key file is made again");
}
