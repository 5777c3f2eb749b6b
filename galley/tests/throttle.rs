//! The all-in-one process mounts both services' routers, so it has both services' throttles:
//! sign-in (recipes-api) and fetch requests (rss-api), each per client address.

use std::net::SocketAddr;

use galley::{Application, Settings};
use galley_platform::{Shutdown, ThrottleSettings};
use serde_json::json;

#[tokio::test]
async fn sign_in_and_fetch_requests_are_throttled_in_the_all_in_one_process() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings { data_dir: data.path().to_path_buf(), ..Settings::default() };
    settings.recipes.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.recipes.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    settings.recipes.limits.signin = ThrottleSettings { burst: 2, per_minute: 1 };
    settings.recipes.limits.fetch = ThrottleSettings { burst: 1, per_minute: 1 };
    let application = Application::build(settings).await.expect("galley builds");
    let base = format!("http://{}", application.local_addr().expect("bound"));
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let post_from = |path: &str, address: &'static str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).header("x-forwarded-for", address).json(&body).send()
    };
    let sign_in = |n: u32| json!({"username": format!("nobody{n}"), "password": "wrong password!"});
    let feed = json!({"url": "https://example.com/feed.xml"});

    assert_eq!(post_from("/auth/signin", "192.0.2.1", sign_in(1)).await.expect("sent").status(), 401);
    assert_eq!(post_from("/auth/signin", "192.0.2.1", sign_in(2)).await.expect("sent").status(), 401);
    let throttled = post_from("/auth/signin", "192.0.2.1", sign_in(3)).await.expect("sent");
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(post_from("/auth/signin", "192.0.2.2", sign_in(4)).await.expect("sent").status(), 401);

    assert_eq!(
        post_from("/rss/fetch", "192.0.2.1", feed.clone()).await.expect("sent").status(),
        401,
        "own budget"
    );
    let throttled = post_from("/rss/fetch", "192.0.2.1", feed.clone()).await.expect("sent");
    assert_eq!(throttled.status(), 429);
    let problem: serde_json::Value = throttled.json().await.expect("problem");
    assert_eq!(problem["code"], "rate_limited");

    shutdown.trigger();
    server.await.expect("server task").expect("stopped cleanly");
}
