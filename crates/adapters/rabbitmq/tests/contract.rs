//! `RabbitMqBus` runs the message bus contract suite against a real RabbitMQ: `GALLEY_TEST_RABBITMQ_URL`,
//! else the one on 127.0.0.1:5672 (guest/guest, vhost `/`). Each case uses its own queue prefix and
//! deletes the queues it declared when it ends, so the shared broker keeps nothing. Without a reachable
//! broker these tests fail and say what to install: they never pass silently.

use std::sync::Arc;
use std::time::Duration;

use galley_messaging::MessageBus;
use galley_rabbitmq::{RabbitMqBus, RabbitMqOptions};
use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url() -> String {
    std::env::var("GALLEY_TEST_RABBITMQ_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Deletes every queue the case's bus declared (all under its unique prefix) when the case ends.
struct Cleanup {
    url: String,
    bus: RabbitMqBus,
}

impl Cleanup {
    async fn delete_queues(url: &str, queues: Vec<String>) {
        let connect = Connection::connect(url, ConnectionProperties::default());
        let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
            return;
        };
        let Ok(channel) = connection.create_channel().await else { return };
        for queue in queues {
            let delete = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default());
            let _ = tokio::time::timeout(Duration::from_secs(5), delete).await;
        }
        let _ = connection.close(200, "cleanup done".into()).await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let queues = self.bus.declared_queues();
        let prefix = self.bus.prefix().to_owned();
        // Only ever this case's queues.
        let queues: Vec<String> = queues.into_iter().filter(|q| q.starts_with(&prefix)).collect();
        let (url, bus) = (self.url.clone(), self.bus.clone());
        // The contract cases run on a multi-threaded runtime, so the guard may block one worker.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                bus.close().await;
                Self::delete_queues(&url, queues).await;
            });
        });
    }
}

async fn bus() -> Option<(Arc<dyn MessageBus>, Cleanup)> {
    let url = url();
    let prefix = format!("galley-test.{}.", uuid::Uuid::now_v7().simple());
    let options =
        RabbitMqOptions { prefix, delivery_limit: galley_test_support::contracts::bus::DELIVERY_LIMIT };
    let bus = RabbitMqBus::connect_with(&url, options).await.unwrap_or_else(|error| {
        panic!(
            "RabbitMQ is needed at {} ({error}). Install and start it (`apt-get install rabbitmq-server && \
             rabbitmq-server -detached`) or point GALLEY_TEST_RABBITMQ_URL at one.",
            redacted(&url)
        )
    });
    Some((Arc::new(bus.clone()), Cleanup { url, bus }))
}

/// The URL without its password, for failure messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

mod rabbitmq_bus {
    use super::*;
    galley_test_support::bus_contract_tests!(bus());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_hides_the_url() {
    let Some((_, cleanup)) = bus().await else { return };
    let shown = format!("{:?}", cleanup.bus);
    assert!(!shown.contains("guest:"), "{shown}");
    assert!(shown.contains("galley-test."), "{shown}");
}

/// Deletes the broker queue `name` behind the bus's back.
async fn delete_queue(url: &str, name: &str) {
    let connection = Connection::connect(url, ConnectionProperties::default()).await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel.queue_delete(name.into(), QueueDeleteOptions::default()).await.expect("queue deleted");
    let _ = connection.close(200, "done".into()).await;
}

fn outgoing(id: &str) -> galley_messaging::OutgoingMessage {
    galley_messaging::OutgoingMessage {
        message_id: id.to_owned(),
        correlation_id: None,
        reply_to: None,
        trace: None,
        body: bytes::Bytes::from_static(b"{}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_broker_cannot_route_fails_and_the_next_one_declares_the_queue_again() {
    let Some((bus, cleanup)) = bus().await else { return };
    let queue = "unroutable";
    bus.publish(queue, outgoing("declares")).await.expect("first publish declares the queue");
    delete_queue(&cleanup.url, &format!("{}{queue}", cleanup.bus.prefix())).await;

    let lost = bus.publish(queue, outgoing("lost")).await;
    assert!(lost.is_err(), "a message routed to no queue was reported stored: {lost:?}");

    bus.publish(queue, outgoing("kept")).await.expect("the queue is declared again");
    let mut subscription = bus.subscribe(queue, 1).await.expect("subscribe");
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a delivery in time")
        .expect("bus open");
    assert_eq!(delivery.message.message_id, "kept");
    delivery.settle(galley_messaging::Settle::Ack).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_queue_is_deleted_declares_it_again_and_keeps_consuming() {
    let Some((bus, cleanup)) = bus().await else { return };
    let queue = "deleted-under-consumer";
    let mut subscription = bus.subscribe(queue, 1).await.expect("subscribe");
    bus.publish(queue, outgoing("before")).await.expect("publish");
    let first = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.expect("in time");
    first.expect("open").settle(galley_messaging::Settle::Ack).await.expect("ack");

    delete_queue(&cleanup.url, &format!("{}{queue}", cleanup.bus.prefix())).await;
    let consuming = tokio::spawn(async move {
        let delivery = subscription.next().await.expect("bus open");
        let id = delivery.message.message_id.clone();
        delivery.settle(galley_messaging::Settle::Ack).await.expect("ack");
        id
    });
    // Publish until one is stored: the first may race the deletion and be returned (a failure).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bus.publish(queue, outgoing("after")).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "publishing never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = tokio::time::timeout(Duration::from_secs(20), consuming).await.expect("in time");
    assert_eq!(received.expect("consumer task"), "after");
}
