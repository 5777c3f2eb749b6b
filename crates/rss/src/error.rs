//! What RSS use cases fail with.

use galley_kernel::{StoreError, Violations};

#[derive(Debug, thiserror::Error)]
pub enum RssError {
    /// Input broke rules (422).
    #[error("invalid input: {0}")]
    Invalid(Violations),
    /// No such job (or not the caller's) (404).
    #[error("job not found")]
    JobNotFound,
    /// The store or the queue is unavailable (503); details logged.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500); details logged.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<StoreError> for RssError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(message) => Self::Unavailable(message),
            StoreError::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<Violations> for RssError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<galley_kernel::Violation> for RssError {
    fn from(violation: galley_kernel::Violation) -> Self {
        Self::Invalid(violation.into())
    }
}
