//! What recipe use cases can fail with. The HTTP layer maps each variant to one status and problem code.

use galley_kernel::Violations;

use crate::ports::RepositoryError;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Input broke one or more rules (422).
    #[error("invalid recipe input: {0}")]
    Invalid(Violations),
    /// No recipe with that id (404).
    #[error("recipe not found")]
    NotFound,
    /// The caller's `If-Match` revision is stale (412).
    #[error("recipe was modified since it was read")]
    RevisionMismatch,
    /// The caller may not change this recipe (403).
    #[error("only the owner may change this recipe")]
    Forbidden,
    /// The store is unavailable (503); details are logged, not shown.
    #[error(transparent)]
    Unavailable(RepositoryError),
    /// Anything else (500); details are logged, not shown.
    #[error(transparent)]
    Internal(RepositoryError),
}

impl From<RepositoryError> for RecipeError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(_) => Self::Unavailable(error),
            RepositoryError::Internal(_) => Self::Internal(error),
        }
    }
}

impl From<Violations> for RecipeError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}
