//! The error every storage port shares: "try again later" versus "bug or corruption".

/// Infrastructure trouble in a store; messages are for logs only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Unreachable or too slow; callers answer 503 and may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, corrupt data); callers answer 500.
    #[error("store failure: {0}")]
    Internal(String),
}
