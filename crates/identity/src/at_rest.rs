//! Signing keys sealed at rest: [`SealedSigningKeyStore`] decorates any [`SigningKeyStore`] so that
//! the database only ever holds envelopes of the private keys (sealed by a [`SecretEnvelope`]: a KMS
//! key, or a local key file), whichever database adapter is below it.
//!
//! - `insert`/`replace_private_pem` seal the PEM, with a context naming the purpose and the key id
//!   (so a sealed key copied onto another row does not open).
//! - `load` opens every key. A key still stored as plain PEM (written before sealing existed) is sealed
//!   and written back: the migration happens on the first start and needs no separate step.
//! - A key that does not open (another wrapping key, tampered bytes, another row's envelope) fails the
//!   load with one line naming the key id and the wrapping key. It never falls through to making a new
//!   key: that would sign everybody out and hide a misconfiguration or an attack.
//!
//! Stored form: `sealed:` + base64url (no padding) of the envelope's own versioned bytes.
//!
//! [`EnvelopeSealer`] puts the same envelope behind the [`SecretSealer`] port, for the other secrets
//! Galley persists (an identity provider's refresh tokens): the KMS or key-file wrapping then covers
//! them too, instead of a key derived from the cookie key that sits in the same configuration.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::error::IdentityError;
use crate::error::StoreError;
use crate::ports::{
    EnvelopeError, SecretContext, SecretEnvelope, SecretSealer, SigningKeyStore, StoredSigningKey,
};

/// The `purpose` in the context of every sealed signing key.
pub const SIGNING_KEY_PURPOSE: &str = "galley/signing-key";
/// Marks a stored value as an envelope (anything else must be a plain PEM awaiting migration).
const SEALED_PREFIX: &str = "sealed:";
const PEM_PREFIX: &str = "-----BEGIN";

/// A [`SigningKeyStore`] whose stored private keys are sealed by a [`SecretEnvelope`].
#[derive(Debug)]
pub struct SealedSigningKeyStore {
    inner: Arc<dyn SigningKeyStore>,
    envelope: Arc<dyn SecretEnvelope>,
    /// The wrapping key before a key change, if the operator named one: keys it sealed are re-sealed
    /// with `envelope` on load.
    previous: Option<Arc<dyn SecretEnvelope>>,
}

impl SealedSigningKeyStore {
    pub fn new(inner: Arc<dyn SigningKeyStore>, envelope: Arc<dyn SecretEnvelope>) -> Self {
        Self { inner, envelope, previous: None }
    }

    /// Keys that the current envelope refuses but `previous` opens (sealed before a change of
    /// wrapping key: local key file → KMS, or one KMS key → another) are re-sealed with the current
    /// envelope and written back on load, like plain keys: the re-wrap needs no separate step, and
    /// once every replica has loaded, the previous key is no longer needed.
    #[must_use]
    pub fn rewrapping_from(mut self, previous: Arc<dyn SecretEnvelope>) -> Self {
        self.previous = Some(previous);
        self
    }

    fn context(kid: &str) -> SecretContext {
        SecretContext::new(SIGNING_KEY_PURPOSE).with("kid", kid)
    }

    async fn seal(&self, kid: &str, pem: &str) -> Result<String, StoreError> {
        seal_envelope(&*self.envelope, &Self::context(kid), pem)
            .await
            .map_err(|error| self.failure("cannot be sealed", kid, error))
    }

    /// The PEM of a stored envelope, opened by the current wrapping key or, failing that, by the
    /// previous one (then re-sealed and written back).
    async fn open(&self, kid: &str, stored: &str) -> Result<String, StoreError> {
        let refusal = match open_envelope(&*self.envelope, &Self::context(kid), stored).await {
            Ok(pem) => return Ok(pem),
            Err(EnvelopeError::Refused(reason)) => reason,
            Err(unavailable) => return Err(self.failure("cannot be opened", kid, unavailable)),
        };
        let Some(previous) = &self.previous else {
            return Err(self.failure("cannot be opened", kid, EnvelopeError::Refused(refusal)));
        };
        match open_envelope(&**previous, &Self::context(kid), stored).await {
            Ok(pem) => {
                let resealed = self.seal(kid, &pem).await?;
                self.inner.replace_private_pem(kid, &resealed).await?;
                tracing::info!(%kid, from = %previous.wrapping_key(), to = %self.envelope.wrapping_key(),
                    "re-sealed a signing key with the new wrapping key");
                Ok(pem)
            }
            Err(EnvelopeError::Refused(also)) => Err(self.failure(
                "cannot be opened",
                kid,
                EnvelopeError::Refused(format!(
                    "{refusal}; nor by the previous {}: {also}",
                    previous.wrapping_key()
                )),
            )),
            Err(unavailable) => Err(self.failure("cannot be opened", kid, unavailable)),
        }
    }

    /// One line for the operator: which key, which wrapping key, why, and what it means.
    fn failure(&self, what: &str, kid: &str, error: EnvelopeError) -> StoreError {
        let wrapping = self.envelope.wrapping_key();
        match error {
            EnvelopeError::Unavailable(reason) => {
                StoreError::Unavailable(format!("signing key {kid} {what} with {wrapping}: {reason}"))
            }
            EnvelopeError::Refused(reason) => StoreError::Internal(format!(
                "signing key {kid} {what} with {wrapping}: {reason} (wrong key configured, or the stored \
                 key was tampered with; refusing to go on rather than replace the key)"
            )),
        }
    }
}

/// `plaintext` sealed under `context`, in the stored form (`sealed:` + base64url of the envelope).
async fn seal_envelope(
    envelope: &dyn SecretEnvelope,
    context: &SecretContext,
    plaintext: &str,
) -> Result<String, EnvelopeError> {
    let sealed = envelope.seal(plaintext.as_bytes(), context).await?;
    Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
}

/// The text sealed in `stored` (`sealed:` + base64url of an envelope) under `context`.
async fn open_envelope(
    envelope: &dyn SecretEnvelope,
    context: &SecretContext,
    stored: &str,
) -> Result<String, EnvelopeError> {
    let refused = |reason: &str| EnvelopeError::Refused(reason.into());
    let encoded = stored.strip_prefix(SEALED_PREFIX).ok_or_else(|| refused("not a sealed envelope"))?;
    let sealed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| refused("the envelope is not base64url"))?;
    let plain = envelope.open(&sealed, context).await?;
    String::from_utf8(plain).map_err(|_| refused("the opened secret is not text"))
}

#[async_trait]
impl SigningKeyStore for SealedSigningKeyStore {
    async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let stored = self.inner.load().await?;
        let mut opened = Vec::with_capacity(stored.len());
        for key in stored {
            let private_pem = if key.private_pem.starts_with(PEM_PREFIX) {
                let sealed = self.seal(&key.kid, &key.private_pem).await?;
                self.inner.replace_private_pem(&key.kid, &sealed).await?;
                tracing::info!(kid = %key.kid, wrapping_key = %self.envelope.wrapping_key(),
                    "sealed a signing key that was stored in plain text");
                key.private_pem.clone()
            } else {
                self.open(&key.kid, &key.private_pem).await?
            };
            opened.push(StoredSigningKey { private_pem, ..key });
        }
        Ok(opened)
    }

    async fn insert(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        let sealed = self.seal(&key.kid, &key.private_pem).await?;
        self.inner.insert(&StoredSigningKey { private_pem: sealed, ..key.clone() }).await
    }

    async fn retire(&self, kid: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.retire(kid, at).await
    }

    async fn delete(&self, kid: &str) -> Result<(), StoreError> {
        self.inner.delete(kid).await
    }

    async fn replace_private_pem(&self, kid: &str, private_pem: &str) -> Result<(), StoreError> {
        let sealed = self.seal(kid, private_pem).await?;
        self.inner.replace_private_pem(kid, &sealed).await
    }
}

/// The [`SecretSealer`] port on a [`SecretEnvelope`]: every seal gets a fresh data key wrapped by the
/// KMS key (or the local key file), bound to `purpose`, so a database dump holds no usable secret and
/// a value sealed for another purpose does not open.
///
/// Older values stay readable until they expire: those sealed before any envelope was configured
/// (no `sealed:` prefix) by the `older` sealer, and those sealed under the previous wrapping key of a
/// key change by the `previous` envelope. New values are always sealed by the current envelope.
#[derive(Debug)]
pub struct EnvelopeSealer {
    envelope: Arc<dyn SecretEnvelope>,
    context: SecretContext,
    previous: Option<Arc<dyn SecretEnvelope>>,
    older: Option<Arc<dyn SecretSealer>>,
}

impl EnvelopeSealer {
    /// Seals with `envelope` under a context whose purpose is `purpose` (e.g. `galley/auth0/refresh-token`).
    pub fn new(envelope: Arc<dyn SecretEnvelope>, purpose: &str) -> Self {
        Self { envelope, context: SecretContext::new(purpose), previous: None, older: None }
    }

    /// Also opens values sealed by `older` (written before this envelope was configured).
    #[must_use]
    pub fn opening_older_values_with(mut self, older: Arc<dyn SecretSealer>) -> Self {
        self.older = Some(older);
        self
    }

    /// Also opens envelopes sealed under `previous`, the wrapping key before a key change.
    #[must_use]
    pub fn opening_envelopes_of(mut self, previous: Arc<dyn SecretEnvelope>) -> Self {
        self.previous = Some(previous);
        self
    }

    fn failure(&self, what: &str, error: EnvelopeError) -> IdentityError {
        let wrapping = self.envelope.wrapping_key();
        let purpose = self.context.purpose();
        match error {
            EnvelopeError::Unavailable(reason) => {
                IdentityError::Unavailable(format!("a {purpose} secret {what} with {wrapping}: {reason}"))
            }
            EnvelopeError::Refused(reason) => {
                IdentityError::Internal(format!("a {purpose} secret {what} with {wrapping}: {reason}"))
            }
        }
    }
}

#[async_trait]
impl SecretSealer for EnvelopeSealer {
    async fn seal(&self, plaintext: &str) -> Result<String, IdentityError> {
        seal_envelope(&*self.envelope, &self.context, plaintext)
            .await
            .map_err(|error| self.failure("cannot be sealed", error))
    }

    async fn open(&self, sealed: &str) -> Result<String, IdentityError> {
        if let (false, Some(older)) = (sealed.starts_with(SEALED_PREFIX), &self.older) {
            return older.open(sealed).await;
        }
        match (open_envelope(&*self.envelope, &self.context, sealed).await, &self.previous) {
            (Err(EnvelopeError::Refused(_)), Some(previous)) => {
                open_envelope(&**previous, &self.context, sealed)
                    .await
                    .map_err(|error| self.failure("cannot be opened", error))
            }
            (opened, _) => opened.map_err(|error| self.failure("cannot be opened", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::ports::MockSecretEnvelope;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

    #[derive(Debug, Default)]
    struct MemoryKeys(Mutex<BTreeMap<String, StoredSigningKey>>);

    impl MemoryKeys {
        fn raw(&self, kid: &str) -> String {
            self.0.lock().expect("lock").get(kid).map(|k| k.private_pem.clone()).unwrap_or_default()
        }
    }

    #[async_trait]
    impl SigningKeyStore for MemoryKeys {
        async fn load(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
            Ok(self.0.lock().expect("lock").values().cloned().collect())
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

    fn key(kid: &str) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            private_pem: PEM.into(),
            created_at: Utc::now(),
            retired_at: None,
        }
    }

    /// A stand-in envelope: "sealing" reverses the bytes and appends the context, so a context
    /// mismatch is visible, like with a real AEAD.
    fn reversing_envelope() -> MockSecretEnvelope {
        let mut envelope = MockSecretEnvelope::new();
        envelope.expect_wrapping_key().return_const("test key".to_owned());
        envelope.expect_seal().returning(|plain, context| {
            let mut sealed: Vec<u8> = plain.iter().rev().copied().collect();
            sealed.extend(format!("|{:?}", context.pairs()).bytes());
            Ok(sealed)
        });
        envelope.expect_open().returning(|sealed, context| {
            let suffix = format!("|{:?}", context.pairs());
            let body = sealed
                .strip_suffix(suffix.as_bytes())
                .ok_or_else(|| EnvelopeError::Refused("context mismatch".into()))?;
            Ok(body.iter().rev().copied().collect())
        });
        envelope
    }

    #[tokio::test]
    async fn keys_are_sealed_in_the_store_and_read_back_plain() {
        let raw = Arc::new(MemoryKeys::default());
        let sealed = SealedSigningKeyStore::new(raw.clone(), Arc::new(reversing_envelope()));
        sealed.insert(&key("k1")).await.expect("insert");
        let stored = raw.raw("k1");
        assert!(stored.starts_with("sealed:") && !stored.contains("BEGIN"), "{stored}");
        assert_eq!(
            sealed.load().await.expect("load"),
            [key("k1")]
                .map(|k| StoredSigningKey { created_at: raw.0.lock().expect("lock")["k1"].created_at, ..k })
        );
    }

    #[tokio::test]
    async fn plain_keys_are_migrated_on_load() {
        let raw = Arc::new(MemoryKeys::default());
        raw.insert(&key("old")).await.expect("plain insert");
        let sealed = SealedSigningKeyStore::new(raw.clone(), Arc::new(reversing_envelope()));
        let loaded = sealed.load().await.expect("load");
        assert_eq!(loaded.first().map(|k| k.private_pem.as_str()), Some(PEM));
        assert!(raw.raw("old").starts_with("sealed:"), "written back sealed");
        assert_eq!(sealed.load().await.expect("second load")[0].private_pem, PEM, "and it opens");
    }

    #[tokio::test]
    async fn an_envelope_moved_to_another_row_does_not_open() {
        let raw = Arc::new(MemoryKeys::default());
        let sealed = SealedSigningKeyStore::new(raw.clone(), Arc::new(reversing_envelope()));
        sealed.insert(&key("a")).await.expect("insert");
        raw.insert(&StoredSigningKey { private_pem: raw.raw("a"), ..key("b") }).await.expect("copy");
        let error = sealed.load().await.expect_err("refused").to_string();
        assert!(error.contains("signing key b cannot be opened with test key"), "{error}");
        assert!(matches!(sealed.load().await, Err(StoreError::Internal(_))), "not a transient failure");
    }

    #[tokio::test]
    async fn an_unreachable_key_service_is_a_transient_failure_naming_the_key() {
        let raw = Arc::new(MemoryKeys::default());
        raw.insert(&StoredSigningKey { private_pem: "sealed:AAAA".into(), ..key("k") }).await.expect("raw");
        let mut envelope = MockSecretEnvelope::new();
        envelope.expect_wrapping_key().return_const("KMS key alias/x".to_owned());
        envelope.expect_open().returning(|_, _| Err(EnvelopeError::Unavailable("connection refused".into())));
        let sealed = SealedSigningKeyStore::new(raw, Arc::new(envelope));
        match sealed.load().await {
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    message.contains("signing key k") && message.contains("KMS key alias/x"),
                    "{message}"
                );
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn values_that_are_neither_pem_nor_sealed_are_refused() {
        let raw = Arc::new(MemoryKeys::default());
        raw.insert(&StoredSigningKey { private_pem: "garbage".into(), ..key("k") }).await.expect("raw");
        let sealed = SealedSigningKeyStore::new(raw, Arc::new(reversing_envelope()));
        let error = sealed.load().await.expect_err("refused").to_string();
        assert!(error.contains("not a sealed envelope"), "{error}");
    }

    /// A sealer standing for the one used before an envelope was configured: "seals" by prefixing.
    #[derive(Debug)]
    struct PrefixingSealer;

    #[async_trait]
    impl SecretSealer for PrefixingSealer {
        async fn seal(&self, plaintext: &str) -> Result<String, IdentityError> {
            Ok(format!("old:{plaintext}"))
        }
        async fn open(&self, sealed: &str) -> Result<String, IdentityError> {
            sealed.strip_prefix("old:").map(str::to_owned).ok_or_else(|| IdentityError::Internal("no".into()))
        }
    }

    #[tokio::test]
    async fn a_secret_sealed_by_the_envelope_opens_and_is_not_stored_in_the_clear() {
        let sealer = EnvelopeSealer::new(Arc::new(reversing_envelope()), "galley/test");
        let sealed = sealer.seal("refresh-token-123").await.expect("seals");
        assert!(sealed.starts_with("sealed:") && !sealed.contains("refresh-token-123"), "{sealed}");
        assert_eq!(sealer.open(&sealed).await.expect("opens"), "refresh-token-123");
    }

    #[tokio::test]
    async fn a_secret_sealed_for_another_purpose_does_not_open() {
        let envelope: Arc<dyn SecretEnvelope> = Arc::new(reversing_envelope());
        let sealed = EnvelopeSealer::new(Arc::clone(&envelope), "galley/one").seal("x").await.expect("seals");
        let error = EnvelopeSealer::new(envelope, "galley/other").open(&sealed).await.expect_err("refused");
        assert!(matches!(&error, IdentityError::Internal(m) if m.contains("galley/other")), "{error:?}");
    }

    #[tokio::test]
    async fn values_from_before_the_envelope_open_with_the_previous_sealer_only_when_given() {
        let older = PrefixingSealer.seal("legacy").await.expect("seals");
        let without = EnvelopeSealer::new(Arc::new(reversing_envelope()), "galley/test");
        let error = without.open(&older).await.expect_err("no previous sealer");
        assert!(error.to_string().contains("not a sealed envelope"), "{error}");
        let with = without.opening_older_values_with(Arc::new(PrefixingSealer));
        assert_eq!(with.open(&older).await.expect("opens"), "legacy");
        assert!(with.seal("new").await.expect("seals").starts_with("sealed:"), "new values use the envelope");
    }

    #[tokio::test]
    async fn an_unreachable_key_service_is_unavailable_not_internal() {
        let mut envelope = MockSecretEnvelope::new();
        envelope.expect_wrapping_key().return_const("KMS key alias/x".to_owned());
        envelope.expect_seal().returning(|_, _| Err(EnvelopeError::Unavailable("timeout".into())));
        let error = EnvelopeSealer::new(Arc::new(envelope), "galley/test").seal("x").await.expect_err("down");
        assert!(
            matches!(&error, IdentityError::Unavailable(m) if m.contains("KMS key alias/x")),
            "{error:?}"
        );
    }

    /// An envelope that "seals" by reversing and tagging with its name: each name is another key.
    fn named_envelope(name: &'static str) -> MockSecretEnvelope {
        let mut envelope = MockSecretEnvelope::new();
        envelope.expect_wrapping_key().return_const(format!("key {name}"));
        envelope.expect_seal().returning(move |plain, _| {
            let mut sealed: Vec<u8> = plain.iter().rev().copied().collect();
            sealed.extend(format!("|{name}").bytes());
            Ok(sealed)
        });
        envelope.expect_open().returning(move |sealed, _| {
            let body = sealed
                .strip_suffix(format!("|{name}").as_bytes())
                .ok_or_else(|| EnvelopeError::Refused(format!("not sealed by {name}")))?;
            Ok(body.iter().rev().copied().collect())
        });
        envelope
    }

    #[tokio::test]
    async fn a_key_sealed_under_the_previous_wrapping_key_is_resealed_with_the_new_one_on_load() {
        let raw = Arc::new(MemoryKeys::default());
        SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("a")))
            .insert(&key("k"))
            .await
            .expect("sealed by a");
        let sealed_by_a = raw.raw("k");

        let refused = SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("b")));
        let error = refused.load().await.expect_err("b alone cannot open it").to_string();
        assert!(error.contains("signing key k cannot be opened with key b"), "{error}");
        assert_eq!(raw.raw("k"), sealed_by_a, "a refused load changes nothing");

        let rewrapping = SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("b")))
            .rewrapping_from(Arc::new(named_envelope("a")));
        assert_eq!(rewrapping.load().await.expect("opened by a")[0].private_pem, PEM);
        assert_ne!(raw.raw("k"), sealed_by_a, "written back");
        let b_alone = SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("b")));
        assert_eq!(b_alone.load().await.expect("now sealed by b")[0].private_pem, PEM);
    }

    #[tokio::test]
    async fn a_key_neither_wrapping_key_opens_fails_naming_both() {
        let raw = Arc::new(MemoryKeys::default());
        SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("x")))
            .insert(&key("k"))
            .await
            .expect("x");
        let store = SealedSigningKeyStore::new(raw.clone(), Arc::new(named_envelope("b")))
            .rewrapping_from(Arc::new(named_envelope("a")));
        let error = store.load().await.expect_err("refused").to_string();
        assert!(error.contains("with key b") && error.contains("nor by the previous key a"), "{error}");
    }

    #[tokio::test]
    async fn a_secret_sealed_under_the_previous_wrapping_key_still_opens() {
        let sealed =
            EnvelopeSealer::new(Arc::new(named_envelope("a")), "galley/test").seal("t").await.expect("a");
        let current = EnvelopeSealer::new(Arc::new(named_envelope("b")), "galley/test");
        assert!(current.open(&sealed).await.is_err(), "b alone refuses it");
        let with_previous = current.opening_envelopes_of(Arc::new(named_envelope("a")));
        assert_eq!(with_previous.open(&sealed).await.expect("opened by a"), "t");
    }
}
