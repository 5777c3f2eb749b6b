//! recipes-api on Redis: replicas share the cache generation, the revocation list and the sign-in
//! counters; and when Redis dies, recipes are still served while sign-in refuses.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{AppOptions, PASSWORD, spawn_app_with};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";

fn shared_options(data_dir: &std::path::Path, prefix: &str) -> AppOptions {
    AppOptions {
        data_dir: Some(data_dir.to_path_buf()),
        redis: Some((SHARED_REDIS.to_owned(), prefix.to_owned())),
        // Replicas behind one load balancer share the public issuer URL.
        issuer: Some("http://galley.test/".to_owned()),
        ..AppOptions::default()
    }
}

#[tokio::test]
async fn two_replicas_share_lockouts_revocations_and_cache_invalidation() {
    let cleanup = galley_test_support::redis::PrefixCleanup::fresh(SHARED_REDIS);
    let prefix = cleanup.prefix.clone();
    let data = tempfile::tempdir().expect("temp dir");
    let a = spawn_app_with(shared_options(data.path(), &prefix)).await;
    let b = spawn_app_with(shared_options(data.path(), &prefix)).await;

    let alice = a.user("alice").await;
    // Reads fill both replicas' view of the cache; a write through A must be seen through B.
    let created = a.create_recipe_as(&alice, "Bánh xèo", &["vietnamese"], &["rice flour"]).await;
    let path = format!("/recipes/{}", created["id"].as_str().expect("id"));
    assert_eq!(b.get_json(&path).await["name"], "Bánh xèo");
    assert_eq!(b.get_json("/recipes").await["total"], 1);
    let renamed = json!({"name": "Bánh xèo tôm", "ingredients": ["rice flour"], "instructions": ["Fry."]});
    assert_eq!(
        a.as_user(Method::PUT, &path, &alice).json(&renamed).send().await.expect("sent").status(),
        StatusCode::OK
    );
    assert_eq!(b.get_json(&path).await["name"], "Bánh xèo tôm", "B never serves the stale cached copy");

    // Sign-out on A ends the session on B at once.
    assert_eq!(
        b.as_user(Method::GET, "/auth/me", &alice).send().await.expect("sent").status(),
        StatusCode::OK
    );
    assert_eq!(
        a.as_user(Method::POST, "/auth/signout", &alice).send().await.expect("sent").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        b.as_user(Method::GET, "/auth/me", &alice).send().await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );

    // Failures counted on both replicas add up.
    for replica in [&a, &b, &a, &b, &a] {
        assert_eq!(replica.sign_in("alice", "wrong horse!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(b.sign_in("alice", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A private Redis on a free loopback port, killed when dropped.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(url.as_str()).and_then(|c| c.get_connection()).is_err() {
            assert!(Instant::now() < deadline, "private redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn without_redis_recipes_are_served_and_sign_in_is_refused() {
    let mut redis = PrivateRedis::start();
    let app = spawn_app_with(AppOptions {
        seed_samples: true,
        redis: Some((redis.url.clone(), "galley:".to_owned())),
        ..AppOptions::default()
    })
    .await;
    assert_eq!(app.sign_up("alice").await.status(), StatusCode::CREATED);
    assert_eq!(app.get_json("/recipes").await["total"], 50);

    redis.stop();

    let page = app.get("/recipes?limit=5").await;
    assert_eq!(page.status(), StatusCode::OK, "recipes come from the store when the cache is down");
    let ready = app.get_json("/health/ready").await;
    assert_eq!(ready["status"], "degraded");
    let refused = app
        .client
        .post(app.url("/auth/signin?locale=vi"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "no sign-in without brute-force checks");
    assert!(refused.headers().get("retry-after").is_some());
    let problem: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(problem["title"], "Dịch vụ không khả dụng");
}
