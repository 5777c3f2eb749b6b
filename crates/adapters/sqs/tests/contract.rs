//! `SqsBus` runs the message bus contract suite against moto (a local SQS from PyPI, installed by
//! `scripts/python-tools.sh`), one moto server for the whole test binary on a free loopback port. Each
//! case uses its own queue prefix and deletes the queues it used when it ends.

use std::sync::Arc;
use std::time::Duration;

use galley_messaging::{MessageBus, OutgoingMessage, Settle};
use galley_sqs::{SqsBus, SqsOptions};
use galley_test_support::contracts::bus::DELIVERY_LIMIT;
use galley_test_support::moto::{ACCESS_KEY_ID, MotoServer, REGION, SECRET_ACCESS_KEY};

/// Short, so a message a test loses track of comes back within the suite's waits.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(4);

/// The SDK configuration for the shared moto, with static credentials (no process environment).
async fn sdk_config() -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_sqs::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "tests");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(MotoServer::shared().endpoint())
        .credentials_provider(credentials)
        .load()
        .await
}

fn options() -> SqsOptions {
    SqsOptions {
        queue_prefix: format!("gt{}-", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        visibility_timeout: VISIBILITY_TIMEOUT,
        wait_time: Duration::from_secs(2),
        max_receives: DELIVERY_LIMIT + 1,
        create_queues: true,
    }
}

/// Closes the case's bus and deletes every queue it used (all under its unique prefix).
struct Cleanup {
    bus: SqsBus,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let bus = self.bus.clone();
        bus.close();
        // The contract cases run on a multi-threaded runtime, so the guard may block one worker.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                for url in bus.known_queue_urls() {
                    let _ = bus.client().delete_queue().queue_url(url).send().await;
                }
            });
        });
    }
}

async fn bus_with(options: SqsOptions) -> (SqsBus, Cleanup) {
    let bus = SqsBus::connect_with_sdk_config(&sdk_config().await, options).await.expect("moto answers");
    (bus.clone(), Cleanup { bus })
}

async fn bus() -> Option<(Arc<dyn MessageBus>, Cleanup)> {
    let (bus, cleanup) = bus_with(options()).await;
    Some((Arc::new(bus), cleanup))
}

mod sqs_bus {
    use super::*;
    galley_test_support::bus_contract_tests!(bus());
}

fn outgoing(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.to_owned(),
        correlation_id: None,
        reply_to: None,
        trace: None,
        body: bytes::Bytes::from_static(b"{}"),
    }
}

async fn next(
    subscription: &mut Box<dyn galley_messaging::Subscription>,
    within: Duration,
) -> galley_messaging::Delivery {
    tokio::time::timeout(within, subscription.next()).await.expect("a delivery in time").expect("bus open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_named_after_the_prefix_and_the_queue_with_dashes() {
    let (bus, _cleanup) = bus_with(options()).await;
    bus.publish("rss.fetch.requested", outgoing("named")).await.expect("publish");
    let prefix = bus.options().queue_prefix.clone();
    let names: Vec<String> =
        bus.known_queue_urls().iter().filter_map(|url| url.rsplit('/').next().map(str::to_owned)).collect();
    assert_eq!(
        names,
        vec![format!("{prefix}rss-fetch-requested"), format!("{prefix}rss-fetch-requested-dead")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_create_queues_a_missing_queue_is_an_error_naming_it() {
    let (bus, _cleanup) = bus_with(SqsOptions { create_queues: false, ..options() }).await;
    let error = bus.publish("absent", outgoing("lost")).await.expect_err("no such queue");
    assert!(error.to_string().contains("absent"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_delivery_is_kept_invisible_by_its_heartbeat() {
    let (bus, _cleanup) = bus_with(options()).await;
    let mut first = bus.subscribe("slow", 1).await.expect("subscribe");
    let mut second = bus.subscribe("slow", 1).await.expect("subscribe");
    bus.publish("slow", outgoing("slow")).await.expect("publish");
    let held = next(&mut first, Duration::from_secs(10)).await;
    // Well past the visibility timeout: without the heartbeat the second consumer would get it.
    if let Ok(Some(stolen)) =
        tokio::time::timeout(VISIBILITY_TIMEOUT * 2 + Duration::from_secs(1), second.next()).await
    {
        panic!("delivered to a second consumer while the first held it: {:?}", stolen.message);
    }
    held.settle(Settle::Ack).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_consumer_s_message_comes_back_after_the_visibility_timeout() {
    let (bus, _cleanup) = bus_with(options()).await;
    let crashing_options = bus.options().clone();
    bus.subscribe("crash", 1).await.map(drop).expect("declare");
    bus.publish("crash", outgoing("orphan")).await.expect("publish");
    // A consumer in its own runtime, which then dies with the delivery unsettled: no settlement, no
    // release, and its heartbeat dies with it, as when a worker process is killed.
    let crashed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let crashing = SqsBus::connect_with_sdk_config(&sdk_config().await, crashing_options)
                .await
                .expect("moto answers");
            let mut subscription = crashing.subscribe("crash", 1).await.expect("subscribe");
            let delivery = next(&mut subscription, Duration::from_secs(10)).await;
            assert_eq!(delivery.message.attempt, 1);
            std::mem::forget(delivery);
            std::mem::forget(subscription);
        });
        runtime.shutdown_background();
    });
    tokio::task::spawn_blocking(move || crashed.join()).await.expect("join").expect("crashing consumer");
    let started = std::time::Instant::now();
    let mut survivor = bus.subscribe("crash", 1).await.expect("subscribe");
    let again = next(&mut survivor, VISIBILITY_TIMEOUT * 4).await;
    assert_eq!(again.message.message_id, "orphan");
    assert_eq!(again.message.attempt, 2);
    assert!(started.elapsed() >= VISIBILITY_TIMEOUT / 2, "came back after {:?}", started.elapsed());
    again.settle(Settle::Ack).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_survive_the_trip() {
    let (bus, _cleanup) = bus_with(options()).await;
    let mut subscription = bus.subscribe("binary", 1).await.expect("subscribe");
    let mut message = outgoing("binary");
    message.body = bytes::Bytes::from_static(&[0, 159, 146, 150, 255]);
    bus.publish("binary", message.clone()).await.expect("publish");
    let delivery = next(&mut subscription, Duration::from_secs(10)).await;
    assert_eq!(delivery.message.body, message.body);
    delivery.settle(Settle::Ack).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_after_queues_are_known_read_their_attributes() {
    let (bus, cleanup) = bus_with(options()).await;
    bus.publish("pinged", outgoing("p")).await.expect("publish");
    bus.ping().await.expect("ping");
    drop(cleanup);
    assert!(bus.ping().await.is_err(), "a closed bus answers pings");
}

/// Sends a raw message to the SQS queue behind logical `queue` (first used through `bus`).
async fn send_raw(bus: &SqsBus, queue: &str, body: &str, attributes: &[(&str, &str, &str)]) {
    let name = galley_sqs::names::queue_name(&bus.options().queue_prefix, queue).expect("valid name");
    let url = bus
        .known_queue_urls()
        .into_iter()
        .find(|url| url.ends_with(&format!("/{name}")))
        .expect("known queue");
    let mut send = bus.client().send_message().queue_url(url).message_body(body);
    for (name, data_type, value) in attributes {
        let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type(*data_type)
            .string_value(*value)
            .build()
            .expect("attribute");
        send = send.message_attributes(*name, value);
    }
    send.send().await.expect("raw send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_goes_to_the_dead_letter_queue_at_once() {
    let (bus, _cleanup) = bus_with(options()).await;
    let mut subscription = bus.subscribe("undecodable", 1).await.expect("subscribe");
    let mut dead =
        bus.subscribe(&galley_messaging::dead_letter_queue("undecodable"), 1).await.expect("subscribe");
    send_raw(
        &bus,
        "undecodable",
        "%%% not base64",
        &[("message_id", "String", "bad"), ("body_encoding", "String", "base64")],
    )
    .await;
    // Consuming the work queue is what moves it: the consumer never sees it.
    if let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(2), subscription.next()).await {
        panic!("poison handed to a consumer: {:?}", delivery.message);
    }
    let buried = next(&mut dead, Duration::from_secs(10)).await;
    assert_eq!(buried.message.message_id, "bad");
    assert_eq!(buried.message.attempt, 1);
    assert_eq!(buried.message.body.as_ref(), b"%%% not base64", "the body as it was sent");
    buried.settle(Settle::Ack).await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_delay_is_not_handed_out_before_its_time() {
    let (bus, _cleanup) = bus_with(options()).await;
    let mut subscription = bus.subscribe("chained", 1).await.expect("subscribe");
    let delay = Duration::from_secs(3);
    let not_before = std::time::SystemTime::now() + delay;
    let millis =
        not_before.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis().to_string();
    let started = std::time::Instant::now();
    // What a consumer's RetryAfter beyond 15 minutes leaves behind, without the 15 minutes.
    send_raw(
        &bus,
        "chained",
        "{}",
        &[("message_id", "String", "chained"), ("attempt", "Number", "2"), ("not_before", "Number", &millis)],
    )
    .await;
    let delivery = next(&mut subscription, Duration::from_secs(15)).await;
    assert!(
        started.elapsed() >= delay - Duration::from_millis(100),
        "handed out after {:?}",
        started.elapsed()
    );
    assert_eq!(delivery.message.message_id, "chained");
    assert_eq!(delivery.message.attempt, 2, "the hop does not count as an attempt");
    delivery.settle(Settle::Ack).await.expect("ack");
}
