//! `SqsBus`: the message bus port ([`galley_messaging::MessageBus`]) on AWS SQS (`aws-sdk-sqs`, standard
//! queues), configured through the shared [`galley_aws`] SDK settings.
//!
//! Module map: [`names`] (logical queue → SQS queue name), [`wire`] (message attributes and body
//! encoding), `batch` (concurrent sends and deletes on a queue coalesced into batch calls), this file
//! (the bus, its subscriptions and settlements). Decisions are in ADR 0020.
//!
//! # How each port rule maps onto SQS
//!
//! - **Work queues**: every logical queue `q` is the standard queue [`names::queue_name`]`(prefix, q)`:
//!   the prefix plus `q` with dots as dashes (`rss.fetch.requested` → `galley-rss-fetch-requested`).
//!   Consumers on one queue compete; SQS hands each message to one of them.
//! - **Topology**: resolved on first use of `q` (publish or subscribe) and cached: with
//!   `create_queues` the dead-letter queue `<name>-dead` (retention 14 days) and then the work queue
//!   (visibility timeout, redrive policy to the dead-letter queue) are created idempotently; without
//!   it both are only looked up, and a missing one is an error naming it. A logical queue that is
//!   itself a dead-letter queue ([`galley_messaging::dead_letter_queue`], `q.dead`) maps to the same
//!   `<name>-dead` queue.
//! - **Confirmed publish**: a publish returns once SQS has stored the message redundantly (its entry
//!   of a `SendMessageBatch` succeeded: concurrent publishes and re-sent copies to one queue share
//!   batch calls, and so do acknowledgements, `DeleteMessageBatch`); a failure or timeout is
//!   [`BusError::Unavailable`] and the caller retries with the same `message_id`.
//! - **Attributes** ([`wire`]): `message_id`, `correlation_id`, `reply_to`, `attempt`, and, read from a
//!   Galley envelope body, `type`, `schema_version`, `traceparent` and `tracestate`. Attributes this
//!   adapter does not know are kept on every copy it re-sends, so trace context set by a producer
//!   survives retries.
//! - **Delivery limit**: the redrive policy's `maxReceiveCount` is `max_receives`, so a message
//!   received that many times without being settled moves to the dead-letter queue on the next
//!   receive: the port's delivery limit is `max_receives - 1`.
//! - **At-least-once, explicit settlement**: a received message stays invisible to other consumers
//!   while its delivery is unsettled: a heartbeat task extends its visibility every half visibility
//!   timeout (so a slow job is never handed to a second worker while its worker lives) and stops on
//!   settlement. A [`Delivery`] dropped unsettled sets its visibility to 0 (spawned from `Drop`), so
//!   it is delivered again at once; a crashed process stops heartbeating and the message comes back
//!   after the visibility timeout.
//! - **Settlements**: `Ack` deletes the message. `Requeue`, `RetryAfter(d)` and `DeadLetter(reason)`
//!   send a copy (same body and attributes, `attempt + 1` for the first two; the death reason for the
//!   third, to the dead-letter queue) and then delete the original: a fresh copy starts with a receive
//!   count of 1, so deliberate settlements never count toward the delivery limit (changing the
//!   visibility instead would). `RetryAfter` delays the copy with `DelaySeconds` (whole seconds,
//!   rounded up, each message its own delay); delays beyond SQS's 15-minute maximum are chained: the
//!   copy carries a `not_before` time and a consumer that receives it early re-sends it for the rest
//!   of the wait without handing it out. Copy first, delete second: a crash in between duplicates,
//!   never loses, and consumers deduplicate on `message_id`.
//! - **Poison**: a message whose body cannot be decoded (bad base64) is moved to the dead-letter
//!   queue at once by the adapter; consumers dead-letter what they cannot parse themselves.
//! - **Attempts**: the `attempt` attribute (1 when absent) plus SQS's `ApproximateReceiveCount` - 1.
//! - **Prefetch**: each subscription has `prefetch` permits; its poller only receives (long polling,
//!   `WaitTimeSeconds`, at most 10 per call) as many messages as it has free permits, and a permit is
//!   released when its delivery is settled or dropped. The poller starts on the first `next`, so a
//!   subscription dropped without asking never takes a message; `next` reads a channel, so it is
//!   cancel-safe (callers `select!` over subscriptions).
//! - **Request/reply**: `reply_to` names a logical queue; the responder publishes to it like any other.
//! - **Closing**: [`SqsBus::close`] ends every subscription (`next` returns `None`) and makes publishing
//!   fail with [`BusError::Closed`]; unsettled deliveries become visible again as they are dropped.

mod batch;
pub mod names;
pub mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use galley_aws::AwsClientSettings;
use galley_messaging::port::Settlement;
use galley_messaging::{
    BusError, Delivery, MessageBus, OutgoingMessage, ReceivedMessage, Settle, Subscription,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::wire::Attributes;

/// The prefix of every queue name unless configured otherwise.
pub const DEFAULT_QUEUE_PREFIX: &str = "galley-";
/// How long a received message stays invisible without a heartbeat, unless configured.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a receive waits for a message (long polling), unless configured. SQS's maximum.
pub const DEFAULT_WAIT_TIME: Duration = Duration::from_secs(20);
/// The redrive policy's `maxReceiveCount` unless configured: the port's default delivery limit + 1.
pub const DEFAULT_MAX_RECEIVES: u32 = galley_messaging::DEFAULT_DELIVERY_LIMIT + 1;
/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS's longest long-poll wait.
const MAX_WAIT_TIME: Duration = Duration::from_secs(20);
/// SQS's bounds on `maxReceiveCount`.
const MAX_RECEIVES_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
/// SQS hands out at most this many messages per receive, and takes at most this many per batch.
const MAX_BATCH: usize = 10;
/// Dead-letter queues keep messages as long as SQS allows (14 days), for inspection.
const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;
/// Bound on any single SQS call besides a receive (which also waits `wait_time`).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before receiving again after a failed receive.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between failed receives.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How an [`SqsBus`] names its queues and treats its messages (`bus.sqs`, besides region/endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsOptions {
    /// Prefix of every SQS queue name ([`DEFAULT_QUEUE_PREFIX`] by default).
    pub queue_prefix: String,
    /// Visibility timeout of received messages; the heartbeat extends it every half of it.
    pub visibility_timeout: Duration,
    /// Long-poll wait of each receive (at most 20 s).
    pub wait_time: Duration,
    /// `maxReceiveCount` of the redrive policy (delivery limit + 1).
    pub max_receives: u32,
    /// Create the queues at first use (`true`), or only look them up where infrastructure code owns
    /// them (`false`).
    pub create_queues: bool,
}

impl Default for SqsOptions {
    fn default() -> Self {
        Self {
            queue_prefix: DEFAULT_QUEUE_PREFIX.to_owned(),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            wait_time: DEFAULT_WAIT_TIME,
            max_receives: DEFAULT_MAX_RECEIVES,
            create_queues: true,
        }
    }
}

impl SqsOptions {
    /// Checks the options against SQS's limits, naming the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        names::validate_prefix(&self.queue_prefix)?;
        if self.visibility_timeout < Duration::from_secs(1)
            || self.visibility_timeout > MAX_VISIBILITY_TIMEOUT
        {
            return Err(format!(
                "bus.sqs.visibility_timeout must be between 1 s and 12 h, not {:?}",
                self.visibility_timeout
            ));
        }
        if self.wait_time > MAX_WAIT_TIME {
            return Err(format!("bus.sqs.wait_time must be at most 20 s, not {:?}", self.wait_time));
        }
        if !MAX_RECEIVES_RANGE.contains(&self.max_receives) {
            return Err(format!(
                "bus.sqs.max_receives must be between 1 and 1000, not {}",
                self.max_receives
            ));
        }
        Ok(())
    }

    fn visibility_secs(&self) -> i32 {
        secs_i32(self.visibility_timeout)
    }

    /// How often an unsettled delivery's visibility is extended.
    fn heartbeat_interval(&self) -> Duration {
        (self.visibility_timeout / 2).max(Duration::from_millis(500))
    }
}

/// Whole seconds, rounded up, as SQS's `i32` fields want them (saturating).
fn secs_i32(duration: Duration) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

fn unavailable(what: &str, error: impl std::error::Error) -> BusError {
    BusError::Unavailable(format!("{what}: {}", DisplayErrorContext(error)))
}

/// Runs one SQS call under `limit`, mapping failure and timeout to [`BusError::Unavailable`].
async fn bounded<T, E: std::error::Error>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(what, error)),
        Err(_) => Err(BusError::Unavailable(format!("{what}: timed out after {limit:?}"))),
    }
}

/// The SQS queues behind one logical queue.
#[derive(Debug)]
struct QueueUrls {
    /// Where the logical queue's messages are published and received.
    work: String,
    /// Where they are dead-lettered (for a dead-letter queue: itself).
    dead: String,
    /// Batched sends to and deletes from `work`.
    batches: batch::QueueBatches,
}

impl QueueUrls {
    fn new(client: &Client, work: String, dead: String) -> Self {
        let batches = batch::QueueBatches::spawn(client, &work);
        Self { work, dead, batches }
    }

    /// Sends `body` with `attributes` to the work queue, delayed by `delay` (at most [`MAX_DELAY`]).
    async fn send(
        &self,
        body: String,
        attributes: HashMap<String, MessageAttributeValue>,
        delay: Duration,
    ) -> Result<(), BusError> {
        let send = batch::Send { body, attributes, delay_seconds: secs_i32(delay.min(MAX_DELAY)) };
        self.batches.send(send).await
    }
}

struct Inner {
    client: Client,
    options: SqsOptions,
    /// Logical queue → its resolved SQS queues. Resolution happens once per logical queue; the tokio
    /// mutex serialises concurrent first uses so a queue is created once.
    queues: tokio::sync::Mutex<HashMap<String, Arc<QueueUrls>>>,
    /// Every SQS queue URL this bus created or looked up, for cleanup in tests and tooling.
    known: Mutex<BTreeSet<String>>,
    closed: watch::Sender<bool>,
}

/// The message bus on AWS SQS. Clones share the client and the resolved queues.
#[derive(Clone)]
pub struct SqsBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsBus")
            .field("options", &self.inner.options)
            .field("closed", &*self.inner.closed.borrow())
            .finish_non_exhaustive()
    }
}

impl SqsBus {
    /// Connects with the shared AWS settings (region, endpoint; credentials from the default chain)
    /// and checks that SQS answers, so a wrong endpoint or missing credentials fail at start-up.
    pub async fn connect(settings: &AwsClientSettings, options: SqsOptions) -> Result<Self, BusError> {
        let sdk_config = galley_aws::load_sdk_config(settings).await;
        Self::connect_with_sdk_config(&sdk_config, options).await
    }

    /// As [`SqsBus::connect`] with an SDK configuration built by the caller (tests use static
    /// credentials this way instead of the process environment).
    pub async fn connect_with_sdk_config(
        sdk_config: &aws_config::SdkConfig,
        options: SqsOptions,
    ) -> Result<Self, BusError> {
        options
            .validate()
            .map_err(|error| BusError::Unavailable(format!("invalid configuration: {error}")))?;
        let (closed, _) = watch::channel(false);
        let inner = Inner {
            client: Client::new(sdk_config),
            options,
            queues: tokio::sync::Mutex::new(HashMap::new()),
            known: Mutex::new(BTreeSet::new()),
            closed,
        };
        let bus = Self { inner: Arc::new(inner) };
        bus.ping().await?;
        Ok(bus)
    }

    /// The options the bus runs with.
    pub fn options(&self) -> &SqsOptions {
        &self.inner.options
    }

    /// The SQS client, for tests and tooling that inspect or delete queues.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Every SQS queue URL this bus created or looked up, sorted.
    pub fn known_queue_urls(&self) -> Vec<String> {
        self.inner.known.lock().map(|urls| urls.iter().cloned().collect()).unwrap_or_default()
    }

    /// Closes the bus: subscriptions end (`next` returns `None`) and publishing fails with `Closed`.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }
}

impl Inner {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn remember(&self, url: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(url.to_owned());
        }
    }

    /// The SQS queues of logical queue `queue`, created or looked up on first use.
    async fn resolve(&self, queue: &str) -> Result<Arc<QueueUrls>, BusError> {
        let mut queues = self.queues.lock().await;
        if let Some(urls) = queues.get(queue) {
            return Ok(Arc::clone(urls));
        }
        let name = names::queue_name(&self.options.queue_prefix, queue).map_err(BusError::Unavailable)?;
        let urls = if names::is_dead_letter_queue(queue) {
            let url = self.dead_letter_queue_url(&name).await?;
            QueueUrls::new(&self.client, url.clone(), url)
        } else {
            let dead = self.dead_letter_queue_url(&names::dead_letter_name(&name)).await?;
            let work = self.work_queue_url(&name, &dead).await?;
            QueueUrls::new(&self.client, work, dead)
        };
        self.remember(&urls.work);
        self.remember(&urls.dead);
        let urls = Arc::new(urls);
        queues.insert(queue.to_owned(), Arc::clone(&urls));
        Ok(urls)
    }

    async fn lookup(&self, name: &str) -> Result<String, BusError> {
        let found = bounded(
            &format!("looking up queue {name}"),
            OPERATION_TIMEOUT,
            self.client.get_queue_url().queue_name(name).send(),
        )
        .await?;
        found.queue_url.ok_or_else(|| BusError::Unavailable(format!("queue {name}: no URL returned")))
    }

    /// Creates `name` with `attributes`, or, if it exists with other attributes (settings changed
    /// since), looks it up and applies `attributes` to it: with `create_queues` this bus owns them.
    async fn create(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> Result<String, BusError> {
        if !self.options.create_queues {
            return self.lookup(name).await;
        }
        let created = tokio::time::timeout(
            OPERATION_TIMEOUT,
            self.client.create_queue().queue_name(name).set_attributes(Some(attributes.clone())).send(),
        )
        .await
        .map_err(|_| BusError::Unavailable(format!("creating queue {name}: timed out")))?;
        match created {
            Ok(output) => output
                .queue_url
                .ok_or_else(|| BusError::Unavailable(format!("queue {name}: no URL returned"))),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_queue_name_exists()) => {
                tracing::warn!(queue = name, "queue exists with other attributes; updating them");
                let url = self.lookup(name).await?;
                bounded(
                    &format!("updating queue {name}"),
                    OPERATION_TIMEOUT,
                    self.client
                        .set_queue_attributes()
                        .queue_url(&url)
                        .set_attributes(Some(attributes))
                        .send(),
                )
                .await?;
                Ok(url)
            }
            Err(error) => Err(unavailable(&format!("creating queue {name}"), error)),
        }
    }

    async fn dead_letter_queue_url(&self, name: &str) -> Result<String, BusError> {
        let attributes = HashMap::from([(
            QueueAttributeName::MessageRetentionPeriod,
            DEAD_LETTER_RETENTION_SECS.to_string(),
        )]);
        self.create(name, attributes).await
    }

    async fn work_queue_url(&self, name: &str, dead_url: &str) -> Result<String, BusError> {
        if !self.options.create_queues {
            return self.lookup(name).await;
        }
        let arn = bounded(
            &format!("reading the ARN of the dead-letter queue of {name}"),
            OPERATION_TIMEOUT,
            self.client
                .get_queue_attributes()
                .queue_url(dead_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send(),
        )
        .await?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| BusError::Unavailable(format!("the dead-letter queue of {name} has no ARN")))?;
        let attributes = HashMap::from([
            (QueueAttributeName::VisibilityTimeout, self.options.visibility_secs().to_string()),
            (QueueAttributeName::RedrivePolicy, wire::redrive_policy(&arn, self.options.max_receives)),
        ]);
        self.create(name, attributes).await
    }

    /// Sends one message to `url` on its own (dead-lettering: rare, so not batched).
    async fn send_one(
        &self,
        url: &str,
        body: String,
        attributes: HashMap<String, MessageAttributeValue>,
    ) -> Result<(), BusError> {
        bounded(
            "sending a message",
            OPERATION_TIMEOUT,
            self.client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .set_message_attributes(Some(attributes))
                .send(),
        )
        .await
        .map(drop)
    }

    async fn change_visibility(&self, url: &str, receipt: &str, timeout: i32) -> Result<(), BusError> {
        bounded(
            "changing a message's visibility",
            OPERATION_TIMEOUT,
            self.client
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(timeout)
                .send(),
        )
        .await
        .map(drop)
    }

    /// Up to `count` messages from `url`, waiting up to the configured wait time for the first.
    async fn receive(&self, url: &str, count: usize) -> Result<Vec<aws_sdk_sqs::types::Message>, BusError> {
        let count = i32::try_from(count.clamp(1, MAX_BATCH)).unwrap_or(1);
        let output = bounded(
            "receiving messages",
            self.options.wait_time + OPERATION_TIMEOUT,
            self.client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(count)
                .wait_time_seconds(secs_i32(self.options.wait_time))
                .visibility_timeout(self.options.visibility_secs())
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send(),
        )
        .await?;
        Ok(output.messages.unwrap_or_default())
    }
}

#[async_trait]
impl MessageBus for SqsBus {
    async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        let urls = self.inner.resolve(queue).await?;
        let (body, attributes) = wire::encode(&message);
        urls.send(body, attributes.into_map(), Duration::ZERO).await
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        // Resolve now, so a missing queue or an unreachable SQS surfaces at subscribe time.
        let urls = self.inner.resolve(queue).await?;
        let (stop, _) = watch::channel(false);
        Ok(Box::new(SqsSubscription {
            bus: Arc::clone(&self.inner),
            queue: queue.to_owned(),
            urls,
            prefetch: prefetch.max(1),
            deliveries: None,
            stop,
            closed: self.inner.closed.subscribe(),
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.inner.is_closed() {
            return Err(BusError::Closed);
        }
        let known = self.inner.known.lock().ok().and_then(|known| known.iter().next().cloned());
        match known {
            Some(url) => bounded(
                "reading queue attributes",
                OPERATION_TIMEOUT,
                self.inner
                    .client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .send(),
            )
            .await
            .map(drop),
            // No queue used yet: listing at most one of ours is as cheap a round trip.
            None => bounded(
                "listing queues",
                OPERATION_TIMEOUT,
                self.inner
                    .client
                    .list_queues()
                    .queue_name_prefix(&self.inner.options.queue_prefix)
                    .max_results(1)
                    .send(),
            )
            .await
            .map(drop),
        }
    }
}

/// One consumer of one queue; its poller runs in a task from the first `next` on.
struct SqsSubscription {
    bus: Arc<Inner>,
    queue: String,
    urls: Arc<QueueUrls>,
    prefetch: u16,
    /// Fed by the poller; `None` until the first `next`.
    deliveries: Option<mpsc::Receiver<Delivery>>,
    /// Tells the poller to stop (the subscription was dropped).
    stop: watch::Sender<bool>,
    closed: watch::Receiver<bool>,
}

impl Drop for SqsSubscription {
    fn drop(&mut self) {
        // The poller finishes a receive in flight (aborting it could leave messages invisible until
        // their timeout) and drops what it got, which makes those messages visible again.
        self.stop.send_replace(true);
    }
}

#[async_trait]
impl Subscription for SqsSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        if *self.closed.borrow() {
            return None;
        }
        if self.deliveries.is_none() {
            let (sender, receiver) = mpsc::channel(usize::from(self.prefetch));
            let poller = Poller {
                bus: Arc::clone(&self.bus),
                queue: self.queue.clone(),
                urls: Arc::clone(&self.urls),
                permits: Arc::new(Semaphore::new(usize::from(self.prefetch))),
                sender,
                stop: self.stop.subscribe(),
                closed: self.bus.closed.subscribe(),
            };
            tokio::spawn(poller.run());
            self.deliveries = Some(receiver);
        }
        let deliveries = self.deliveries.as_mut()?;
        tokio::select! {
            delivery = deliveries.recv() => delivery,
            _ = self.closed.wait_for(|closed| *closed) => None,
        }
    }
}

/// Receives into a subscription's channel, never holding more than `prefetch` unsettled messages.
struct Poller {
    bus: Arc<Inner>,
    queue: String,
    urls: Arc<QueueUrls>,
    permits: Arc<Semaphore>,
    sender: mpsc::Sender<Delivery>,
    stop: watch::Receiver<bool>,
    closed: watch::Receiver<bool>,
}

impl Poller {
    fn stopping(&self) -> bool {
        *self.stop.borrow() || *self.closed.borrow() || self.sender.is_closed()
    }

    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if self.stopping() {
                return;
            }
            let first = tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = self.stop.wait_for(|stop| *stop) => return,
                _ = self.closed.wait_for(|closed| *closed) => return,
            };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            if self.stopping() {
                return;
            }
            let messages = match self.bus.receive(&self.urls.work, permits.len()).await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(queue = %self.queue, %error, ?backoff, "receive failed; retrying");
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = self.stop.wait_for(|stop| *stop) => return,
                        _ = self.closed.wait_for(|closed| *closed) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = MIN_BACKOFF;
            for message in messages {
                let permit = permits.pop();
                let Some(delivery) = self.accept(message, permit).await else { continue };
                // A closed channel (subscription dropped) drops the delivery: visible again at once.
                if self.sender.send(delivery).await.is_err() {
                    tracing::debug!(queue = %self.queue, "subscription gone; message released");
                }
            }
        }
    }

    /// Turns a received message into a delivery, or handles it here: a poison body is dead-lettered
    /// and a chained delay that is not over yet is re-sent for the rest of its wait.
    async fn accept(
        &self,
        message: aws_sdk_sqs::types::Message,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Option<Delivery> {
        let receipt = message.receipt_handle.clone()?;
        let mut settlement = SqsSettlement {
            bus: Arc::clone(&self.bus),
            urls: Arc::clone(&self.urls),
            message: ReceivedMessage {
                message_id: String::new(),
                correlation_id: None,
                reply_to: None,
                trace: None,
                body: bytes::Bytes::new(),
                attempt: 1,
            },
            raw_body: message.body.clone().unwrap_or_default(),
            attributes: Attributes::from_map(message.message_attributes.clone().unwrap_or_default()),
            receipt: Some(receipt),
            heartbeat: None,
            _permit: permit,
        };
        let decoded = wire::decode(&message);
        let received = match decoded {
            Ok(received) => received,
            Err(reason) => {
                tracing::warn!(queue = %self.queue, %reason, "undecodable message; dead-lettering it");
                // The dead-letter queue gets the body as SQS held it, as plain text, so its consumers
                // can read it (and it is not poison there again).
                settlement.attributes.clear_body_encoding();
                if let Err(error) = Box::new(settlement).settle(Settle::DeadLetter(reason)).await {
                    tracing::warn!(queue = %self.queue, %error, "could not dead-letter an undecodable message");
                }
                return None;
            }
        };
        if let Some(remaining) = settlement.attributes.not_before().and_then(remaining_until) {
            settlement.message = received;
            if let Err(error) = settlement.resend_later(remaining).await {
                tracing::warn!(queue = %self.queue, %error, "could not re-send a delayed message; it comes back");
            }
            return None;
        }
        settlement.message = received.clone();
        settlement.heartbeat = Some(tokio::spawn(heartbeat(
            Arc::clone(&self.bus),
            self.urls.work.clone(),
            settlement.receipt.clone().unwrap_or_default(),
        )));
        Some(Delivery::new(received, Box::new(settlement)))
    }
}

/// How long until `not_before` (Unix milliseconds), if it is still in the future.
fn remaining_until(not_before_ms: u64) -> Option<Duration> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let at = Duration::from_millis(not_before_ms);
    at.checked_sub(now).filter(|remaining| !remaining.is_zero())
}

/// `now + delay` as Unix milliseconds.
fn unix_ms_after(delay: Duration) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from((now + delay).as_millis()).unwrap_or(u64::MAX)
}

/// Keeps a delivery invisible while its consumer works on it: every half visibility timeout, the
/// timeout starts again. Aborted when the delivery is settled or dropped.
async fn heartbeat(bus: Arc<Inner>, url: String, receipt: String) {
    let interval = bus.options.heartbeat_interval();
    let timeout = bus.options.visibility_secs();
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = bus.change_visibility(&url, &receipt, timeout).await {
            // Next beat tries again; if the timeout runs out meanwhile, the message is redelivered
            // (a duplicate the consumer's idempotency absorbs).
            tracing::warn!(%error, "visibility heartbeat failed");
        }
    }
}

/// Settles one delivery. Until settled it holds the receipt handle, the heartbeat and a prefetch
/// permit; dropped unsettled, it makes the message visible again at once.
struct SqsSettlement {
    bus: Arc<Inner>,
    urls: Arc<QueueUrls>,
    message: ReceivedMessage,
    /// The body as SQS holds it (possibly base64), re-sent unchanged on copies.
    raw_body: String,
    /// The message's attributes as received, the base of every copy.
    attributes: Attributes,
    /// `Some` until the message is deleted (or handed back by `Drop`).
    receipt: Option<String>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl SqsSettlement {
    fn stop_heartbeat(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
    }

    /// Re-sends the message to the work queue to be delivered no earlier than `delay` from now, with
    /// the attributes it has (chained through `not_before` beyond [`MAX_DELAY`]).
    async fn resend_later(&mut self, delay: Duration) -> Result<(), BusError> {
        let mut attributes = self.attributes.clone();
        attributes.set_not_before((delay > MAX_DELAY).then(|| unix_ms_after(delay)));
        self.urls.send(self.raw_body.clone(), attributes.into_map(), delay).await?;
        self.delete().await
    }

    async fn delete(&mut self) -> Result<(), BusError> {
        let Some(receipt) = self.receipt.take() else { return Ok(()) };
        // If the delete is lost, the message comes back after its timeout: a duplicate, never a loss.
        self.urls.batches.delete(receipt).await
    }
}

#[async_trait]
impl Settlement for SqsSettlement {
    async fn settle(mut self: Box<Self>, how: Settle) -> Result<(), BusError> {
        self.stop_heartbeat();
        let next_attempt = self.message.attempt.saturating_add(1);
        // On a failed copy the error is returned with the receipt still held: dropping `self` then
        // makes the message visible again, so it is delivered again rather than lost.
        match how {
            Settle::Ack => self.delete().await,
            Settle::Requeue => {
                self.attributes.set_attempt(next_attempt);
                self.resend_later(Duration::ZERO).await
            }
            Settle::RetryAfter(delay) => {
                self.attributes.set_attempt(next_attempt);
                self.resend_later(delay).await
            }
            Settle::DeadLetter(reason) => {
                tracing::warn!(message_id = %self.message.message_id, %reason, "message dead-lettered");
                let mut attributes = self.attributes.clone();
                attributes.set_attempt(self.message.attempt);
                attributes.set_not_before(None);
                attributes.set_death_reason(&reason);
                self.bus.send_one(&self.urls.dead, self.raw_body.clone(), attributes.into_map()).await?;
                self.delete().await
            }
        }
    }
}

impl Drop for SqsSettlement {
    fn drop(&mut self) {
        self.stop_heartbeat();
        let Some(receipt) = self.receipt.take() else { return };
        // Without a runtime (process tearing down) the message comes back after its visibility timeout.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (bus, url) = (Arc::clone(&self.bus), self.urls.work.clone());
            runtime.spawn(async move {
                if let Err(error) = bus.change_visibility(&url, &receipt, 0).await {
                    tracing::debug!(%error, "releasing a dropped delivery failed; it comes back after its timeout");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(secs_i32(Duration::ZERO), 0);
        assert_eq!(secs_i32(Duration::from_millis(1)), 1);
        assert_eq!(secs_i32(Duration::from_millis(800)), 1);
        assert_eq!(secs_i32(Duration::from_secs(2)), 2);
        assert_eq!(secs_i32(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn options_outside_the_sqs_limits_are_refused() {
        assert_eq!(SqsOptions::default().validate(), Ok(()));
        let long_wait = SqsOptions { wait_time: Duration::from_secs(21), ..SqsOptions::default() };
        assert!(long_wait.validate().is_err_and(|e| e.contains("wait_time")));
        let no_visibility = SqsOptions { visibility_timeout: Duration::ZERO, ..SqsOptions::default() };
        assert!(no_visibility.validate().is_err_and(|e| e.contains("visibility_timeout")));
        let receives = SqsOptions { max_receives: 0, ..SqsOptions::default() };
        assert!(receives.validate().is_err_and(|e| e.contains("max_receives")));
        let prefix = SqsOptions { queue_prefix: "galley.".into(), ..SqsOptions::default() };
        assert!(prefix.validate().is_err_and(|e| e.contains("queue_prefix")));
    }

    #[test]
    fn the_heartbeat_beats_twice_per_visibility_timeout() {
        let options = SqsOptions { visibility_timeout: Duration::from_secs(4), ..SqsOptions::default() };
        assert_eq!(options.heartbeat_interval(), Duration::from_secs(2));
        let tiny = SqsOptions { visibility_timeout: Duration::from_secs(1), ..SqsOptions::default() };
        assert_eq!(tiny.heartbeat_interval(), Duration::from_millis(500));
    }

    #[test]
    fn only_future_deadlines_remain() {
        assert_eq!(remaining_until(0), None);
        let later = remaining_until(unix_ms_after(Duration::from_secs(60))).expect("in the future");
        assert!(later <= Duration::from_secs(60) && later > Duration::from_secs(50), "{later:?}");
    }
}
