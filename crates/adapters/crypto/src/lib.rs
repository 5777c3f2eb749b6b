//! Cryptography adapters for the identity ports.
//!
//! Module map:
//! - [`password`]: `Argon2Hasher`, the `PasswordHasher` port on Argon2id (parameters documented there).
//! - [`keys`]: `KeyRing`, RS256 signing keys persisted through the `SigningKeyStore` port, generated on
//!   first start, rotated by age, published as a JWKS while tokens they signed may still be presented.
//! - [`jwks`]: `RemoteJwks`, another issuer's keys (discovery document + JWKS): lock-free reads,
//!   single-flight, rate-limited refetches.
//! - [`jwt`]: `JwtAuthority`, the `TokenSigner` and `TokenVerifier` ports on `jsonwebtoken`, with the
//!   algorithm pinned and issuer, audience and validity checked against an injectable clock; also the
//!   ID tokens of an external provider (`JwtVerifier::verify_id_token`).
//! - [`sealer`]: `AesGcmSealer`, the `SecretSealer` port on AES-256-GCM with a key derived by HKDF.
//! - [`envelope`]: the envelope format of secrets at rest (shared with `galley-kms`) and
//!   `LocalKeyFileEnvelope`, the `SecretEnvelope` port on a key file in the data directory.

pub mod envelope;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod sealer;

pub use envelope::{KeyFileError, LocalKeyFileEnvelope};
pub use jwks::{JwksIntervals, RemoteJwks};
pub use jwt::{JwtAuthority, JwtVerifier, OidcIdClaims, VerificationKeys};
pub use keys::{KeyPolicy, KeyRing};
pub use password::{Argon2Hasher, Argon2Params, HashingPoolMetrics};
pub use sealer::AesGcmSealer;
