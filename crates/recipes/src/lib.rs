//! The recipes bounded context: entities, rules and use cases, free of any web, database or cache crate.
//!
//! Module map:
//! - [`model`]: `Recipe`, its id and revision, `Precondition` (which revisions a write may replace), and
//!   `RecipeDraft` (validated user input).
//! - [`query`]: `RecipeQuery` for listing (paging, tags with any/all, text search, sort).
//! - [`ports`]: the `RecipeRepository` port and its error contract.
//! - [`service`]: `RecipeService`, the use cases (no caching: that is the serving edge's concern).
//! - [`error`]: `RecipeError`, what the use cases can fail with.
//! - [`seed`]: our own sample recipes for first start.

pub mod error;
pub mod model;
pub mod ports;
pub mod query;
pub mod seed;
pub mod service;

pub use error::RecipeError;
pub use model::{Actor, Precondition, Recipe, RecipeDraft, RecipeId, RecipeInput, Revision};
pub use ports::{RecipeRepository, RepositoryError, WriteOutcome};
pub use query::{RecipeQuery, RecipeSort, TagMatch};
pub use service::RecipeService;
