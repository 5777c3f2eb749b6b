//! The Redis cache on leased credentials: OpenBao's redis database plugin creates short-lived ACL
//! users on a private password-protected redis-server; the cache keeps serving a steady trickle of
//! requests across credential rotations, and the leased users are gone once the lease is revoked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_kernel::Cache;
use galley_redis::{RedisCache, RedisConnection};
use galley_test_support::openbao::{DEV_ROOT_TOKEN, OpenBao};
use galley_test_support::redis::PrivateRedis;
use galley_vault::{LeasedCredentials, RotationTimings, VaultAuthMethod, VaultClient, VaultSettings};

/// The ACL the README documents for the cache role: its key prefix, reads and writes, scripts for the
/// sign-in tracker, no `@dangerous` command.
const CACHE_ROLE_ACL: &str =
    r#"creation_statements=["~galley:*", "+@read", "+@write", "+@scripting", "-@dangerous", "+ping"]"#;

#[tokio::test]
async fn the_cache_keeps_serving_across_two_rotations_and_revocation_removes_the_users() {
    let redis = PrivateRedis::start("admin-password");
    let bao = OpenBao::dev();
    bao.lease_redis_users(redis.port(), "admin-password", CACHE_ROLE_ACL, "6s", "12s");
    let settings = VaultSettings {
        addr: bao.addr(),
        auth: VaultAuthMethod::Token,
        token: Some(DEV_ROOT_TOKEN.into()),
        ..VaultSettings::default()
    };
    let vault = Arc::new(VaultClient::connect(&settings).await.expect("connects"));
    let leased = LeasedCredentials::obtain(vault, "database/creds/cache", RotationTimings::default())
        .await
        .expect("leases credentials");
    let connection =
        RedisConnection::connect_following(&redis.url(), "galley:", leased.feed()).await.expect("connects");
    let cache = RedisCache(connection);

    let started = Instant::now();
    let (mut requests, mut failures) = (0u32, Vec::new());
    while leased.rotations() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "two rotations within 60 s");
        let key = format!("item:{}", requests % 10);
        let outcome = async {
            cache.set(&key, Bytes::from_static(b"value"), Duration::from_secs(30)).await?;
            cache.get(&key).await
        }
        .await;
        match outcome {
            Ok(Some(_)) => {}
            other => failures.push(format!("{:?}: {other:?}", started.elapsed())),
        }
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{requests} requests over {elapsed:?}, {} rotations, failures: {failures:?}",
        leased.rotations()
    );
    assert!(failures.is_empty(), "no request fails across the rotations: {failures:?}");
    assert!(redis.acl_users().iter().any(|user| user.starts_with("V_")), "a leased user exists");

    leased.revoke().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let users = redis.acl_users();
        if users == ["default"] {
            break;
        }
        assert!(Instant::now() < deadline, "leased users still present after revocation: {users:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
