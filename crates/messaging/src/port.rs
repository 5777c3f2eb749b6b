//! The message bus port.
//!
//! # Semantics every adapter honours
//!
//! - **Queues are work queues**: each message published to a queue is delivered to one of its
//!   consumers (competing consumers), in roughly publication order.
//! - **Publish is confirmed**: `publish` returns `Ok` only once the bus has the message durably (RabbitMQ
//!   publisher confirms on a durable queue with persistent messages, published `mandatory` so a message
//!   that reached no queue is a failure; SQS `SendMessage` success). A failed
//!   publish may or may not have been stored: publishers retry with the same `message_id`, consumers
//!   deduplicate on it.
//! - **At-least-once delivery with explicit settlement**: a delivery stays owned by its consumer until
//!   it is settled with [`Delivery::settle`]. A delivery dropped unsettled (consumer crash, shutdown) is
//!   delivered again. Consumers settle only after their work is durable, and must be idempotent.
//! - **Delivery limit**: a message that comes back unsettled more than the bus's delivery limit times
//!   (it crashes or hangs every consumer it reaches) is moved to the dead-letter queue instead of being
//!   delivered again, so it is delivered at most `limit + 1` times. Settlements (`Requeue`,
//!   `RetryAfter`) are deliberate and do not count: consumers cap those with `attempt`. The limit is
//!   per bus ([`DEFAULT_DELIVERY_LIMIT`] unless configured).
//! - **Settlements**: `Ack` removes the message; `Requeue` makes it available again at once;
//!   `RetryAfter(d)` makes it available again no earlier than `d` later, whatever the delays of other
//!   messages (RabbitMQ: a delay queue per power-of-two bucket, so `d` is rounded up to at most twice
//!   its length and capped at about 18 h; SQS: a copy sent with `DelaySeconds`, ADR 0020);
//!   `DeadLetter(reason)` moves it to the queue's dead-letter queue ([`dead_letter_queue`]) and it is
//!   never delivered on the main queue again. Poison
//!   messages (undecodable) are dead-lettered, never retried.
//! - **Attempts**: [`ReceivedMessage::attempt`] is 1 on first delivery and grows with each redelivery,
//!   so consumers can cap retries.
//! - **Prefetch**: a subscription holds at most `prefetch` unsettled deliveries; `next` waits for a slot.
//! - **Request/reply**: a requester sets `reply_to` (a queue it consumes) and `correlation_id`; the
//!   responder publishes its reply to `reply_to` with the same `correlation_id`.
//! - **Closing**: after the bus is closed, `next` returns `None` once nothing more can be delivered.
//! - **Trace context**: a message's `trace` (W3C `traceparent`/`tracestate`) reaches its consumer
//!   unchanged, on redeliveries, retries and in the dead-letter queue too (RabbitMQ: AMQP headers; SQS:
//!   message attributes), so the consumer's span joins the producer's trace (ADR 0028).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
pub use galley_platform::TraceHeaders;

/// How many times a message may come back unsettled before it is dead-lettered, unless configured.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or refused the operation; retry later. Message for logs only.
    #[error("message bus unavailable: {0}")]
    Unavailable(String),
    /// The bus was closed by this process (shutdown).
    #[error("message bus closed")]
    Closed,
}

/// A message to publish. The body is opaque to the bus (Galley puts a versioned JSON envelope there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Unique id; consumers deduplicate on it.
    pub message_id: String,
    /// Groups a request with its reply (Galley: the job id).
    pub correlation_id: Option<String>,
    /// Queue the reply should go to.
    pub reply_to: Option<String>,
    /// The publisher's trace context ([`galley_platform::telemetry::inject_current`]), carried beside
    /// the body so consumers need not parse it to join the trace.
    pub trace: Option<TraceHeaders>,
    pub body: Bytes,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// The publisher's trace context, as published.
    pub trace: Option<TraceHeaders>,
    pub body: Bytes,
    /// 1 on first delivery, then one more per redelivery.
    pub attempt: u32,
}

/// How a consumer is done with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    RetryAfter(Duration),
    DeadLetter(String),
}

/// Adapter side of a delivery's settlement.
#[async_trait]
pub trait Settlement: Send + Sync {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), BusError>;
}

/// One delivery: the message and the obligation to settle it.
pub struct Delivery {
    pub message: ReceivedMessage,
    settlement: Box<dyn Settlement>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("message", &self.message).finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(message: ReceivedMessage, settlement: Box<dyn Settlement>) -> Self {
        Self { message, settlement }
    }

    /// Settles the delivery. Dropping it unsettled instead means "deliver again".
    pub async fn settle(self, how: Settle) -> Result<(), BusError> {
        self.settlement.settle(how).await
    }

    /// The message and its settlement apart, so a decorator can wrap the settlement (metrics).
    pub fn into_parts(self) -> (ReceivedMessage, Box<dyn Settlement>) {
        (self.message, self.settlement)
    }
}

/// A consumer's stream of deliveries from one queue.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, waiting for one (and for a free prefetch slot); `None` once the bus is closed.
    async fn next(&mut self) -> Option<Delivery>;
}

#[async_trait]
pub trait MessageBus: Send + Sync + std::fmt::Debug {
    /// Publishes to `queue` and returns once the bus holds the message durably.
    async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError>;
    /// Starts consuming `queue` with at most `prefetch` unsettled deliveries.
    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError>;
    /// Cheap round trip for readiness probes.
    async fn ping(&self) -> Result<(), BusError>;
}

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Readiness of a bus, for `/health/ready`.
#[derive(Debug, Clone)]
pub struct BusHealth(pub std::sync::Arc<dyn MessageBus>);

#[async_trait]
impl galley_platform::HealthCheck for BusHealth {
    fn name(&self) -> &'static str {
        "bus"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }
}
