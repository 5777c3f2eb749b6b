//! Publish-with-confirm throughput on the local broker (`make bench-amqp`, or `cargo bench -p
//! galley-rabbitmq --bench publish`).
//!
//! Publishes a fixed number of 256-byte persistent messages to a durable queue, each awaited until the
//! broker confirms it, first one at a time and then with a window of 32 publishes in flight (they share
//! one confirm-mode channel, so their confirms are pipelined), and prints messages per second. Then it
//! runs the same work with a mature client, Python's aio-pika (`scripts/bench-amqp-peer.py`, from the
//! project's `.tools/venv`), in the same run, and prints Galley's rate as a ratio of the peer's: the
//! figure to compare across runs. Bounded in count; the queues are deleted at the end. Loopback only.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use galley_messaging::{MessageBus, OutgoingMessage};
use galley_rabbitmq::RabbitMqBus;

const MESSAGES: usize = 2000;
/// Publishes in flight in the windowed run (Galley's and the peer's alike).
const WINDOW: usize = 32;

fn message(index: usize) -> OutgoingMessage {
    OutgoingMessage {
        message_id: format!("bench-{index}"),
        correlation_id: None,
        reply_to: None,
        trace: None,
        body: Bytes::from(vec![b'x'; 256]),
    }
}

/// Runs the aio-pika peer; its two rates (one at a time, windowed), or `None` when it cannot run.
fn peer(url: &str) -> Option<(f64, f64)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let python = root.join(".tools/venv/bin/python");
    let output = std::process::Command::new(python)
        .arg(root.join("scripts/bench-amqp-peer.py"))
        .args([url, &MESSAGES.to_string(), &WINDOW.to_string()])
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("aio-pika peer failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut rates = text.split_whitespace().filter_map(|rate| rate.parse::<f64>().ok());
    Some((rates.next()?, rates.next()?))
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
    for worker in 0..WINDOW {
        let bus = Arc::clone(&bus);
        tasks.spawn(async move {
            for index in (worker..MESSAGES).step_by(WINDOW) {
                bus.publish(queue, message(index)).await.expect("confirmed");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let concurrent = MESSAGES as f64 / started.elapsed().as_secs_f64();

    println!("RabbitMQ publish with confirm, {MESSAGES} persistent 256-byte messages to a durable queue:");
    match peer(&url) {
        Some((peer_sequential, peer_windowed)) => {
            println!("                         galley   aio-pika   ratio");
            println!(
                "  one at a time:       {sequential:8.0} {peer_sequential:10.0} {:6.1}x",
                sequential / peer_sequential
            );
            println!(
                "  {WINDOW} in flight:        {concurrent:8.0} {peer_windowed:10.0} {:6.1}x   (goal: 2x)",
                concurrent / peer_windowed
            );
        }
        None => {
            println!("  one at a time:  {sequential:.0} msg/s");
            println!("  {WINDOW} in flight:   {concurrent:.0} msg/s");
            println!("  (the aio-pika peer could not run: scripts/python-tools.sh installs it)");
        }
    }

    bus.close().await;
    let connection =
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    for name in bus.declared_queues() {
        let _ =
            channel.queue_delete(name.as_str().into(), lapin::options::QueueDeleteOptions::default()).await;
    }
}
