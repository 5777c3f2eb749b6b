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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use galley_crypto::LocalKeyFileEnvelope;
use galley_identity::at_rest::SealedSigningKeyStore;
use galley_identity::{SecretEnvelope, SigningKeyStore};
use galley_kms::KmsEnvelope;
use galley_platform::{KmsSettings, StoreBackend, StoreSettings};

/// The envelope configuration names, if any (see the module doc).
pub async fn secret_envelope(
    kms: &KmsSettings,
    store: &StoreSettings,
) -> anyhow::Result<Option<Arc<dyn SecretEnvelope>>> {
    if let Some(key_id) = kms.key_id() {
        let aws =
            galley_aws::AwsClientSettings { region: kms.region.clone(), endpoint: kms.endpoint.clone() };
        let envelope = KmsEnvelope::connect(&aws, key_id).await.with_context(|| {
            format!("cannot use KMS key {key_id} (kms.key_id; credentials from the AWS default chain)")
        })?;
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
    Ok(match secret_envelope(kms, store).await? {
        Some(envelope) => Arc::new(SealedSigningKeyStore::new(keys, envelope)),
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
        let envelope = secret_envelope(&KmsSettings::default(), &store).await.expect("opens");
        assert!(envelope.is_some_and(|e| e.wrapping_key().starts_with("local key file")));
        assert!(dir.path().join("galley-at-rest.key").exists());
    }

    #[tokio::test]
    async fn without_a_kms_key_mongodb_keeps_keys_unsealed() {
        let store = StoreSettings { backend: StoreBackend::Mongodb, ..StoreSettings::default() };
        assert!(secret_envelope(&KmsSettings::default(), &store).await.expect("no error").is_none());
    }
}
