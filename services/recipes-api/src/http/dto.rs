//! JSON models. They are the public contract, separate from the domain types so the domain can change
//! without breaking clients (and vice versa).

use chrono::{DateTime, Utc};
use galley_kernel::Page;
use galley_recipes::{Recipe, RecipeInput};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Recipe content sent on create (POST) and replace (PUT). Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipeRequest {
    /// 1 to 200 characters, trimmed.
    #[schema(required = true, example = "Phở bò")]
    pub name: Option<String>,
    /// Up to 20 tags; trimmed, lower-cased and de-duplicated.
    #[schema(example = json!(["soup", "vietnamese"]))]
    pub tags: Option<Vec<String>>,
    /// 1 to 100 non-blank entries of at most 500 characters.
    #[schema(required = true, example = json!(["500 g beef bones", "200 g rice noodles"]))]
    pub ingredients: Option<Vec<String>>,
    /// 1 to 100 non-blank steps of at most 2000 characters.
    #[schema(required = true, example = json!(["Simmer the bones for three hours."]))]
    pub instructions: Option<Vec<String>>,
}

impl From<RecipeRequest> for RecipeInput {
    fn from(request: RecipeRequest) -> Self {
        Self {
            name: request.name,
            tags: request.tags,
            ingredients: request.ingredients,
            instructions: request.instructions,
        }
    }
}

/// A stored recipe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecipeResponse {
    #[schema(example = "01934c4e-7a9e-7cc2-9f3c-2a1b3c4d5e6f")]
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub ingredients: Vec<String>,
    pub instructions: Vec<String>,
    pub published_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The owning user's id; absent for sample recipes.
    pub owner: Option<String>,
}

impl From<Recipe> for RecipeResponse {
    fn from(recipe: Recipe) -> Self {
        Self {
            id: recipe.id.to_string(),
            name: recipe.name,
            tags: recipe.tags,
            ingredients: recipe.ingredients,
            instructions: recipe.instructions,
            published_at: recipe.published_at,
            updated_at: recipe.updated_at,
            owner: recipe.owner.map(|owner| owner.as_str().to_owned()),
        }
    }
}

/// A page of recipes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecipePage {
    pub items: Vec<RecipeResponse>,
    pub page: u32,
    pub limit: u32,
    /// Number of recipes matching the filters, across all pages.
    pub total: u64,
    pub total_pages: u64,
}

impl From<Page<Recipe>> for RecipePage {
    fn from(page: Page<Recipe>) -> Self {
        let total_pages = page.total_pages();
        Self {
            page: page.request.page(),
            limit: page.request.limit(),
            total: page.total,
            total_pages,
            items: page.items.into_iter().map(RecipeResponse::from).collect(),
        }
    }
}
