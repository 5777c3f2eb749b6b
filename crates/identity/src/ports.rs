//! Identity ports. Each port documents its error contract; adapters translate their infrastructure
//! errors into [`StoreError`] and never leak driver types.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_kernel::UserId;

use crate::error::{AuthFailure, IdentityError, StoreError};
use crate::model::{Credentials, Password, Profile, SignUp, User};
use crate::tokens::{AccessClaims, IdClaims, Principal, RefreshRecord, TokenSet};

/// A field that must be unique across users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueField {
    Username,
    Email,
}

impl UniqueField {
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueField::Username => "username",
            UniqueField::Email => "email",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// These unique fields are taken (both may be reported at once).
    #[error("duplicate {0:?}")]
    Duplicate(Vec<UniqueField>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// User accounts. Usernames are unique case-insensitively ([`User::username_key`]); emails are stored
/// lower-cased and unique.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + std::fmt::Debug {
    /// Stores a new user, or reports every unique field already taken.
    async fn insert(&self, user: &User) -> Result<(), InsertUserError>;
    /// The user whose username matches case-insensitively.
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What consuming a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// It was valid and unused; it is now used (it cannot be consumed again).
    Fresh(RefreshRecord),
    /// It had been used before: a replay. The caller revokes the family.
    Reused(RefreshRecord),
    /// Its family was revoked (sign-out or an earlier replay).
    Revoked,
    /// No such token.
    Unknown,
}

/// Refresh tokens, stored by hash. `consume` must be atomic: of two concurrent consumers of the same
/// token exactly one sees `Fresh`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RefreshTokenStore: Send + Sync + std::fmt::Debug {
    async fn insert(&self, record: &RefreshRecord) -> Result<(), StoreError>;
    async fn consume(&self, token_hash: &str) -> Result<ConsumeOutcome, StoreError>;
    /// Revokes every token of the family, used or not.
    async fn revoke_family(&self, family_id: &str) -> Result<(), StoreError>;
}

/// Token and session ids revoked before their natural expiry. Entries only need to live as long as the
/// tokens they revoke (`ttl`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RevocationList: Send + Sync + std::fmt::Debug {
    async fn revoke(&self, id: &str, ttl: Duration) -> Result<(), StoreError>;
    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError>;
}

/// Failed sign-in counts in a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptState {
    /// Attempts charged in the current window.
    pub failures: u32,
    /// Time left in the current window (zero when there is none).
    pub window_left: Duration,
}

/// One budget a sign-in attempt is charged against: at most `limit` attempts per window under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub key: String,
    pub limit: u32,
}

impl Budget {
    pub fn new(key: impl Into<String>, limit: u32) -> Self {
        Self { key: key.into(), limit }
    }
}

/// What [`AttemptTracker::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Every budget had room and each was charged one attempt.
    Granted,
    /// At least one budget was spent; nothing was charged. `retry_after` is the longest time left in a
    /// spent budget's window.
    Refused { retry_after: Duration },
}

/// Counts sign-in attempts per key (username, client address, username and client) in fixed windows.
///
/// An attempt is charged *before* the password is checked, so the check-and-charge must be one atomic
/// step for all of an attempt's budgets, also across replicas: of any number of concurrent attempts
/// against a budget of `n`, at most `n` are granted.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AttemptTracker: Send + Sync + std::fmt::Debug {
    /// Grants the attempt only if no budget is spent, charging each one; the first attempt charged to a
    /// key starts its window with length `window`. All or nothing: a refusal charges no budget.
    async fn reserve(&self, budgets: &[Budget], window: Duration) -> Result<Reservation, StoreError>;
    /// Gives back an attempt granted by `reserve` that never checked a password (the hasher was busy, a
    /// store was down), so an overloaded server does not lock users out. Never goes below zero.
    async fn release(&self, keys: &[String]) -> Result<(), StoreError>;
    async fn state(&self, key: &str) -> Result<AttemptState, StoreError>;
    async fn reset(&self, key: &str) -> Result<(), StoreError>;
    /// Remembers for `ttl` that `key` (a username and client) signed in successfully.
    async fn remember(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Whether `key` was remembered and its time has not run out.
    async fn is_remembered(&self, key: &str) -> Result<bool, StoreError>;
}

/// Password hashing (Argon2id in production). Implementations run the work off the async threads and
/// bound it: when their pool and its wait queue are full (or the wait is too long) they answer
/// [`IdentityError::Overloaded`] instead of piling up work, and a caller that gives up while waiting
/// (its request was dropped) leaves the queue without hashing.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    async fn hash(&self, password: &Password) -> Result<String, IdentityError>;
    /// Whether `password` matches `hash`. A malformed hash is an `Internal` error, not `false`.
    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, IdentityError>;
}

/// Signs tokens with the current signing key (its `kid` in the header).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenSigner: Send + Sync + std::fmt::Debug {
    async fn sign_access(&self, claims: &AccessClaims) -> Result<String, IdentityError>;
    async fn sign_id(&self, claims: &IdClaims) -> Result<String, IdentityError>;
}

/// Verifies an access token's signature (algorithm pinned, key chosen by `kid`), issuer, audience and
/// validity window. Revocation is checked by the caller.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthFailure>;
}

/// A persisted signing key. Every replica of the issuer reads the same keys from the shared store.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    /// PKCS#8 PEM of the private key. Below [`crate::at_rest::SealedSigningKeyStore`] (what the
    /// database adapters see) it is the sealed envelope of that PEM instead.
    pub private_pem: String,
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; it stays published until tokens it signed have expired.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync + std::fmt::Debug {
    async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError>;
    async fn retire(&self, kid: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn delete(&self, kid: &str) -> Result<(), StoreError>;
    /// Replaces the stored private key of `kid` (the migration of a plain key to a sealed one),
    /// leaving its times alone. Replacing an unknown key is not an error and creates nothing.
    async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError>;
}

/// An identity provider: Galley's built-in one, or Auth0.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    async fn sign_up(&self, sign_up: SignUp) -> Result<Profile, IdentityError>;
    /// `InvalidCredentials` for an unknown user or a wrong password alike. `client` is the end user's
    /// address, for providers that protect against brute force per user and address themselves.
    async fn sign_in(
        &self,
        credentials: &Credentials,
        client: Option<IpAddr>,
    ) -> Result<TokenSet, IdentityError>;
    /// Rotates a refresh token; a reused one revokes its whole family.
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError>;
    /// Ends the principal's session: its refresh tokens stop working.
    async fn sign_out(&self, principal: &Principal) -> Result<(), IdentityError>;
    /// The signed-in principal's profile.
    async fn profile(&self, principal: &Principal) -> Result<Profile, IdentityError>;
}

/// What an external provider's sign-in left behind on Galley's side, so that a sign-out sending only
/// the bearer can still end the provider session, and `me` can answer without calling the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSession {
    /// [`crate::tokens::token_digest`] of the access token issued with it.
    pub key: String,
    pub user_id: UserId,
    /// The provider's refresh token, sealed by a [`SecretSealer`] (never stored in the clear).
    pub sealed_refresh_token: Option<String>,
    pub username: String,
    pub email: String,
    pub given_name: Option<String>,
    /// When the user signed up, if the provider said; the sign-in time otherwise.
    pub created_at: DateTime<Utc>,
    /// The access token's expiry: after it nobody can present the key, so the record may go.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ProviderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSession")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Per-sign-in records of an external provider (Auth0), keyed by the access token's digest.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ProviderSessionStore: Send + Sync + std::fmt::Debug {
    /// Stores (or replaces) the record under its key.
    async fn put(&self, session: &ProviderSession) -> Result<(), StoreError>;
    /// The record under `key` if it has not expired.
    async fn find(&self, key: &str) -> Result<Option<ProviderSession>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Encrypts secrets Galley must keep but never show (the provider's refresh tokens). Behind a port so
/// that the local key can give way to envelope encryption by a KMS.
#[async_trait]
pub trait SecretSealer: Send + Sync + std::fmt::Debug {
    /// An opaque, authenticated ciphertext of `plaintext`.
    async fn seal(&self, plaintext: &str) -> Result<String, IdentityError>;
    /// The plaintext of a `seal` result; `Internal` when it was tampered with or sealed by another key.
    async fn open(&self, sealed: &str) -> Result<String, IdentityError>;
}

/// What a sealed secret is for, bound to its ciphertext (the AEAD's associated data, and the KMS
/// encryption context): a secret sealed for one purpose or one key id cannot be passed off as another,
/// and KMS audit logs name the purpose of every unwrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretContext {
    pairs: BTreeMap<String, String>,
}

impl SecretContext {
    /// A context whose `purpose` is `purpose` (e.g. `galley/signing-key`).
    pub fn new(purpose: &str) -> Self {
        Self { pairs: BTreeMap::from([("purpose".to_owned(), purpose.to_owned())]) }
    }

    /// Adds (or replaces) a name/value pair, e.g. the key id of a signing key.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.pairs.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Every pair, sorted by name (so both sides serialise it the same way).
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.pairs
    }

    pub fn purpose(&self) -> &str {
        self.pairs.get("purpose").map(String::as_str).unwrap_or_default()
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The key service could not be reached or failed in a way that may pass; retrying may work.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// This key cannot open the secret: another key sealed it, its context differs, or it was
    /// tampered with. Retrying will not help.
    #[error("{0}")]
    Refused(String),
}

/// Envelope encryption of secrets at rest: each secret is encrypted locally under a fresh data key,
/// and the data key is wrapped by a key the database never sees (a KMS key, or a local key file).
/// The sealed bytes are self-describing: they carry the wrapped data key beside the ciphertext.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SecretEnvelope: Send + Sync + std::fmt::Debug {
    /// Names the wrapping key for operators' messages (`KMS key alias/galley`, `local key file
    /// /data/galley-at-rest.key`); never key material.
    fn wrapping_key(&self) -> String;
    async fn seal(&self, plaintext: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError>;
    /// The plaintext of a `seal` result made with the same wrapping key and an equal context.
    async fn open(&self, sealed: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError>;
}

/// Turns a bearer token into the request's principal (what the HTTP auth extractor calls).
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure>;
}
