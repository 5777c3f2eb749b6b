//! Publish-with-confirm throughput on the local broker (`cargo bench -p galley-rabbitmq --bench publish`).
//!
//! Publishes a fixed number of 256-byte persistent messages to a durable queue, each awaited until the
//! broker confirms it, first one at a time and then with 32 publishers in flight, and prints messages
//! per second. Bounded in count; the queue is deleted at the end. Loopback only.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use galley_messaging::{MessageBus, OutgoingMessage};
use galley_rabbitmq::RabbitMqBus;

const MESSAGES: usize = 2000;

fn message(index: usize) -> OutgoingMessage {
    OutgoingMessage {
        message_id: format!("bench-{index}"),
        correlation_id: None,
        reply_to: None,
        body: Bytes::from(vec![b'x'; 256]),
    }
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() {
    let url = std::env::var("GALLEY_TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let prefix = format!("galley-bench.{}.", uuid::Uuid::now_v7().simple());
    let bus = Arc::new(RabbitMqBus::connect(&url, &prefix).await.expect("broker reachable"));
    let queue = "publish";

    let started = Instant::now();
    for index in 0..MESSAGES {
        bus.publish(queue, message(index)).await.expect("confirmed");
    }
    let sequential = MESSAGES as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let bus = Arc::clone(&bus);
        tasks.spawn(async move {
            for index in (worker..MESSAGES).step_by(32) {
                bus.publish(queue, message(index)).await.expect("confirmed");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let concurrent = MESSAGES as f64 / started.elapsed().as_secs_f64();

    println!("RabbitMQ publish with confirm, {MESSAGES} persistent 256-byte messages to a durable queue:");
    println!("  one at a time:        {sequential:.0} msg/s");
    println!("  32 publishers at once: {concurrent:.0} msg/s");

    bus.close().await;
    let connection =
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    for name in bus.declared_queues() {
        let _ =
            channel.queue_delete(name.as_str().into(), lapin::options::QueueDeleteOptions::default()).await;
    }
}
