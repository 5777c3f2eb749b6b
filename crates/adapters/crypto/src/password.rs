//! Argon2id password hashing.
//!
//! Default parameters follow OWASP's password storage guidance for Argon2id: 19 MiB of memory, 2
//! iterations, 1 lane. That costs an attacker with a leaked database ~19 MiB and two passes per guess,
//! and costs us a few tens of milliseconds per sign-in on one core, which dominates sign-in latency by
//! design. Hashes are PHC strings that carry their own parameters, so raising them later keeps old
//! hashes verifiable. Hashing runs on the blocking pool so it never stalls the async workers.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use galley_identity::{IdentityError, Password, PasswordHasher};
use serde::Deserialize;

/// Tunable cost of one hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    argon: Argon2<'static>,
}

impl Argon2Hasher {
    pub fn new(params: Argon2Params) -> Result<Self, IdentityError> {
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|error| IdentityError::Internal(format!("invalid Argon2 parameters: {error}")))?;
        Ok(Self { argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || work(argon))
            .await
            .map_err(|error| IdentityError::Internal(format!("hashing task failed: {error}")))?
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<String, IdentityError> {
        let password = password.expose().to_owned();
        self.blocking(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| IdentityError::Internal(format!("hashing failed: {error}")))
        })
        .await
    }

    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, IdentityError> {
        let password = password.expose().to_owned();
        let hash = hash.to_owned();
        self.blocking(move |argon| {
            let parsed = PasswordHash::new(&hash)
                .map_err(|error| IdentityError::Internal(format!("stored hash is malformed: {error}")))?;
            match argon.verify_password(password.as_bytes(), &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(error) => Err(IdentityError::Internal(format!("verification failed: {error}"))),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let hasher = Argon2Hasher::new(Argon2Params::default()).expect("valid params");
        let hash = hasher.hash(&Password::new("correct horse!")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&Password::new("correct horse!"), &hash).await.expect("verify"));
        assert!(!hasher.verify(&Password::new("wrong horse!"), &hash).await.expect("verify"));
    }

    #[tokio::test]
    async fn equal_passwords_get_different_salts() {
        let hasher = Argon2Hasher::new(Argon2Params { memory_kib: 1024, iterations: 1, parallelism: 1 })
            .expect("params");
        let a = hasher.hash(&Password::new("same!pass")).await.expect("hash");
        let b = hasher.hash(&Password::new("same!pass")).await.expect("hash");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn hashes_keep_their_own_parameters() {
        let cheap = Argon2Hasher::new(Argon2Params { memory_kib: 1024, iterations: 1, parallelism: 1 })
            .expect("params");
        let hash = cheap.hash(&Password::new("old!pass")).await.expect("hash");
        let current = Argon2Hasher::new(Argon2Params::default()).expect("params");
        assert!(current.verify(&Password::new("old!pass"), &hash).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_mismatch() {
        let hasher = Argon2Hasher::new(Argon2Params::default()).expect("params");
        let result = hasher.verify(&Password::new("x"), "not-a-phc-string").await;
        assert!(matches!(result, Err(IdentityError::Internal(_))));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Argon2Hasher::new(Argon2Params { memory_kib: 1, iterations: 0, parallelism: 0 }).is_err());
    }
}
