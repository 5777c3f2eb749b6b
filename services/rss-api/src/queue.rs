//! The message-bus side of rss-api: publishing fetch requests and applying workers' replies.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use galley_contracts::{Envelope, FetchCompletedV1, FetchRequestedV1, FetchStatus};
use galley_messaging::{MessageBus, OutgoingMessage, Settle};
use galley_platform::Shutdown;
use galley_rss::model::{Job, JobStatus};
use galley_rss::ports::{FetchQueue, JobOutcome, QueueError};
use galley_rss::{FetchRequests, RssError};

use crate::{REPLIES_QUEUE, REQUESTS_QUEUE};

/// `FetchQueue` on the bus: one `rss.fetch.requested.v1` message per job, replies requested on
/// [`REPLIES_QUEUE`].
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
        let payload = FetchRequestedV1 {
            message_id: galley_contracts::new_message_id(),
            job_id: job.id.to_string(),
            url: job.url.as_str().to_owned(),
            requested_by: job.requested_by.as_str().to_owned(),
            requested_at: job.created_at,
        };
        let envelope = Envelope::fetch_requested(payload, Some(REPLIES_QUEUE.to_owned()));
        let body = galley_contracts::encode(&envelope).map_err(|error| QueueError(error.to_string()))?;
        let message = OutgoingMessage {
            message_id: envelope.message_id.clone(),
            correlation_id: Some(envelope.correlation_id.clone()),
            reply_to: envelope.reply_to.clone(),
            body: Bytes::from(body),
        };
        self.bus.publish(REQUESTS_QUEUE, message).await.map_err(|error| QueueError(error.to_string()))
    }
}

/// Applies workers' replies to jobs until shutdown. The worker also records the outcome in the shared
/// store itself; the reply makes rss-api correct even where the two do not share a store, and applying
/// it twice is harmless (a final job never changes).
pub async fn apply_replies(bus: Arc<dyn MessageBus>, requests: FetchRequests, shutdown: Shutdown) {
    let mut subscription = match bus.subscribe(REPLIES_QUEUE, 16).await {
        Ok(subscription) => subscription,
        Err(error) => return tracing::error!(%error, "cannot consume fetch replies"),
    };
    loop {
        let delivery = tokio::select! {
            delivery = subscription.next() => match delivery { Some(d) => d, None => return },
            () = shutdown.wait() => return,
        };
        let settle = match decode_reply(&delivery.message.body) {
            Err(reason) => Settle::DeadLetter(reason),
            Ok((job_id, outcome)) => match requests.record_completion(job_id, &outcome).await {
                Ok(()) => Settle::Ack,
                Err(RssError::Unavailable(error) | RssError::Internal(error)) => {
                    tracing::warn!(%error, "could not apply a fetch reply; will retry");
                    Settle::RetryAfter(std::time::Duration::from_secs(5))
                }
                Err(error) => Settle::DeadLetter(error.to_string()),
            },
        };
        if let Err(error) = delivery.settle(settle).await {
            tracing::warn!(%error, "could not settle a fetch reply");
        }
    }
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
