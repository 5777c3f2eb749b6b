//! `RabbitMqBus`: the message bus port ([`galley_messaging::MessageBus`]) on RabbitMQ (AMQP 0-9-1,
//! `lapin` on tokio).
//!
//! # How each port rule maps onto AMQP
//!
//! - **Work queues**: every logical queue `q` is a durable **quorum** queue `<prefix>q` on the default
//!   exchange (routing key = queue name). Consumers on the same queue compete; the broker hands each
//!   message to one of them.
//! - **Delivery limit**: the work queue has `x-delivery-limit` ([`RabbitMqOptions::delivery_limit`]) and
//!   dead-letters, at least once, into `<prefix>q.dead`: a message returned unsettled more often than
//!   the limit (its consumer keeps crashing) stops looping. Quorum queues count those returns in
//!   `x-delivery-count`.
//! - **Topology**: declared idempotently on first use of `q` (publish or subscribe) on the current
//!   connection: the dead-letter queue `<prefix>q.dead` ([`galley_messaging::dead_letter_queue`],
//!   classic) and the work queue; each delay bucket `<prefix>q.retry.<2^k>s` (classic, queue-level
//!   `x-message-ttl`, dead-lettering back to the work queue) on its first use. A classic work queue
//!   left by an older version makes the declaration fail with `PRECONDITION_FAILED`, reported with the
//!   queue name (see ADR 0016 for the migration). The `prefix` (default [`DEFAULT_PREFIX`])
//!   namespaces a deployment, or a test.
//! - **Confirmed, mandatory publish**: messages are persistent (`delivery_mode` 2) on durable queues,
//!   published `mandatory` on a channel in confirm mode (`confirm.select`); `publish` returns only after
//!   the broker's `basic.ack` for a message it routed. A returned message (no such queue), a
//!   `basic.nack`, a lost connection or a timeout is [`BusError::Unavailable`]: the message may or may
//!   not be stored and the caller retries with the same `message_id`. A return also makes the adapter
//!   declare that queue again on the next publish.
//! - **Attributes**: `message_id`, `correlation_id` and `reply_to` travel as the AMQP properties of the
//!   same names; the attempt number travels in the `x-attempt` header.
//! - **At-least-once, explicit settlement**: consumers use manual acknowledgement. A [`Delivery`] dropped
//!   unsettled sends `basic.nack(requeue=true)` (spawned from `Drop`); if the channel or connection is
//!   gone instead, the broker requeues every unacknowledged message itself.
//! - **Settlements**: `Ack` is `basic.ack`. `Requeue` republishes the message to the work queue with
//!   `x-attempt + 1` (confirmed) and then acks the original, so the attempt count is exact (a plain
//!   `basic.reject(requeue)` would only expose the boolean `redelivered` flag). `RetryAfter(d)`
//!   publishes to the delay bucket of `d` ([`delay_bucket`]: rounded up to a power of two seconds)
//!   with `x-attempt + 1`, then acks; the bucket's TTL dead-letters it back onto the work queue. One
//!   TTL per bucket queue means no long delay ever holds back a shorter one. `DeadLetter(reason)`
//!   publishes to `<prefix>q.dead` with an `x-death-reason` header, then acks. Republishing first and
//!   acking second keeps the message safe if the process dies in between (at worst it is duplicated,
//!   which consumers tolerate by deduplicating on `message_id`).
//! - **Attempts**: `attempt` is the `x-attempt` header (1 when absent), plus one when the broker
//!   redelivers a message whose header was not bumped (nack/requeue after a drop or a crash): the
//!   broker's `x-delivery-count` (quorum queues) when present, else the `redelivered` flag.
//! - **Prefetch**: each subscription has its own channel with `basic.qos(prefetch)`, so the broker never
//!   has more than `prefetch` unacknowledged deliveries out to it. The consumer itself (`basic.consume`)
//!   starts on the first `next`: a subscription that is dropped without ever asking for a message never
//!   takes one from the queue (and so never bumps its `redelivered` flag).
//! - **Request/reply**: `reply_to` names a logical queue; the responder publishes to it like any queue.
//! - **Reconnection**: one connection, shared behind a mutex, and one confirm-mode publishing channel on
//!   it. When the connection is found closed it is reopened with exponential backoff (100 ms doubling to
//!   5 s, a bounded number of tries) and the topology is declared again. A subscription whose channel or
//!   consumer ends (broker restart, queue deleted) subscribes again with the same backoff, declaring
//!   its queue again if the broker lost it; its unsettled deliveries were requeued by the broker.
//! - **Closing**: [`RabbitMqBus::close`] closes the connection; every subscription's `next` then returns
//!   `None` and publishing fails with [`BusError::Closed`].

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use galley_messaging::port::Settlement;
use galley_messaging::{
    BusError, Delivery, MessageBus, OutgoingMessage, ReceivedMessage, Settle, Subscription, TraceHeaders,
    dead_letter_queue,
};
use galley_platform::CredentialsFeed;
use galley_platform::secret::ExposeSecret as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use tokio::sync::watch;

/// The prefix of every queue name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "galley.";
/// Header carrying the attempt number (1 on first publication).
pub const ATTEMPT_HEADER: &str = "x-attempt";
/// Header carrying why a message was dead-lettered.
pub const DEATH_REASON_HEADER: &str = "x-death-reason";
/// W3C trace context headers (ADR 0028), under their HTTP names.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// See [`TRACEPARENT_HEADER`].
pub const TRACESTATE_HEADER: &str = "tracestate";
/// Stem of a queue's delay-bucket queues: `<prefix>q.retry.<seconds>s`.
const RETRY_SUFFIX: &str = ".retry";
/// The longest delay bucket is `2^MAX_BUCKET_EXPONENT` seconds (65 536 s, about 18 h).
pub const MAX_BUCKET_EXPONENT: u32 = 16;
/// How many times a work-queue message may come back unsettled before the broker dead-letters it,
/// unless configured otherwise (see the crate docs, "Delivery limit").
pub const DEFAULT_DELIVERY_LIMIT: u32 = galley_messaging::DEFAULT_DELIVERY_LIMIT;

/// Persistent delivery mode: the broker writes the message to disk on a durable queue.
const PERSISTENT: u8 = 2;
/// First wait between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Connection/channel attempts per operation before it reports `Unavailable` (≈ 6 s of backoff).
const CONNECT_ATTEMPTS: u32 = 6;
/// A TCP connect + AMQP handshake that takes longer than this is treated as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on any single broker round trip (declare, qos, publisher confirm), so nothing hangs forever.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a publish is attempted on a fresh channel after a channel-level failure.
const PUBLISH_ATTEMPTS: u32 = 3;

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// Runs `future` under [`OPERATION_TIMEOUT`], mapping both failure kinds to a log-friendly string.
async fn bounded<T>(what: &str, future: impl Future<Output = Result<T, lapin::Error>>) -> Result<T, String> {
    match tokio::time::timeout(OPERATION_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: timed out after {OPERATION_TIMEOUT:?}")),
    }
}

/// The shared connection and its confirm-mode publishing channel; `None` means "open on next use".
#[derive(Default)]
struct Link {
    connection: Option<Connection>,
    publisher: Option<Channel>,
}

struct Inner {
    /// May contain credentials: never logged nor shown by `Debug`.
    url: BrokerUrl,
    prefix: String,
    delivery_limit: u32,
    link: tokio::sync::Mutex<Link>,
    /// Broker queues declared on the current connection (cleared on reconnect, and for a queue the
    /// broker turned out not to have).
    topology: Mutex<HashSet<String>>,
    /// Every broker queue name this bus ever declared, for cleanup in tests and tooling.
    declared: Mutex<BTreeSet<String>>,
    closed: watch::Sender<bool>,
}

/// The message bus on RabbitMQ. Clones share the connection.
#[derive(Clone)]
pub struct RabbitMqBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitMqBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL is left out on purpose: it usually carries the password.
        f.debug_struct("RabbitMqBus")
            .field("prefix", &self.inner.prefix)
            .field("delivery_limit", &self.inner.delivery_limit)
            .field("closed", &*self.inner.closed.borrow())
            .finish_non_exhaustive()
    }
}

/// How a [`RabbitMqBus`] names and shapes its queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitMqOptions {
    /// Prefix of every broker queue name ([`DEFAULT_PREFIX`] by default).
    pub prefix: String,
    /// `x-delivery-limit` of the work queues ([`DEFAULT_DELIVERY_LIMIT`] by default).
    pub delivery_limit: u32,
}

impl Default for RabbitMqOptions {
    fn default() -> Self {
        Self { prefix: DEFAULT_PREFIX.to_owned(), delivery_limit: DEFAULT_DELIVERY_LIMIT }
    }
}

impl RabbitMqBus {
    /// Connects to `url` (`amqp://user:password@host:5672/%2f`) with queue names prefixed by `prefix`
    /// and the default delivery limit. Fails fast (one try) when the broker is unreachable now; later
    /// outages are healed on use.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let options = RabbitMqOptions { prefix: prefix.to_owned(), ..RabbitMqOptions::default() };
        Self::connect_with(url, options).await
    }

    /// As [`RabbitMqBus::connect`], with every option given.
    pub async fn connect_with(url: &str, options: RabbitMqOptions) -> Result<Self, BusError> {
        Self::open(BrokerUrl::Static(url.to_owned()), options).await
    }

    /// Connects to `url` (which carries no credentials) as the user `credentials` names now, and
    /// follows them: on every change a connection as the new user replaces the current one for what
    /// follows (publishes at once; subscriptions when the old connection is closed, one grace period
    /// later, so deliveries in progress can still be settled; unsettled ones are requeued).
    pub async fn connect_following(
        url: &str,
        options: RabbitMqOptions,
        credentials: CredentialsFeed,
    ) -> Result<Self, BusError> {
        let base =
            url::Url::parse(url).map_err(|error| BusError::Unavailable(format!("bus URL: {error}")))?;
        let mut feed = credentials.clone();
        feed.borrow_and_update();
        let bus = Self::open(BrokerUrl::Following { base, credentials }, options).await?;
        let weak = Arc::downgrade(&bus.inner);
        tokio::spawn(async move {
            while feed.changed().await.is_ok() {
                let Some(inner) = weak.upgrade() else { return };
                if inner.is_closed() {
                    return;
                }
                inner.swap_connection().await;
            }
        });
        Ok(bus)
    }

    async fn open(url: BrokerUrl, options: RabbitMqOptions) -> Result<Self, BusError> {
        let connection = open_connection(&url.current()?).await.map_err(BusError::Unavailable)?;
        let (closed, _) = watch::channel(false);
        let inner = Inner {
            url,
            prefix: options.prefix,
            delivery_limit: options.delivery_limit,
            link: tokio::sync::Mutex::new(Link { connection: Some(connection), publisher: None }),
            topology: Mutex::new(HashSet::new()),
            declared: Mutex::new(BTreeSet::new()),
            closed,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The queue-name prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Every broker queue (full, prefixed name) this bus has declared, sorted: lets tests delete what
    /// they created on a shared broker.
    pub fn declared_queues(&self) -> Vec<String> {
        self.inner.declared.lock().map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }

    /// Closes the bus: subscriptions end (`next` returns `None`), publishing fails with `Closed`, and
    /// the connection is closed, which makes the broker requeue every unsettled delivery.
    pub async fn close(&self) {
        self.inner.closed.send_replace(true);
        let mut link = self.inner.link.lock().await;
        link.publisher = None;
        if let Some(connection) = link.connection.take() {
            let _ = connection.close(200, "galley bus closed".into()).await;
        }
    }
}

async fn open_connection(url: &str) -> Result<Connection, String> {
    let properties = ConnectionProperties::default().with_connection_name("galley".into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        // lapin's error names the host and the cause, never the password.
        Ok(Err(error)) => Err(format!("cannot connect to RabbitMQ: {error}")),
        Err(_) => Err(format!("cannot connect to RabbitMQ: timed out after {CONNECT_TIMEOUT:?}")),
    }
}

/// Where the broker is, and as whom: a URL with its credentials, or one completed by leased
/// credentials that change over time.
enum BrokerUrl {
    Static(String),
    Following { base: url::Url, credentials: CredentialsFeed },
}

impl BrokerUrl {
    fn current(&self) -> Result<String, BusError> {
        match self {
            Self::Static(url) => Ok(url.clone()),
            Self::Following { base, credentials } => {
                let current = credentials.borrow().clone();
                let mut url = base.clone();
                url.set_username(&current.username)
                    .and_then(|()| url.set_password(Some(current.password.expose_secret())))
                    .map_err(|()| BusError::Unavailable("the bus URL cannot carry credentials".into()))?;
                Ok(url.into())
            }
        }
    }
}

/// How long the connection of replaced credentials stays open after a swap.
const SWAP_GRACE: Duration = Duration::from_secs(2);

/// Which kind of channel an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelKind {
    /// The shared confirm-mode channel used for every publish.
    Publisher,
    /// A fresh channel (a subscription's own, or a throwaway one for `ping`).
    Dedicated,
}

impl Inner {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn work_queue(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }

    /// The delay queue of `queue` whose messages all wait `bucket`.
    fn bucket_queue(&self, queue: &str, bucket: Duration) -> String {
        format!("{}{queue}{RETRY_SUFFIX}.{}s", self.prefix, bucket.as_secs())
    }

    fn dead_queue(&self, queue: &str) -> String {
        format!("{}{}", self.prefix, dead_letter_queue(queue))
    }

    /// One try at a channel, reopening the connection if it is closed.
    async fn try_channel(&self, kind: ChannelKind) -> Result<Channel, String> {
        let mut link = self.link.lock().await;
        if self.is_closed() {
            return Err("bus closed".into());
        }
        if kind == ChannelKind::Publisher
            && let Some(publisher) = link.publisher.as_ref().filter(|c| c.status().connected())
        {
            return Ok(publisher.clone());
        }
        if !link.connection.as_ref().is_some_and(|c| c.status().connected()) {
            link.publisher = None;
            link.connection = None;
            // A new connection may face a broker that lost (or never had) the queues: declare again.
            if let Ok(mut topology) = self.topology.lock() {
                topology.clear();
            }
            link.connection = Some(open_connection(&self.url.current().map_err(|e| e.to_string())?).await?);
            tracing::info!(prefix = %self.prefix, "connected to RabbitMQ");
        }
        let Some(connection) = link.connection.as_ref() else {
            return Err("no connection".into());
        };
        let channel = match bounded("channel.open", connection.create_channel()).await {
            Ok(channel) => channel,
            Err(error) => {
                link.connection = None;
                return Err(error);
            }
        };
        if kind == ChannelKind::Publisher {
            bounded("confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
            link.publisher = Some(channel.clone());
        }
        Ok(channel)
    }

    /// Opens a connection as the current (new) credentials' user and makes it the one new channels
    /// come from; the old connection is closed after [`SWAP_GRACE`], which moves the subscriptions
    /// over (they re-subscribe on the new connection). On failure the current connection stays.
    async fn swap_connection(&self) {
        let url = match self.url.current() {
            Ok(url) => url,
            Err(error) => return tracing::warn!(%error, "cannot use the new RabbitMQ credentials"),
        };
        let connection = match open_connection(&url).await {
            Ok(connection) => connection,
            Err(error) => {
                return tracing::warn!(%error, "cannot connect with the new RabbitMQ credentials; keeping the current connection");
            }
        };
        let old = {
            let mut link = self.link.lock().await;
            link.publisher = None;
            link.connection.replace(connection)
        };
        tracing::info!(prefix = %self.prefix, "RabbitMQ connection swapped to new credentials");
        if let Some(old) = old {
            tokio::spawn(async move {
                tokio::time::sleep(SWAP_GRACE).await;
                let _ = old.close(200, "galley credentials rotated".into()).await;
            });
        }
    }

    /// A channel, retrying with exponential backoff (bounded in tries) while the broker is away.
    async fn channel(&self, kind: ChannelKind) -> Result<Channel, BusError> {
        let mut delay = MIN_BACKOFF;
        let mut last_error = String::new();
        for attempt in 1..=CONNECT_ATTEMPTS {
            if self.is_closed() {
                return Err(BusError::Closed);
            }
            match self.try_channel(kind).await {
                Ok(channel) => return Ok(channel),
                Err(error) => {
                    tracing::warn!(attempt, %error, "RabbitMQ channel unavailable");
                    last_error = error;
                }
            }
            if attempt < CONNECT_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
        if self.is_closed() { Err(BusError::Closed) } else { Err(BusError::Unavailable(last_error)) }
    }

    /// Forgets the publishing channel if it is `failed`, so the next publish opens a fresh one.
    async fn drop_publisher(&self, failed: &Channel) {
        let mut link = self.link.lock().await;
        if link.publisher.as_ref().is_some_and(|c| c.id() == failed.id()) {
            link.publisher = None;
        }
    }

    /// Declares the broker queue `name` with `arguments`, once per connection.
    async fn declare(&self, channel: &Channel, name: &str, arguments: FieldTable) -> Result<(), String> {
        if self.topology.lock().map(|t| t.contains(name)).unwrap_or(false) {
            return Ok(());
        }
        // Remember the name before declaring, so a half-declared topology is still cleaned up.
        if let Ok(mut declared) = self.declared.lock() {
            declared.insert(name.to_owned());
        }
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        match bounded("queue.declare", channel.queue_declare(name.into(), durable, arguments)).await {
            Ok(_) => {}
            Err(error) if error.contains("PRECONDITION_FAILED") => {
                return Err(format!(
                    "queue {name} exists with other arguments ({error}); a classic queue from before quorum \
                     queues must be drained and deleted, or another bus.rabbitmq.prefix used (see the README)"
                ));
            }
            Err(error) => return Err(error),
        }
        if let Ok(mut topology) = self.topology.lock() {
            topology.insert(name.to_owned());
        }
        Ok(())
    }

    /// Forgets that `name` is declared, so the next use declares it again (the broker lost it).
    fn forget(&self, name: &str) {
        if let Ok(mut topology) = self.topology.lock() {
            topology.remove(name);
        }
    }

    /// Forgets the work and dead-letter queues of `queue` (a consumer on it was cancelled).
    fn forget_queue(&self, queue: &str) {
        self.forget(&self.work_queue(queue));
        self.forget(&self.dead_queue(queue));
    }

    /// Declares the dead-letter queue and the quorum work queue of `queue`, once per connection.
    async fn ensure_topology(&self, channel: &Channel, queue: &str) -> Result<(), String> {
        let work = self.work_queue(queue);
        let dead = self.dead_queue(queue);
        // The dead-letter queue first: the work queue dead-letters into it.
        self.declare(channel, &dead, FieldTable::default()).await?;
        self.declare(channel, &work, work_queue_arguments(&dead, self.delivery_limit)).await
    }

    /// Declares the delay queue of `queue` for `bucket`, once per connection.
    async fn ensure_bucket(&self, channel: &Channel, queue: &str, bucket: Duration) -> Result<(), String> {
        let name = self.bucket_queue(queue, bucket);
        self.declare(channel, &name, bucket_arguments(&self.work_queue(queue), bucket)).await
    }

    fn routing_key(&self, queue: &str, destination: Destination) -> String {
        match destination {
            Destination::Work => self.work_queue(queue),
            Destination::Dead => self.dead_queue(queue),
            Destination::Delay(bucket) => self.bucket_queue(queue, bucket),
        }
    }

    /// Publishes `body` to `destination` within `queue`'s topology and waits for the publisher
    /// confirm. Publishes are `mandatory`: a message the broker cannot route (the queue was deleted
    /// behind our back) is returned, which is a failure, and the queue is declared again on the next
    /// try. Channel-level failures are retried on a fresh channel a few times: a duplicate is allowed
    /// by the port, a silent loss is not.
    async fn publish_confirmed(
        &self,
        queue: &str,
        destination: Destination,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let routing_key = self.routing_key(queue, destination);
        let routing_key = routing_key.as_str();
        let mut last_error = String::new();
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let channel = self.channel(ChannelKind::Publisher).await?;
            let result = async {
                self.ensure_topology(&channel, queue).await?;
                if let Destination::Delay(bucket) = destination {
                    self.ensure_bucket(&channel, queue, bucket).await?;
                }
                let confirm = bounded(
                    "basic.publish",
                    channel.basic_publish(
                        "".into(),
                        routing_key.into(),
                        BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                        body,
                        properties.clone(),
                    ),
                )
                .await?;
                bounded("publisher confirm", confirm).await
            }
            .await;
            match result {
                Ok(Confirmation::Ack(None)) => return Ok(()),
                Ok(Confirmation::Ack(Some(returned))) => {
                    // Routed nowhere, so stored nowhere: not a success whatever the ack says.
                    self.forget(routing_key);
                    return Err(BusError::Unavailable(format!(
                        "the broker returned the message to {routing_key} as unroutable ({} {})",
                        returned.reply_code, returned.reply_text
                    )));
                }
                // The broker refused to take responsibility for the message: the caller decides.
                Ok(Confirmation::Nack(_)) => {
                    return Err(BusError::Unavailable(format!("broker nacked the message to {routing_key}")));
                }
                Ok(Confirmation::NotRequested) => {
                    // Cannot happen on a confirm-mode channel; treat the channel as broken.
                    last_error = "publisher confirms not enabled on the channel".into();
                }
                Err(error) => last_error = error,
            }
            tracing::warn!(attempt, error = %last_error, routing_key, "publish failed");
            self.drop_publisher(&channel).await;
            if self.is_closed() {
                return Err(BusError::Closed);
            }
        }
        Err(BusError::Unavailable(last_error))
    }
}

/// Where a publish goes within a logical queue's topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Work,
    Dead,
    /// The delay queue of this bucket (see [`delay_bucket`]).
    Delay(Duration),
}

/// The delay bucket a `RetryAfter(delay)` waits in: the shortest `2^k` seconds not shorter than
/// `delay` (so never early, at most twice as long), capped at `2^MAX_BUCKET_EXPONENT` seconds. `None`
/// for no delay at all.
pub fn delay_bucket(delay: Duration) -> Option<Duration> {
    if delay.is_zero() {
        return None;
    }
    let exponent = (0..=MAX_BUCKET_EXPONENT)
        .find(|exponent| Duration::from_secs(1 << exponent) >= delay)
        .unwrap_or(MAX_BUCKET_EXPONENT);
    Some(Duration::from_secs(1 << exponent))
}

/// A quorum work queue that dead-letters (at least once) into `dead` after `delivery_limit` returns.
fn work_queue_arguments(dead: &str, delivery_limit: u32) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(delivery_limit)));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dead.into()));
    // At-least-once dead-lettering keeps a message until the dead-letter queue confirms it; RabbitMQ
    // requires `reject-publish` overflow for it.
    arguments.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    arguments
}

/// A classic delay queue whose every message waits `bucket` then goes back to `work`. One TTL per
/// queue means the head always expires first, so no long delay holds back a shorter one.
fn bucket_arguments(work: &str, bucket: Duration) -> FieldTable {
    let millis = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX);
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(millis));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(work.into()));
    arguments
}

/// AMQP properties of a (re)published message; `headers` carries `x-attempt` and friends.
fn properties(
    message_id: &str,
    correlation_id: Option<&str>,
    reply_to: Option<&str>,
    headers: FieldTable,
) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message_id.into())
        .with_headers(headers);
    if let Some(correlation_id) = correlation_id {
        properties = properties.with_correlation_id(correlation_id.into());
    }
    if let Some(reply_to) = reply_to {
        properties = properties.with_reply_to(reply_to.into());
    }
    properties
}

fn attempt_headers(attempt: u32) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt)));
    headers
}

/// `headers` with the W3C trace context added (as long strings, as other AMQP clients' propagators
/// write them), so it survives every republish (retries, dead-lettering) like the message id does.
fn with_trace(mut headers: FieldTable, trace: Option<&TraceHeaders>) -> FieldTable {
    if let Some(trace) = trace {
        headers.insert(TRACEPARENT_HEADER.into(), AMQPValue::LongString(trace.traceparent.as_str().into()));
        if let Some(state) = &trace.tracestate {
            headers.insert(TRACESTATE_HEADER.into(), AMQPValue::LongString(state.as_str().into()));
        }
    }
    headers
}

/// A text header, whichever string type the publisher chose.
fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

fn trace_of(properties: &BasicProperties) -> Option<TraceHeaders> {
    let headers = properties.headers().as_ref()?;
    TraceHeaders::from_values(
        header_text(headers, TRACEPARENT_HEADER).as_deref(),
        header_text(headers, TRACESTATE_HEADER).as_deref(),
    )
}

/// An integer header value of any AMQP integer width, as `u32` (saturating; negatives are ignored).
fn header_u32(headers: &FieldTable, name: &str) -> Option<u32> {
    let value = headers.inner().get(&ShortString::from(name))?;
    let number: i128 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        _ => return None,
    };
    if number < 0 { None } else { Some(u32::try_from(number).unwrap_or(u32::MAX)) }
}

/// The attempt number of a delivery; see the crate docs ("Attempts").
fn attempt_of(properties: &BasicProperties, redelivered: bool) -> u32 {
    let headers = properties.headers().as_ref();
    let published = headers.and_then(|h| header_u32(h, ATTEMPT_HEADER)).unwrap_or(1).max(1);
    let redeliveries = match headers.and_then(|h| header_u32(h, "x-delivery-count")) {
        Some(count) => count,
        None => u32::from(redelivered),
    };
    published.saturating_add(redeliveries)
}

fn received(delivery: &lapin::message::Delivery) -> ReceivedMessage {
    let properties = &delivery.properties;
    let text = |value: &Option<ShortString>| value.as_ref().map(|s| s.as_str().to_owned());
    ReceivedMessage {
        message_id: text(properties.message_id()).unwrap_or_default(),
        correlation_id: text(properties.correlation_id()),
        reply_to: text(properties.reply_to()),
        trace: trace_of(properties),
        body: Bytes::copy_from_slice(&delivery.data),
        attempt: attempt_of(properties, delivery.redelivered),
    }
}

#[async_trait]
impl MessageBus for RabbitMqBus {
    async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        let properties = properties(
            &message.message_id,
            message.correlation_id.as_deref(),
            message.reply_to.as_deref(),
            with_trace(attempt_headers(1), message.trace.as_ref()),
        );
        self.inner.publish_confirmed(queue, Destination::Work, &message.body, properties).await
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        let mut subscription = RabbitMqSubscription {
            bus: Arc::clone(&self.inner),
            queue: queue.to_owned(),
            prefetch: prefetch.max(1),
            channel: None,
            consumer: None,
            starting: None,
            closed: self.inner.closed.subscribe(),
        };
        // Channel, topology and QoS now, so a broken broker surfaces at subscribe time.
        subscription.channel = Some(open_consumer_channel(&self.inner, queue, subscription.prefetch).await?);
        Ok(Box::new(subscription))
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        // Opening (and dropping, which closes) a channel is a real round trip on the connection.
        self.inner.try_channel(ChannelKind::Dedicated).await.map(drop).map_err(BusError::Unavailable)
    }
}

/// One consumer on its own channel (own prefetch window); re-subscribes after losing the channel.
struct RabbitMqSubscription {
    bus: Arc<Inner>,
    queue: String,
    prefetch: u16,
    /// Opened with QoS set; `None` after a failure, reopened by `next`.
    channel: Option<Channel>,
    /// Started by the first `next` (see the crate docs, "Prefetch").
    consumer: Option<Consumer>,
    /// A consumer start in flight (see `ensure_consumer`).
    starting: Option<tokio::task::JoinHandle<Result<(Channel, Consumer), BusError>>>,
    closed: watch::Receiver<bool>,
}

/// A subscription's own channel: topology declared, QoS set to its prefetch.
async fn open_consumer_channel(bus: &Inner, queue: &str, prefetch: u16) -> Result<Channel, BusError> {
    let channel = bus.channel(ChannelKind::Dedicated).await?;
    bus.ensure_topology(&channel, queue).await.map_err(unavailable)?;
    bounded("basic.qos", channel.basic_qos(prefetch, BasicQosOptions::default()))
        .await
        .map_err(unavailable)?;
    Ok(channel)
}

/// Starts consuming `queue` on `channel` if it is still open, else on a fresh one.
async fn start_consumer(
    bus: Arc<Inner>,
    queue: String,
    prefetch: u16,
    channel: Option<Channel>,
) -> Result<(Channel, Consumer), BusError> {
    let channel = match channel.filter(|c| c.status().connected()) {
        Some(channel) => channel,
        None => open_consumer_channel(&bus, &queue, prefetch).await?,
    };
    let consumer = bounded(
        "basic.consume",
        channel.basic_consume(
            bus.work_queue(&queue).as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .map_err(|error| {
        // Most often the queue is gone (404): declare it again on the next try.
        bus.forget_queue(&queue);
        unavailable(error)
    })?;
    Ok((channel, consumer))
}

impl RabbitMqSubscription {
    /// Makes sure a consumer is running, opening a channel first if needed.
    ///
    /// The start runs in a spawned task whose handle is kept: `next` may be cancelled (callers
    /// `select!` over several subscriptions), and a `basic.consume` abandoned half-way would leave a
    /// consumer on the broker that nobody reads, holding up to `prefetch` messages unacknowledged.
    async fn ensure_consumer(&mut self) -> Result<(), BusError> {
        if self.consumer.is_some() {
            return Ok(());
        }
        if self.starting.is_none() {
            let bus = Arc::clone(&self.bus);
            let (queue, prefetch, channel) = (self.queue.clone(), self.prefetch, self.channel.take());
            self.starting = Some(tokio::spawn(start_consumer(bus, queue, prefetch, channel)));
        }
        let Some(starting) = self.starting.as_mut() else {
            return Err(BusError::Unavailable("consumer start lost".into()));
        };
        let started = starting.await;
        self.starting = None;
        let (channel, consumer) = started.map_err(unavailable)??;
        self.channel = Some(channel);
        self.consumer = Some(consumer);
        Ok(())
    }

    fn lose_channel(&mut self) {
        // Dropping the consumer and the last channel handle closes the channel; the broker requeues
        // whatever it had delivered here and not yet settled.
        self.consumer = None;
        self.channel = None;
    }
}

#[async_trait]
impl Subscription for RabbitMqSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let mut delay = MIN_BACKOFF;
        loop {
            if *self.closed.borrow() {
                return None;
            }
            match self.ensure_consumer().await {
                Ok(()) => {}
                Err(BusError::Closed) => return None,
                Err(error) => {
                    tracing::warn!(queue = %self.queue, %error, "re-subscribing after a backoff");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = self.closed.wait_for(|closed| *closed) => return None,
                    }
                    delay = (delay * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let consumer = self.consumer.as_mut()?;
            let item = tokio::select! {
                item = consumer.next() => item,
                _ = self.closed.wait_for(|closed| *closed) => return None,
            };
            match item {
                Some(Ok(delivery)) => {
                    let message = received(&delivery);
                    let settlement = RabbitMqSettlement {
                        bus: Arc::clone(&self.bus),
                        queue: self.queue.clone(),
                        message: message.clone(),
                        acker: Some(delivery.acker),
                    };
                    return Some(Delivery::new(message, Box::new(settlement)));
                }
                Some(Err(error)) => {
                    tracing::warn!(queue = %self.queue, %error, "consumer failed; re-subscribing");
                    self.lose_channel();
                }
                None => {
                    // The broker cancels a consumer whose queue was deleted: declare it again.
                    tracing::warn!(queue = %self.queue, "consumer cancelled; re-subscribing");
                    self.bus.forget_queue(&self.queue);
                    self.lose_channel();
                }
            }
        }
    }
}

/// Settles one delivery. Until settled it holds the delivery's acker; dropped unsettled, it nacks with
/// requeue so the message is delivered again.
struct RabbitMqSettlement {
    bus: Arc<Inner>,
    queue: String,
    message: ReceivedMessage,
    /// `Some` until the delivery is acked (or handed back by `Drop`).
    acker: Option<Acker>,
}

impl RabbitMqSettlement {
    /// Republishes the message (confirmed) to `destination` with the given headers; the message id
    /// and the other properties stay as they were.
    async fn republish(&self, destination: Destination, headers: FieldTable) -> Result<(), BusError> {
        let message = &self.message;
        let properties = properties(
            &message.message_id,
            message.correlation_id.as_deref(),
            message.reply_to.as_deref(),
            with_trace(headers, message.trace.as_ref()),
        );
        self.bus.publish_confirmed(&self.queue, destination, &message.body, properties).await
    }

    async fn ack(&mut self) -> Result<(), BusError> {
        let Some(acker) = self.acker.take() else { return Ok(()) };
        // If the ack is lost with the channel, the broker redelivers: a duplicate, never a loss.
        acker.ack(BasicAckOptions::default()).await.map(drop).map_err(unavailable)
    }
}

#[async_trait]
impl Settlement for RabbitMqSettlement {
    async fn settle(mut self: Box<Self>, how: Settle) -> Result<(), BusError> {
        let next_attempt = self.message.attempt.saturating_add(1);
        // On a failed republish we return the error with the acker still held: dropping `self` then
        // nacks with requeue, so the message is delivered again rather than lost.
        match how {
            Settle::Ack => {}
            Settle::Requeue => {
                self.republish(Destination::Work, attempt_headers(next_attempt)).await?;
            }
            Settle::RetryAfter(delay) => {
                let destination = delay_bucket(delay).map_or(Destination::Work, Destination::Delay);
                if delay > Duration::from_secs(1 << MAX_BUCKET_EXPONENT) {
                    tracing::warn!(?delay, "retry delay longer than the longest delay bucket; shortened");
                }
                self.republish(destination, attempt_headers(next_attempt)).await?;
            }
            Settle::DeadLetter(reason) => {
                tracing::warn!(message_id = %self.message.message_id, %reason, "message dead-lettered");
                let mut headers = attempt_headers(self.message.attempt);
                headers.insert(DEATH_REASON_HEADER.into(), AMQPValue::LongString(reason.as_str().into()));
                self.republish(Destination::Dead, headers).await?;
            }
        }
        self.ack().await
    }
}

impl Drop for RabbitMqSettlement {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else { return };
        // Without a runtime (process tearing down) the channel closes and the broker requeues anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let requeue = BasicNackOptions { multiple: false, requeue: true };
                if let Err(error) = acker.nack(requeue).await {
                    tracing::debug!(%error, "nack of a dropped delivery failed; the broker requeues it");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_defaults_to_one_and_counts_unbumped_redeliveries() {
        let plain = BasicProperties::default();
        assert_eq!(attempt_of(&plain, false), 1);
        assert_eq!(attempt_of(&plain, true), 2);
        let bumped = BasicProperties::default().with_headers(attempt_headers(3));
        assert_eq!(attempt_of(&bumped, false), 3);
        assert_eq!(attempt_of(&bumped, true), 4);
        let mut quorum = attempt_headers(2);
        quorum.insert("x-delivery-count".into(), AMQPValue::LongInt(2));
        assert_eq!(attempt_of(&BasicProperties::default().with_headers(quorum), true), 4);
    }

    #[test]
    fn delays_round_up_to_a_power_of_two_seconds_and_are_capped() {
        let secs = Duration::from_secs;
        assert_eq!(delay_bucket(Duration::ZERO), None);
        assert_eq!(delay_bucket(Duration::from_millis(1)), Some(secs(1)));
        assert_eq!(delay_bucket(Duration::from_millis(800)), Some(secs(1)));
        assert_eq!(delay_bucket(secs(2)), Some(secs(2)));
        assert_eq!(delay_bucket(Duration::from_millis(2001)), Some(secs(4)));
        assert_eq!(delay_bucket(secs(20 * 60)), Some(secs(2048)));
        assert_eq!(delay_bucket(secs(1 << MAX_BUCKET_EXPONENT)), Some(secs(65_536)));
        assert_eq!(delay_bucket(secs(1 << 20)), Some(secs(65_536)));
    }

    #[test]
    fn work_queues_are_quorum_queues_with_the_delivery_limit() {
        let arguments = work_queue_arguments("galley.q.dead", 7);
        let get = |name: &str| arguments.inner().get(&ShortString::from(name)).cloned();
        assert_eq!(get("x-queue-type"), Some(AMQPValue::LongString("quorum".into())));
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(7)));
        assert_eq!(get("x-dead-letter-routing-key"), Some(AMQPValue::LongString("galley.q.dead".into())));
    }
}
