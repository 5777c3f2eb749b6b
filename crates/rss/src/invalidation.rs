//! Keeping cached pages of entries current when another service writes the entries.
//!
//! rss-api serves `GET /rss/entries` from encoded pages in the cache, checked against the counter
//! [`ENTRIES_GENERATION_KEY`] (ADR 0024); rss-worker is the one that stores entries. So the writer
//! bumps the counter through [`InvalidatingEntryRepository`] — before the job is recorded as done,
//! which is what a client waits for — whenever it shares the reader's cache (one process, or Redis).
//! Where it does not (separate processes on in-memory caches), rss-api bumps it itself when the job's
//! reply arrives ([`EntriesGeneration::bump`]); pages are then current once the reply is applied, and
//! never staler than their TTL should replies be lost.

use std::sync::Arc;

use async_trait::async_trait;
use galley_kernel::{Cache, Page, StoreError};

use crate::model::{Entry, EntryQuery, JobId};
use crate::ports::EntryRepository;

/// The counter every write of entries bumps, and every cached page of entries is checked against.
pub const ENTRIES_GENERATION_KEY: &str = "rss:entries:generation";

/// The entries' generation counter in a cache.
#[derive(Debug, Clone)]
pub struct EntriesGeneration {
    cache: Arc<dyn Cache>,
}

impl EntriesGeneration {
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    /// Makes every cached page of entries stale. A failure is logged, not returned: the entries are
    /// stored, and cached pages then lag for at most their TTL.
    pub async fn bump(&self) {
        if let Err(error) = self.cache.increment(ENTRIES_GENERATION_KEY).await {
            tracing::error!(%error, "could not invalidate cached entries; pages may lag until their TTL");
        }
    }
}

/// The entry repository decorator that bumps the entries' generation after every insertion that
/// stored something.
#[derive(Debug)]
pub struct InvalidatingEntryRepository {
    inner: Arc<dyn EntryRepository>,
    generation: EntriesGeneration,
}

impl InvalidatingEntryRepository {
    pub fn new(inner: Arc<dyn EntryRepository>, generation: EntriesGeneration) -> Self {
        Self { inner, generation }
    }
}

#[async_trait]
impl EntryRepository for InvalidatingEntryRepository {
    async fn insert_new(&self, job: JobId, entries: &[Entry]) -> Result<(u64, u64), StoreError> {
        let (inserted, skipped) = self.inner.insert_new(job, entries).await?;
        if inserted > 0 {
            self.generation.bump().await;
        }
        Ok((inserted, skipped))
    }

    async fn list(&self, query: &EntryQuery) -> Result<Page<Entry>, StoreError> {
        self.inner.list(query).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use galley_kernel::{CacheError, PageRequest};

    use super::*;
    use crate::ports::MockEntryRepository;

    /// Counts increments of the generation; nothing else is used.
    #[derive(Debug, Default)]
    struct Counter(AtomicU64);

    #[async_trait]
    impl Cache for Counter {
        async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
            Ok(None)
        }
        async fn set(&self, _: &str, _: Bytes, _: Duration) -> Result<(), CacheError> {
            Ok(())
        }
        async fn delete(&self, _: &str) -> Result<(), CacheError> {
            Ok(())
        }
        async fn increment(&self, key: &str) -> Result<u64, CacheError> {
            assert_eq!(key, ENTRIES_GENERATION_KEY);
            Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
        }
        async fn counter(&self, _: &str) -> Result<u64, CacheError> {
            Ok(self.0.load(Ordering::SeqCst))
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
    }

    fn decorated(inserted: u64, skipped: u64) -> (InvalidatingEntryRepository, Arc<Counter>) {
        let mut inner = MockEntryRepository::new();
        inner.expect_insert_new().returning(move |_, _| Ok((inserted, skipped)));
        inner.expect_list().returning(|query| Ok(Page { items: vec![], request: query.page, total: 0 }));
        let counter = Arc::new(Counter::default());
        let generation = EntriesGeneration::new(counter.clone());
        (InvalidatingEntryRepository::new(Arc::new(inner), generation), counter)
    }

    #[tokio::test]
    async fn storing_new_entries_makes_cached_pages_stale() {
        let (entries, counter) = decorated(3, 1);
        assert_eq!(
            entries.insert_new(JobId::generate(), &[]).await.expect("stored"),
            (3, 1),
            "counts pass through"
        );
        assert_eq!(counter.counter("").await.expect("counter"), 1);
    }

    #[tokio::test]
    async fn a_fetch_that_stored_nothing_and_reads_leave_the_pages_alone() {
        let (entries, counter) = decorated(0, 5);
        entries.insert_new(JobId::generate(), &[]).await.expect("stored");
        let query = EntryQuery { feed_url: None, page: PageRequest::default() };
        entries.list(&query).await.expect("listed");
        assert_eq!(counter.counter("").await.expect("counter"), 0);
    }
}
