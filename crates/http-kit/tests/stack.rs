//! The standard stack's behaviour on routes built for the purpose: panics, timeouts, body limits and
//! graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use galley_http_kit::{HttpContext, JsonBody, serve, with_standard_layers};
use galley_platform::i18n::PLATFORM_RESOURCES;
use galley_platform::{HttpSettings, Localizer, Shutdown};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn context(settings: HttpSettings) -> HttpContext {
    let localizer = Localizer::builder().add_resources(&PLATFORM_RESOURCES).build().expect("catalogue");
    HttpContext { localizer: Arc::new(localizer), settings, metrics: galley_platform::Metrics::disabled() }
}

async fn panics() -> &'static str {
    panic!("database password is hunter2")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(300)).await;
    "done"
}

async fn echo(JsonBody(value): JsonBody<Value>) -> String {
    value.to_string()
}

fn app(settings: HttpSettings) -> Router {
    let routes =
        Router::new().route("/panic", get(panics)).route("/slow", get(slow)).route("/echo", post(echo));
    with_standard_layers(routes, context(settings))
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status();
    let language =
        response.headers().get("content-language").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, language, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn get_request(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_problem_without_its_message() {
    let (status, language, body) = call(app(HttpSettings::default()), get_request("/panic?locale=vi")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(language.as_deref(), Some("vi"));
    assert_eq!(body["code"], "internal_error");
    let request_id = body["request_id"].as_str().expect("request id");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains(request_id)),
        "detail quotes the request id: {body}"
    );
    assert!(!body.to_string().contains("hunter2"), "panic message leaked: {body}");
}

#[tokio::test]
async fn a_slow_request_times_out_with_408() {
    let settings = HttpSettings { request_timeout: Duration::from_millis(50), ..HttpSettings::default() };
    let (status, _, body) = call(app(settings), get_request("/slow")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["code"], "request_timeout");
}

#[tokio::test]
async fn the_body_limit_is_configurable_and_reported() {
    let settings = HttpSettings { body_limit_bytes: 16, ..HttpSettings::default() };
    let request = Request::post("/echo")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"text":"far more than sixteen bytes"}"#))
        .expect("request");
    let (status, _, body) = call(app(settings.clone()), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["detail"], "The request body must not exceed 16 bytes.");
    let small = Request::post("/echo")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let response = app(settings).oneshot(small).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let server =
        tokio::spawn(serve(listener, app(HttpSettings::default()), shutdown.clone(), Duration::from_secs(5)));

    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get(format!("http://{address}/slow")).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.trigger();

    let response = in_flight.await.expect("task").expect("in-flight request completed");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .expect("task")
        .expect("clean stop");
    assert!(client.get(format!("http://{address}/slow")).send().await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn shutdown_gives_up_on_requests_slower_than_the_grace_period() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let routes = Router::new().route(
        "/stuck",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "never"
        }),
    );
    let server = tokio::spawn(serve(listener, routes, shutdown.clone(), Duration::from_millis(200)));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let _stuck = tokio::spawn(async move { client.get(format!("http://{address}/stuck")).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .expect("task")
        .expect("stop");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped after the grace period");
}

/// A throttled route behind the standard stack: the request over budget never reaches the handler and
/// is rendered as a localized problem with `Retry-After`.
#[tokio::test]
async fn a_throttled_route_answers_a_localized_429_with_retry_after() {
    use galley_http_kit::Throttle;
    use galley_platform::ThrottleSettings;

    let throttle = Throttle::new("test", ThrottleSettings { burst: 2, per_minute: 1 }).expect("budget");
    let routes = Router::new().route("/costly", throttle.wrap(post(|| async { "done" })));
    let router = with_standard_layers(routes, context(HttpSettings::default()));
    let costly = || Request::post("/costly?locale=vi").body(Body::empty()).expect("request");
    for _ in 0..2 {
        let response = router.clone().oneshot(costly()).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = router.clone().oneshot(costly()).await.expect("infallible");
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, language, body) = call(router, costly()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
    assert_eq!(language.as_deref(), Some("vi"));
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["title"], "Quá nhiều yêu cầu");
}
