//! What identity use cases and ports fail with.

use std::time::Duration;

use galley_kernel::Violations;

use crate::ports::UniqueField;

pub use galley_kernel::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Input broke rules (422).
    #[error("invalid input: {0}")]
    Invalid(Violations),
    /// Username and/or email already belong to an account (409).
    #[error("already taken: {0:?}")]
    Conflict(Vec<UniqueField>),
    /// Unknown user or wrong password; deliberately not saying which (401).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed sign-ins for this username or client address (429).
    #[error("locked out for {retry_after:?}")]
    LockedOut { retry_after: Duration },
    /// The provider blocked this account (an administrator, or its own brute-force protection) (403).
    #[error("account blocked")]
    Blocked,
    /// Unknown, expired, revoked or reused refresh token (401).
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The signed-in user no longer exists (401: the token names nobody).
    #[error("user not found")]
    UserNotFound,
    /// Too many passwords are being hashed at once; retry after `retry_after` (503 with `Retry-After`).
    #[error("password hashing overloaded")]
    Overloaded { retry_after: Duration },
    /// A store or provider is unavailable (503); details logged.
    #[error("identity unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500); details logged.
    #[error("identity failure: {0}")]
    Internal(String),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(message) => Self::Unavailable(message),
            StoreError::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<Violations> for IdentityError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

/// Why a request's token was not accepted. Shown to clients only as a generic 401; the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    /// Not typed as an access token (`typ: at+jwt`, RFC 9068): an ID token presented as one, say.
    #[error("not an access token")]
    WrongTokenType,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("revoked")]
    Revoked,
    /// Verification could not be completed (revocation list down): refuse, answer 503.
    #[error("cannot verify now: {0}")]
    Unavailable(String),
}
