//! JSON models. They are the public contract, separate from the domain types so the domain can change
//! without breaking clients (and vice versa).

use chrono::{DateTime, Utc};
use galley_kernel::Page;
use galley_recipes::model::limits;
use galley_recipes::{Recipe, RecipeInput, RecipeQuery};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

/// JSON Schema `pattern` (unanchored, ECMA-262) of a text that is not blank: it holds a non-space.
pub const NOT_BLANK: &str = r"\S";

/// Recipe content sent on create (POST) and replace (PUT). Unknown fields are refused.
///
/// The constraints documented here are the ones the domain enforces (`RecipeDraft::parse`): lengths are
/// counted in characters after trimming, so surrounding blanks do not count.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipeRequest {
    /// 1 to 200 characters, trimmed.
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"\S",
        example = "Phở bò"
    )]
    pub name: Option<String>,
    /// Up to 20 tags of 1 to 50 characters; trimmed, lower-cased and de-duplicated. `null` means none.
    #[schema(schema_with = tags_schema, example = json!(["soup", "vietnamese"]))]
    pub tags: Option<Vec<String>>,
    /// 1 to 100 non-blank entries of at most 500 characters.
    #[schema(required = true, schema_with = ingredients_schema, example = json!(["500 g beef bones", "200 g rice noodles"]))]
    pub ingredients: Option<Vec<String>>,
    /// 1 to 100 non-blank steps of at most 2000 characters.
    #[schema(required = true, schema_with = instructions_schema, example = json!(["Simmer the bones for three hours."]))]
    pub instructions: Option<Vec<String>>,
}

/// A non-blank string of at most `max_chars` characters.
fn text(max_chars: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(NOT_BLANK))
}

fn tags_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(text(limits::TAG_MAX_CHARS))
        .max_items(Some(limits::TAGS_MAX_ITEMS))
        .description(Some("Up to 20 tags of 1 to 50 characters; trimmed, lower-cased and de-duplicated."))
}

fn ingredients_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(text(limits::INGREDIENT_MAX_CHARS))
        .min_items(Some(1))
        .max_items(Some(limits::INGREDIENTS_MAX_ITEMS))
        .description(Some("1 to 100 non-blank entries of at most 500 characters."))
}

fn instructions_schema() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(text(limits::INSTRUCTION_MAX_CHARS))
        .min_items(Some(1))
        .max_items(Some(limits::INSTRUCTIONS_MAX_ITEMS))
        .description(Some("1 to 100 non-blank steps of at most 2000 characters."))
}

/// How several `tag` filters combine.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagMatchParam {
    Any,
    All,
}

/// Result order: newest first (default), oldest first, or by name.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum SortParam {
    #[serde(rename = "-published_at")]
    NewestFirst,
    #[serde(rename = "published_at")]
    OldestFirst,
    #[serde(rename = "name")]
    Name,
}

/// Query parameters of `GET /recipes`. Documentation only: the handler parses them strictly with
/// `QueryParams` (unknown or repeated single-valued parameters are refused, at most 64 in all).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListRecipesParams {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Tag filter; repeat for several (at most 10, each 1 to 50 characters).
    #[param(schema_with = tag_filters_schema, explode = true)]
    pub tag: Option<Vec<String>>,
    /// How tags combine (default `any`).
    #[param(rename = "match", inline)]
    pub tag_match: Option<TagMatchParam>,
    /// Words that must all occur in the name, tags or ingredients (at most 200 characters).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Result order (default `-published_at`).
    #[param(inline)]
    pub sort: Option<SortParam>,
    /// Response language (`en` or `vi`; anything else falls back to `Accept-Language`, then English).
    pub locale: Option<String>,
}

fn tag_filters_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(text(limits::TAG_MAX_CHARS)).max_items(Some(RecipeQuery::MAX_TAG_FILTERS))
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
