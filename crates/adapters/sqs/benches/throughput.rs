//! Publish and consume throughput of `SqsBus` against a private moto (`cargo bench -p galley-sqs`).
//!
//! Publishes a fixed number of 256-byte messages, each awaited until SQS (moto) stored it, first one at
//! a time and then with 32 publishers in flight; then consumes them all (two subscriptions, prefetch
//! 10 each, every message acknowledged) and prints messages per second, beside a baseline of bare SDK
//! `SendMessage` calls. Bounded in count and time;
//! loopback only. moto is a single Python process answering HTTP on loopback: the figures measure the
//! adapter's per-message round trips against it, not what AWS SQS would do (see the README).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_messaging::{MessageBus, OutgoingMessage, Settle};
use galley_sqs::{SqsBus, SqsOptions};
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};

const MESSAGES: usize = 1000;
const PUBLISHERS: usize = 32;
const BASELINE: usize = 100;
const CONSUME_LIMIT: Duration = Duration::from_secs(300);

fn message(index: usize) -> OutgoingMessage {
    OutgoingMessage {
        message_id: format!("bench-{index}"),
        correlation_id: None,
        reply_to: None,
        trace: None,
        body: Bytes::from(vec![b'x'; 256]),
    }
}

async fn consume(bus: &Arc<SqsBus>, queue: &str, expected: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
    for _ in 0..2 {
        let (bus, seen, queue) = (Arc::clone(bus), Arc::clone(&seen), queue.to_owned());
        tasks.spawn(async move {
            let mut subscription = bus.subscribe(&queue, 10).await.expect("subscribe");
            let mut acks = tokio::task::JoinSet::new();
            while seen.lock().expect("lock").len() < expected && started.elapsed() < CONSUME_LIMIT {
                let Ok(Some(delivery)) =
                    tokio::time::timeout(Duration::from_secs(3), subscription.next()).await
                else {
                    continue;
                };
                seen.lock().expect("lock").insert(delivery.message.message_id.clone());
                acks.spawn(async move { delivery.settle(Settle::Ack).await.expect("ack") });
            }
            while acks.join_next().await.is_some() {}
        });
    }
    while tasks.join_next().await.is_some() {}
    let received = seen.lock().expect("lock").len();
    assert_eq!(received, expected, "every message consumed");
    expected as f64 / started.elapsed().as_secs_f64()
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() {
    let moto = MotoServer::start();
    let credentials =
        aws_sdk_sqs::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "bench");
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(credentials)
        .load()
        .await;
    let options = SqsOptions { wait_time: Duration::from_secs(1), ..SqsOptions::default() };
    let bus = Arc::new(SqsBus::connect_with_sdk_config(&sdk_config, options).await.expect("moto answers"));

    // Baseline: the bare SDK call the adapter makes, without attributes or batching.
    bus.publish("bench.raw", message(0)).await.expect("stored");
    let url = bus.known_queue_urls().into_iter().find(|url| url.ends_with("bench-raw")).expect("url");
    let started = Instant::now();
    for _ in 0..BASELINE {
        let send = bus.client().send_message().queue_url(&url).message_body("x".repeat(256));
        send.send().await.expect("stored");
    }
    let baseline = BASELINE as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for index in 0..MESSAGES {
        bus.publish("bench.sequential", message(index)).await.expect("stored");
    }
    let sequential = MESSAGES as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..PUBLISHERS {
        let bus = Arc::clone(&bus);
        tasks.spawn(async move {
            for index in (worker..MESSAGES).step_by(PUBLISHERS) {
                bus.publish("bench.concurrent", message(index)).await.expect("stored");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let concurrent = MESSAGES as f64 / started.elapsed().as_secs_f64();

    let consumed = consume(&bus, "bench.concurrent", MESSAGES).await;

    println!("SqsBus against moto on loopback, {MESSAGES} 256-byte messages:");
    println!("  bare SDK SendMessage, one at a time: {baseline:.0} msg/s (baseline)");
    println!("  publish, one at a time:           {sequential:.0} msg/s");
    println!("  publish, {PUBLISHERS} publishers at once:    {concurrent:.0} msg/s");
    println!("  consume + ack, 2 x prefetch 10:    {consumed:.0} msg/s");
    bus.close();
}
