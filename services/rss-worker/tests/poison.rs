//! Messages the worker can never process go to the dead-letter queue once, and the worker goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_embedded::SqliteStore;
use galley_kernel::SystemClock;
use galley_messaging::{InProcessBus, MessageBus, OutgoingMessage, dead_letter_queue};
use galley_platform::Shutdown;
use galley_wiring::DocumentStore;
use rss_worker::{REQUESTS_QUEUE, Settings};

fn message(id: &str, body: &'static [u8]) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.to_owned(),
        correlation_id: None,
        reply_to: None,
        body: Bytes::from_static(body),
    }
}

#[tokio::test]
async fn undecodable_requests_are_dead_lettered_not_retried() {
    let data = tempfile::tempdir().expect("temp dir");
    let store =
        DocumentStore::embedded(SqliteStore::open(&data.path().join("galley.db")).await.expect("store"));
    let bus = InProcessBus::new();
    let worker =
        rss_worker::app::worker(&store, Arc::new(bus.clone()), &Settings::default(), Arc::new(SystemClock))
            .expect("worker");
    let shutdown = Shutdown::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let poison: [(&str, &'static [u8]); 4] = [
        ("not-json", b"\xff\xfe garbage"),
        ("not-an-envelope", br#"{"hello":"world"}"#),
        ("wrong-type", br#"{"type":"rss.fetch.completed","version":1,"message_id":"0193d1f0-0000-7000-8000-000000000001","correlation_id":"x","sent_at":"2026-01-01T00:00:00Z","payload":{"job_id":"x","status":"done","inserted":0,"skipped":0}}"#),
        ("future-version", br#"{"type":"rss.fetch.requested","version":9,"message_id":"0193d1f0-0000-7000-8000-000000000002","correlation_id":"x","sent_at":"2026-01-01T00:00:00Z","payload":{}}"#),
    ];
    for (id, body) in poison {
        bus.publish(REQUESTS_QUEUE, message(id, body)).await.expect("publish");
    }
    let dead = dead_letter_queue(REQUESTS_QUEUE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.depth(&dead) < 4 {
        assert!(Instant::now() < deadline, "poison messages not dead-lettered in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bus.depth(REQUESTS_QUEUE), 0, "nothing is retried on the main queue");
    assert_eq!(bus.depth(&dead), 4);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("worker stops")
        .expect("task")
        .expect("clean");
}
