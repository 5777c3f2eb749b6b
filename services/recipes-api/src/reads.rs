//! The recipes read model at the HTTP edge: cached, already-encoded response bodies.
//!
//! Reading recipes is what the system does most, so a hit costs a lookup and a copy of bytes
//! ([`EncodedReads`], the mechanics shared with rss-api's entries: ADR 0024). [`RecipeService`] knows
//! no cache; the store's writes invalidate through [`InvalidatingRecipeRepository`], a decorator of the
//! repository port that bumps [`GENERATION_KEY`], so no write path can forget to.
//!
//! # Entity tags
//!
//! A recipe's tag is its revision (strong, `"<revision>"`, also used by `If-Match`). A list page's tag
//! is weak and derived from its bytes ([`galley_http_kit::read_cache::weak_etag`]): stable across
//! restarts, replicas and generations, it changes exactly when the page does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use galley_http_kit::read_cache::{EncodedRead, EncodedReads, json_bytes};
use galley_kernel::{Cache, Page};
use galley_recipes::ports::{RecipeRepository, RepositoryError, WriteOutcome};
use galley_recipes::{Recipe, RecipeError, RecipeId, RecipeQuery, RecipeService, Revision};

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

/// Reads of recipes as encoded answers, cached.
#[derive(Debug, Clone)]
pub struct RecipeReads {
    service: RecipeService,
    reads: EncodedReads,
    ttls: CacheTtls,
}

impl RecipeReads {
    pub fn new(service: RecipeService, cache: Arc<dyn Cache>, ttls: CacheTtls) -> Self {
        Self { service, reads: EncodedReads::new(cache, GENERATION_KEY), ttls }
    }

    /// One recipe, encoded, with its revision's strong ETag.
    pub async fn item(&self, id: RecipeId) -> Result<EncodedRead, RecipeError> {
        let key = format!("recipes:{FORMAT}:item:{id}");
        self.reads
            .read(&key, self.ttls.item, || async move {
                let recipe = self.service.get(id).await?;
                Ok(encode_item(recipe))
            })
            .await
    }

    /// One page of recipes matching `query`, encoded, with a weak ETag of its bytes.
    pub async fn list(&self, query: &RecipeQuery) -> Result<EncodedRead, RecipeError> {
        let key = format!("recipes:{FORMAT}:list:{}", query.canonical());
        self.reads
            .read(&key, self.ttls.list, || async move {
                let page = self.service.list(query).await?;
                Ok(encode_page(page))
            })
            .await
    }
}

fn encode_item(recipe: Recipe) -> EncodedRead {
    let etag = Bytes::from(format!("\"{}\"", recipe.revision.get()));
    EncodedRead { etag, body: json_bytes(&RecipeResponse::from(recipe)) }
}

fn encode_page(page: Page<Recipe>) -> EncodedRead {
    EncodedRead::json_with_weak_etag(&RecipePage::from(page))
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
    use galley_kernel::Clock;

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
    }

    impl CountingRepository {
        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }

        fn read(&self) {
            self.reads.fetch_add(1, Ordering::SeqCst);
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
}
