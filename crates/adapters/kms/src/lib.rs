//! `galley-kms`: the `SecretEnvelope` port on AWS KMS (ADR 0027).
//!
//! Module map: this file only — [`KmsEnvelope`].
//!
//! Each seal asks KMS for a fresh data key (`GenerateDataKey`, AES-256) under the configured key, with
//! the secret's context as the KMS encryption context; the secret is encrypted locally with AES-256-GCM
//! (format in `galley_crypto::envelope`) and the wrapped data key is stored beside the ciphertext.
//! Opening sends the wrapped key back (`Decrypt`) naming the configured key id, so KMS refuses a secret
//! sealed under any other key, and the same encryption context, so it refuses a secret moved to another
//! purpose or key id (and CloudTrail logs what each unwrap was for).
//!
//! Unwrapped data keys are kept in memory for [`DATA_KEY_CACHE_TTL`]: the issuer re-reads its signing
//! keys every minute on every replica, and without the cache each read would cost one `Decrypt` per
//! key. The private keys those data keys protect sit in the same memory anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use galley_aws::AwsClientSettings;
use galley_crypto::envelope::{self, DATA_KEY_LEN, SealedEnvelope, Wrapper};
use galley_identity::{EnvelopeError, SecretContext, SecretEnvelope};
use zeroize::Zeroizing;

/// How long an unwrapped data key is reused before KMS is asked again.
pub const DATA_KEY_CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many unwrapped data keys are kept (one per stored secret that was opened).
const DATA_KEY_CACHE_CAPACITY: usize = 256;
/// One KMS call, retries included, gives up after this long (start-up must not hang on KMS).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Error codes meaning "this key will not open this secret", as opposed to a transient failure.
const REFUSAL_CODES: &[&str] = &[
    "AccessDeniedException",
    "IncorrectKeyException",
    "InvalidCiphertextException",
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
];

type CacheKey = (Vec<u8>, Vec<u8>);
type DataKey = Zeroizing<[u8; DATA_KEY_LEN]>;

/// Envelope encryption under one KMS key.
pub struct KmsEnvelope {
    client: aws_sdk_kms::Client,
    key_id: String,
    /// (wrapped data key, context) → unwrapped data key and when it was unwrapped.
    data_keys: Mutex<HashMap<CacheKey, (Instant, DataKey)>>,
}

impl std::fmt::Debug for KmsEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsEnvelope").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KmsEnvelope {
    /// A client for `settings` (credentials from the AWS default chain) on the key `key_id` (a key id,
    /// key ARN, alias name or alias ARN), checked at once: start-up fails on a missing or disabled key
    /// or unusable credentials rather than on the first secret.
    pub async fn connect(settings: &AwsClientSettings, key_id: &str) -> Result<Self, EnvelopeError> {
        let sdk = galley_aws::load_sdk_config(settings).await;
        Self::with_config(aws_sdk_kms::config::Builder::from(&sdk), key_id).await
    }

    /// Like [`KmsEnvelope::connect`] from an SDK configuration builder (tests pass static credentials).
    pub async fn with_config(
        config: aws_sdk_kms::config::Builder,
        key_id: &str,
    ) -> Result<Self, EnvelopeError> {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let client = aws_sdk_kms::Client::from_conf(config.timeout_config(timeouts).build());
        let envelope = Self { client, key_id: key_id.to_owned(), data_keys: Mutex::new(HashMap::new()) };
        envelope.check_key().await?;
        Ok(envelope)
    }

    async fn check_key(&self) -> Result<(), EnvelopeError> {
        let described = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|error| classify("DescribeKey", error))?;
        let metadata =
            described.key_metadata().ok_or_else(|| refused("DescribeKey returned no key metadata"))?;
        if !metadata.enabled() {
            return Err(refused(format!("the key is not enabled (state {:?})", metadata.key_state())));
        }
        tracing::debug!(key_id = %self.key_id, arn = metadata.arn().unwrap_or_default(), "KMS key usable");
        Ok(())
    }

    fn cached(&self, key: &CacheKey) -> Option<DataKey> {
        let cache = self.data_keys.lock().ok()?;
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < DATA_KEY_CACHE_TTL)
            .map(|(_, data_key)| data_key.clone())
    }

    fn remember(&self, key: CacheKey, data_key: &DataKey) {
        if let Ok(mut cache) = self.data_keys.lock() {
            if cache.len() >= DATA_KEY_CACHE_CAPACITY {
                cache.retain(|_, (at, _)| at.elapsed() < DATA_KEY_CACHE_TTL);
            }
            if cache.len() >= DATA_KEY_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), data_key.clone()));
        }
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &SecretContext,
    ) -> Result<DataKey, EnvelopeError> {
        let cache_key = (wrapped.to_vec(), envelope::context_bytes(context));
        if let Some(data_key) = self.cached(&cache_key) {
            return Ok(data_key);
        }
        let decrypted = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|error| classify("Decrypt", error))?;
        let data_key = to_data_key(decrypted.plaintext())?;
        self.remember(cache_key, &data_key);
        Ok(data_key)
    }
}

fn refused(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Refused(reason.into())
}

fn encryption_context(context: &SecretContext) -> HashMap<String, String> {
    context.pairs().iter().map(|(name, value)| (name.clone(), value.clone())).collect()
}

fn to_data_key(plaintext: Option<&Blob>) -> Result<DataKey, EnvelopeError> {
    let bytes = plaintext.map(Blob::as_ref).unwrap_or_default();
    let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    if bytes.len() != DATA_KEY_LEN {
        return Err(refused(format!("KMS returned a {}-byte data key, not {DATA_KEY_LEN}", bytes.len())));
    }
    data_key.copy_from_slice(bytes);
    Ok(data_key)
}

/// KMS refusing this key or secret is a [`EnvelopeError::Refused`]; anything else (network, throttling,
/// KMS internal errors, timeouts) may pass and is [`EnvelopeError::Unavailable`].
fn classify<E>(operation: &str, error: SdkError<E>) -> EnvelopeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(service) = &error {
        let code = service.err().code().unwrap_or("unknown");
        if REFUSAL_CODES.contains(&code) {
            let message = service.err().message().filter(|m| !m.is_empty()).unwrap_or("no message");
            return refused(format!("KMS {operation} refused: {code} ({message})"));
        }
    }
    EnvelopeError::Unavailable(format!("KMS {operation}: {}", DisplayErrorContext(&error)))
}

#[async_trait]
impl SecretEnvelope for KmsEnvelope {
    fn wrapping_key(&self) -> String {
        format!("KMS key {}", self.key_id)
    }

    async fn seal(&self, plaintext: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError> {
        let generated = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|error| classify("GenerateDataKey", error))?;
        let data_key = to_data_key(generated.plaintext())?;
        let wrapped = generated.ciphertext_blob().map(Blob::as_ref).unwrap_or_default();
        if wrapped.is_empty() {
            return Err(refused("KMS returned no wrapped data key"));
        }
        envelope::seal_with_data_key(&data_key, Wrapper::AwsKms, wrapped, plaintext, context)
    }

    async fn open(&self, sealed: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError> {
        let parsed = SealedEnvelope::parse(sealed)?;
        parsed.require_wrapper(Wrapper::AwsKms)?;
        let data_key = self.unwrap_data_key(parsed.wrapped_key, context).await?;
        parsed.open_with_data_key(&data_key, context)
    }
}
