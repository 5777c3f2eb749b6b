//! Recipes in the `recipes` collection: one document per recipe with the filter and sort fields
//! (`name_key`, `published_us`, `search_text`) beside the content, as the embedded store keeps them.

use async_trait::async_trait;
use galley_kernel::{Page, UserId};
use galley_recipes::{
    Recipe, RecipeId, RecipeQuery, RecipeRepository, RecipeSort, RepositoryError, Revision, TagMatch,
    WriteOutcome,
};
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use mongodb::options::FindOptions;
use serde::{Deserialize, Serialize};

use crate::store::{MongoStore, find_all, instant, micros, translate};

#[derive(Debug, Serialize, Deserialize)]
struct RecipeDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    name_key: String,
    tags: Vec<String>,
    ingredients: Vec<String>,
    instructions: Vec<String>,
    published_us: i64,
    updated_us: i64,
    owner: Option<String>,
    revision: i64,
    search_text: String,
}

impl RecipeDoc {
    fn from_recipe(recipe: &Recipe) -> Self {
        Self {
            id: recipe.id.to_string(),
            name: recipe.name.clone(),
            name_key: recipe.name.to_lowercase(),
            tags: recipe.tags.clone(),
            ingredients: recipe.ingredients.clone(),
            instructions: recipe.instructions.clone(),
            published_us: micros(recipe.published_at),
            updated_us: micros(recipe.updated_at),
            owner: recipe.owner.as_ref().map(|o| o.as_str().to_owned()),
            revision: i64::try_from(recipe.revision.get()).unwrap_or(i64::MAX),
            search_text: recipe.search_text(),
        }
    }

    fn into_recipe(self) -> Result<Recipe, RepositoryError> {
        let internal = |e: galley_kernel::StoreError| RepositoryError::Internal(e.to_string());
        Ok(Recipe {
            id: self
                .id
                .parse()
                .map_err(|_| RepositoryError::Internal(format!("corrupt recipe id {}", self.id)))?,
            name: self.name,
            tags: self.tags,
            ingredients: self.ingredients,
            instructions: self.instructions,
            published_at: instant(self.published_us, "recipes.published_us").map_err(internal)?,
            updated_at: instant(self.updated_us, "recipes.updated_us").map_err(internal)?,
            owner: self.owner.map(UserId::new),
            revision: Revision::new(u64::try_from(self.revision).unwrap_or_default()),
        })
    }
}

fn from_store(error: galley_kernel::StoreError) -> RepositoryError {
    match error {
        galley_kernel::StoreError::Unavailable(message) => RepositoryError::Unavailable(message),
        galley_kernel::StoreError::Internal(message) => RepositoryError::Internal(message),
    }
}

fn repository_error(error: mongodb::error::Error) -> RepositoryError {
    from_store(translate(error))
}

/// Regular-expression metacharacters escaped, so search terms match literally.
fn literal(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn filter(query: &RecipeQuery) -> Document {
    let mut clauses: Vec<Document> = Vec::new();
    if !query.tags.is_empty() {
        let operator = if query.tag_match == TagMatch::All { "$all" } else { "$in" };
        clauses.push(doc! { "tags": { operator: query.tags.clone() } });
    }
    for term in &query.terms {
        clauses.push(doc! { "search_text": { "$regex": literal(term) } });
    }
    if clauses.is_empty() {
        doc! {}
    } else {
        doc! { "$and": clauses }
    }
}

#[derive(Debug, Clone)]
pub struct MongoRecipeRepository {
    store: MongoStore,
}

impl MongoRecipeRepository {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `recipes` on the store's current client, taken per operation.
    fn recipes(&self) -> Collection<RecipeDoc> {
        self.store.collection("recipes")
    }

    async fn missed_write(&self, id: RecipeId) -> Result<WriteOutcome, RepositoryError> {
        let exists =
            self.recipes().count_documents(doc! { "_id": id.to_string() }).await.map_err(repository_error)?;
        Ok(if exists > 0 { WriteOutcome::RevisionMismatch } else { WriteOutcome::NotFound })
    }
}

#[async_trait]
impl RecipeRepository for MongoRecipeRepository {
    async fn insert(&self, recipe: &Recipe) -> Result<(), RepositoryError> {
        self.recipes().insert_one(RecipeDoc::from_recipe(recipe)).await.map(|_| ()).map_err(repository_error)
    }

    async fn get(&self, id: RecipeId) -> Result<Option<Recipe>, RepositoryError> {
        self.recipes()
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(repository_error)?
            .map(RecipeDoc::into_recipe)
            .transpose()
    }

    async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RepositoryError> {
        let filter = filter(query);
        let sort = match query.sort {
            RecipeSort::PublishedDesc => doc! { "published_us": -1, "_id": -1 },
            RecipeSort::PublishedAsc => doc! { "published_us": 1, "_id": 1 },
            RecipeSort::Name => doc! { "name_key": 1, "_id": 1 },
        };
        let options = FindOptions::builder()
            .sort(sort)
            .skip(query.page.offset())
            .limit(i64::from(query.page.limit()))
            .build();
        let docs = find_all(&self.recipes(), filter.clone(), options).await.map_err(repository_error)?;
        let total = self.recipes().count_documents(filter).await.map_err(repository_error)?;
        let items = docs.into_iter().map(RecipeDoc::into_recipe).collect::<Result<_, _>>()?;
        Ok(Page { items, request: query.page, total })
    }

    async fn update(&self, recipe: &Recipe, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let replacement = RecipeDoc::from_recipe(recipe);
        let expected = i64::try_from(expected.get()).unwrap_or(i64::MAX);
        let result = self
            .recipes()
            .replace_one(doc! { "_id": recipe.id.to_string(), "revision": expected }, replacement)
            .await
            .map_err(repository_error)?;
        if result.matched_count == 0 {
            return self.missed_write(recipe.id).await;
        }
        Ok(WriteOutcome::Done)
    }

    async fn delete(&self, id: RecipeId, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let expected = i64::try_from(expected.get()).unwrap_or(i64::MAX);
        let result = self
            .recipes()
            .delete_one(doc! { "_id": id.to_string(), "revision": expected })
            .await
            .map_err(repository_error)?;
        if result.deleted_count == 0 {
            return self.missed_write(id).await;
        }
        Ok(WriteOutcome::Done)
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        self.recipes().count_documents(doc! {}).await.map_err(repository_error)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        self.store.ping().await.map_err(from_store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_match_literally() {
        assert_eq!(literal("a.b*c"), "a\\.b\\*c");
        assert_eq!(literal("phở"), "phở");
    }

    #[test]
    fn filters_combine_tags_and_terms() {
        let query = RecipeQuery::new(
            galley_kernel::PageRequest::default(),
            &["soup".to_owned()],
            TagMatch::All,
            Some("garlic"),
            RecipeSort::Name,
        )
        .expect("valid");
        let filter = filter(&query);
        let clauses = filter.get_array("$and").expect("and");
        assert_eq!(clauses.len(), 2);
    }
}
