//! The message-bus side of rss-api: publishing fetch requests and applying workers' replies.
//!
//! Tracing (ADR 0028): each publish runs in a `producer` span whose W3C trace context travels with the
//! message (in the bus message's `trace` and the envelope's), and each reply is handled in a `consumer`
//! span whose parent is the worker's reply publish, so one trace runs from `POST /rss/fetch` through the
//! worker and back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use galley_contracts::{Envelope, FetchCompletedV1, FetchRequestedV1, FetchStatus, TraceContext};
use galley_messaging::{BusError, MessageBus, OutgoingMessage, Settle, Subscription, TraceHeaders};
use galley_platform::{Shutdown, telemetry};
use galley_rss::invalidation::EntriesGeneration;
use galley_rss::model::{Job, JobStatus};
use galley_rss::ports::{FetchQueue, JobOutcome, QueueError};
use galley_rss::{FetchRequests, RssError};
use tracing::Instrument;

use crate::{REPLIES_QUEUE, REQUESTS_QUEUE};

/// `FetchQueue` on the bus: one `rss.fetch.requested.v1` message per job, replies requested on
/// [`REPLIES_QUEUE`]. The message id is the job id, so every hand-over of one job (a keyed retry, the
/// sweeper's re-publish) is the same message to consumers that deduplicate on it.
#[derive(Debug, Clone)]
pub struct BusFetchQueue {
    bus: Arc<dyn MessageBus>,
}

impl BusFetchQueue {
    pub fn new(bus: Arc<dyn MessageBus>) -> Self {
        Self { bus }
    }
}

#[async_trait]
impl FetchQueue for BusFetchQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let span = tracing::info_span!(
            "rss.fetch.requested publish",
            otel.kind = "producer",
            messaging.destination.name = REQUESTS_QUEUE,
            job = %job.id,
        );
        self.publish(job).instrument(span).await
    }
}

impl BusFetchQueue {
    async fn publish(&self, job: &Job) -> Result<(), QueueError> {
        let trace = telemetry::inject_current();
        let payload = FetchRequestedV1 {
            message_id: fetch_request_message_id(job),
            job_id: job.id.to_string(),
            url: job.url.as_str().to_owned(),
            requested_by: job.requested_by.as_str().to_owned(),
            requested_at: job.created_at,
        };
        let mut envelope = Envelope::fetch_requested(payload, Some(REPLIES_QUEUE.to_owned()));
        if let Some(trace) = &trace {
            envelope = envelope.with_trace(envelope_trace(trace));
        }
        let body = galley_contracts::encode(&envelope).map_err(|error| QueueError(error.to_string()))?;
        let message = OutgoingMessage {
            message_id: envelope.message_id.clone(),
            correlation_id: Some(envelope.correlation_id.clone()),
            reply_to: envelope.reply_to.clone(),
            trace,
            body: Bytes::from(body),
        };
        self.bus.publish(REQUESTS_QUEUE, message).await.map_err(|error| QueueError(error.to_string()))
    }
}

/// The envelope's copy of the trace context (the contracts crate knows no platform type).
fn envelope_trace(trace: &TraceHeaders) -> TraceContext {
    TraceContext { traceparent: trace.traceparent.clone(), tracestate: trace.tracestate.clone() }
}

/// The trace context a delivery carries: the bus message's, else (from a producer that set only the
/// envelope's) the envelope's.
fn delivered_trace(message: &galley_messaging::ReceivedMessage) -> Option<TraceHeaders> {
    message.trace.clone().or_else(|| {
        let trace = galley_contracts::decode(&message.body).ok()?.trace?;
        TraceHeaders::from_values(Some(&trace.traceparent), trace.tracestate.as_deref())
    })
}

/// The message id of `job`'s fetch request: the job id (a UUID, as the envelope requires).
fn fetch_request_message_id(job: &Job) -> String {
    job.id.to_string()
}

/// First wait before subscribing again to the replies after the bus failed.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(200);
/// Longest wait between subscription attempts.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(10);

/// Applies workers' replies to jobs until shutdown. The worker also records the outcome in the shared
/// store itself; the reply makes rss-api correct even where the two do not share a store, and applying
/// it twice is harmless (a final job never changes).
///
/// The listener outlives bus trouble: a failed subscribe (broker down at start-up) or a subscription
/// that ends while the process is not shutting down is retried with a capped exponential backoff, so
/// replies are never left unread for the life of the process.
pub async fn apply_replies(
    bus: Arc<dyn MessageBus>,
    requests: FetchRequests,
    entries: Option<EntriesGeneration>,
    shutdown: Shutdown,
) {
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        let subscribed = tokio::select! {
            subscribed = bus.subscribe(REPLIES_QUEUE, 16) => subscribed,
            () = shutdown.wait() => return,
        };
        match subscribed {
            Ok(mut subscription) => {
                backoff = RESUBSCRIBE_MIN;
                let ended =
                    consume_replies(subscription.as_mut(), &requests, entries.as_ref(), &shutdown).await;
                if ended == Ended::Shutdown {
                    return;
                }
                tracing::warn!("the fetch replies subscription ended; subscribing again");
            }
            // Closed by this process: it is shutting down.
            Err(BusError::Closed) => return,
            Err(error) => tracing::warn!(%error, ?backoff, "cannot consume fetch replies; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

/// Why [`consume_replies`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Shutdown,
    /// The subscription ended (the bus closed or lost it).
    Subscription,
}

async fn consume_replies(
    subscription: &mut dyn Subscription,
    requests: &FetchRequests,
    entries: Option<&EntriesGeneration>,
    shutdown: &Shutdown,
) -> Ended {
    loop {
        let delivery = tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(delivery) => delivery,
                None => return Ended::Subscription,
            },
            () = shutdown.wait() => return Ended::Shutdown,
        };
        let span = tracing::info_span!(
            "rss.fetch.completed process",
            otel.kind = "consumer",
            messaging.destination.name = REPLIES_QUEUE,
            message_id = %delivery.message.message_id,
        );
        telemetry::set_parent(&span, delivered_trace(&delivery.message).as_ref());
        async {
            let settle = match decode_reply(&delivery.message.body) {
                Err(reason) => Settle::DeadLetter(reason),
                Ok((job_id, outcome)) => match apply_reply(requests, entries, job_id, &outcome).await {
                    Ok(()) => Settle::Ack,
                    Err(RssError::Unavailable(error) | RssError::Internal(error)) => {
                        tracing::warn!(%error, "could not apply a fetch reply; will retry");
                        Settle::RetryAfter(Duration::from_secs(5))
                    }
                    Err(error) => Settle::DeadLetter(error.to_string()),
                },
            };
            if let Err(error) = delivery.settle(settle).await {
                tracing::warn!(%error, "could not settle a fetch reply");
            }
        }
        .instrument(span)
        .await;
    }
}

/// Records a reply's outcome. A reply that says entries were stored first makes the cached pages of
/// entries stale: the worker bumped their generation already, before recording the job done; this is
/// the second chance should its bump have failed (a Redis blip), so pages never lag by more than the
/// reply's latency.
async fn apply_reply(
    requests: &FetchRequests,
    entries: Option<&EntriesGeneration>,
    job_id: galley_rss::JobId,
    outcome: &JobOutcome,
) -> Result<(), RssError> {
    if let Some(entries) = entries
        && outcome.status == JobStatus::Done
        && outcome.inserted > 0
    {
        entries.bump().await;
    }
    requests.record_completion(job_id, outcome).await
}

fn decode_reply(body: &[u8]) -> Result<(galley_rss::JobId, JobOutcome), String> {
    let envelope = galley_contracts::decode(body)
        .and_then(|raw| raw.payload_as::<FetchCompletedV1>())
        .map_err(|error| error.to_string())?;
    let reply = envelope.payload;
    let job_id = reply.job_id.parse().map_err(|_| format!("bad job id {}", reply.job_id))?;
    let status = match reply.status {
        FetchStatus::Done => JobStatus::Done,
        FetchStatus::Failed => JobStatus::Failed,
    };
    Ok((job_id, JobOutcome { status, inserted: reply.inserted, skipped: reply.skipped, error: reply.error }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use galley_contracts::Envelope;
    use galley_kernel::{SystemClock, UserId};
    use galley_messaging::InProcessBus;
    use galley_rss::FeedUrl;
    use galley_wiring::DocumentStore;

    use super::*;

    fn job() -> Job {
        let url = FeedUrl::parse("https://example.com/feed").expect("url");
        Job::queued(url, UserId::new("alice"), chrono::Utc::now())
    }

    async fn next_message(subscription: &mut Box<dyn Subscription>) -> galley_messaging::Delivery {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("in time")
            .expect("open")
    }

    #[tokio::test]
    async fn a_job_handed_over_twice_is_one_message_id() {
        let bus = Arc::new(InProcessBus::new());
        let queue = BusFetchQueue::new(bus.clone());
        let job = job();
        queue.enqueue(&job).await.expect("first hand-over");
        queue.enqueue(&job).await.expect("second hand-over");
        let mut requests = bus.subscribe(REQUESTS_QUEUE, 2).await.expect("subscribe");
        let (first, second) = (next_message(&mut requests).await, next_message(&mut requests).await);
        assert_eq!(first.message.message_id, second.message.message_id);
        assert_eq!(first.message.message_id, job.id.to_string());
        let envelope = galley_contracts::decode(&second.message.body).expect("envelope");
        assert_eq!(envelope.message_id, job.id.to_string(), "the envelope carries the same id");
    }

    /// A bus whose first subscribe fails and whose second subscription ends at once, as a broker
    /// outage at start-up then a lost channel look to the listener.
    #[derive(Debug)]
    struct FlakyBus {
        inner: InProcessBus,
        subscribes: AtomicU32,
    }

    struct EndedSubscription;

    #[async_trait]
    impl Subscription for EndedSubscription {
        async fn next(&mut self) -> Option<galley_messaging::Delivery> {
            None
        }
    }

    #[async_trait]
    impl MessageBus for FlakyBus {
        async fn publish(&self, queue: &str, message: OutgoingMessage) -> Result<(), BusError> {
            self.inner.publish(queue, message).await
        }

        async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Box<dyn Subscription>, BusError> {
            match self.subscribes.fetch_add(1, Ordering::SeqCst) {
                0 => Err(BusError::Unavailable("broker starting".into())),
                1 => Ok(Box::new(EndedSubscription)),
                _ => self.inner.subscribe(queue, prefetch).await,
            }
        }

        async fn ping(&self) -> Result<(), BusError> {
            self.inner.ping().await
        }
    }

    #[tokio::test]
    async fn the_reply_listener_subscribes_again_after_bus_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = galley_platform::StoreSettings::default();
        settings.embedded.path = dir.path().join("galley.db");
        let store = DocumentStore::open(&settings).await.expect("store");
        let bus = Arc::new(FlakyBus { inner: InProcessBus::new(), subscribes: AtomicU32::new(0) });
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            Arc::new(BusFetchQueue::new(bus.clone())),
            Arc::new(SystemClock),
        );
        let job = job();
        store.jobs.insert(&job, None).await.expect("job stored");
        let shutdown = Shutdown::new();
        let cache: Arc<dyn galley_kernel::Cache> = Arc::new(galley_embedded::MemoryCache::default());
        let entries = EntriesGeneration::new(Arc::clone(&cache));
        let listener = tokio::spawn(apply_replies(bus.clone(), requests, Some(entries), shutdown.clone()));

        let reply = FetchCompletedV1 {
            job_id: job.id.to_string(),
            status: FetchStatus::Done,
            inserted: 2,
            skipped: 0,
            error: None,
        };
        let envelope = Envelope::new(galley_contracts::new_message_id(), job.id.to_string(), None, reply);
        let body = galley_contracts::encode(&envelope).expect("encoded");
        let message = OutgoingMessage {
            message_id: envelope.message_id.clone(),
            correlation_id: Some(job.id.to_string()),
            reply_to: None,
            trace: None,
            body: Bytes::from(body),
        };
        bus.publish(REPLIES_QUEUE, message).await.expect("reply published");

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stored = store.jobs.get(job.id).await.expect("read").expect("job");
            if stored.status == JobStatus::Done {
                assert_eq!(stored.inserted, 2);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the reply was never applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(bus.subscribes.load(Ordering::SeqCst) >= 3);
        let generation =
            cache.counter(galley_rss::invalidation::ENTRIES_GENERATION_KEY).await.expect("counter");
        assert_eq!(generation, 1, "a reply that stored entries makes cached pages stale");
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), listener).await.expect("stops").expect("task");
        store.close().await;
    }
}
