//! rss-api with `identity.provider = "auth0"`: it verifies Auth0's tokens against Auth0's JWKS (a fake
//! tenant on loopback), and a sign-out at recipes-api (also in Auth0 mode) is refused here at once,
//! through the revocation list both share on Redis (`GALLEY_TEST_REDIS_URL`, else 127.0.0.1:6379).

use std::net::SocketAddr;
use std::sync::Arc;

use galley_kernel::SystemClock;
use galley_platform::{CacheBackend, CacheSettings, HttpSettings, Shutdown};
use galley_test_support::auth0::{self, FakeAuth0};
use galley_test_support::redis::PrefixCleanup;
use serde_json::{Value, json};

fn loopback_http() -> HttpSettings {
    HttpSettings { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..HttpSettings::default() }
}

fn auth0_settings(tenant: &FakeAuth0) -> galley_auth0::Auth0Settings {
    galley_auth0::Auth0Settings {
        base_url: Some(tenant.base_url().to_owned()),
        client_id: auth0::CLIENT_ID.to_owned(),
        client_secret: Some(auth0::CLIENT_SECRET.into()),
        audience: auth0::AUDIENCE.to_owned(),
        ..Default::default()
    }
}

fn shared_cache(redis: &PrefixCleanup) -> CacheSettings {
    let mut cache = CacheSettings { backend: CacheBackend::Redis, ..CacheSettings::default() };
    cache.redis.url = redis.url.as_str().into();
    cache.redis.prefix = redis.prefix.clone();
    cache
}

#[tokio::test]
async fn rss_api_accepts_auth0_tokens_and_refuses_them_at_once_after_sign_out() {
    let url = std::env::var("GALLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = PrefixCleanup::fresh(&url);
    let tenant = FakeAuth0::start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let shutdown = Shutdown::new();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let mut recipes =
        recipes_api::Settings { http: loopback_http(), cache: shared_cache(&redis), ..Default::default() };
    recipes.store.embedded.path = data.path().join("recipes.db");
    recipes.identity.provider = galley_auth0::IdentityProviderKind::Auth0;
    recipes.identity.auth0 = auth0_settings(&tenant);
    let recipes_app = recipes_api::Application::build(recipes).await.expect("recipes-api");
    let recipes_base = format!("http://{}", recipes_app.local_addr().expect("bound"));
    tokio::spawn(recipes_app.run_until_stopped(shutdown.clone()));

    let mut rss = rss_api::Settings {
        http: loopback_http(),
        cache: shared_cache(&redis),
        limits: galley_platform::LimitsSettings::disabled(),
        ..Default::default()
    };
    rss.store.embedded.path = data.path().join("rss.db");
    rss.identity.provider = galley_auth0::IdentityProviderKind::Auth0;
    rss.identity.auth0 = auth0_settings(&tenant);
    let rss_app = rss_api::Application::build_with(rss, None, Arc::new(SystemClock)).await.expect("rss-api");
    let rss_base = format!("http://{}", rss_app.local_addr().expect("bound"));
    tokio::spawn(rss_app.run_until_stopped(shutdown.clone()));

    let signed_up = client
        .post(format!("{recipes_base}/auth/signup"))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "correct horse!"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(signed_up.status(), 201);
    let tokens: Value = client
        .post(format!("{recipes_base}/auth/signin"))
        .json(&json!({"username": "alice", "password": "correct horse!"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let access = tokens["access_token"].as_str().expect("access token").to_owned();
    let job = |token: String| {
        // Authentication comes before the path is read: 404 (no such job) means "signed in".
        let request = client.get(format!("{rss_base}/rss/jobs/no-such-job")).bearer_auth(token);
        async move { request.send().await.expect("sent").status() }
    };
    assert_eq!(job(access.clone()).await, 404, "rss-api accepts Auth0's token");
    assert_eq!(job(tenant.sign(&json!({"iss": "https://evil.example/"}))).await, 401);

    let signed_out =
        client.post(format!("{recipes_base}/auth/signout")).bearer_auth(&access).send().await.expect("sent");
    assert_eq!(signed_out.status(), 204);
    assert_eq!(job(access).await, 401, "refused by rss-api at once");
    assert_eq!(tenant.revocations(), 1, "and the refresh token revoked at Auth0");
    shutdown.trigger();
}
