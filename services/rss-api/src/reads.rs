//! Pages of entries as cached, already-encoded answers (the read model at the edge, ADR 0024).
//!
//! `GET /rss/entries` is read far more often than feeds are fetched, and each page costs the store a
//! count and a sorted scan. Pages are kept encoded in the cache and checked against the entries'
//! generation ([`ENTRIES_GENERATION_KEY`]), which the worker bumps when it stores entries and this
//! service bumps when a job's reply says entries were stored (see [`galley_rss::invalidation`]).
//! Each page carries a weak ETag of its bytes, so clients revalidate with a 304.
//!
//! Pages are only cached where the worker's writes can reach the cache: in one process (`galley
//! serve`) or on Redis. A standalone rss-api on an in-memory cache reads every page from the store
//! ([`EntryReads::uncached`]): its worker could not invalidate that cache, and a client that saw its
//! job done must see the job's entries.

use std::sync::Arc;
use std::time::Duration;

use galley_http_kit::read_cache::{EncodedRead, EncodedReads};
use galley_kernel::Cache;
use galley_rss::invalidation::ENTRIES_GENERATION_KEY;
use galley_rss::{EntryQuery, FetchRequests, RssError};

use crate::http::handlers::EntryPage;

/// The cached bytes are the API's wire format: a release that changes the DTOs bumps this, so replicas
/// of different versions sharing a Redis never serve each other's format.
const FORMAT: &str = "v1";

/// Reads of entries as encoded pages, cached for `ttl` at most when a cache is given.
#[derive(Debug, Clone)]
pub struct EntryReads {
    requests: FetchRequests,
    cached: Option<(EncodedReads, Duration)>,
}

impl EntryReads {
    /// Pages cached in `cache` (whose entries' generation the worker bumps) for at most `ttl`.
    pub fn new(requests: FetchRequests, cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { requests, cached: Some((EncodedReads::new(cache, ENTRIES_GENERATION_KEY), ttl)) }
    }

    /// Every page read from the store (still encoded once and tagged, so 304s work).
    pub fn uncached(requests: FetchRequests) -> Self {
        Self { requests, cached: None }
    }

    /// One page of entries, encoded, with a weak ETag of its bytes.
    pub async fn page(&self, query: &EntryQuery) -> Result<EncodedRead, RssError> {
        let load = || async move {
            let page = self.requests.entries(query).await?;
            Ok(EncodedRead::json_with_weak_etag(&EntryPage::from(page)))
        };
        match &self.cached {
            Some((reads, ttl)) => reads.read(&cache_key(query), *ttl, load).await,
            None => load().await,
        }
    }
}

/// One key per distinct answer: page, limit and the (normalised) feed URL, which comes last so the
/// fixed-width fields before it cannot be confused with part of a URL.
fn cache_key(query: &EntryQuery) -> String {
    let feed = query.feed_url.as_ref().map_or("", |url| url.as_str());
    format!("rss:{FORMAT}:entries:{}:{}:{feed}", query.page.page(), query.page.limit())
}

#[cfg(test)]
mod tests {
    use galley_kernel::{PageRequest, SystemClock, UserId};
    use galley_rss::fetch::ParsedEntry;
    use galley_rss::invalidation::{EntriesGeneration, InvalidatingEntryRepository};
    use galley_rss::model::Job;
    use galley_rss::ports::EntryRepository;
    use galley_rss::{Entry, FeedUrl};
    use galley_wiring::DocumentStore;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        reads: EntryReads,
        /// The worker's view of the store: writes through it bump the generation.
        writer: InvalidatingEntryRepository,
        store: DocumentStore,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = galley_platform::StoreSettings::default();
        settings.embedded.path = dir.path().join("galley.db");
        let store = DocumentStore::open(&settings).await.expect("store");
        let cache: Arc<dyn Cache> = Arc::new(galley_embedded::MemoryCache::default());
        let queue =
            Arc::new(crate::queue::BusFetchQueue::new(Arc::new(galley_messaging::InProcessBus::new())));
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            queue,
            Arc::new(SystemClock),
        );
        let writer = InvalidatingEntryRepository::new(
            Arc::clone(&store.entries),
            EntriesGeneration::new(Arc::clone(&cache)),
        );
        Fixture { _dir: dir, reads: EntryReads::new(requests, cache, Duration::from_secs(60)), writer, store }
    }

    fn feed() -> FeedUrl {
        FeedUrl::parse("https://example.com/feed.xml").expect("url")
    }

    async fn store_entries(f: &Fixture, titles: &[&str]) -> u64 {
        let job = Job::queued(feed(), UserId::new("alice"), chrono::Utc::now());
        f.store.jobs.insert(&job, None).await.expect("job");
        let entries: Vec<Entry> = titles
            .iter()
            .map(|title| {
                let parsed = ParsedEntry {
                    guid: None,
                    title: (*title).into(),
                    link: Some(format!("https://example.com/{title}")),
                    thumbnail: None,
                    published_at: None,
                    summary: None,
                };
                Entry::from_parsed(&feed(), parsed, chrono::Utc::now())
            })
            .collect();
        f.writer.insert_new(job.id, &entries).await.expect("stored").0
    }

    fn titles(read: &EncodedRead) -> Vec<String> {
        let page: serde_json::Value = serde_json::from_slice(&read.body).expect("json");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["title"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    fn first_page() -> EntryQuery {
        EntryQuery { feed_url: None, page: PageRequest::default() }
    }

    #[tokio::test]
    async fn a_page_is_served_from_the_cache_until_the_worker_stores_entries() {
        let f = fixture().await;
        assert_eq!(store_entries(&f, &["one"]).await, 1);
        let first = f.reads.page(&first_page()).await.expect("page");
        assert_eq!(titles(&first), ["one"]);
        assert_eq!(f.reads.page(&first_page()).await.expect("cached"), first, "the same bytes");

        assert_eq!(store_entries(&f, &["two"]).await, 1);
        let second = f.reads.page(&first_page()).await.expect("page");
        assert_eq!(titles(&second).len(), 2, "the worker's write is read at once");
        assert_ne!(second.etag, first.etag);
    }

    #[test]
    fn keys_tell_pages_limits_and_feeds_apart() {
        let page = |page, limit, feed_url: Option<FeedUrl>| EntryQuery {
            feed_url,
            page: PageRequest::new(page, limit).expect("page"),
        };
        let keys = [
            cache_key(&page(1, 20, None)),
            cache_key(&page(2, 20, None)),
            cache_key(&page(1, 10, None)),
            cache_key(&page(1, 20, Some(feed()))),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        assert_eq!(keys[3], "rss:v1:entries:1:20:https://example.com/feed.xml");
    }
}
