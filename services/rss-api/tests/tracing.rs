//! One trace per feed request (ADR 0028): `POST /rss/fetch` on rss-api → the fetch request on the bus →
//! rss-worker's handling (fetch, parse, store, the feed GET) → the reply → rss-api's reply handling, all
//! under the trace id of the caller's `traceparent`, with the caller's span as the request span's
//! parent; through one in-process bus and through RabbitMQ. Spans go to an in-memory exporter, log
//! lines to a buffer: the capture is this thread's default subscriber, so each test runs on a
//! current-thread runtime (every task of the services runs on the test's thread) and tests in this
//! binary do not share a subscriber.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use galley_kernel::SystemClock;
use galley_messaging::{InProcessBus, MessageBus};
use galley_platform::telemetry::testing::{self, Capture, CapturedSpan};
use galley_platform::{HttpSettings, LogFormat, Shutdown, TelemetrySettings};
use galley_test_support::feeds::FixtureServer;
use galley_test_support::rabbitmq::{QueuePrefix, shared_broker_url};
use rss_api::{REPLIES_QUEUE, REQUESTS_QUEUE};
use serde_json::{Value, json};

/// The caller's trace: its trace id and the id of its span that sends `POST /rss/fetch`.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn loopback_http() -> HttpSettings {
    HttpSettings { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..HttpSettings::default() }
}

enum Wiring {
    InProcess,
    RabbitMq { url: String, prefix: String },
}

/// JSON lines, with the per-request DEBUG lines of tower-http, as production's format writes them.
fn capture() -> Capture {
    let settings = TelemetrySettings {
        format: LogFormat::Json,
        filter: "info,tower_http=debug".into(),
        ..TelemetrySettings::default()
    };
    testing::capture("rss-test", &settings)
}

/// recipes-api (the token issuer), rss-api and rss-worker; returns rss-api's base URL and a token.
async fn start(wiring: &Wiring, data: &std::path::Path, shutdown: &Shutdown) -> (String, String) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut store = galley_platform::StoreSettings::default();
    store.embedded.path = data.join("galley.db");
    let recipes = recipes_api::Settings { http: loopback_http(), store: store.clone(), ..Default::default() };
    let issuer_app = recipes_api::Application::build(recipes).await.expect("recipes-api");
    let issuer = format!("http://{}/", issuer_app.local_addr().expect("bound"));
    tokio::spawn(issuer_app.run_until_stopped(shutdown.clone()));

    let mut bus = galley_platform::BusSettings::default();
    let shared: Option<Arc<dyn MessageBus>> = match wiring {
        Wiring::InProcess => Some(Arc::new(InProcessBus::new())),
        Wiring::RabbitMq { url, prefix } => {
            bus.backend = galley_platform::BusBackend::Rabbitmq;
            bus.rabbitmq.prefix = prefix.clone();
            bus.rabbitmq.url = url.as_str().into();
            None
        }
    };
    let mut rss = rss_api::Settings {
        http: loopback_http(),
        bus: bus.clone(),
        store: store.clone(),
        limits: galley_platform::LimitsSettings::disabled(),
        ..Default::default()
    };
    rss.identity.issuer = Some(issuer.clone());
    let rss_app =
        rss_api::Application::build_with(rss, shared.clone(), Arc::new(SystemClock)).await.expect("rss-api");
    let rss_base = format!("http://{}", rss_app.local_addr().expect("bound"));
    tokio::spawn(rss_app.run_until_stopped(shutdown.clone()));

    let mut worker = rss_worker::Settings { http: loopback_http(), bus, store, ..Default::default() };
    worker.fetch.allow_private_hosts = vec!["127.0.0.1/32".parse().expect("net")];
    worker.fetch.parse_timeout = Duration::from_secs(60);
    let worker_app = rss_worker::app::Application::build_with(worker, shared).await.expect("rss-worker");
    tokio::spawn(worker_app.run_until_stopped(shutdown.clone()));

    let token =
        galley_test_support::accounts::signed_in_token(&client, issuer.trim_end_matches('/'), "alice").await;
    (rss_base, token)
}

fn named<'a>(spans: &'a [CapturedSpan], name: &str) -> Vec<&'a CapturedSpan> {
    spans.iter().filter(|span| span.name == name && span.trace_id == TRACE_ID).collect()
}

/// The one span of the trace called `name`.
fn one<'a>(spans: &'a [CapturedSpan], name: &str) -> &'a CapturedSpan {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name:?} span in the trace; spans: {spans:#?}");
    found[0]
}

async fn one_trace_from_the_request_to_the_reply(wiring: Wiring) {
    let capture = capture();
    let data = tempfile::tempdir().expect("temp dir");
    let shutdown = Shutdown::new();
    let (rss_base, token) = start(&wiring, data.path(), &shutdown).await;
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");

    let accepted = client
        .post(format!("{rss_base}/rss/fetch"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .header("tracestate", "caller=yes")
        .json(&json!({"url": feeds.url("/rss.xml")}))
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), 202);
    let job: Value = accepted.json().await.expect("json");
    let job_id = job["job_id"].as_str().expect("id").to_owned();

    // The reply is handled asynchronously: wait for its span to end.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = capture.spans();
        if !named(&spans, "rss.fetch.completed process").is_empty() {
            break spans;
        }
        assert!(Instant::now() < deadline, "no reply handling span; spans: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status: Value = client
        .get(format!("{rss_base}/rss/jobs/{job_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "done", "{status}");

    // rss-api: the request, a child of the caller's span, and the publish inside it.
    let request = one(&spans, "POST /rss/fetch");
    assert_eq!(request.kind, "server");
    assert_eq!(request.parent_span_id.as_deref(), Some(CALLER_SPAN_ID));
    assert_eq!(request.attributes.get("route").map(String::as_str), Some("/rss/fetch"));
    let publish = one(&spans, "rss.fetch.requested publish");
    assert_eq!(publish.kind, "producer");
    assert_eq!(publish.parent_span_id.as_deref(), Some(request.span_id.as_str()));

    // rss-worker: the handling, a child of the publish across the bus, and its steps.
    let handling = one(&spans, "rss.fetch.requested process");
    assert_eq!(handling.kind, "consumer");
    assert_eq!(handling.parent_span_id.as_deref(), Some(publish.span_id.as_str()));
    let fetch = one(&spans, "rss.fetch");
    assert_eq!(fetch.parent_span_id.as_deref(), Some(handling.span_id.as_str()));
    let download = one(&spans, "GET");
    assert_eq!(download.kind, "client");
    assert_eq!(download.parent_span_id.as_deref(), Some(fetch.span_id.as_str()));
    let parse = one(&spans, "rss.parse");
    assert_eq!(parse.parent_span_id.as_deref(), Some(fetch.span_id.as_str()));
    let store = one(&spans, "rss.store");
    assert_eq!(store.parent_span_id.as_deref(), Some(handling.span_id.as_str()));
    let reply = one(&spans, "rss.fetch.completed publish");
    assert_eq!(reply.kind, "producer");
    assert_eq!(reply.parent_span_id.as_deref(), Some(handling.span_id.as_str()));

    // rss-api again: the reply's handling, a child of the worker's reply publish.
    let applied = one(&spans, "rss.fetch.completed process");
    assert_eq!(applied.kind, "consumer");
    assert_eq!(applied.parent_span_id.as_deref(), Some(reply.span_id.as_str()));

    // The feed's server was asked with the trace context of the worker's GET.
    let fetched = feeds.requests_to("/rss.xml");
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(
        fetched[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", download.span_id).as_str()),
        "{fetched:?}"
    );
    assert_eq!(fetched[0].header("tracestate"), Some("caller=yes"));

    // Log lines of the request carry its trace and span ids beside the request id and route.
    let request_lines: Vec<Value> = capture
        .logs
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["route"] == "/rss/fetch" && line["span"]["method"] == "POST")
        .collect();
    assert!(!request_lines.is_empty(), "no log line in the request span: {:?}", capture.logs.lines());
    for line in &request_lines {
        assert_eq!(line["trace_id"], TRACE_ID, "{line}");
        assert_eq!(line["span_id"], request.span_id.as_str(), "{line}");
        assert!(line["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
    }
    assert!(
        request_lines.iter().any(|line| line["level"] == "DEBUG"),
        "the per-request line is at DEBUG: {request_lines:?}"
    );
    shutdown.trigger();
}

#[tokio::test]
async fn one_trace_spans_rss_api_the_worker_and_the_reply_over_the_in_process_bus() {
    one_trace_from_the_request_to_the_reply(Wiring::InProcess).await;
}

#[tokio::test]
async fn one_trace_spans_rss_api_the_worker_and_the_reply_over_rabbitmq() {
    let queues = QueuePrefix::fresh(&shared_broker_url(), &[REQUESTS_QUEUE, REPLIES_QUEUE]);
    one_trace_from_the_request_to_the_reply(Wiring::RabbitMq {
        url: queues.url.clone(),
        prefix: queues.prefix.clone(),
    })
    .await;
}

/// Without a `traceparent`, the request starts a trace of its own, which still reaches the worker.
#[tokio::test]
async fn a_request_without_trace_context_starts_a_trace_the_worker_joins() {
    let capture = capture();
    let data = tempfile::tempdir().expect("temp dir");
    let shutdown = Shutdown::new();
    let (rss_base, token) = start(&Wiring::InProcess, data.path(), &shutdown).await;
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let accepted = client
        .post(format!("{rss_base}/rss/fetch"))
        .bearer_auth(&token)
        .json(&json!({"url": feeds.url("/rss.xml")}))
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = capture.spans();
        let request = spans.iter().find(|span| span.name == "POST /rss/fetch");
        let handled = spans.iter().find(|span| span.name == "rss.fetch.completed process");
        if let (Some(request), Some(handled)) = (request, handled) {
            assert_eq!(request.parent_span_id, None, "a root span");
            assert_eq!(handled.trace_id, request.trace_id);
            break;
        }
        assert!(Instant::now() < deadline, "spans: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
}
