//! Recipe use cases: reads, ownership-checked conditional writes, seeding.
//!
//! No caching here: the use cases see only the repository port. Caching of reads (as encoded answers)
//! and its invalidation on every write are edge concerns, wired around the repository by the service
//! that serves HTTP (see `recipes-api`'s read model, ADR 0024).

use std::sync::Arc;

use galley_kernel::{Clock, Page};

use crate::error::RecipeError;
use crate::model::{Actor, Precondition, Recipe, RecipeDraft, RecipeId, RecipeInput};
use crate::ports::{RecipeRepository, WriteOutcome};
use crate::query::RecipeQuery;

/// Unconditional writes retry this often when they keep losing races before giving up with 412.
const MAX_WRITE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct RecipeService {
    repository: Arc<dyn RecipeRepository>,
    clock: Arc<dyn Clock>,
}

impl RecipeService {
    pub fn new(repository: Arc<dyn RecipeRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { repository, clock }
    }

    /// One recipe by id.
    pub async fn get(&self, id: RecipeId) -> Result<Recipe, RecipeError> {
        self.repository.get(id).await?.ok_or(RecipeError::NotFound)
    }

    /// A page of recipes matching `query`.
    pub async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RecipeError> {
        Ok(self.repository.list(query).await?)
    }

    /// Publishes a new recipe owned by the actor, who must be signed in.
    pub async fn create(&self, actor: &Actor, input: RecipeInput) -> Result<Recipe, RecipeError> {
        let owner = actor.user_id().cloned().ok_or(RecipeError::Forbidden)?;
        let draft = RecipeDraft::parse(input)?;
        let recipe = Recipe::publish(draft, Some(owner), self.clock.now());
        self.repository.insert(&recipe).await?;
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
                WriteOutcome::Done => return Ok(revised),
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
                WriteOutcome::Done => return Ok(()),
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
    use chrono::{DateTime, TimeZone, Utc};
    use galley_kernel::UserId;

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

    fn service(repository: MockRecipeRepository) -> RecipeService {
        RecipeService::new(Arc::new(repository), Arc::new(FixedClock(now())))
    }

    fn alice() -> Actor {
        Actor::User(UserId::new("alice"))
    }

    fn draft(name: &str) -> RecipeDraft {
        RecipeDraft::parse(input(name)).expect("valid")
    }

    #[tokio::test]
    async fn invalid_input_is_refused_before_touching_the_store() {
        let service = service(MockRecipeRepository::new());
        let result = service.create(&alice(), RecipeInput::default()).await;
        assert!(matches!(result, Err(RecipeError::Invalid(v)) if v.contains("name", "required")));
    }

    #[tokio::test]
    async fn anonymous_actors_cannot_publish() {
        let mut repository = MockRecipeRepository::new();
        repository.expect_insert().never();
        let service = service(repository);
        assert!(matches!(service.create(&Actor::Anonymous, input("Tea")).await, Err(RecipeError::Forbidden)));
    }

    #[tokio::test]
    async fn create_stamps_owner_time_and_first_revision() {
        let mut repository = MockRecipeRepository::new();
        repository.expect_insert().times(1).returning(|_| Ok(()));
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
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
        let service = service(repository);
        assert_eq!(service.seed_if_empty(vec![draft("A"), draft("B")]).await.expect("seeded"), 0);
        assert_eq!(service.seed_if_empty(vec![draft("A"), draft("B")]).await.expect("seeded"), 2);
    }
}
