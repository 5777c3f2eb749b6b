//! The worker loop.
//!
//! For each delivery: decode the envelope (undecodable → dead-letter, never retried), run the
//! ingestion use case, then — only after entries and job status are stored — reply to `reply_to` and
//! acknowledge. Transient fetch failures are re-delivered after the use case's backoff; store or bus
//! failures are retried too. At most `concurrency` deliveries are processed at once (the subscription's
//! prefetch).
//!
//! Shutdown stops taking deliveries and gives the ones in progress `shutdown_grace` (the process's
//! `http.shutdown_grace`) to finish. Those still running then are handed back: their work is dropped
//! at its next await point and the delivery is settled with `Requeue`, so another worker takes the
//! request at once.
//!
//! Tracing (ADR 0028): each delivery is handled in a `consumer` span whose parent is the publisher's
//! span (the trace context the message carries), with the use case's `rss.fetch` and `rss.store` spans
//! inside and the reply published in a `producer` span, whose context travels with the reply. Dropping half-done work is safe because ingestion is idempotent (ADR 0012): a job
//! left `fetching` is simply started again, and entries already stored are recognised.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use galley_contracts::{Envelope, FetchCompletedV1, FetchRequestedV1, FetchStatus, TraceContext};
use galley_messaging::{Delivery, MessageBus, OutgoingMessage, ReceivedMessage, Settle, TraceHeaders};
use galley_platform::{Shutdown, telemetry};
use galley_rss::model::{Job, JobStatus};
use galley_rss::{FeedIngestion, FeedUrl, IngestOutcome, JobId};
use serde::Deserialize;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::REQUESTS_QUEUE;
use crate::telemetry::WorkerMetrics;

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Feeds fetched at once by one worker process.
    pub concurrency: u16,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { concurrency: 8 }
    }
}

/// Delay before retrying a delivery that failed for an infrastructure reason (store, bus).
const INFRASTRUCTURE_RETRY: Duration = Duration::from_secs(5);

/// Time allowed, once the grace is over, for handed-back deliveries to reach the broker. A settlement
/// that does not make it is still not lost: an unsettled delivery is requeued when it is dropped or
/// its connection closes.
const HAND_BACK_LIMIT: Duration = Duration::from_secs(5);

/// Default for [`Worker::with_shutdown_grace`], the same as `http.shutdown_grace`'s.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Worker {
    bus: Arc<dyn MessageBus>,
    ingestion: FeedIngestion,
    settings: WorkerSettings,
    shutdown_grace: Duration,
    metrics: WorkerMetrics,
}

impl Worker {
    pub fn new(bus: Arc<dyn MessageBus>, ingestion: FeedIngestion, settings: WorkerSettings) -> Self {
        Self {
            bus,
            ingestion,
            settings,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            metrics: WorkerMetrics::default(),
        }
    }

    /// How long deliveries in progress may run on after shutdown before they are handed back.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Counts how ingestion ends and the entries it stores (see [`crate::telemetry`]).
    #[must_use]
    pub fn with_metrics(mut self, metrics: WorkerMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Consumes until `shutdown`, then lets deliveries in progress finish within the shutdown grace
    /// and hands back the rest (see the module docs).
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut subscription = self.bus.subscribe(REQUESTS_QUEUE, self.settings.concurrency.max(1)).await?;
        let hand_back = Shutdown::new();
        let mut in_progress = JoinSet::new();
        loop {
            let delivery = tokio::select! {
                delivery = subscription.next() => match delivery { Some(d) => d, None => break },
                () = shutdown.wait() => break,
            };
            let worker = self.clone();
            let hand_back = hand_back.clone();
            in_progress.spawn(async move { worker.handle(delivery, hand_back).await });
            // Reap finished tasks so the set does not grow with the queue's history.
            while in_progress.try_join_next().is_some() {}
        }
        // The subscription stays open until the end: settlements of deliveries in progress travel on
        // its channel. Messages it prefetched but never handed out go back when it closes.
        let finished = tokio::time::timeout(self.shutdown_grace, join_all(&mut in_progress)).await;
        if finished.is_err() {
            tracing::warn!(
                unfinished = in_progress.len(),
                grace = ?self.shutdown_grace,
                "shutdown grace over; handing fetch requests in progress back to the queue"
            );
            hand_back.trigger();
            if tokio::time::timeout(HAND_BACK_LIMIT, join_all(&mut in_progress)).await.is_err() {
                // Dropping the tasks drops their deliveries, which requeues them.
                in_progress.abort_all();
            }
        }
        drop(subscription);
        Ok(())
    }

    async fn handle(&self, delivery: Delivery, hand_back: Shutdown) {
        let span = tracing::info_span!(
            "rss.fetch.requested process",
            otel.kind = "consumer",
            messaging.destination.name = REQUESTS_QUEUE,
            message_id = %delivery.message.message_id,
            attempt = delivery.message.attempt,
        );
        telemetry::set_parent(&span, delivered_trace(&delivery.message).as_ref());
        self.handle_in_span(delivery, hand_back).instrument(span).await;
    }

    async fn handle_in_span(&self, delivery: Delivery, hand_back: Shutdown) {
        let work = async {
            match decode(&delivery.message.body) {
                Err(reason) => {
                    tracing::warn!(message_id = %delivery.message.message_id, %reason, "undecodable fetch request");
                    Settle::DeadLetter(reason)
                }
                Ok((job_id, url, reply_to)) => self.ingest(job_id, &url, reply_to.as_deref()).await,
            }
        };
        let settle = tokio::select! {
            settle = work => settle,
            () = hand_back.wait() => {
                tracing::info!(message_id = %delivery.message.message_id, "fetch request handed back at shutdown");
                Settle::Requeue
            }
        };
        if let Err(error) = delivery.settle(settle).await {
            tracing::warn!(%error, "could not settle a fetch request; it will be delivered again");
        }
    }

    async fn ingest(&self, job_id: JobId, url: &FeedUrl, reply_to: Option<&str>) -> Settle {
        let outcome = self.ingestion.process(job_id, url).await;
        match &outcome {
            Ok(IngestOutcome::Finished(job)) => self.metrics.finished(job),
            Ok(IngestOutcome::RetryAfter(_)) => self.metrics.retry_scheduled(),
            Ok(IngestOutcome::UnknownJob) => self.metrics.unknown_job(),
            Err(_) => self.metrics.error(),
        }
        match outcome {
            Ok(IngestOutcome::Finished(job)) => match reply_to {
                Some(queue) => match self.reply(queue, &job).await {
                    Ok(()) => Settle::Ack,
                    Err(error) => {
                        tracing::warn!(%error, job = %job_id, "could not reply; will process again (idempotent)");
                        Settle::RetryAfter(INFRASTRUCTURE_RETRY)
                    }
                },
                None => Settle::Ack,
            },
            Ok(IngestOutcome::RetryAfter(delay)) => Settle::RetryAfter(delay),
            Ok(IngestOutcome::UnknownJob) => {
                tracing::info!(job = %job_id, "fetch request for an unknown job ignored");
                Settle::Ack
            }
            Err(error) => {
                tracing::warn!(%error, job = %job_id, "ingestion failed; will retry");
                Settle::RetryAfter(INFRASTRUCTURE_RETRY)
            }
        }
    }

    async fn reply(&self, queue: &str, job: &Job) -> anyhow::Result<()> {
        let span = tracing::info_span!(
            "rss.fetch.completed publish",
            otel.kind = "producer",
            messaging.destination.name = queue,
            job = %job.id,
        );
        self.publish_reply(queue, job).instrument(span).await
    }

    async fn publish_reply(&self, queue: &str, job: &Job) -> anyhow::Result<()> {
        let trace = telemetry::inject_current();
        let payload = FetchCompletedV1 {
            job_id: job.id.to_string(),
            status: if job.status == JobStatus::Done { FetchStatus::Done } else { FetchStatus::Failed },
            inserted: job.inserted,
            skipped: job.skipped,
            error: job.error.clone(),
        };
        // Deterministic per job, so a repeated reply is recognisably the same message.
        let message_id =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("completed:{}", job.id).as_bytes())
                .to_string();
        let mut envelope = Envelope::new(message_id.clone(), job.id.to_string(), None, payload);
        if let Some(trace) = &trace {
            envelope = envelope.with_trace(TraceContext {
                traceparent: trace.traceparent.clone(),
                tracestate: trace.tracestate.clone(),
            });
        }
        let body = galley_contracts::encode(&envelope)?;
        let message = OutgoingMessage {
            message_id,
            correlation_id: Some(job.id.to_string()),
            reply_to: None,
            trace,
            body: Bytes::from(body),
        };
        self.bus.publish(queue, message).await?;
        Ok(())
    }
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// The trace context a delivery carries: the bus message's, else (from a producer that set only the
/// envelope's) the envelope's.
fn delivered_trace(message: &ReceivedMessage) -> Option<TraceHeaders> {
    message.trace.clone().or_else(|| {
        let trace = galley_contracts::decode(&message.body).ok()?.trace?;
        TraceHeaders::from_values(Some(&trace.traceparent), trace.tracestate.as_deref())
    })
}

/// The job, URL and reply queue of a fetch request, or why it can never be processed.
fn decode(body: &[u8]) -> Result<(JobId, FeedUrl, Option<String>), String> {
    let envelope: Envelope<FetchRequestedV1> = galley_contracts::decode(body)
        .and_then(|raw| raw.payload_as::<FetchRequestedV1>())
        .map_err(|error| error.to_string())?;
    let job_id =
        envelope.payload.job_id.parse().map_err(|_| format!("bad job id {}", envelope.payload.job_id))?;
    let url = FeedUrl::parse(&envelope.payload.url).map_err(|violations| format!("bad url: {violations}"))?;
    Ok((job_id, url, envelope.reply_to))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_failure_code_a_job_can_end_with_is_in_the_wire_contract() {
        let codes =
            galley_rss::fetch::FetchErrorCode::ALL.iter().map(|code| code.as_str()).chain(["internal_error"]);
        for code in codes {
            assert!(
                code.parse::<galley_contracts::FetchErrorCode>().is_ok(),
                "{code} missing from the contract"
            );
        }
    }
}
