//! `POST /rss/fetch` is throttled per client address in the standalone rss-api: the request after the
//! burst is answered 429 with `Retry-After` and a localized problem, before authentication or any
//! store or bus work; another address keeps its own budget.

use std::net::SocketAddr;
use std::sync::Arc;

use galley_kernel::SystemClock;
use galley_messaging::{InProcessBus, MessageBus};
use galley_platform::{HttpSettings, LimitsSettings, Shutdown, ThrottleSettings};
use serde_json::{Value, json};

#[tokio::test]
async fn fetch_requests_are_throttled_per_client_address() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = rss_api::Settings {
        http: HttpSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            trusted_proxies: vec!["127.0.0.1/32".parse().expect("network")],
            ..HttpSettings::default()
        },
        limits: LimitsSettings {
            fetch: ThrottleSettings { burst: 2, per_minute: 1 },
            ..LimitsSettings::default()
        },
        ..rss_api::Settings::default()
    };
    settings.store.embedded.path = data.path().join("galley.db");
    let bus: Arc<dyn MessageBus> = Arc::new(InProcessBus::new());
    let application =
        rss_api::Application::build_with(settings, Some(bus), Arc::new(SystemClock)).await.expect("rss-api");
    let base = format!("http://{}", application.local_addr().expect("bound"));
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let fetch_from = |address: &'static str| {
        client
            .post(format!("{base}/rss/fetch?locale=vi"))
            .header("x-forwarded-for", address)
            .json(&json!({"url": "https://example.com/feed.xml"}))
            .send()
    };

    for _ in 0..2 {
        assert_eq!(fetch_from("198.51.100.7").await.expect("sent").status(), 401, "within the burst");
    }
    let throttled = fetch_from("198.51.100.7").await.expect("sent");
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 =
        throttled.headers()["retry-after"].to_str().expect("ascii").parse().expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(throttled.headers()["content-language"], "vi");
    let problem: Value = throttled.json().await.expect("problem json");
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(problem["title"], "Quá nhiều yêu cầu");
    assert_eq!(
        fetch_from("198.51.100.8").await.expect("sent").status(),
        401,
        "another address is not throttled"
    );

    shutdown.trigger();
    server.await.expect("server task").expect("stopped cleanly");
}
