//! RS256 signing keys.
//!
//! Keys live in the shared store (through the `SigningKeyStore` port), so every replica of the issuer
//! signs and verifies with the same set and a restart logs nobody out. On start-up the ring makes sure
//! an active key exists and rotates it when older than `rotate_after`. A rotated-out key stays published
//! in the JWKS for `publish_retired_for` (at least the access-token lifetime) so tokens it signed stay
//! verifiable until they expire; then it is deleted. Replicas re-read the set every minute and whenever
//! a token names a `kid` they do not know (at most every few seconds), so a key made by another replica
//! is picked up quickly.
//!
//! Key ids are RFC 7638 JWK thumbprints: derived from the public key, so they are stable and unique.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use galley_identity::{IdentityError, SigningKeyStore, StoreError, StoredSigningKey};
use galley_kernel::Clock;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const RSA_BITS: usize = 2048;
/// Re-read the shared key set this often, to follow rotations made by other replicas.
const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// An unknown `kid` triggers a reload at most this often, so garbage tokens cannot hammer the store.
const UNKNOWN_KID_RELOAD_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    pub rotate_after: Duration,
    pub publish_retired_for: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            rotate_after: Duration::from_secs(30 * 24 * 3600),
            publish_retired_for: Duration::from_secs(3600),
        }
    }
}

/// A key ready for use.
#[derive(Clone)]
pub struct LoadedKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Base64url modulus and exponent, as published in the JWKS.
    n: String,
    e: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl LoadedKey {
    fn from_stored(stored: &StoredSigningKey) -> Result<Self, IdentityError> {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&stored.private_pem).map_err(|error| {
            IdentityError::Internal(format!("signing key {} is unreadable: {error}", stored.kid))
        })?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        let encoding = EncodingKey::from_rsa_pem(stored.private_pem.as_bytes())
            .map_err(|error| IdentityError::Internal(format!("signing key {}: {error}", stored.kid)))?;
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .map_err(|error| IdentityError::Internal(format!("verification key {}: {error}", stored.kid)))?;
        Ok(Self {
            kid: stored.kid.clone(),
            encoding,
            decoding,
            n,
            e,
            created_at: stored.created_at,
            retired_at: stored.retired_at,
        })
    }

    fn jwk(&self) -> Value {
        json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e })
    }
}

/// RFC 7638 thumbprint of an RSA public key: SHA-256 over `{"e":..,"kty":"RSA","n":..}`.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A fresh key, generated on the blocking pool (RSA generation takes tens of milliseconds).
async fn generate(now: DateTime<Utc>) -> Result<StoredSigningKey, IdentityError> {
    tokio::task::spawn_blocking(move || {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .map_err(|error| IdentityError::Internal(format!("RSA key generation failed: {error}")))?;
        let pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| IdentityError::Internal(format!("RSA key encoding failed: {error}")))?;
        let kid = thumbprint(
            &URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            &URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        );
        Ok(StoredSigningKey { kid, private_pem: pem.to_string(), created_at: now, retired_at: None })
    })
    .await
    .map_err(|error| IdentityError::Internal(format!("key generation task failed: {error}")))?
}

#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn SigningKeyStore>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    keys: RwLock<Arc<Vec<LoadedKey>>>,
    last_reload: Mutex<Option<Instant>>,
}

impl KeyRing {
    /// Loads the shared key set, creating the first key or rotating an old one, and pruning keys whose
    /// tokens can no longer be valid.
    pub async fn open(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> Result<Self, IdentityError> {
        let ring = Self {
            store,
            clock,
            policy,
            keys: RwLock::new(Arc::new(Vec::new())),
            last_reload: Mutex::new(None),
        };
        ring.reload().await?;
        let now = ring.clock.now();
        let rotate_after =
            chrono::Duration::from_std(ring.policy.rotate_after).unwrap_or(chrono::Duration::MAX);
        match ring.active() {
            Some(active) if active.created_at + rotate_after > now => {}
            _ => ring.rotate().await?,
        }
        ring.prune().await?;
        Ok(ring)
    }

    fn snapshot(&self) -> Arc<Vec<LoadedKey>> {
        self.keys.read().map(|keys| Arc::clone(&keys)).unwrap_or_default()
    }

    /// The newest key that is not retired.
    fn active(&self) -> Option<LoadedKey> {
        self.snapshot().iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| k.created_at).cloned()
    }

    /// Makes a new key the signing key and retires the others (they stay published for a while).
    pub async fn rotate(&self) -> Result<(), IdentityError> {
        let now = self.clock.now();
        let fresh = generate(now).await?;
        self.store.insert(&fresh).await.map_err(IdentityError::from)?;
        for old in self.snapshot().iter().filter(|k| k.retired_at.is_none()) {
            self.store.retire(&old.kid, now).await.map_err(IdentityError::from)?;
        }
        tracing::info!(kid = %fresh.kid, "new signing key is active");
        self.reload().await
    }

    /// Deletes retired keys that no unexpired token can reference any more.
    async fn prune(&self) -> Result<(), IdentityError> {
        let publish =
            chrono::Duration::from_std(self.policy.publish_retired_for).unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let expired: Vec<String> = self
            .snapshot()
            .iter()
            .filter(|k| k.retired_at.is_some_and(|retired| retired + publish < now))
            .map(|k| k.kid.clone())
            .collect();
        for kid in &expired {
            self.store.delete(kid).await.map_err(IdentityError::from)?;
        }
        if !expired.is_empty() {
            self.reload().await?;
        }
        Ok(())
    }

    async fn reload(&self) -> Result<(), IdentityError> {
        let stored = self.store.load().await.map_err(IdentityError::from)?;
        let loaded = stored.iter().map(LoadedKey::from_stored).collect::<Result<Vec<_>, _>>()?;
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(loaded);
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(Instant::now());
        }
        Ok(())
    }

    fn reloaded_within(&self, period: Duration) -> bool {
        self.last_reload.lock().ok().and_then(|last| *last).is_some_and(|last| last.elapsed() < period)
    }

    /// The key to sign with now.
    pub async fn signing_key(&self) -> Result<LoadedKey, IdentityError> {
        if !self.reloaded_within(RELOAD_EVERY)
            && let Err(error) = self.reload().await
        {
            tracing::warn!(%error, "could not refresh signing keys; using the ones in memory");
        }
        self.active().ok_or_else(|| IdentityError::Internal("no active signing key".into()))
    }

    /// The published key with this id, re-reading the shared set (rate-limited) when it is unknown.
    pub async fn find(&self, kid: &str) -> Result<Option<LoadedKey>, StoreError> {
        let lookup = |keys: &[LoadedKey]| keys.iter().find(|k| k.kid == kid).cloned();
        if let Some(key) = lookup(&self.snapshot()) {
            return Ok(Some(key));
        }
        if self.reloaded_within(UNKNOWN_KID_RELOAD_EVERY) {
            return Ok(None);
        }
        self.reload().await.map_err(|error| StoreError::Unavailable(error.to_string()))?;
        Ok(lookup(&self.snapshot()))
    }

    /// The JSON Web Key Set: every key whose tokens may still be presented.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.snapshot().iter().map(LoadedKey::jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;

    use super::*;

    /// Shared in-memory key store for unit tests.
    #[derive(Debug, Default)]
    pub struct VecKeyStore(pub Mutex<BTreeMap<String, StoredSigningKey>>);

    #[async_trait]
    impl SigningKeyStore for VecKeyStore {
        async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
            let mut keys: Vec<_> = self.0.lock().expect("lock").values().cloned().collect();
            keys.sort_by_key(|k| k.created_at);
            Ok(keys)
        }
        async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
            self.0.lock().expect("lock").insert(key.kid.clone(), key.clone());
            Ok(())
        }
        async fn retire(&self, kid: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
            if let Some(key) = self.0.lock().expect("lock").get_mut(kid) {
                key.retired_at = Some(at);
            }
            Ok(())
        }
        async fn delete(&self, kid: &str) -> Result<(), StoreError> {
            self.0.lock().expect("lock").remove(kid);
            Ok(())
        }
        async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
            if let Some(key) = self.0.lock().expect("lock").get_mut(kid) {
                key.private_pem = private_pem.to_owned();
            }
            Ok(())
        }
    }

    #[derive(Debug)]
    pub struct ManualClock(pub Mutex<DateTime<Utc>>);

    impl ManualClock {
        pub fn at(now: DateTime<Utc>) -> Arc<Self> {
            Arc::new(Self(Mutex::new(now)))
        }
        pub fn advance(&self, by: chrono::Duration) {
            let mut now = self.0.lock().expect("lock");
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("lock")
        }
    }

    #[tokio::test]
    async fn first_start_creates_a_key_and_a_restart_reuses_it() {
        let store = Arc::new(VecKeyStore::default());
        let clock = ManualClock::at(Utc::now());
        let first = KeyRing::open(store.clone(), clock.clone(), KeyPolicy::default()).await.expect("open");
        let kid = first.signing_key().await.expect("key").kid;
        let second = KeyRing::open(store.clone(), clock, KeyPolicy::default()).await.expect("reopen");
        assert_eq!(second.signing_key().await.expect("key").kid, kid, "same key after restart");
        assert_eq!(first.jwks()["keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(kid.len(), 43, "a base64url SHA-256 thumbprint");
    }

    #[tokio::test]
    async fn old_keys_rotate_stay_published_then_are_pruned() {
        let store = Arc::new(VecKeyStore::default());
        let clock = ManualClock::at(Utc::now());
        let policy = KeyPolicy {
            rotate_after: Duration::from_secs(3600),
            publish_retired_for: Duration::from_secs(600),
        };
        let ring = KeyRing::open(store.clone(), clock.clone(), policy).await.expect("open");
        let old = ring.signing_key().await.expect("key").kid;

        clock.advance(chrono::Duration::hours(2));
        let ring = KeyRing::open(store.clone(), clock.clone(), policy).await.expect("rotated");
        let new = ring.signing_key().await.expect("key").kid;
        assert_ne!(new, old);
        assert!(ring.find(&old).await.expect("find").is_some(), "retired key still verifies");
        let published: Vec<String> = ring.jwks()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect();
        assert!(published.contains(&old) && published.contains(&new));

        clock.advance(chrono::Duration::minutes(11));
        let ring = KeyRing::open(store, clock, policy).await.expect("pruned");
        assert!(ring.find(&old).await.expect("find").is_none(), "pruned after its grace period");
    }

    #[tokio::test]
    async fn a_key_made_by_another_replica_is_found_by_kid() {
        let store = Arc::new(VecKeyStore::default());
        let clock = ManualClock::at(Utc::now());
        let replica_a = KeyRing::open(store.clone(), clock.clone(), KeyPolicy::default()).await.expect("a");
        let replica_b = KeyRing::open(store.clone(), clock, KeyPolicy::default()).await.expect("b");
        replica_b.rotate().await.expect("rotate on b");
        let new = replica_b.signing_key().await.expect("key").kid;
        // Replica A loaded its keys at open, inside the unknown-kid rate limit; forget that moment so the
        // lookup may reload (as it would a few seconds later).
        *replica_a.last_reload.lock().expect("lock") = None;
        assert!(replica_a.find(&new).await.expect("find").is_some());
    }
}
