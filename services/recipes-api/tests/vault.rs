//! recipes-api with `secrets.backend = vault`: static secrets from OpenBao's KV v2 layered into its
//! configuration (a private dev server per test, on loopback).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use galley_platform::secret::ExposeSecret as _;
use galley_platform::{ConfigSource, Shutdown};
use galley_test_support::openbao::{DEV_ROOT_TOKEN, OpenBao};
use galley_test_support::process::free_port;

/// A configuration directory holding nothing but how to reach Vault.
fn vault_only_config(dir: &Path, addr: &str) -> ConfigSource {
    let text = format!(
        "[secrets]\nbackend = \"vault\"\n[secrets.vault]\naddr = \"{addr}\"\nauth = \"token\"\ntoken = \"{DEV_ROOT_TOKEN}\"\n"
    );
    std::fs::write(dir.join("default.toml"), text).expect("config file");
    ConfigSource { dir: dir.to_owned(), profile: String::new(), read_env: false }
}

/// recipes-api's own KV path: the embedded store at `database`, any free port.
fn put_recipes_store(bao: &OpenBao, database: &Path) {
    bao.bao(&[
        "kv",
        "put",
        "secret/galley/recipes-api",
        "store.backend=embedded",
        &format!("store.embedded.path={}", database.display()),
        "http.bind=127.0.0.1:0",
    ]);
}

#[tokio::test]
async fn a_service_configured_only_with_vault_gets_its_cookie_key_and_store_from_kv() {
    let bao = OpenBao::dev();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("from-vault.db");
    let cookie_key = base64::engine::general_purpose::STANDARD.encode([42u8; 64]);
    bao.bao(&["kv", "put", "secret/galley/shared", &format!("identity.cookie_key={cookie_key}")]);
    put_recipes_store(&bao, &database);
    // Another service's secrets are not read.
    bao.bao(&["kv", "put", "secret/galley/rss-api", "http.bind=127.0.0.1:1"]);
    let source = vault_only_config(dir.path(), &bao.addr());

    let (settings, secrets) = recipes_api::app::load_settings(&source).await.expect("settings from Vault");
    assert_eq!(settings.identity.cookie_key.as_ref().map(|k| k.expose_secret().to_owned()), Some(cookie_key));
    assert_eq!(settings.store.embedded.path, database);
    assert_eq!(settings.http.bind.port(), 0);

    let application = recipes_api::Application::build(settings).await.expect("builds on the KV settings");
    let port = application.port();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let ready =
        client.get(format!("http://127.0.0.1:{port}/health/ready")).send().await.expect("ready answers");
    assert!(ready.status().is_success(), "{}", ready.status());
    assert!(database.exists(), "the store named in KV is the one opened");
    shutdown.trigger();
    server.await.expect("server task").expect("server stops cleanly");
    secrets.close().await;
}

#[tokio::test]
async fn a_bad_cookie_key_in_kv_stops_the_start_so_the_kv_value_is_the_one_used() {
    let bao = OpenBao::dev();
    let dir = tempfile::tempdir().expect("temp dir");
    bao.bao(&["kv", "put", "secret/galley/shared", "identity.cookie_key=not base64!"]);
    bao.bao(&[
        "kv",
        "put",
        "secret/galley/recipes-api",
        &format!("store.embedded.path={}", dir.path().join("db.sqlite").display()),
        "http.bind=127.0.0.1:0",
    ]);
    let source = vault_only_config(dir.path(), &bao.addr());
    let (settings, secrets) = recipes_api::app::load_settings(&source).await.expect("settings from Vault");
    assert!(recipes_api::Application::build(settings).await.is_err());
    secrets.close().await;
}

/// A store lease with the embedded store stops the start with one line, before anything is leased:
/// the lease path exists on no engine here, so trying to lease it would fail with another error.
#[tokio::test]
async fn a_store_lease_with_the_embedded_store_stops_the_start_before_leasing() {
    let bao = OpenBao::dev();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("db.sqlite");
    put_recipes_store(&bao, &database);
    vault_only_config(dir.path(), &bao.addr());
    let config = dir.path().join("default.toml");
    let mut text = std::fs::read_to_string(&config).expect("config file");
    text.push_str("[secrets.vault.leases]\nstore = \"database/creds/galley-store\"\n");
    std::fs::write(&config, text).expect("config file");
    let source = ConfigSource { dir: dir.path().to_owned(), profile: String::new(), read_env: false };

    let (settings, secrets) = recipes_api::app::load_settings(&source).await.expect("settings from Vault");
    let clock = std::sync::Arc::new(galley_kernel::SystemClock);
    let error = recipes_api::Application::build_with_secrets(settings, clock, &secrets)
        .await
        .err()
        .map(|error| format!("{error:#}"))
        .unwrap_or_default();
    assert!(error.contains("secrets.vault.leases.store is set but store.backend = \"embedded\""), "{error}");
    assert!(!error.contains("cannot lease"), "refused before leasing: {error}");
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(!database.exists(), "no store was opened");
    secrets.close().await;
}

#[test]
fn vault_unreachable_at_start_up_exits_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("http://127.0.0.1:{}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_recipes-api"))
        .current_dir(dir.path())
        .env("GALLEY_CONFIG_DIR", dir.path())
        .env("GALLEY__SECRETS__BACKEND", "vault")
        .env("GALLEY__SECRETS__VAULT__ADDR", &addr)
        .env("GALLEY__SECRETS__VAULT__TOKEN", "some-token")
        .env("GALLEY__SECRETS__VAULT__TIMEOUT", "2")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("cannot log in to Vault at") && first.contains(&addr), "{stderr}");
    assert!(!stderr.contains("some-token"), "the token is never printed: {stderr}");
}

/// The cache role's ACL, as the README documents it: the key prefix, reads, writes, scripts (the
/// sign-in tracker's Lua), no `@dangerous` command.
const CACHE_ROLE_ACL: &str =
    r#"creation_statements=["~galley:*", "+@read", "+@write", "+@scripting", "-@dangerous", "+ping"]"#;

/// Sign-ins need Redis (the attempt tracker is charged before the password is checked): a steady
/// trickle of them must all succeed while the cache's leased credentials rotate twice, and the leased
/// users must be gone after a graceful shutdown.
#[tokio::test]
async fn sign_ins_keep_working_across_two_rotations_of_the_cache_credentials() {
    let redis = galley_test_support::redis::PrivateRedis::start("admin-password");
    let bao = OpenBao::dev();
    bao.lease_redis_users(redis.port(), "admin-password", CACHE_ROLE_ACL, "6s", "12s");
    let dir = tempfile::tempdir().expect("temp dir");
    bao.bao(&[
        "kv",
        "put",
        "secret/galley/recipes-api",
        &format!("store.embedded.path={}", dir.path().join("db.sqlite").display()),
        "http.bind=127.0.0.1:0",
        "cache.backend=redis",
        &format!("cache.redis.url={}", redis.url()),
        "limits.enabled=false",
    ]);
    let source = vault_only_config(dir.path(), &bao.addr());
    let mut config = std::fs::read_to_string(dir.path().join("default.toml")).expect("config");
    config.push_str("[secrets.vault.leases]\ncache = \"database/creds/cache\"\n");
    std::fs::write(dir.path().join("default.toml"), config).expect("config");

    let (settings, secrets) = recipes_api::app::load_settings(&source).await.expect("settings");
    let clock = std::sync::Arc::new(galley_kernel::SystemClock);
    let application =
        recipes_api::Application::build_with_secrets(settings, clock, &secrets).await.expect("builds");
    let base = format!("http://127.0.0.1:{}", application.port());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    galley_test_support::accounts::signed_in_token(&client, &base, "rotation").await;

    let started = std::time::Instant::now();
    let mut users_seen = std::collections::BTreeSet::new();
    let (mut requests, mut failures) = (0u32, Vec::new());
    // Two rotations = three leased users seen.
    while users_seen.len() < 3 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "two rotations within 60 s");
        users_seen.extend(redis.acl_users().into_iter().filter(|user| user.starts_with("V_")));
        let signin =
            serde_json::json!({"username": "rotation", "password": galley_test_support::accounts::PASSWORD});
        let status =
            client.post(format!("{base}/auth/signin")).json(&signin).send().await.map(|r| r.status());
        requests += 1;
        match status {
            Ok(status) if status.is_success() => {}
            other => failures.push(format!("{:?}: {other:?}", started.elapsed())),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!("{requests} sign-ins over {:?}; failures: {failures:?}", started.elapsed());
    assert!(failures.is_empty(), "no sign-in failed across the rotations: {failures:?}");
    // Every lease taken (the first and two replacements) is counted, and no renewal failed.
    let scrape =
        client.get(format!("{base}/metrics")).send().await.expect("scrape").text().await.expect("text");
    let sample = |series: &str| {
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or_default()
    };
    assert!(sample(r#"galley_vault_lease_issues_total{lease="cache",result="success"}"#) >= 3.0, "{scrape}");
    assert_eq!(
        sample(r#"galley_vault_lease_renewals_total{lease="cache",result="failure"}"#),
        0.0,
        "{scrape}"
    );

    shutdown.trigger();
    server.await.expect("server task").expect("server stops cleanly");
    secrets.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let users = redis.acl_users();
        if users == ["default"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "leased users left after shutdown: {users:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn vault_stopped_while_running_keeps_requests_served_and_degrades_readiness() {
    let mut bao = OpenBao::dev();
    let dir = tempfile::tempdir().expect("temp dir");
    bao.bao(&[
        "kv",
        "put",
        "secret/galley/recipes-api",
        &format!("store.embedded.path={}", dir.path().join("db.sqlite").display()),
        "http.bind=127.0.0.1:0",
    ]);
    let source = vault_only_config(dir.path(), &bao.addr());
    let (settings, secrets) = recipes_api::app::load_settings(&source).await.expect("settings");
    let clock = std::sync::Arc::new(galley_kernel::SystemClock);
    let application =
        recipes_api::Application::build_with_secrets(settings, clock, &secrets).await.expect("builds");
    let base = format!("http://127.0.0.1:{}", application.port());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let ready: serde_json::Value =
        client.get(format!("{base}/health/ready")).send().await.expect("ready").json().await.expect("json");
    let secrets_status = |report: &serde_json::Value| {
        report["checks"].as_array().and_then(|checks| {
            checks
                .iter()
                .find(|c| c["name"] == "secrets")
                .map(|c| c["status"].as_str().unwrap_or("").to_owned())
        })
    };
    assert_eq!(secrets_status(&ready).as_deref(), Some("up"), "{ready}");

    bao.kill();
    let recipes = client.get(format!("{base}/recipes")).send().await.expect("recipes answer");
    assert!(recipes.status().is_success(), "requests are still served: {}", recipes.status());
    let response = client.get(format!("{base}/health/ready")).send().await.expect("ready");
    assert!(response.status().is_success(), "still ready (degraded): {}", response.status());
    let report: serde_json::Value = response.json().await.expect("json");
    assert_eq!(report["status"], "degraded", "{report}");
    assert_eq!(secrets_status(&report).as_deref(), Some("degraded"), "{report}");

    shutdown.trigger();
    server.await.expect("server task").expect("server stops cleanly");
    secrets.close().await;
}
