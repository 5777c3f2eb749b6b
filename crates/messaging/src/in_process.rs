//! `InProcessBus`: the bus port on in-memory queues, for running every service in one process.
//!
//! It honours the port's semantics (see [`crate::port`]) except durability across restarts: messages
//! live in memory, so `galley serve` loses queued fetch requests when it stops (their jobs stay
//! `queued` until rss-api's sweeper hands them over again). Production uses RabbitMQ or SQS.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::port::{
    BusError, DEFAULT_DELIVERY_LIMIT, Delivery, MessageBus, OutgoingMessage, ReceivedMessage, Settle,
    Settlement, Subscription, dead_letter_queue,
};

/// A message waiting in a queue, with how often it came back unsettled (the delivery limit's count).
#[derive(Debug, Clone)]
struct Queued {
    message: ReceivedMessage,
    returns: u32,
}

impl Queued {
    fn fresh(message: ReceivedMessage) -> Self {
        Self { message, returns: 0 }
    }
}

#[derive(Debug, Default)]
struct Queue {
    ready: Mutex<VecDeque<Queued>>,
    /// One stored permit per wake-up; a consumer that takes a message and sees more left passes the
    /// baton on, so no message waits for a later publish.
    notify: Notify,
}

impl Queue {
    fn push_back(&self, message: Queued) {
        if let Ok(mut ready) = self.ready.lock() {
            ready.push_back(message);
        }
        self.notify.notify_one();
    }

    fn push_front(&self, message: Queued) {
        if let Ok(mut ready) = self.ready.lock() {
            ready.push_front(message);
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Queued> {
        let mut ready = self.ready.lock().ok()?;
        let message = ready.pop_front();
        if message.is_some() && !ready.is_empty() {
            self.notify.notify_one();
        }
        message
    }

    fn len(&self) -> usize {
        self.ready.lock().map(|ready| ready.len()).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Inner {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    delivery_limit: u32,
    closed: watch::Sender<bool>,
}

/// In-memory work queues. Clones share the same queues.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    /// A bus with the default delivery limit ([`DEFAULT_DELIVERY_LIMIT`]).
    pub fn new() -> Self {
        Self::with_delivery_limit(DEFAULT_DELIVERY_LIMIT)
    }

    /// A bus whose messages are dead-lettered after coming back unsettled `delivery_limit` times.
    pub fn with_delivery_limit(delivery_limit: u32) -> Self {
        let (closed, _) = watch::channel(false);
        let inner = Inner { queues: Mutex::new(HashMap::new()), delivery_limit, closed };
        Self { inner: Arc::new(inner) }
    }

    fn queue(&self, name: &str) -> Result<Arc<Queue>, BusError> {
        let mut queues =
            self.inner.queues.lock().map_err(|_| BusError::Unavailable("queue map poisoned".into()))?;
        Ok(Arc::clone(queues.entry(name.to_owned()).or_default()))
    }

    /// Messages waiting (not delivered) in `queue`: for tests and metrics.
    pub fn depth(&self, queue: &str) -> usize {
        self.queue(queue).map(|q| q.len()).unwrap_or_default()
    }

    /// Stops deliveries: every subscription's `next` returns `None` and publishing fails.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }
}

#[async_trait]
impl MessageBus for InProcessBus {
    async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        self.queue(queue)?.push_back(Queued::fresh(ReceivedMessage {
            message_id: message.message_id,
            correlation_id: message.correlation_id,
            reply_to: message.reply_to,
            trace: message.trace,
            body: message.body,
            attempt: 1,
        }));
        Ok(())
    }

    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        Ok(Box::new(InProcessSubscription {
            queue: self.queue(queue)?,
            dead: self.queue(&dead_letter_queue(queue))?,
            slots: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
            delivery_limit: self.inner.delivery_limit,
            closed: self.inner.closed.subscribe(),
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.is_closed() { Err(BusError::Closed) } else { Ok(()) }
    }
}

struct InProcessSubscription {
    queue: Arc<Queue>,
    dead: Arc<Queue>,
    slots: Arc<Semaphore>,
    delivery_limit: u32,
    closed: watch::Receiver<bool>,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let closed = |rx: &watch::Receiver<bool>| *rx.borrow();
        if closed(&self.closed) {
            return None;
        }
        let slot = tokio::select! {
            slot = Arc::clone(&self.slots).acquire_owned() => slot.ok()?,
            _ = self.closed.wait_for(|closed| *closed) => return None,
        };
        loop {
            if closed(&self.closed) {
                return None;
            }
            if let Some(queued) = self.queue.pop() {
                let message = queued.message.clone();
                let settlement = InProcessSettlement {
                    queue: Arc::clone(&self.queue),
                    dead: Arc::clone(&self.dead),
                    message: Some(queued),
                    delivery_limit: self.delivery_limit,
                    _slot: slot,
                };
                return Some(Delivery::new(message, Box::new(settlement)));
            }
            tokio::select! {
                () = self.queue.notify.notified() => {}
                _ = self.closed.wait_for(|closed| *closed) => return None,
            }
        }
    }
}

/// Settles one delivery; holds its prefetch slot until settled or dropped.
struct InProcessSettlement {
    queue: Arc<Queue>,
    dead: Arc<Queue>,
    /// `Some` until settled; a drop while still `Some` puts the message back.
    message: Option<Queued>,
    delivery_limit: u32,
    _slot: OwnedSemaphorePermit,
}

/// The message published again by a settlement: one more attempt, a fresh delivery-limit count.
fn redelivery(mut message: ReceivedMessage) -> Queued {
    message.attempt = message.attempt.saturating_add(1);
    Queued::fresh(message)
}

#[async_trait]
impl Settlement for InProcessSettlement {
    async fn settle(mut self: Box<Self>, how: Settle) -> Result<(), BusError> {
        let Some(Queued { message, .. }) = self.message.take() else { return Ok(()) };
        match how {
            Settle::Ack => {}
            Settle::Requeue => self.queue.push_front(redelivery(message)),
            Settle::RetryAfter(delay) => {
                let queue = Arc::clone(&self.queue);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    queue.push_back(redelivery(message));
                });
            }
            Settle::DeadLetter(reason) => {
                tracing::warn!(message_id = %message.message_id, %reason, "message dead-lettered");
                self.dead.push_back(Queued::fresh(message));
            }
        }
        Ok(())
    }
}

impl Drop for InProcessSettlement {
    fn drop(&mut self) {
        let Some(Queued { mut message, returns }) = self.message.take() else { return };
        let returns = returns.saturating_add(1);
        if returns > self.delivery_limit {
            // Whatever it does kills its consumer: stop the loop, keep the message for a human.
            tracing::warn!(message_id = %message.message_id, returns, "delivery limit reached; dead-lettered");
            self.dead.push_back(Queued::fresh(message));
        } else {
            message.attempt = message.attempt.saturating_add(1);
            self.queue.push_front(Queued { message, returns });
        }
    }
}
