//! Measuring decorators around ports, so adapters and use cases stay unaware of metrics (ADR 0026).
//!
//! - [`MeteredCache`]: `galley_cache_operations_total{operation, result}` (`hit`, `miss`, `ok`,
//!   `error`) around any [`Cache`].
//! - [`MeteredBus`]: around any [`MessageBus`]: `galley_bus_published_total{queue, result}`,
//!   `galley_bus_publish_duration_seconds{queue}` (with RabbitMQ the publish returns at the broker's
//!   confirm, so this is the publish-confirm latency), `galley_bus_consumed_total{queue}`,
//!   `galley_bus_settled_total{queue, outcome}` (`acked`, `requeued`, `retried`, `dead_lettered`) and
//!   `galley_bus_consumer_in_flight{queue}` (delivered, not yet settled).
//!
//! - [`store`]: every repository port of the document store, timed per repository and operation
//!   ([`DocumentStore::instrumented`](crate::DocumentStore::instrumented)).
//! - [`leases`]: renewals and replacements of leased credentials, around the secrets backend.
//!
//! Labels are queue names (one per message type and reply queue, fixed by configuration), never
//! message ids. Handles are registered once per decorator or per queue, never per message.

pub mod leases;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use galley_kernel::{Cache, CacheError};
use galley_messaging::port::Settlement;
use galley_messaging::{BusError, Delivery, MessageBus, OutgoingMessage, Settle, Subscription};
use galley_platform::Metrics;
use metrics::{Counter, Gauge, Unit};

/// A [`Cache`] that counts hits, misses and errors.
#[derive(Debug)]
pub struct MeteredCache {
    inner: Arc<dyn Cache>,
    hit: Counter,
    miss: Counter,
    read_error: Counter,
    write_ok: Counter,
    write_error: Counter,
}

impl MeteredCache {
    pub const OPERATIONS: &'static str = "galley_cache_operations_total";

    /// `inner` measured into `metrics`; with metrics off, `inner` itself.
    pub fn wrap(inner: Arc<dyn Cache>, metrics: &Metrics) -> Arc<dyn Cache> {
        if !metrics.is_enabled() {
            return inner;
        }
        metrics.describe_counter(Self::OPERATIONS, Unit::Count, "Cache reads (hit, miss, error) and writes.");
        let counter = |operation: &'static str, result: &'static str| {
            metrics.counter(Self::OPERATIONS, &[("operation", operation.into()), ("result", result.into())])
        };
        Arc::new(Self {
            hit: counter("get", "hit"),
            miss: counter("get", "miss"),
            read_error: counter("get", "error"),
            write_ok: counter("write", "ok"),
            write_error: counter("write", "error"),
            inner,
        })
    }

    fn read<T>(&self, result: &Result<Option<T>, CacheError>) {
        match result {
            Ok(Some(_)) => self.hit.increment(1),
            Ok(None) => self.miss.increment(1),
            Err(_) => self.read_error.increment(1),
        }
    }

    fn write<T>(&self, result: &Result<T, CacheError>) {
        match result {
            Ok(_) => self.write_ok.increment(1),
            Err(_) => self.write_error.increment(1),
        }
    }
}

#[async_trait]
impl Cache for MeteredCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let result = self.inner.get(key).await;
        self.read(&result);
        result
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let result = self.inner.set(key, value, ttl).await;
        self.write(&result);
        result
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let result = self.inner.delete(key).await;
        self.write(&result);
        result
    }

    async fn increment(&self, key: &str) -> Result<u64, CacheError> {
        let result = self.inner.increment(key).await;
        self.write(&result);
        result
    }

    async fn counter(&self, key: &str) -> Result<u64, CacheError> {
        self.inner.counter(key).await
    }

    async fn get_with_counter(&self, counter: &str, key: &str) -> Result<(u64, Option<Bytes>), CacheError> {
        let result = self.inner.get_with_counter(counter, key).await;
        match &result {
            Ok((_, Some(_))) => self.hit.increment(1),
            Ok((_, None)) => self.miss.increment(1),
            Err(_) => self.read_error.increment(1),
        }
        result
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.inner.ping().await
    }
}

/// A [`MessageBus`] that counts what goes through it, per queue.
#[derive(Debug)]
pub struct MeteredBus {
    inner: Arc<dyn MessageBus>,
    metrics: Metrics,
}

impl MeteredBus {
    pub const PUBLISHED: &'static str = "galley_bus_published_total";
    pub const PUBLISH_DURATION: &'static str = "galley_bus_publish_duration_seconds";
    pub const CONSUMED: &'static str = "galley_bus_consumed_total";
    pub const SETTLED: &'static str = "galley_bus_settled_total";
    pub const IN_FLIGHT: &'static str = "galley_bus_consumer_in_flight";

    /// `inner` measured into `metrics`; with metrics off, `inner` itself.
    pub fn wrap(inner: Arc<dyn MessageBus>, metrics: &Metrics) -> Arc<dyn MessageBus> {
        if !metrics.is_enabled() {
            return inner;
        }
        metrics.describe_counter(Self::PUBLISHED, Unit::Count, "Messages published (ok) or refused (error).");
        metrics.describe_histogram(
            Self::PUBLISH_DURATION,
            Unit::Seconds,
            "Time to publish; on RabbitMQ, until the broker confirms.",
        );
        metrics.describe_counter(Self::CONSUMED, Unit::Count, "Messages delivered to a consumer.");
        metrics.describe_counter(Self::SETTLED, Unit::Count, "Deliveries settled, by outcome.");
        metrics.describe_gauge(Self::IN_FLIGHT, Unit::Count, "Deliveries being processed.");
        Arc::new(Self { inner, metrics: metrics.clone() })
    }
}

#[async_trait]
impl MessageBus for MeteredBus {
    async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError> {
        let started = Instant::now();
        let result = self.inner.publish(queue, message).await;
        // Publishes are rare next to requests (one per fetch request and reply): registering the
        // handles here, a registry lookup, costs less than a per-queue cache would be worth.
        let queue_label = queue.to_owned();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .counter(Self::PUBLISHED, &[("queue", queue_label.clone().into()), ("result", outcome.into())])
            .increment(1);
        self.metrics
            .histogram(Self::PUBLISH_DURATION, &[("queue", queue_label.into())])
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError> {
        let inner = self.inner.subscribe(queue, prefetch).await?;
        Ok(Box::new(MeteredSubscription {
            inner,
            handles: Arc::new(QueueHandles::new(&self.metrics, queue)),
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.inner.ping().await
    }
}

#[derive(Debug)]
struct QueueHandles {
    consumed: Counter,
    in_flight: Gauge,
    acked: Counter,
    requeued: Counter,
    retried: Counter,
    dead_lettered: Counter,
}

impl QueueHandles {
    fn new(metrics: &Metrics, queue: &str) -> Self {
        let settled = |outcome: &'static str| {
            metrics.counter(
                MeteredBus::SETTLED,
                &[("queue", queue.to_owned().into()), ("outcome", outcome.into())],
            )
        };
        Self {
            consumed: metrics.counter(MeteredBus::CONSUMED, &[("queue", queue.to_owned().into())]),
            in_flight: metrics.gauge(MeteredBus::IN_FLIGHT, &[("queue", queue.to_owned().into())]),
            acked: settled("acked"),
            requeued: settled("requeued"),
            retried: settled("retried"),
            dead_lettered: settled("dead_lettered"),
        }
    }
}

struct MeteredSubscription {
    inner: Box<dyn Subscription>,
    handles: Arc<QueueHandles>,
}

#[async_trait]
impl Subscription for MeteredSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.inner.next().await?;
        self.handles.consumed.increment(1);
        self.handles.in_flight.increment(1.0);
        let (message, settlement) = delivery.into_parts();
        let settlement = MeteredSettlement { inner: Some(settlement), handles: Arc::clone(&self.handles) };
        Some(Delivery::new(message, Box::new(settlement)))
    }
}

/// Counts the settlement and leaves the in-flight gauge when settled or dropped unsettled (which the
/// adapters treat as a requeue).
struct MeteredSettlement {
    inner: Option<Box<dyn Settlement>>,
    handles: Arc<QueueHandles>,
}

impl Drop for MeteredSettlement {
    fn drop(&mut self) {
        self.handles.in_flight.decrement(1.0);
    }
}

#[async_trait]
impl Settlement for MeteredSettlement {
    async fn settle(mut self: Box<Self>, how: Settle) -> Result<(), BusError> {
        let counter = match &how {
            Settle::Ack => &self.handles.acked,
            Settle::Requeue => &self.handles.requeued,
            Settle::RetryAfter(_) => &self.handles.retried,
            Settle::DeadLetter(_) => &self.handles.dead_lettered,
        };
        counter.increment(1);
        match self.inner.take() {
            Some(inner) => inner.settle(how).await,
            None => Err(BusError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use galley_messaging::InProcessBus;

    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(galley_platform::BuildInfo { service: "test", version: "0" })
    }

    #[tokio::test]
    async fn bus_counts_published_consumed_and_settled_per_queue() {
        let metrics = metrics();
        let bus = MeteredBus::wrap(Arc::new(InProcessBus::new()), &metrics);
        let mut subscription = bus.subscribe("jobs", 4).await.expect("subscribed");
        for n in 0..2 {
            let message = OutgoingMessage {
                message_id: format!("m{n}"),
                correlation_id: None,
                reply_to: None,
                trace: None,
                body: Bytes::from_static(b"{}"),
            };
            bus.publish("jobs", message).await.expect("published");
        }
        let first = subscription.next().await.expect("delivery");
        let second = subscription.next().await.expect("delivery");
        let rendered = metrics.render().expect("enabled");
        assert!(rendered.contains("galley_bus_consumer_in_flight{queue=\"jobs\"} 2"), "{rendered}");
        first.settle(Settle::Ack).await.expect("acked");
        second.settle(Settle::DeadLetter("bad".into())).await.expect("dead-lettered");
        let rendered = metrics.render().expect("enabled");
        for line in [
            "galley_bus_published_total{queue=\"jobs\",result=\"ok\"} 2",
            "galley_bus_consumed_total{queue=\"jobs\"} 2",
            "galley_bus_settled_total{queue=\"jobs\",outcome=\"acked\"} 1",
            "galley_bus_settled_total{queue=\"jobs\",outcome=\"dead_lettered\"} 1",
            "galley_bus_consumer_in_flight{queue=\"jobs\"} 0",
            "galley_bus_publish_duration_seconds_count{queue=\"jobs\"} 2",
        ] {
            assert!(rendered.contains(line), "missing {line}:\n{rendered}");
        }
    }

    #[tokio::test]
    async fn cache_counts_hits_and_misses() {
        let metrics = metrics();
        let cache = MeteredCache::wrap(Arc::new(galley_embedded::MemoryCache::new(100)), &metrics);
        cache.set("k", Bytes::from_static(b"v"), Duration::from_secs(60)).await.expect("set");
        assert!(cache.get("k").await.expect("get").is_some());
        assert!(cache.get("other").await.expect("get").is_none());
        assert!(cache.get_with_counter("gen", "k").await.expect("get").1.is_some());
        let rendered = metrics.render().expect("enabled");
        for line in [
            "galley_cache_operations_total{operation=\"get\",result=\"hit\"} 2",
            "galley_cache_operations_total{operation=\"get\",result=\"miss\"} 1",
            "galley_cache_operations_total{operation=\"write\",result=\"ok\"} 1",
        ] {
            assert!(rendered.contains(line), "missing {line}:\n{rendered}");
        }
    }
}
