//! The message bus contract (in-process, RabbitMQ and SQS): the semantics written in
//! `galley_messaging::port`, checked case by case. Queue names are unique per case, so suites can share
//! a broker. Fixtures build their bus with [`DELIVERY_LIMIT`] as its delivery limit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use galley_messaging::{Delivery, MessageBus, OutgoingMessage, Settle, Subscription, dead_letter_queue};

type Bus = Arc<dyn MessageBus>;

/// Long enough for a real broker on loopback, short enough to keep the suite fast when it fails.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);
/// The delivery limit every fixture configures its bus with.
pub const DELIVERY_LIMIT: u32 = 3;

fn queue(name: &str) -> String {
    format!("contract.{name}.{}", uuid::Uuid::now_v7().simple())
}

fn message(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.to_owned(),
        correlation_id: Some(format!("job-{id}")),
        reply_to: None,
        trace: None,
        body: Bytes::from(format!("{{\"id\":\"{id}\"}}")),
    }
}

async fn next(subscription: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(WAIT, subscription.next()).await.expect("a delivery in time").expect("bus open")
}

async fn nothing_arrives(subscription: &mut Box<dyn Subscription>) {
    if let Ok(Some(delivery)) = tokio::time::timeout(QUIET, subscription.next()).await {
        panic!("unexpected delivery {:?}", delivery.message);
    }
}

pub async fn published_messages_are_delivered_with_their_attributes(bus: Bus) {
    let q = queue("attributes");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    let mut sent = message("m1");
    sent.reply_to = Some("replies".into());
    bus.publish(&q, sent.clone()).await.expect("publish");
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.message.message_id, "m1");
    assert_eq!(delivery.message.correlation_id.as_deref(), Some("job-m1"));
    assert_eq!(delivery.message.reply_to.as_deref(), Some("replies"));
    assert_eq!(delivery.message.body, sent.body);
    assert_eq!(delivery.message.attempt, 1);
    delivery.settle(Settle::Ack).await.expect("ack");
}

pub async fn messages_published_before_subscribing_wait_for_a_consumer(bus: Bus) {
    let q = queue("early");
    // Declare the queue first, as services do at start-up, then publish with no consumer attached.
    drop(bus.subscribe(&q, 1).await.expect("declare"));
    bus.publish(&q, message("early")).await.expect("publish");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.message.message_id, "early");
    delivery.settle(Settle::Ack).await.expect("ack");
}

pub async fn acked_messages_are_gone(bus: Bus) {
    let q = queue("ack");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    bus.publish(&q, message("once")).await.expect("publish");
    next(&mut subscription).await.settle(Settle::Ack).await.expect("ack");
    nothing_arrives(&mut subscription).await;
}

pub async fn requeued_messages_come_back_with_a_higher_attempt(bus: Bus) {
    let q = queue("requeue");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    bus.publish(&q, message("again")).await.expect("publish");
    next(&mut subscription).await.settle(Settle::Requeue).await.expect("requeue");
    let redelivered = next(&mut subscription).await;
    assert_eq!(redelivered.message.message_id, "again");
    assert!(redelivered.message.attempt >= 2, "attempt {}", redelivered.message.attempt);
    redelivered.settle(Settle::Ack).await.expect("ack");
}

pub async fn unsettled_deliveries_are_delivered_again(bus: Bus) {
    let q = queue("crash");
    bus.subscribe(&q, 1).await.map(drop).expect("declare");
    bus.publish(&q, message("survivor")).await.expect("publish");
    {
        let mut crashing = bus.subscribe(&q, 1).await.expect("subscribe");
        let delivery = next(&mut crashing).await;
        assert_eq!(delivery.message.attempt, 1);
        // The consumer dies holding the delivery.
        drop(delivery);
        drop(crashing);
    }
    let mut survivor = bus.subscribe(&q, 1).await.expect("subscribe");
    let redelivered = next(&mut survivor).await;
    assert_eq!(redelivered.message.message_id, "survivor");
    redelivered.settle(Settle::Ack).await.expect("ack");
}

pub async fn retry_after_delays_the_redelivery(bus: Bus) {
    let q = queue("delay");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    bus.publish(&q, message("later")).await.expect("publish");
    let delay = Duration::from_millis(800);
    let settled_at = Instant::now();
    next(&mut subscription).await.settle(Settle::RetryAfter(delay)).await.expect("retry");
    let redelivered = next(&mut subscription).await;
    let waited = settled_at.elapsed();
    assert!(waited >= delay, "redelivered after {waited:?}, before the {delay:?} delay");
    assert_eq!(redelivered.message.message_id, "later");
    assert!(redelivered.message.attempt >= 2);
    redelivered.settle(Settle::Ack).await.expect("ack");
}

/// The bug this guards against: per-message TTL on one delay queue only expires the head, so a short
/// retry queued behind a long one waits for the long one.
pub async fn a_short_retry_is_not_held_back_by_a_long_one(bus: Bus) {
    let q = queue("delays");
    let mut subscription = bus.subscribe(&q, 2).await.expect("subscribe");
    bus.publish(&q, message("slow")).await.expect("publish");
    bus.publish(&q, message("fast")).await.expect("publish");
    let (first, second) = (next(&mut subscription).await, next(&mut subscription).await);
    let (slow, fast) = if first.message.message_id == "slow" { (first, second) } else { (second, first) };
    slow.settle(Settle::RetryAfter(Duration::from_secs(20 * 60))).await.expect("retry in 20 min");
    let delay = Duration::from_secs(2);
    let settled_at = Instant::now();
    fast.settle(Settle::RetryAfter(delay)).await.expect("retry in 2 s");
    let redelivered = next(&mut subscription).await;
    let waited = settled_at.elapsed();
    eprintln!("a 2 s retry behind a 20 min one came back after {waited:?}");
    assert_eq!(redelivered.message.message_id, "fast");
    assert!(waited >= delay, "redelivered after {waited:?}, before the {delay:?} delay");
    redelivered.settle(Settle::Ack).await.expect("ack");
}

pub async fn a_message_that_keeps_coming_back_unsettled_is_dead_lettered_at_the_delivery_limit(bus: Bus) {
    let q = queue("crashloop");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    let mut dead = bus.subscribe(&dead_letter_queue(&q), 1).await.expect("subscribe dlq");
    bus.publish(&q, message("crasher")).await.expect("publish");
    for delivery in 1..=DELIVERY_LIMIT + 1 {
        let crashed = next(&mut subscription).await;
        assert_eq!(crashed.message.message_id, "crasher", "delivery {delivery}");
        // The handler dies with the delivery unsettled, every time.
        drop(crashed);
    }
    let buried = next(&mut dead).await;
    assert_eq!(buried.message.message_id, "crasher");
    buried.settle(Settle::Ack).await.expect("ack");
    nothing_arrives(&mut subscription).await;
}

pub async fn dead_lettered_messages_leave_the_queue_for_its_dead_letter_queue(bus: Bus) {
    let q = queue("poison");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    let mut dead = bus.subscribe(&dead_letter_queue(&q), 1).await.expect("subscribe dlq");
    bus.publish(&q, message("poison")).await.expect("publish");
    next(&mut subscription)
        .await
        .settle(Settle::DeadLetter("undecodable".into()))
        .await
        .expect("dead-letter");
    let buried = next(&mut dead).await;
    assert_eq!(buried.message.message_id, "poison");
    buried.settle(Settle::Ack).await.expect("ack");
    nothing_arrives(&mut subscription).await;
}

pub async fn prefetch_bounds_unsettled_deliveries(bus: Bus) {
    let q = queue("prefetch");
    let mut subscription = bus.subscribe(&q, 2).await.expect("subscribe");
    for id in ["p1", "p2", "p3"] {
        bus.publish(&q, message(id)).await.expect("publish");
    }
    let first = next(&mut subscription).await;
    let second = next(&mut subscription).await;
    assert!(
        tokio::time::timeout(QUIET, subscription.next()).await.is_err(),
        "a third delivery while two are unsettled"
    );
    first.settle(Settle::Ack).await.expect("ack");
    let third = next(&mut subscription).await;
    second.settle(Settle::Ack).await.expect("ack");
    third.settle(Settle::Ack).await.expect("ack");
}

pub async fn competing_consumers_each_get_a_share_and_every_message_once(bus: Bus) {
    let q = queue("competing");
    let mut a = bus.subscribe(&q, 4).await.expect("subscribe a");
    let mut b = bus.subscribe(&q, 4).await.expect("subscribe b");
    let total = 20;
    for index in 0..total {
        bus.publish(&q, message(&format!("w{index}"))).await.expect("publish");
    }
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < total && Instant::now() < deadline {
        let delivery = tokio::select! {
            Some(d) = a.next() => d,
            Some(d) = b.next() => d,
        };
        assert!(
            seen.insert(delivery.message.message_id.clone()),
            "{} delivered twice",
            delivery.message.message_id
        );
        delivery.settle(Settle::Ack).await.expect("ack");
    }
    assert_eq!(seen.len(), total);
    nothing_arrives(&mut a).await;
}

pub async fn replies_reach_the_requester_by_correlation_id(bus: Bus) {
    let requests = queue("requests");
    let replies = queue("replies");
    let mut responder = bus.subscribe(&requests, 1).await.expect("subscribe");
    let mut requester = bus.subscribe(&replies, 1).await.expect("subscribe");
    let mut request = message("req-1");
    request.reply_to = Some(replies.clone());
    bus.publish(&requests, request).await.expect("publish");

    let received = next(&mut responder).await;
    let reply_to = received.message.reply_to.clone().expect("reply_to");
    let reply = OutgoingMessage {
        message_id: "reply-1".into(),
        correlation_id: received.message.correlation_id.clone(),
        reply_to: None,
        trace: None,
        body: Bytes::from_static(b"{\"done\":true}"),
    };
    bus.publish(&reply_to, reply).await.expect("reply");
    received.settle(Settle::Ack).await.expect("ack");

    let answer = next(&mut requester).await;
    assert_eq!(answer.message.correlation_id.as_deref(), Some("job-req-1"));
    answer.settle(Settle::Ack).await.expect("ack");
}

/// W3C trace context published with a message reaches its consumer, also on a redelivery and in the
/// dead-letter queue, so the consumer's span joins the producer's trace (ADR 0028).
pub async fn trace_context_travels_with_the_message_through_retries_and_dead_lettering(bus: Bus) {
    let q = queue("trace");
    let mut subscription = bus.subscribe(&q, 1).await.expect("subscribe");
    let mut dead = bus.subscribe(&dead_letter_queue(&q), 1).await.expect("subscribe dlq");
    let trace = galley_messaging::TraceHeaders {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        tracestate: Some("galley=1,other=x".into()),
    };
    let mut traced = message("traced");
    traced.trace = Some(trace.clone());
    bus.publish(&q, traced).await.expect("publish");
    bus.publish(&q, message("untraced")).await.expect("publish");

    let first = next(&mut subscription).await;
    assert_eq!(first.message.message_id, "traced");
    assert_eq!(first.message.trace.as_ref(), Some(&trace));
    first.settle(Settle::Requeue).await.expect("requeue");
    let mut seen_untraced = false;
    let retried = loop {
        let delivery = next(&mut subscription).await;
        if delivery.message.message_id == "untraced" {
            assert_eq!(delivery.message.trace, None, "no trace context is made up");
            seen_untraced = true;
            delivery.settle(Settle::Ack).await.expect("ack");
            continue;
        }
        break delivery;
    };
    assert_eq!(retried.message.trace.as_ref(), Some(&trace), "kept on a redelivery");
    retried.settle(Settle::DeadLetter("traced to the end".into())).await.expect("dead-letter");
    let buried = next(&mut dead).await;
    assert_eq!(buried.message.trace.as_ref(), Some(&trace), "kept in the dead-letter queue");
    buried.settle(Settle::Ack).await.expect("ack");
    if !seen_untraced {
        let untraced = next(&mut subscription).await;
        assert_eq!(untraced.message.trace, None, "no trace context is made up");
        untraced.settle(Settle::Ack).await.expect("ack");
    }
}

pub async fn answers_pings(bus: Bus) {
    bus.ping().await.expect("ping");
}

/// Expands into one `#[tokio::test]` per bus contract case; `$make` yields
/// `Option<(Arc<dyn MessageBus>, guard)>` (`None` skips, printed, e.g. without a broker).
#[macro_export]
macro_rules! bus_contract_tests {
    ($make:expr) => {
        $crate::bus_contract_tests!(@cases $make;
            published_messages_are_delivered_with_their_attributes,
            messages_published_before_subscribing_wait_for_a_consumer,
            acked_messages_are_gone,
            requeued_messages_come_back_with_a_higher_attempt,
            unsettled_deliveries_are_delivered_again,
            retry_after_delays_the_redelivery,
            a_short_retry_is_not_held_back_by_a_long_one,
            a_message_that_keeps_coming_back_unsettled_is_dead_lettered_at_the_delivery_limit,
            dead_lettered_messages_leave_the_queue_for_its_dead_letter_queue,
            prefetch_bounds_unsettled_deliveries,
            competing_consumers_each_get_a_share_and_every_message_once,
            replies_reach_the_requester_by_correlation_id,
            trace_context_travels_with_the_message_through_retries_and_dead_lettering,
            answers_pings,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::bus::$case).await;
            }
        )+
    };
}
