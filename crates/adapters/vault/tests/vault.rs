//! The Vault adapter against a real OpenBao dev server (and, for leases, a private password-protected
//! redis-server behind OpenBao's redis database plugin). Every server is private to its test, on
//! loopback.

use std::time::{Duration, Instant};

use galley_platform::secret::ExposeSecret as _;
use galley_platform::{Secret, SecretsBackend, SecretsError};
use galley_test_support::openbao::{DEV_ROOT_TOKEN, OpenBao};
use galley_test_support::process::free_port;
use galley_test_support::redis::PrivateRedis;
use galley_vault::{VaultAuthMethod, VaultClient, VaultSettings, read_static_layer};
use tokio_util::sync::CancellationToken;

fn token_settings(bao: &OpenBao) -> VaultSettings {
    VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Token,
        token: Some(Secret::from(DEV_ROOT_TOKEN)),
        ..VaultSettings::default()
    }
}

/// A policy reading everything under `secret/data/galley/`, and an AppRole `service` holding it with
/// the given token lifetimes; returns (role id, secret id).
fn approle(bao: &OpenBao, token_ttl: &str, token_max_ttl: &str) -> (String, String) {
    let policy = bao.dir().join("read-galley.hcl");
    std::fs::write(&policy, "path \"secret/data/galley/*\" { capabilities = [\"read\"] }\n").expect("policy");
    bao.bao(&["policy", "write", "read-galley", &policy.display().to_string()]);
    bao.bao(&["auth", "enable", "approle"]);
    bao.bao(&[
        "write",
        "auth/approle/role/service",
        "token_policies=read-galley",
        &format!("token_ttl={token_ttl}"),
        &format!("token_max_ttl={token_max_ttl}"),
    ]);
    let role_id = bao.bao(&["read", "-field=role_id", "auth/approle/role/service/role-id"]);
    let secret_id = bao.bao(&["write", "-f", "-field=secret_id", "auth/approle/role/service/secret-id"]);
    (role_id.trim().to_owned(), secret_id.trim().to_owned())
}

#[tokio::test]
async fn kv_values_are_read_as_strings_and_a_missing_path_is_empty() {
    let bao = OpenBao::dev();
    bao.bao(&["kv", "put", "secret/galley/shared", "identity.cookie_key=abc", "store.mongodb.database=db"]);
    let client = VaultClient::connect(&token_settings(&bao)).await.expect("connects with the root token");

    let values = client.read_static("galley/shared").await.expect("reads");
    let plain: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    assert_eq!(plain, [("identity.cookie_key", "abc"), ("store.mongodb.database", "db")]);
    assert!(client.read_static("galley/nothing-here").await.expect("reads").is_empty());
}

#[tokio::test]
async fn json_numbers_and_booleans_become_their_text() {
    let bao = OpenBao::dev();
    let data = bao.dir().join("data.json");
    std::fs::write(&data, r#"{"store.mongodb.max_pool_size": 7, "recipes.seed_samples": true}"#)
        .expect("data");
    bao.bao(&["kv", "put", "secret/galley/recipes-api", &format!("@{}", data.display())]);
    let client = VaultClient::connect(&token_settings(&bao)).await.expect("connects");
    let values = client.read_static("galley/recipes-api").await.expect("reads");
    assert_eq!(
        values.get("store.mongodb.max_pool_size").map(|v| v.expose_secret().to_owned()).as_deref(),
        Some("7")
    );
    assert_eq!(
        values.get("recipes.seed_samples").map(|v| v.expose_secret().to_owned()).as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn the_static_layer_reads_shared_then_the_service_paths() {
    let bao = OpenBao::dev();
    bao.bao(&[
        "kv",
        "put",
        "secret/galley/shared",
        "identity.cookie_key=shared",
        "store.mongodb.database=shared",
    ]);
    bao.bao(&["kv", "put", "secret/galley/rss-api", "store.mongodb.database=rss"]);
    bao.bao(&["kv", "put", "secret/galley/rss-worker", "bus.rabbitmq.prefix=worker."]);
    let client = VaultClient::connect(&token_settings(&bao)).await.expect("connects");

    let layer = read_static_layer(&client, "secret", "galley", &["rss-api"]).await.expect("reads");
    let keys: Vec<(&str, &str)> = layer.keys().collect();
    assert_eq!(
        keys,
        [
            ("identity.cookie_key", "vault secret/galley/shared"),
            ("store.mongodb.database", "vault secret/galley/rss-api")
        ],
        "the service's own path wins over shared; other services' paths are not read"
    );
}

#[tokio::test]
async fn approle_reads_the_secret_id_from_a_file_ignoring_the_trailing_newline() {
    let bao = OpenBao::dev();
    bao.bao(&["kv", "put", "secret/galley/shared", "identity.cookie_key=abc"]);
    let (role_id, secret_id) = approle(&bao, "1h", "2h");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{secret_id}\n")).expect("secret id file");
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Approle,
        role_id: Some(role_id.clone()),
        secret_id_file: Some(file.path().to_owned()),
        ..VaultSettings::default()
    };
    let client = VaultClient::connect(&settings).await.expect("logs in");
    assert_eq!(client.read_static("galley/shared").await.expect("reads").len(), 1);
    let outside = client.read_static("other/path").await;
    assert!(matches!(outside, Err(SecretsError::Denied(_))), "outside the policy is refused: {outside:?}");

    let wrong = VaultSettings {
        secret_id_file: None,
        secret_id: Some(Secret::from("not-the-secret-id")),
        ..settings
    };
    let error = VaultClient::connect(&wrong).await.expect_err("a wrong secret id is refused");
    assert!(matches!(error, SecretsError::Denied(_)), "{error:?}");
}

#[tokio::test]
async fn userpass_logs_in() {
    let bao = OpenBao::dev();
    let policy = bao.dir().join("read-galley.hcl");
    std::fs::write(&policy, "path \"secret/data/galley/*\" { capabilities = [\"read\"] }\n").expect("policy");
    bao.bao(&["policy", "write", "read-galley", &policy.display().to_string()]);
    bao.bao(&["auth", "enable", "userpass"]);
    bao.bao(&["write", "auth/userpass/users/galley", "password=s3cret", "token_policies=read-galley"]);
    bao.bao(&["kv", "put", "secret/galley/shared", "a=b"]);
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Userpass,
        username: Some("galley".to_owned()),
        password: Some(Secret::from("s3cret")),
        ..VaultSettings::default()
    };
    let client = VaultClient::connect(&settings).await.expect("logs in");
    assert_eq!(client.read_static("galley/shared").await.expect("reads").len(), 1);
    let wrong = VaultSettings { password: Some(Secret::from("wrong")), ..settings };
    assert!(VaultClient::connect(&wrong).await.is_err(), "a wrong password is refused");
}

#[tokio::test]
async fn missing_credentials_and_an_unreachable_server_fail_clearly() {
    let none = VaultSettings { auth: VaultAuthMethod::Approle, ..VaultSettings::default() };
    let error = VaultClient::connect(&none).await.expect_err("no role id");
    assert!(matches!(&error, SecretsError::Misconfigured(m) if m.contains("role_id")), "{error:?}");

    let nobody = VaultSettings {
        addr: format!("http://127.0.0.1:{}", free_port()),
        token: Some(Secret::from("t")),
        timeout: Duration::from_secs(2),
        ..VaultSettings::default()
    };
    let error = VaultClient::connect(&nobody).await.expect_err("nothing listens");
    assert!(matches!(error, SecretsError::Unavailable(_)), "{error:?}");
}

/// Token TTL 6 s, max TTL 12 s: over 20 s the client must renew (at ~4 s), find the renewal capped
/// (~8 s) and log in again, and keep every read working throughout.
#[tokio::test]
async fn the_token_is_renewed_and_obtained_again_past_its_max_ttl() {
    let bao = OpenBao::dev();
    bao.bao(&["kv", "put", "secret/galley/shared", "a=b"]);
    let (role_id, secret_id) = approle(&bao, "6s", "12s");
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Approle,
        role_id: Some(role_id),
        secret_id: Some(Secret::from(secret_id)),
        ..VaultSettings::default()
    };
    let client = VaultClient::connect(&settings).await.expect("logs in");
    let stop = CancellationToken::new();
    let renewal = client.spawn_token_renewal(stop.clone());

    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(20) {
        client.read_static("galley/shared").await.expect("every read works while the token is kept alive");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    renewal.await.expect("renewal task ends on stop");
    assert!(reads >= 20, "{reads}");
    assert!(client.logins() >= 2, "logged in again past the max TTL ({} logins)", client.logins());
}

#[tokio::test]
async fn database_credentials_are_leased_renewed_and_revoked() {
    let redis = PrivateRedis::start("admin-password");
    let bao = OpenBao::dev();
    bao.lease_redis_users(
        redis.port(),
        "admin-password",
        r#"creation_statements=["~app:*", "+@read", "+@write", "-@dangerous", "+ping"]"#,
        "6s",
        "20s",
    );
    let client = VaultClient::connect(&token_settings(&bao)).await.expect("connects");

    let lease = client.lease("database/creds/cache").await.expect("leases credentials");
    assert!(lease.id.starts_with("database/creds/cache/"), "{}", lease.id);
    assert!(lease.renewable);
    assert!(lease.ttl > Duration::ZERO && lease.ttl <= Duration::from_secs(6), "{:?}", lease.ttl);
    assert!(redis.acl_users().contains(&lease.username), "the leased user exists");

    let url =
        format!("redis://{}:{}@127.0.0.1:{}", lease.username, lease.password.expose_secret(), redis.port());
    let mut connection =
        redis::Client::open(url).expect("url").get_connection().expect("the leased user can connect");
    let pong: String = redis::cmd("PING").query(&mut connection).expect("PING");
    assert_eq!(pong, "PONG");

    let renewal = client.renew(&lease.id, Duration::from_secs(6)).await.expect("renews");
    assert!(renewal.ttl > Duration::ZERO, "{renewal:?}");

    client.revoke(&lease.id).await.expect("revokes");
    assert!(!redis.acl_users().contains(&lease.username), "revocation deleted the user");
    let error = client.renew(&lease.id, Duration::from_secs(6)).await.expect_err("a revoked lease is gone");
    assert!(matches!(error, SecretsError::Protocol(_) | SecretsError::NotFound(_)), "{error:?}");
}

#[tokio::test]
async fn health_reports_a_stopped_server() {
    let mut bao = OpenBao::dev();
    let client = VaultClient::connect(&token_settings(&bao)).await.expect("connects");
    client.is_available().await.expect("available");
    bao.kill();
    assert!(matches!(client.is_available().await, Err(SecretsError::Unavailable(_))));
}
