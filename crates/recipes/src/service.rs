//! Recipe use cases.
//!
//! Reads are cache-aside: look in the cache, else read the store and fill the cache. Invalidation uses a
//! *generation* counter instead of deleting keys: every cached key embeds the current generation, and
//! every successful write bumps it. A reader that raced a write can only fill a key of the old
//! generation, which nobody reads any more, so a client never reads its own write stale, and list pages
//! (whose membership any write may change) are invalidated without enumerating them. Old entries simply
//! expire by TTL.
//!
//! The cache is an optimisation: when it fails, reads and writes go on against the store and the failure
//! is logged (if bumping the generation fails, entries can be stale for at most one TTL).
//!
//! A miss on a hot key (a popular recipe or the first page, right after a write bumped the generation)
//! would send every concurrent reader to the store at once. Misses are coalesced per key
//! ([`LoadCoalescer`]): one reader loads and fills the cache, the others wait for it and read the cache.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use galley_kernel::coalesce::LoadTurn;
use galley_kernel::{Cache, Clock, LoadCoalescer, Page};
use serde::{Deserialize, Serialize};

use crate::error::RecipeError;
use crate::model::{Actor, Precondition, Recipe, RecipeDraft, RecipeId, RecipeInput};
use crate::ports::{RecipeRepository, WriteOutcome};
use crate::query::RecipeQuery;

const GENERATION_KEY: &str = "recipes:generation";
/// Unconditional writes retry this often when they keep losing races before giving up with 412.
const MAX_WRITE_ATTEMPTS: usize = 3;

/// How long cached reads live. Lists are cheaper to get wrong for a moment than to recompute, but any
/// write invalidates both at once anyway (see the module docs).
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

/// A list page as stored in the cache.
#[derive(Serialize, Deserialize)]
struct CachedPage {
    items: Vec<Recipe>,
    total: u64,
}

#[derive(Debug, Clone)]
pub struct RecipeService {
    repository: Arc<dyn RecipeRepository>,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    ttls: CacheTtls,
    /// Shared by clones: one store load per missing key at a time.
    loads: Arc<LoadCoalescer>,
}

impl RecipeService {
    pub fn new(
        repository: Arc<dyn RecipeRepository>,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
        ttls: CacheTtls,
    ) -> Self {
        Self { repository, cache, clock, ttls, loads: Arc::new(LoadCoalescer::new()) }
    }

    /// One recipe by id.
    pub async fn get(&self, id: RecipeId) -> Result<Recipe, RecipeError> {
        let key = self.generation().await.map(|generation| format!("recipes:{generation}:item:{id}"));
        if let Some(recipe) = self.cached::<Recipe>(key.as_deref()).await {
            return Ok(recipe);
        }
        let turn = self.load_turn(key.as_deref()).await;
        // Whoever loaded while we waited has filled the cache.
        if turn.as_ref().is_some_and(LoadTurn::waited)
            && let Some(recipe) = self.cached::<Recipe>(key.as_deref()).await
        {
            return Ok(recipe);
        }
        let recipe = self.repository.get(id).await?.ok_or(RecipeError::NotFound)?;
        self.fill(key.as_deref(), &recipe, self.ttls.item).await;
        Ok(recipe)
    }

    /// A page of recipes matching `query`.
    pub async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RecipeError> {
        let key = self
            .generation()
            .await
            .map(|generation| format!("recipes:{generation}:list:{}", query.canonical()));
        if let Some(cached) = self.cached::<CachedPage>(key.as_deref()).await {
            return Ok(Page { items: cached.items, request: query.page, total: cached.total });
        }
        let turn = self.load_turn(key.as_deref()).await;
        if turn.as_ref().is_some_and(LoadTurn::waited)
            && let Some(cached) = self.cached::<CachedPage>(key.as_deref()).await
        {
            return Ok(Page { items: cached.items, request: query.page, total: cached.total });
        }
        let page = self.repository.list(query).await?;
        let cached = CachedPage { items: page.items, total: page.total };
        self.fill(key.as_deref(), &cached, self.ttls.list).await;
        Ok(Page { items: cached.items, request: page.request, total: cached.total })
    }

    /// Publishes a new recipe owned by the actor, who must be signed in.
    pub async fn create(&self, actor: &Actor, input: RecipeInput) -> Result<Recipe, RecipeError> {
        let owner = actor.user_id().cloned().ok_or(RecipeError::Forbidden)?;
        let draft = RecipeDraft::parse(input)?;
        let recipe = Recipe::publish(draft, Some(owner), self.clock.now());
        self.repository.insert(&recipe).await?;
        self.invalidate().await;
        Ok(recipe)
    }

    /// Replaces a recipe's content. A conditional write fails with `RevisionMismatch` unless the stored
    /// revision is one the precondition accepts, or if another write wins the race to it; an
    /// unconditional one lets the last writer win (after a bounded number of retries).
    pub async fn update(
        &self,
        actor: &Actor,
        id: RecipeId,
        input: RecipeInput,
        precondition: &Precondition,
    ) -> Result<Recipe, RecipeError> {
        let draft = RecipeDraft::parse(input)?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.current(actor, id, precondition).await?;
            let revised = current.revise(draft.clone(), self.clock.now());
            match self.repository.update(&revised, current.revision).await? {
                WriteOutcome::Done => {
                    self.invalidate().await;
                    return Ok(revised);
                }
                WriteOutcome::NotFound => return Err(RecipeError::NotFound),
                WriteOutcome::RevisionMismatch if precondition.is_conditional() => {
                    return Err(RecipeError::RevisionMismatch);
                }
                WriteOutcome::RevisionMismatch => {}
            }
        }
        Err(RecipeError::RevisionMismatch)
    }

    /// Deletes a recipe, honouring the precondition like [`RecipeService::update`].
    pub async fn delete(
        &self,
        actor: &Actor,
        id: RecipeId,
        precondition: &Precondition,
    ) -> Result<(), RecipeError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.current(actor, id, precondition).await?;
            match self.repository.delete(id, current.revision).await? {
                WriteOutcome::Done => {
                    self.invalidate().await;
                    return Ok(());
                }
                WriteOutcome::NotFound => return Err(RecipeError::NotFound),
                WriteOutcome::RevisionMismatch if precondition.is_conditional() => {
                    return Err(RecipeError::RevisionMismatch);
                }
                WriteOutcome::RevisionMismatch => {}
            }
        }
        Err(RecipeError::RevisionMismatch)
    }

    /// Stores `drafts` as unowned recipes when the store is empty; returns how many were stored.
    /// Publication times are spread one hour apart so the default newest-first order is meaningful.
    pub async fn seed_if_empty(&self, drafts: Vec<RecipeDraft>) -> Result<usize, RecipeError> {
        if self.repository.count().await? > 0 {
            return Ok(0);
        }
        let now = self.clock.now();
        let count = drafts.len();
        for (age_hours, draft) in (0_i64..).zip(drafts) {
            let recipe = Recipe::publish(draft, None, now - chrono::Duration::hours(age_hours));
            self.repository.insert(&recipe).await?;
        }
        self.invalidate().await;
        Ok(count)
    }

    /// The stored recipe, after checking that it exists, that the actor may change it and that it is at
    /// a revision the caller accepts (RFC 9110 §13.2.2: a missing resource or a refusal comes first).
    async fn current(
        &self,
        actor: &Actor,
        id: RecipeId,
        precondition: &Precondition,
    ) -> Result<Recipe, RecipeError> {
        let current = self.repository.get(id).await?.ok_or(RecipeError::NotFound)?;
        authorize(actor, &current)?;
        if !precondition.holds_for(current.revision) {
            return Err(RecipeError::RevisionMismatch);
        }
        Ok(current)
    }

    /// Waits until no other reader of this process is loading `key` (none to wait for without a cache).
    async fn load_turn(&self, key: Option<&str>) -> Option<LoadTurn<'_>> {
        match key {
            Some(key) => Some(self.loads.turn(key).await),
            None => None,
        }
    }

    /// Current cache generation, or `None` to bypass the cache when it is unavailable.
    async fn generation(&self) -> Option<u64> {
        match self.cache.counter(GENERATION_KEY).await {
            Ok(generation) => Some(generation),
            Err(error) => {
                tracing::warn!(%error, "cache unavailable; reading recipes from the store");
                None
            }
        }
    }

    async fn cached<T: for<'de> Deserialize<'de>>(&self, key: Option<&str>) -> Option<T> {
        let bytes = match self.cache.get(key?).await {
            Ok(bytes) => bytes?,
            Err(error) => {
                tracing::warn!(%error, "cache read failed; reading recipes from the store");
                return None;
            }
        };
        serde_json::from_slice(&bytes)
            .inspect_err(|error| tracing::warn!(%error, "undecodable cache entry ignored"))
            .ok()
    }

    async fn fill<T: Serialize>(&self, key: Option<&str>, value: &T, ttl: Duration) {
        let Some(key) = key else { return };
        let bytes = match serde_json::to_vec(value) {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) => return tracing::error!(%error, "cannot encode cache entry"),
        };
        if let Err(error) = self.cache.set(key, bytes, ttl).await {
            tracing::warn!(%error, "cache write failed");
        }
    }

    async fn invalidate(&self) {
        if let Err(error) = self.cache.increment(GENERATION_KEY).await {
            tracing::error!(%error, "cache invalidation failed; cached recipes may be stale until their TTL");
        }
    }
}

/// Ownership rule: only a recipe's owner may change it. Recipes without an owner (the bundled samples)
/// are read-only.
fn authorize(actor: &Actor, recipe: &Recipe) -> Result<(), RecipeError> {
    match (&recipe.owner, actor.user_id()) {
        (Some(owner), Some(user)) if owner == user => Ok(()),
        _ => Err(RecipeError::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::{DateTime, TimeZone, Utc};
    use galley_kernel::{CacheError, UserId};

    use super::*;
    use crate::model::Revision;
    use crate::ports::{MockRecipeRepository, RepositoryError};

    #[derive(Debug)]
    struct FixedClock(DateTime<Utc>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    /// A working in-memory cache (TTL ignored) that also records which keys were read.
    #[derive(Debug, Default)]
    struct FakeCache {
        entries: Mutex<HashMap<String, Bytes>>,
        counters: Mutex<HashMap<String, u64>>,
    }

    #[async_trait]
    impl Cache for FakeCache {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            Ok(self.entries.lock().expect("lock").get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes, _ttl: Duration) -> Result<(), CacheError> {
            self.entries.lock().expect("lock").insert(key.to_owned(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.entries.lock().expect("lock").remove(key);
            Ok(())
        }
        async fn increment(&self, key: &str) -> Result<u64, CacheError> {
            let mut counters = self.counters.lock().expect("lock");
            let value = counters.entry(key.to_owned()).or_default();
            *value += 1;
            Ok(*value)
        }
        async fn counter(&self, key: &str) -> Result<u64, CacheError> {
            Ok(self.counters.lock().expect("lock").get(key).copied().unwrap_or_default())
        }
        async fn ping(&self) -> Result<(), CacheError> {
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

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid date")
    }

    fn input(name: &str) -> RecipeInput {
        RecipeInput {
            name: Some(name.into()),
            tags: Some(vec!["quick".into()]),
            ingredients: Some(vec!["egg".into()]),
            instructions: Some(vec!["Boil it.".into()]),
        }
    }

    fn recipe(owner: Option<&str>) -> Recipe {
        let draft = RecipeDraft::parse(input("Boiled egg")).expect("valid");
        Recipe::publish(draft, owner.map(UserId::new), now())
    }

    fn service(repository: MockRecipeRepository, cache: Arc<dyn Cache>) -> RecipeService {
        RecipeService::new(Arc::new(repository), cache, Arc::new(FixedClock(now())), CacheTtls::default())
    }

    #[tokio::test]
    async fn get_reads_the_store_once_then_serves_from_the_cache() {
        let stored = recipe(None);
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().times(1).returning(move |_| Ok(Some(stored.clone())));
        let service = service(repository, Arc::new(FakeCache::default()));

        let first = service.get(id).await.expect("found");
        let second = service.get(id).await.expect("found from cache");
        assert_eq!(first, second);
        assert_eq!(first.name, "Boiled egg");
    }

    /// Stampede protection: concurrent misses on one key make one store read; every reader gets the
    /// recipe. The store read is slow (it blocks its thread) so that the others arrive while it runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_on_a_hot_key_read_the_store_once() {
        let stored = recipe(None);
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().times(1).returning(move |_| {
            std::thread::sleep(Duration::from_millis(100));
            Ok(Some(stored.clone()))
        });
        let service = service(repository, Arc::new(FakeCache::default()));
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move { service.get(id).await })
            })
            .collect();
        for reader in readers {
            let recipe = reader.await.expect("task").expect("found");
            assert_eq!(recipe.id, id);
        }
    }

    fn alice() -> Actor {
        Actor::User(UserId::new("alice"))
    }

    #[tokio::test]
    async fn a_write_invalidates_cached_reads() {
        let stored = recipe(Some("alice"));
        let id = stored.id;
        let before = stored.clone();
        let mut repository = MockRecipeRepository::new();
        let mut reads = 0;
        repository.expect_get().returning(move |_| {
            reads += 1;
            // The first read fills the cache; the update's read and the final read see the new revision.
            Ok(Some(if reads == 1 { before.clone() } else { before.revise(draft("Soft egg"), now()) }))
        });
        repository.expect_update().returning(|_, _| Ok(WriteOutcome::Done));
        let service = service(repository, Arc::new(FakeCache::default()));

        assert_eq!(service.get(id).await.expect("found").name, "Boiled egg");
        service.update(&alice(), id, input("Soft egg"), &Precondition::Any).await.expect("updated");
        assert_eq!(service.get(id).await.expect("found").name, "Soft egg", "read its own write");
    }

    fn draft(name: &str) -> RecipeDraft {
        RecipeDraft::parse(input(name)).expect("valid")
    }

    #[tokio::test]
    async fn a_failing_cache_is_bypassed() {
        let stored = recipe(None);
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().times(2).returning(move |_| Ok(Some(stored.clone())));
        repository.expect_insert().times(1).returning(|_| Ok(()));
        let service = service(repository, Arc::new(DownCache));

        assert!(service.get(id).await.is_ok());
        assert!(service.get(id).await.is_ok());
        assert!(service.create(&alice(), input("Tea")).await.is_ok());
    }

    #[tokio::test]
    async fn invalid_input_is_refused_before_touching_the_store() {
        let service = service(MockRecipeRepository::new(), Arc::new(FakeCache::default()));
        let result = service.create(&alice(), RecipeInput::default()).await;
        assert!(matches!(result, Err(RecipeError::Invalid(v)) if v.contains("name", "required")));
    }

    #[tokio::test]
    async fn anonymous_actors_cannot_publish() {
        let mut repository = MockRecipeRepository::new();
        repository.expect_insert().never();
        let service = service(repository, Arc::new(FakeCache::default()));
        assert!(matches!(service.create(&Actor::Anonymous, input("Tea")).await, Err(RecipeError::Forbidden)));
    }

    #[tokio::test]
    async fn create_stamps_owner_time_and_first_revision() {
        let mut repository = MockRecipeRepository::new();
        repository.expect_insert().times(1).returning(|_| Ok(()));
        let service = service(repository, Arc::new(FakeCache::default()));
        let actor = Actor::User(UserId::new("u1"));
        let created = service.create(&actor, input("Tea")).await.expect("created");
        assert_eq!(created.owner, Some(UserId::new("u1")));
        assert_eq!(created.published_at, now());
        assert_eq!(created.revision, Revision::FIRST);
    }

    #[tokio::test]
    async fn stale_if_match_is_refused_without_writing() {
        let stored = recipe(Some("alice"));
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().returning(move |_| Ok(Some(stored.clone())));
        repository.expect_update().never();
        repository.expect_delete().never();
        let service = service(repository, Arc::new(FakeCache::default()));
        let stale = Precondition::OneOf(vec![Revision::new(7), Revision::new(8)]);
        let update = service.update(&alice(), id, input("X"), &stale).await;
        assert!(matches!(update, Err(RecipeError::RevisionMismatch)));
        let delete = service.delete(&alice(), id, &stale).await;
        assert!(matches!(delete, Err(RecipeError::RevisionMismatch)));
    }

    #[tokio::test]
    async fn a_precondition_listing_the_current_revision_later_holds() {
        let stored = recipe(Some("alice"));
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().returning(move |_| Ok(Some(stored.clone())));
        repository
            .expect_update()
            .withf(|revised, expected| *expected == Revision::FIRST && revised.revision == Revision::new(2))
            .times(1)
            .returning(|_, _| Ok(WriteOutcome::Done));
        repository.expect_delete().times(1).returning(|_, _| Ok(WriteOutcome::Done));
        let service = service(repository, Arc::new(FakeCache::default()));
        let listed = Precondition::OneOf(vec![Revision::new(5), Revision::FIRST]);
        assert!(service.update(&alice(), id, input("X"), &listed).await.is_ok());
        assert!(service.delete(&alice(), id, &listed).await.is_ok());
    }

    #[tokio::test]
    async fn a_lost_race_with_if_match_is_a_mismatch_and_without_it_is_retried() {
        let stored = recipe(Some("alice"));
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().returning(move |_| Ok(Some(stored.clone())));
        let mut attempts = 0;
        repository.expect_update().returning(move |_, _| {
            attempts += 1;
            Ok(if attempts == 1 { WriteOutcome::RevisionMismatch } else { WriteOutcome::Done })
        });
        let service = service(repository, Arc::new(FakeCache::default()));
        let with_if_match =
            service.update(&alice(), id, input("X"), &Precondition::OneOf(vec![Revision::FIRST])).await;
        assert!(matches!(with_if_match, Err(RecipeError::RevisionMismatch)));
        let without = service.update(&alice(), id, input("X"), &Precondition::Any).await;
        assert!(without.is_ok());
    }

    #[tokio::test]
    async fn only_the_owner_may_change_an_owned_recipe() {
        let stored = recipe(Some("alice"));
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().returning(move |_| Ok(Some(stored.clone())));
        repository.expect_delete().times(1).returning(|_, _| Ok(WriteOutcome::Done));
        let service = service(repository, Arc::new(FakeCache::default()));
        let bob = Actor::User(UserId::new("bob"));
        assert!(matches!(service.delete(&bob, id, &Precondition::Any).await, Err(RecipeError::Forbidden)));
        assert!(matches!(
            service.delete(&Actor::Anonymous, id, &Precondition::Any).await,
            Err(RecipeError::Forbidden)
        ));
        assert!(service.delete(&alice(), id, &Precondition::Any).await.is_ok());
    }

    #[tokio::test]
    async fn sample_recipes_without_an_owner_are_read_only() {
        let stored = recipe(None);
        let id = stored.id;
        let mut repository = MockRecipeRepository::new();
        repository.expect_get().returning(move |_| Ok(Some(stored.clone())));
        repository.expect_update().never();
        repository.expect_delete().never();
        let service = service(repository, Arc::new(FakeCache::default()));
        assert!(matches!(
            service.update(&alice(), id, input("Mine now"), &Precondition::Any).await,
            Err(RecipeError::Forbidden)
        ));
        assert!(matches!(
            service.delete(&alice(), id, &Precondition::Any).await,
            Err(RecipeError::Forbidden)
        ));
    }

    #[tokio::test]
    async fn missing_recipes_and_store_outages_map_to_their_errors() {
        let mut repository = MockRecipeRepository::new();
        let mut calls = 0;
        repository.expect_get().returning(move |_| {
            calls += 1;
            if calls == 1 { Ok(None) } else { Err(RepositoryError::Unavailable("timeout".into())) }
        });
        let service = service(repository, Arc::new(FakeCache::default()));
        let id = RecipeId::generate();
        assert!(matches!(service.get(id).await, Err(RecipeError::NotFound)));
        assert!(matches!(service.get(id).await, Err(RecipeError::Unavailable(_))));
    }

    #[tokio::test]
    async fn seeding_happens_only_into_an_empty_store() {
        let mut repository = MockRecipeRepository::new();
        let mut counts = vec![3_u64, 0].into_iter();
        repository.expect_count().returning(move || Ok(counts.next().unwrap_or(1)));
        repository.expect_insert().times(2).returning(|_| Ok(()));
        let service = service(repository, Arc::new(FakeCache::default()));
        assert_eq!(service.seed_if_empty(vec![draft("A"), draft("B")]).await.expect("seeded"), 0);
        assert_eq!(service.seed_if_empty(vec![draft("A"), draft("B")]).await.expect("seeded"), 2);
    }
}
