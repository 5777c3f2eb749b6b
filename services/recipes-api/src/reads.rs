//! The recipes read model at the HTTP edge: cached, already-encoded response bodies.
//!
//! Reading recipes is what the system does most, so a cache hit should cost no more than a lookup and
//! a copy of bytes: the cache holds each answer exactly as it goes on the wire (the JSON body and its
//! entity tag), never domain values that would be decoded and re-encoded on every hit. That makes it
//! an edge concern, so it lives here and not in the use case: [`RecipeService`] knows no cache, and
//! the store's writes invalidate through [`InvalidatingRecipeRepository`], a decorator of the
//! repository port, so no write path can forget to.
//!
//! # Invalidation: one generation counter, checked on every hit (ADR 0003, revised by ADR 0024)
//!
//! Every successful write bumps the counter [`GENERATION_KEY`]. A cached entry records the generation
//! that was current *before* its store read; a hit is only a hit when that equals the current
//! generation. A reader that raced a write therefore stores an entry that nobody accepts (it is
//! reloaded on the next read), so clients read their own writes, and list pages, whose membership any
//! write may change, are invalidated without enumerating them. The counter and the entry are read
//! together ([`Cache::get_with_counter`]: one `MGET` round trip on Redis, two lock-free lookups in
//! memory).
//!
//! # Entity tags
//!
//! A recipe's tag is its revision (strong, `"<revision>"`, also used by `If-Match`). A list page's tag
//! is weak and derived from its bytes (`W/"l<digest>"`), computed once when the page is cached: it is
//! stable across restarts, replicas and generations, and changes exactly when the page does, so a
//! client revalidating an unchanged page gets a 304 even after unrelated writes.
//!
//! The cache is an optimisation: when it fails, reads go to the store and the failure is logged. A
//! miss on a hot key is coalesced ([`LoadCoalescer`]): one reader loads, the others wait and re-read.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use galley_kernel::{Cache, LoadCoalescer, Page};
use galley_recipes::ports::{RecipeRepository, RepositoryError, WriteOutcome};
use galley_recipes::{Recipe, RecipeError, RecipeId, RecipeQuery, RecipeService, Revision};
use sha2::{Digest, Sha256};

use crate::http::dto::{RecipePage, RecipeResponse};

/// The counter every recipe write bumps.
pub const GENERATION_KEY: &str = "recipes:generation";
/// The cached bytes are the API's wire format: a release that changes the DTOs bumps this, so replicas
/// of different versions sharing a Redis never serve each other's format.
const FORMAT: &str = "v1";

/// How long cached answers live. Any write invalidates them at once anyway; the TTL only bounds
/// memory and the staleness left if bumping the generation ever fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    pub item: Duration,
    pub list: Duration,
}

impl Default for CacheTtls {
    fn default() -> Self {
        Self { item: Duration::from_secs(300), list: Duration::from_secs(60) }
    }
}

/// An answer ready for the wire: its entity tag (a complete `ETag` value) and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRead {
    pub etag: Bytes,
    pub body: Bytes,
}

/// Reads of recipes as encoded answers, cached.
#[derive(Debug, Clone)]
pub struct RecipeReads {
    service: RecipeService,
    cache: Arc<dyn Cache>,
    ttls: CacheTtls,
    /// Shared by clones: one store load per missing key at a time.
    loads: Arc<LoadCoalescer>,
}

impl RecipeReads {
    pub fn new(service: RecipeService, cache: Arc<dyn Cache>, ttls: CacheTtls) -> Self {
        Self { service, cache, ttls, loads: Arc::new(LoadCoalescer::new()) }
    }

    /// One recipe, encoded, with its revision's strong ETag.
    pub async fn item(&self, id: RecipeId) -> Result<EncodedRead, RecipeError> {
        let key = format!("recipes:{FORMAT}:item:{id}");
        self.read(&key, self.ttls.item, || async move {
            let recipe = self.service.get(id).await?;
            Ok(encode_item(recipe))
        })
        .await
    }

    /// One page of recipes matching `query`, encoded, with a weak ETag of its bytes.
    pub async fn list(&self, query: &RecipeQuery) -> Result<EncodedRead, RecipeError> {
        let key = format!("recipes:{FORMAT}:list:{}", query.canonical());
        self.read(&key, self.ttls.list, || async move {
            let page = self.service.list(query).await?;
            Ok(encode_page(page))
        })
        .await
    }

    /// Cache-aside around `load`: a current entry is returned as is; otherwise one reader per key
    /// loads and fills, tagging the entry with the generation read before loading.
    async fn read<F, Fut>(&self, key: &str, ttl: Duration, load: F) -> Result<EncodedRead, RecipeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<EncodedRead, RecipeError>>,
    {
        let mut generation = match self.lookup(key).await {
            Lookup::Hit(read) => return Ok(read),
            Lookup::Miss(generation) => generation,
            Lookup::Bypass => return load().await,
        };
        let turn = self.loads.turn(key).await;
        if turn.waited() {
            // Whoever loaded while we waited has filled the cache.
            generation = match self.lookup(key).await {
                Lookup::Hit(read) => return Ok(read),
                Lookup::Miss(generation) => generation,
                Lookup::Bypass => return load().await,
            };
        }
        let read = load().await?;
        if let Err(error) = self.cache.set(key, frame(generation, &read), ttl).await {
            tracing::warn!(%error, "cache write failed");
        }
        Ok(read)
    }

    async fn lookup(&self, key: &str) -> Lookup {
        match self.cache.get_with_counter(GENERATION_KEY, key).await {
            Ok((generation, Some(entry))) => match unframe(generation, entry) {
                Some(read) => Lookup::Hit(read),
                None => Lookup::Miss(generation),
            },
            Ok((generation, None)) => Lookup::Miss(generation),
            Err(error) => {
                tracing::warn!(%error, "cache unavailable; reading recipes from the store");
                Lookup::Bypass
            }
        }
    }
}

/// What the cache holds for a key.
enum Lookup {
    /// A current entry.
    Hit(EncodedRead),
    /// Nothing current: load, then fill at this generation.
    Miss(u64),
    /// The cache is unavailable: load and do not fill.
    Bypass,
}

fn encode_item(recipe: Recipe) -> EncodedRead {
    let etag = Bytes::from(format!("\"{}\"", recipe.revision.get()));
    EncodedRead { etag, body: json(&RecipeResponse::from(recipe)) }
}

fn encode_page(page: Page<Recipe>) -> EncodedRead {
    let body = json(&RecipePage::from(page));
    EncodedRead { etag: list_etag(&body), body }
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    // Serializing these DTOs cannot fail: string keys, no maps with non-string keys, no I/O.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// `W/"l<first 16 bytes of SHA-256, hex>"`: a stable digest (not std's per-process hasher), so every
/// replica and every restart tags the same page the same way.
fn list_etag(body: &[u8]) -> Bytes {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(38);
    tag.push_str("W/\"l");
    for byte in &digest[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    Bytes::from(tag)
}

/// Cache entry layout: generation (8 bytes, little endian), ETag length (2 bytes), ETag, body.
fn frame(generation: u64, read: &EncodedRead) -> Bytes {
    let mut entry = BytesMut::with_capacity(10 + read.etag.len() + read.body.len());
    entry.put_u64_le(generation);
    entry.put_u16_le(u16::try_from(read.etag.len()).unwrap_or(u16::MAX));
    entry.put_slice(&read.etag);
    entry.put_slice(&read.body);
    entry.freeze()
}

/// The entry's answer if it was stored at `generation` (and is well formed); slices, no copies.
fn unframe(generation: u64, entry: Bytes) -> Option<EncodedRead> {
    let stored = u64::from_le_bytes(entry.get(..8)?.try_into().ok()?);
    if stored != generation {
        return None;
    }
    let etag_len = usize::from(u16::from_le_bytes(entry.get(8..10)?.try_into().ok()?));
    let body_start = 10 + etag_len;
    if entry.len() < body_start {
        return None;
    }
    Some(EncodedRead { etag: entry.slice(10..body_start), body: entry.slice(body_start..) })
}

/// The repository decorator that bumps [`GENERATION_KEY`] after every write that happened, whoever
/// made it (the use cases, seeding, a migration). A failed bump is logged: cached answers may then be
/// stale for at most their TTL.
#[derive(Debug)]
pub struct InvalidatingRecipeRepository {
    inner: Arc<dyn RecipeRepository>,
    cache: Arc<dyn Cache>,
}

impl InvalidatingRecipeRepository {
    pub fn new(inner: Arc<dyn RecipeRepository>, cache: Arc<dyn Cache>) -> Self {
        Self { inner, cache }
    }

    async fn invalidate(&self) {
        if let Err(error) = self.cache.increment(GENERATION_KEY).await {
            tracing::error!(%error, "cache invalidation failed; cached recipes may be stale until their TTL");
        }
    }

    async fn after(&self, outcome: WriteOutcome) -> WriteOutcome {
        if outcome == WriteOutcome::Done {
            self.invalidate().await;
        }
        outcome
    }
}

#[async_trait]
impl RecipeRepository for InvalidatingRecipeRepository {
    async fn insert(&self, recipe: &Recipe) -> Result<(), RepositoryError> {
        self.inner.insert(recipe).await?;
        self.invalidate().await;
        Ok(())
    }

    async fn get(&self, id: RecipeId) -> Result<Option<Recipe>, RepositoryError> {
        self.inner.get(id).await
    }

    async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RepositoryError> {
        self.inner.list(query).await
    }

    async fn update(&self, recipe: &Recipe, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let outcome = self.inner.update(recipe, expected).await?;
        Ok(self.after(outcome).await)
    }

    async fn delete(&self, id: RecipeId, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let outcome = self.inner.delete(id, expected).await?;
        Ok(self.after(outcome).await)
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        self.inner.count().await
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{TimeZone, Utc};
    use galley_embedded::MemoryCache;
    use galley_kernel::{CacheError, Clock};

    use galley_kernel::UserId;
    use galley_recipes::{Actor, Precondition, RecipeInput};

    use super::*;

    #[derive(Debug)]
    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> chrono::DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).single().expect("valid time")
        }
    }

    /// An in-memory repository that counts store reads (what the cache is meant to save).
    #[derive(Debug, Default)]
    struct CountingRepository {
        recipes: std::sync::Mutex<Vec<Recipe>>,
        reads: AtomicUsize,
        slow_reads: bool,
    }

    impl CountingRepository {
        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }

        fn read(&self) {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.slow_reads {
                // Blocks its thread so concurrent readers arrive while it runs.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    #[async_trait]
    impl RecipeRepository for CountingRepository {
        async fn insert(&self, recipe: &Recipe) -> Result<(), RepositoryError> {
            self.recipes.lock().expect("lock").push(recipe.clone());
            Ok(())
        }

        async fn get(&self, id: RecipeId) -> Result<Option<Recipe>, RepositoryError> {
            self.read();
            Ok(self.recipes.lock().expect("lock").iter().find(|r| r.id == id).cloned())
        }

        async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RepositoryError> {
            self.read();
            let items = self.recipes.lock().expect("lock").clone();
            let total = items.len() as u64;
            Ok(Page { items, request: query.page, total })
        }

        async fn update(&self, recipe: &Recipe, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
            let mut recipes = self.recipes.lock().expect("lock");
            let Some(stored) = recipes.iter_mut().find(|r| r.id == recipe.id) else {
                return Ok(WriteOutcome::NotFound);
            };
            if stored.revision != expected {
                return Ok(WriteOutcome::RevisionMismatch);
            }
            *stored = recipe.clone();
            Ok(WriteOutcome::Done)
        }

        async fn delete(&self, id: RecipeId, _expected: Revision) -> Result<WriteOutcome, RepositoryError> {
            let mut recipes = self.recipes.lock().expect("lock");
            let before = recipes.len();
            recipes.retain(|r| r.id != id);
            Ok(if recipes.len() < before { WriteOutcome::Done } else { WriteOutcome::NotFound })
        }

        async fn count(&self) -> Result<u64, RepositoryError> {
            Ok(self.recipes.lock().expect("lock").len() as u64)
        }

        async fn ping(&self) -> Result<(), RepositoryError> {
            Ok(())
        }
    }

    /// A cache that is down.
    #[derive(Debug)]
    struct DownCache;

    #[async_trait]
    impl Cache for DownCache {
        async fn get(&self, _: &str) -> Result<Option<Bytes>, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn set(&self, _: &str, _: Bytes, _: Duration) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn delete(&self, _: &str) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn increment(&self, _: &str) -> Result<u64, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn counter(&self, _: &str) -> Result<u64, CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("down".into()))
        }
    }

    struct Fixture {
        store: Arc<CountingRepository>,
        service: RecipeService,
        reads: RecipeReads,
    }

    fn fixture_with(store: CountingRepository, cache: Arc<dyn Cache>) -> Fixture {
        let store = Arc::new(store);
        let repository = Arc::new(InvalidatingRecipeRepository::new(store.clone(), Arc::clone(&cache)));
        let service = RecipeService::new(repository, Arc::new(FixedClock));
        let reads = RecipeReads::new(service.clone(), cache, CacheTtls::default());
        Fixture { store, service, reads }
    }

    fn fixture() -> Fixture {
        fixture_with(CountingRepository::default(), Arc::new(MemoryCache::default()))
    }

    fn input(name: &str) -> RecipeInput {
        RecipeInput {
            name: Some(name.into()),
            tags: Some(vec!["quick".into()]),
            ingredients: Some(vec!["egg".into()]),
            instructions: Some(vec!["Boil it.".into()]),
        }
    }

    fn alice() -> Actor {
        Actor::User(UserId::new("alice"))
    }

    fn first_page() -> RecipeQuery {
        RecipeQuery::new(Default::default(), &[], Default::default(), None, Default::default())
            .expect("query")
    }

    fn name_in(read: &EncodedRead) -> String {
        let value: serde_json::Value = serde_json::from_slice(&read.body).expect("json body");
        value["name"].as_str().map(str::to_owned).unwrap_or_else(|| value["items"].to_string())
    }

    #[tokio::test]
    async fn a_hit_serves_the_encoded_bytes_without_reading_the_store() {
        let f = fixture();
        let recipe = f.service.create(&alice(), input("Boiled egg")).await.expect("created");
        let first = f.reads.item(recipe.id).await.expect("found");
        let second = f.reads.item(recipe.id).await.expect("found again");
        assert_eq!(first, second, "byte-identical answers");
        assert_eq!(f.store.reads(), 1, "the second read came from the cache");
        assert_eq!(first.etag, Bytes::from_static(b"\"1\""), "a recipe's tag is its revision");
        assert_eq!(name_in(&first), "Boiled egg");
    }

    #[tokio::test]
    async fn every_write_is_read_back_at_once() {
        let f = fixture();
        let recipe = f.service.create(&alice(), input("Boiled egg")).await.expect("created");
        let list_before = f.reads.list(&first_page()).await.expect("list");
        assert_eq!(name_in(&f.reads.item(recipe.id).await.expect("item")), "Boiled egg");

        f.service.update(&alice(), recipe.id, input("Soft egg"), &Precondition::Any).await.expect("updated");
        let item = f.reads.item(recipe.id).await.expect("item");
        assert_eq!(name_in(&item), "Soft egg", "read its own update");
        assert_eq!(item.etag, Bytes::from_static(b"\"2\""));
        let list_after = f.reads.list(&first_page()).await.expect("list");
        assert!(name_in(&list_after).contains("Soft egg"), "the list page too");
        assert_ne!(list_before.etag, list_after.etag, "a changed page gets a new tag");

        f.service.delete(&alice(), recipe.id, &Precondition::Any).await.expect("deleted");
        assert!(matches!(f.reads.item(recipe.id).await, Err(RecipeError::NotFound)), "read its own delete");
        assert!(!name_in(&f.reads.list(&first_page()).await.expect("list")).contains("Soft egg"));
    }

    #[tokio::test]
    async fn list_tags_are_weak_and_depend_only_on_the_page_bytes() {
        let f = fixture();
        let mine = f.service.create(&alice(), input("Tea")).await.expect("created");
        let page = f.reads.list(&first_page()).await.expect("list");
        assert!(page.etag.starts_with(b"W/\"l"), "weak list tag: {:?}", page.etag);

        // A write that leaves this page's bytes unchanged (a failed conditional update) keeps the tag;
        // so does a fresh cache (another replica, a restart).
        let stale = Precondition::OneOf(vec![Revision::new(9)]);
        assert!(f.service.update(&alice(), mine.id, input("X"), &stale).await.is_err());
        let other = fixture_with(CountingRepository::default(), Arc::new(MemoryCache::default()));
        other.store.insert(&mine).await.expect("same data elsewhere");
        assert_eq!(other.reads.list(&first_page()).await.expect("list").etag, page.etag);
    }

    #[tokio::test]
    async fn an_entry_filled_by_a_reader_that_raced_a_write_is_not_served() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::default());
        let f = fixture_with(CountingRepository::default(), Arc::clone(&cache));
        let recipe = f.service.create(&alice(), input("Old")).await.expect("created");
        // A slow reader read generation g, then the store (old data); meanwhile a write bumped the
        // generation; the slow reader now fills its old answer, tagged with g.
        let (generation, _) = cache.get_with_counter(GENERATION_KEY, "x").await.expect("read");
        let old = encode_item(recipe.clone());
        f.service.update(&alice(), recipe.id, input("New"), &Precondition::Any).await.expect("updated");
        let key = format!("recipes:{FORMAT}:item:{}", recipe.id);
        cache.set(&key, frame(generation, &old), Duration::from_secs(60)).await.expect("late fill");
        assert_eq!(name_in(&f.reads.item(recipe.id).await.expect("item")), "New");
    }

    /// Stampede protection: concurrent misses on one key make one store read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_a_hot_key_read_the_store_once() {
        let f = fixture_with(
            CountingRepository { slow_reads: true, ..CountingRepository::default() },
            Arc::new(MemoryCache::default()),
        );
        let recipe = f.service.create(&alice(), input("Hot")).await.expect("created");
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let reads = f.reads.clone();
                tokio::spawn(async move { reads.item(recipe.id).await })
            })
            .collect();
        for reader in readers {
            assert_eq!(name_in(&reader.await.expect("task").expect("found")), "Hot");
        }
        assert_eq!(f.store.reads(), 1);
    }

    #[tokio::test]
    async fn a_failing_cache_is_bypassed() {
        let f = fixture_with(CountingRepository::default(), Arc::new(DownCache));
        let recipe = f.service.create(&alice(), input("Tea")).await.expect("writes go on without a cache");
        assert_eq!(name_in(&f.reads.item(recipe.id).await.expect("found")), "Tea");
        assert_eq!(name_in(&f.reads.item(recipe.id).await.expect("found")), "Tea");
        assert_eq!(f.store.reads(), 2, "every read went to the store");
        assert!(f.reads.list(&first_page()).await.is_ok());
    }

    #[test]
    fn malformed_entries_are_misses() {
        let read = EncodedRead { etag: Bytes::from_static(b"\"1\""), body: Bytes::from_static(b"{}") };
        assert_eq!(unframe(3, frame(3, &read)), Some(read.clone()));
        assert_eq!(unframe(4, frame(3, &read)), None, "another generation");
        assert_eq!(unframe(3, Bytes::from_static(b"short")), None);
        let mut truncated = frame(3, &read).to_vec();
        truncated.truncate(11);
        assert_eq!(unframe(3, Bytes::from(truncated)), None);
    }
}
