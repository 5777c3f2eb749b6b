//! Coalesces concurrent sends and deletes on one queue into SQS batch calls (`SendMessageBatch`,
//! `DeleteMessageBatch`, at most 10 entries each).
//!
//! Nothing waits to fill a batch: a call goes out as soon as a slot among [`IN_FLIGHT`] concurrent
//! calls is free, carrying whatever queued up meanwhile. One publisher alone pays no extra latency;
//! many at once (a worker acknowledging its prefetch window, rss-api under load) share round trips.
//! Each caller still learns its own entry's outcome: SQS reports success or failure per entry.
//! Written here because the SDK has no batching helper.

use std::sync::Arc;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use galley_messaging::BusError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{MAX_BATCH, OPERATION_TIMEOUT, bounded};

/// Batch calls in flight per queue and kind.
const IN_FLIGHT: usize = 4;
/// SQS's limit on the total size of a batch's messages (256 KiB, kept though AWS now allows 1 MiB,
/// so infrastructure on older limits and emulators accept every batch).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One message to send: body, attributes and delay, already in SQS's form.
#[derive(Debug)]
pub(crate) struct Send {
    pub body: String,
    pub attributes: std::collections::HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
    pub delay_seconds: i32,
}

impl Send {
    /// What SQS counts toward the batch size: the body and every attribute's name, type and value.
    fn size(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .map(|(name, value)| {
                name.len() + value.data_type().len() + value.string_value().map_or(0, str::len)
            })
            .sum();
        self.body.len() + attributes
    }
}

struct Job<T> {
    item: T,
    size: usize,
    done: oneshot::Sender<Result<(), BusError>>,
}

/// Runs the batches of one kind of entry for one queue.
pub(crate) struct Batcher<T> {
    jobs: mpsc::UnboundedSender<Job<T>>,
}

impl<T> std::fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// How a batch of `T` is executed: one outcome per entry, in order.
trait Execute<T>: Clone + std::marker::Send + Sync + 'static {
    fn execute(&self, items: Vec<T>) -> impl Future<Output = Vec<Result<(), BusError>>> + std::marker::Send;
}

impl<T: std::marker::Send + 'static> Batcher<T> {
    fn spawn(execute: impl Execute<T>) -> Self {
        let (jobs, mut queued) = mpsc::unbounded_channel::<Job<T>>();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            let mut carried: Option<Job<T>> = None;
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
                let first = match carried.take() {
                    Some(job) => job,
                    None => match queued.recv().await {
                        Some(job) => job,
                        // Every handle is gone (the bus was dropped): nothing more to do.
                        None => return,
                    },
                };
                let mut bytes = first.size;
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    let Ok(job) = queued.try_recv() else { break };
                    if bytes + job.size > MAX_BATCH_BYTES {
                        carried = Some(job);
                        break;
                    }
                    bytes += job.size;
                    batch.push(job);
                }
                let execute = execute.clone();
                tokio::spawn(async move {
                    let (items, waiters): (Vec<T>, Vec<_>) =
                        batch.into_iter().map(|j| (j.item, j.done)).unzip();
                    let outcomes = execute.execute(items).await;
                    for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                        let _ = waiter.send(outcome);
                    }
                    drop(slot);
                });
            }
        });
        Self { jobs }
    }

    async fn submit(&self, item: T, size: usize) -> Result<(), BusError> {
        let (done, outcome) = oneshot::channel();
        self.jobs.send(Job { item, size, done }).map_err(|_| BusError::Closed)?;
        outcome.await.map_err(|_| BusError::Unavailable("a batched call was lost".into()))?
    }
}

/// Outcomes in entry order from a batch reply listing failed entry ids (entry ids are indices).
fn outcomes(
    count: usize,
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
    what: &str,
) -> Vec<Result<(), BusError>> {
    let mut results: Vec<Result<(), BusError>> = (0..count).map(|_| Ok(())).collect();
    for entry in failed {
        if let Some(result) = entry.id.parse::<usize>().ok().and_then(|index| results.get_mut(index)) {
            let message = entry.message.as_deref().unwrap_or_default();
            *result = Err(BusError::Unavailable(format!("{what}: {} {message}", entry.code)));
        }
    }
    results
}

fn all_failed(count: usize, error: &BusError) -> Vec<Result<(), BusError>> {
    (0..count).map(|_| Err(error.clone())).collect()
}

#[derive(Clone)]
struct Sends {
    client: Client,
    url: String,
}

impl Execute<Send> for Sends {
    async fn execute(&self, items: Vec<Send>) -> Vec<Result<(), BusError>> {
        let count = items.len();
        let entries: Vec<SendMessageBatchRequestEntry> = items
            .into_iter()
            .enumerate()
            .filter_map(|(index, send)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(send.body)
                    .set_message_attributes(Some(send.attributes))
                    .delay_seconds(send.delay_seconds)
                    .build()
                    .ok()
            })
            .collect();
        let call = self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send();
        match bounded("sending messages", OPERATION_TIMEOUT, call).await {
            Ok(output) => outcomes(count, output.failed(), "sending a message"),
            Err(error) => all_failed(count, &error),
        }
    }
}

#[derive(Clone)]
struct Deletes {
    client: Client,
    url: String,
}

impl Execute<String> for Deletes {
    async fn execute(&self, receipts: Vec<String>) -> Vec<Result<(), BusError>> {
        let count = receipts.len();
        let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
            .into_iter()
            .enumerate()
            .filter_map(|(index, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        let call = self.client.delete_message_batch().queue_url(&self.url).set_entries(Some(entries)).send();
        match bounded("deleting messages", OPERATION_TIMEOUT, call).await {
            Ok(output) => outcomes(count, output.failed(), "deleting a message"),
            Err(error) => all_failed(count, &error),
        }
    }
}

/// The batched sends and deletes of one SQS queue.
#[derive(Debug)]
pub(crate) struct QueueBatches {
    sends: Batcher<Send>,
    deletes: Batcher<String>,
}

impl QueueBatches {
    /// Starts the batchers of `url` (needs a tokio runtime; they end when this is dropped).
    pub fn spawn(client: &Client, url: &str) -> Self {
        let sends = Batcher::spawn(Sends { client: client.clone(), url: url.to_owned() });
        let deletes = Batcher::spawn(Deletes { client: client.clone(), url: url.to_owned() });
        Self { sends, deletes }
    }

    /// Sends one message, returning once SQS stored it (or said why not).
    pub async fn send(&self, send: Send) -> Result<(), BusError> {
        let size = send.size();
        self.sends.submit(send, size).await
    }

    /// Deletes one received message by its receipt handle.
    pub async fn delete(&self, receipt: String) -> Result<(), BusError> {
        self.deletes.submit(receipt, 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_entries_fail_only_their_callers() {
        let failed = aws_sdk_sqs::types::BatchResultErrorEntry::builder()
            .id("1")
            .sender_fault(true)
            .code("InvalidParameterValue")
            .message("too big")
            .build()
            .expect("entry");
        let results = outcomes(3, &[failed], "sending a message");
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(matches!(&results[1], Err(BusError::Unavailable(m)) if m.contains("InvalidParameterValue")));
    }
}
