//! The identity bounded context: users, credentials, sessions and tokens, as rules and use cases.
//! No web, database or crypto-library crate here: hashing, signing and storage are ports.
//!
//! Module map:
//! - [`model`]: `User`, `Profile`, validated sign-up input, `Password` (never printed).
//! - [`tokens`]: claims of access and ID tokens, `TokenSet`, `Principal`, refresh-token records.
//! - [`ports`]: every port the use cases need (users, refresh tokens, revocation list, sign-in attempts,
//!   password hasher, token signer/verifier, signing-key store) and the `IdentityProvider` port the
//!   built-in provider and Auth0 (crate `galley-auth0`) implement, the per-sign-in record store of an
//!   external provider and the sealer of the secrets it keeps.
//! - [`provider`]: `BuiltinIdentityProvider`, Galley as its own identity provider.
//! - [`service`]: `AuthService`, what HTTP handlers call: provider + brute-force protection + token
//!   authentication with revocation.
//! - [`at_rest`]: `SealedSigningKeyStore`, the signing keys sealed by a `SecretEnvelope` (a KMS key or
//!   a local key file) whatever database holds them, plain keys migrated on first load; `EnvelopeSealer`,
//!   the `SecretSealer` port on the same envelope (a provider's refresh tokens).
//! - [`error`]: `IdentityError` and `AuthFailure`.

pub mod at_rest;
pub mod error;
pub mod model;
pub mod ports;
pub mod provider;
pub mod service;
pub mod tokens;

pub use error::{AuthFailure, IdentityError, StoreError};
pub use model::{Credentials, Password, Profile, SignUp, SignUpInput, User};
pub use ports::{
    AttemptState, AttemptTracker, Authenticator, Budget, ConsumeOutcome, EnvelopeError, IdentityProvider,
    InsertUserError, PasswordHasher, ProviderSession, ProviderSessionStore, RefreshTokenStore, Reservation,
    RevocationList, SecretContext, SecretEnvelope, SecretSealer, SigningKeyStore, StoredSigningKey,
    TokenSigner, TokenVerifier, UniqueField, UserRepository,
};
pub use provider::{BuiltinIdentityProvider, BuiltinPorts, TokenLifetimes};
pub use service::{AuthService, LockoutPolicy, TokenAuthenticator, client_key};
pub use tokens::{
    AccessClaims, Audience, IdClaims, IssuerConfig, Principal, RefreshRecord, TokenSet, token_digest,
};
