//! Auth0 as Galley's identity provider: the `IdentityProvider` port over Auth0's Authentication API.
//!
//! Module map:
//! - [`settings`]: `Auth0Settings`, the `identity.auth0` configuration section, and the base URL
//!   (= issuer) it names.
//! - [`provider`]: `Auth0IdentityProvider`: sign-up through the database connection, sign-in with the
//!   password-realm or password grant, refresh with rotation, sign-out that revokes the refresh token at
//!   Auth0 (found through the per-sign-in [`galley_identity::ProviderSession`]), and `me` from the
//!   verified ID token. Auth0's errors become `IdentityError`s; its bodies are logged, never passed on.
//! - [`verifier`]: the verifier of Auth0 access tokens both APIs use: Auth0's JWKS through the shared
//!   `RemoteJwks` cache, RS256, the issuer with its trailing slash, the API audience.

pub mod provider;
pub mod settings;
pub mod verifier;

pub use provider::Auth0IdentityProvider;
pub use provider::Auth0Ports;
pub use settings::{Auth0Grant, Auth0Settings, IdentityProviderKind};
pub use verifier::auth0_verifier;
