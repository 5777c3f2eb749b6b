//! `kms.*` and `store.*` → the [`SecretEnvelope`] that seals secrets at rest, and the signing-key store
//! sealed by it (ADR 0027):
//!
//! - `kms.key_id` set → [`KmsEnvelope`] (AWS KMS; region and endpoint from `kms.region`/`kms.endpoint`,
//!   credentials from the AWS default chain), whatever the store.
//! - else, embedded store → [`LocalKeyFileEnvelope`] on `galley-at-rest.key` beside the database file
//!   (the data directory), created on first start.
//! - else (MongoDB without KMS) → no envelope: the keys stay in plain text in MongoDB, with a warning.
//!   A key file per replica would leave each replica unable to read the keys the others made, so
//!   shared stores need a shared key service.
//!
//! A change of wrapping key re-seals on load ([`AtRestKeys::previous`]): `kms.previous_key_id` names
//! the KMS key secrets were sealed with before `kms.key_id` (or before the move back to a key file);
//! and an embedded store moving to KMS keeps its key file as the previous key while the file exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use galley_crypto::LocalKeyFileEnvelope;
use galley_identity::at_rest::SealedSigningKeyStore;
use galley_identity::{SecretEnvelope, SigningKeyStore};
use galley_kms::KmsEnvelope;
use galley_platform::{KmsSettings, StoreBackend, StoreSettings};

/// The envelope that seals secrets at rest now, and the one that sealed them before a change of
/// wrapping key: what only `previous` opens is re-sealed with `current` (signing keys, on load) or
/// still opened until it expires (provider sessions).
#[derive(Debug, Clone)]
pub struct AtRestKeys {
    pub current: Arc<dyn SecretEnvelope>,
    pub previous: Option<Arc<dyn SecretEnvelope>>,
}

/// The wrapping keys configuration names, if any (see the module doc).
pub async fn at_rest_keys(kms: &KmsSettings, store: &StoreSettings) -> anyhow::Result<Option<AtRestKeys>> {
    if let Some(previous) = kms.previous_key_id().filter(|previous| kms.key_id() == Some(*previous)) {
        anyhow::bail!("kms.previous_key_id and kms.key_id both name {previous}: nothing to re-seal");
    }
    let Some(current) = current_envelope(kms, store).await? else {
        if let Some(previous) = kms.previous_key_id() {
            anyhow::bail!(
                "kms.previous_key_id = {previous} but nothing to move the secrets to: set kms.key_id \
                 (a MongoDB store has no local key file)"
            );
        }
        return Ok(None);
    };
    let previous = previous_envelope(kms, store).await?;
    Ok(Some(AtRestKeys { current, previous }))
}

/// The envelope secrets are sealed with from now on.
async fn current_envelope(
    kms: &KmsSettings,
    store: &StoreSettings,
) -> anyhow::Result<Option<Arc<dyn SecretEnvelope>>> {
    if let Some(key_id) = kms.key_id() {
        let envelope = kms_envelope(kms, key_id).await?;
        tracing::info!(key_id, "secrets at rest: sealed with data keys from AWS KMS");
        return Ok(Some(Arc::new(envelope)));
    }
    match store.backend {
        StoreBackend::Embedded => {
            let path = key_file_path(&store.embedded.path);
            let envelope = LocalKeyFileEnvelope::open_or_create(&path)?;
            tracing::info!(path = %path.display(), "secrets at rest: sealed with the local key file");
            Ok(Some(Arc::new(envelope)))
        }
        StoreBackend::Mongodb => {
            tracing::warn!(
                "kms.key_id is not set and the store is MongoDB: signing keys are stored unencrypted \
                 (set kms.key_id to seal them with AWS KMS)"
            );
            Ok(None)
        }
    }
}

/// The envelope of the wrapping key before a change, if there was one.
async fn previous_envelope(
    kms: &KmsSettings,
    store: &StoreSettings,
) -> anyhow::Result<Option<Arc<dyn SecretEnvelope>>> {
    if let Some(previous) = kms.previous_key_id() {
        let envelope = kms_envelope(kms, previous).await?;
        tracing::info!(previous, "secrets at rest sealed under the previous KMS key are re-sealed");
        return Ok(Some(Arc::new(envelope)));
    }
    let path = key_file_path(&store.embedded.path);
    if kms.key_id().is_some() && store.backend == StoreBackend::Embedded && path.exists() {
        let envelope = LocalKeyFileEnvelope::open_or_create(&path)?;
        tracing::info!(path = %path.display(),
            "secrets at rest sealed with the local key file are re-sealed under the KMS key; \
             the file can be deleted once this process has started");
        return Ok(Some(Arc::new(envelope)));
    }
    Ok(None)
}

async fn kms_envelope(kms: &KmsSettings, key_id: &str) -> anyhow::Result<KmsEnvelope> {
    let aws = galley_aws::AwsClientSettings { region: kms.region.clone(), endpoint: kms.endpoint.clone() };
    KmsEnvelope::connect(&aws, key_id).await.with_context(|| {
        format!("cannot use KMS key {key_id} (kms.*; credentials from the AWS default chain)")
    })
}

/// The local key file of an embedded store: in the directory of its database file.
pub fn key_file_path(database: &Path) -> PathBuf {
    let dir = database.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(LocalKeyFileEnvelope::FILE_NAME)
}

/// `keys` sealed by the envelope configuration names (unchanged when it names none).
pub async fn sealed_signing_keys(
    keys: Arc<dyn SigningKeyStore>,
    kms: &KmsSettings,
    store: &StoreSettings,
) -> anyhow::Result<Arc<dyn SigningKeyStore>> {
    Ok(match at_rest_keys(kms, store).await? {
        Some(AtRestKeys { current, previous }) => {
            let sealed = SealedSigningKeyStore::new(keys, current);
            Arc::new(match previous {
                Some(previous) => sealed.rewrapping_from(previous),
                None => sealed,
            })
        }
        None => keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(key_file_path(Path::new("/data/galley.db")), Path::new("/data/galley-at-rest.key"));
        assert_eq!(key_file_path(Path::new("galley.db")), Path::new("./galley-at-rest.key"));
    }

    #[tokio::test]
    async fn without_a_kms_key_the_embedded_store_gets_a_key_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = StoreSettings {
            embedded: galley_platform::EmbeddedStoreSettings { path: dir.path().join("galley.db") },
            ..StoreSettings::default()
        };
        let keys = at_rest_keys(&KmsSettings::default(), &store).await.expect("opens").expect("a key file");
        assert!(keys.current.wrapping_key().starts_with("local key file"));
        assert!(keys.previous.is_none(), "no key change");
        assert!(dir.path().join("galley-at-rest.key").exists());
    }

    #[tokio::test]
    async fn without_a_kms_key_mongodb_keeps_keys_unsealed() {
        let store = StoreSettings { backend: StoreBackend::Mongodb, ..StoreSettings::default() };
        assert!(at_rest_keys(&KmsSettings::default(), &store).await.expect("no error").is_none());
    }

    #[tokio::test]
    async fn a_previous_key_with_nothing_to_move_to_is_refused() {
        let store = StoreSettings { backend: StoreBackend::Mongodb, ..StoreSettings::default() };
        let kms = KmsSettings { previous_key_id: Some("alias/old".into()), ..KmsSettings::default() };
        let error = at_rest_keys(&kms, &store).await.expect_err("refused").to_string();
        assert!(error.contains("kms.previous_key_id = alias/old") && error.contains("kms.key_id"), "{error}");
    }

    #[tokio::test]
    async fn the_same_key_as_current_and_previous_is_refused() {
        let kms = KmsSettings {
            key_id: Some("alias/k".into()),
            previous_key_id: Some("alias/k".into()),
            ..KmsSettings::default()
        };
        let store = StoreSettings { backend: StoreBackend::Mongodb, ..StoreSettings::default() };
        let error = at_rest_keys(&kms, &store).await.expect_err("refused before any KMS call").to_string();
        assert!(error.contains("both name alias/k"), "{error}");
    }
}
