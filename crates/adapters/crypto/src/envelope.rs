//! Envelope encryption of secrets at rest (ADR 0027).
//!
//! Module map:
//! - [`seal_with_data_key`] / [`SealedEnvelope`]: the versioned, self-describing format every
//!   `SecretEnvelope` adapter writes (this one and `galley-kms`), and AES-256-GCM under the secret's own
//!   data key.
//! - [`LocalKeyFileEnvelope`]: the `SecretEnvelope` port without a KMS: a 256-bit key file in the data
//!   directory wraps the per-secret data keys.
//!
//! Format, version 1 (all lengths big-endian):
//!
//! ```text
//! "GE" | version = 1 | wrapper (1 = AWS KMS, 2 = local key file) | u16 wrapped-key length
//!      | wrapped data key | 12-byte nonce | AES-256-GCM ciphertext and tag
//! ```
//!
//! The associated data of the AEAD is everything before the nonce plus the context serialised as
//! sorted JSON, so neither the wrapped key, the wrapper nor the context can be swapped without the
//! tag failing. Hand-written rather than taken from the AWS Encryption SDK: the framing is a few lines
//! around `aes-gcm`, and one format serves both the KMS and the key-file wrapper (ADR 0027).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use galley_identity::{EnvelopeError, SecretContext, SecretEnvelope};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

const MAGIC: &[u8; 2] = b"GE";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
/// AES-256.
pub const DATA_KEY_LEN: usize = 32;
/// Magic, version, wrapper, wrapped-key length.
const FIXED_HEADER_LEN: usize = 2 + 1 + 1 + 2;

/// Who wrapped the data key: recorded so a secret sealed by one kind of key is refused by the other
/// with a message saying so, rather than a bare "cannot decrypt".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    AwsKms,
    LocalKeyFile,
}

impl Wrapper {
    fn byte(self) -> u8 {
        match self {
            Wrapper::AwsKms => 1,
            Wrapper::LocalKeyFile => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Wrapper::AwsKms),
            2 => Some(Wrapper::LocalKeyFile),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Wrapper::AwsKms => "an AWS KMS key",
            Wrapper::LocalKeyFile => "a local key file",
        }
    }
}

/// A fresh random data key (wiped from memory when dropped).
pub fn new_data_key() -> Zeroizing<[u8; DATA_KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

/// The context as associated data: sorted JSON of its pairs.
pub fn context_bytes(context: &SecretContext) -> Vec<u8> {
    // Serialising a map of strings cannot fail.
    serde_json::to_vec(context.pairs()).unwrap_or_default()
}

fn refused(reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Refused(reason.into())
}

/// Seals `plaintext` under `data_key` into the format above, recording `wrapped_key` (the data key as
/// the wrapper encrypted it) in the header.
pub fn seal_with_data_key(
    data_key: &[u8; DATA_KEY_LEN],
    wrapper: Wrapper,
    wrapped_key: &[u8],
    plaintext: &[u8],
    context: &SecretContext,
) -> Result<Vec<u8>, EnvelopeError> {
    let wrapped_len = u16::try_from(wrapped_key.len())
        .map_err(|_| refused(format!("wrapped data key too long ({} bytes)", wrapped_key.len())))?;
    let mut sealed =
        Vec::with_capacity(FIXED_HEADER_LEN + wrapped_key.len() + NONCE_LEN + plaintext.len() + 16);
    sealed.extend_from_slice(MAGIC);
    sealed.push(VERSION);
    sealed.push(wrapper.byte());
    sealed.extend_from_slice(&wrapped_len.to_be_bytes());
    sealed.extend_from_slice(wrapped_key);
    let mut aad = sealed.clone();
    aad.extend_from_slice(&context_bytes(context));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key));
    let ciphertext = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad: &aad })
        .map_err(|_| refused("encryption failed"))?;
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// A parsed envelope: who wrapped its data key, the wrapped key, and what it takes to open it.
#[derive(Debug, Clone, Copy)]
pub struct SealedEnvelope<'a> {
    pub wrapper: Wrapper,
    pub wrapped_key: &'a [u8],
    header: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> SealedEnvelope<'a> {
    /// Reads the header; refuses unknown versions and truncated input.
    pub fn parse(sealed: &'a [u8]) -> Result<Self, EnvelopeError> {
        if sealed.len() < FIXED_HEADER_LEN || &sealed[..2] != MAGIC {
            return Err(refused("not a Galley envelope"));
        }
        if sealed[2] != VERSION {
            return Err(refused(format!("envelope version {} is not supported", sealed[2])));
        }
        let wrapper = Wrapper::from_byte(sealed[3]).ok_or_else(|| refused("unknown key wrapper"))?;
        let wrapped_len = usize::from(u16::from_be_bytes([sealed[4], sealed[5]]));
        let header_len = FIXED_HEADER_LEN + wrapped_len;
        if sealed.len() < header_len + NONCE_LEN + 16 {
            return Err(refused("truncated envelope"));
        }
        let (header, rest) = sealed.split_at(header_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Self { wrapper, wrapped_key: &header[FIXED_HEADER_LEN..], header, nonce, ciphertext })
    }

    /// Refuses an envelope whose data key `expected` did not wrap.
    pub fn require_wrapper(&self, expected: Wrapper) -> Result<(), EnvelopeError> {
        if self.wrapper == expected {
            Ok(())
        } else {
            Err(refused(format!("sealed by {}, not by {}", self.wrapper.describe(), expected.describe())))
        }
    }

    /// The plaintext, if `data_key` is this envelope's and `context` the one it was sealed with.
    pub fn open_with_data_key(
        &self,
        data_key: &[u8; DATA_KEY_LEN],
        context: &SecretContext,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut aad = self.header.to_vec();
        aad.extend_from_slice(&context_bytes(context));
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key));
        cipher
            .decrypt(Nonce::from_slice(self.nonce), Payload { msg: self.ciphertext, aad: &aad })
            .map_err(|_| refused("the envelope does not open (tampered with, or another context)"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or create the key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the key file {path} does not hold a base64 256-bit key")]
    Malformed { path: PathBuf },
}

/// The `SecretEnvelope` port without a KMS: a 256-bit key in a file of the data directory (created
/// with mode 0600 on first start) wraps each secret's data key with AES-256-GCM.
///
/// It protects against a database dump or backup that leaves without the key file; it does not
/// protect against anyone who can read the data directory or the process (README, "Keys at rest").
pub struct LocalKeyFileEnvelope {
    path: PathBuf,
    key_encryption: Aes256Gcm,
    /// Identifies the key file in every envelope, so a wrong file is named as such.
    fingerprint: [u8; 8],
}

impl std::fmt::Debug for LocalKeyFileEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyFileEnvelope").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Associated data of a wrapped data key, before the context.
const LOCAL_WRAP_LABEL: &[u8] = b"galley/local-key-file/v1";

impl LocalKeyFileEnvelope {
    /// The file's name in the data directory.
    pub const FILE_NAME: &'static str = "galley-at-rest.key";

    /// Reads the key file at `path`, creating it (mode 0600, a fresh random key) when it is missing.
    /// Two processes starting at once cannot both create it: the loser reads the winner's file.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let io = |source| KeyFileError::Io { path: path.to_owned(), source };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => match Self::create(path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read_to_string(path).map_err(io)?
                }
                Err(error) => return Err(io(error)),
            },
            Err(error) => return Err(io(error)),
        };
        let bytes = Zeroizing::new(
            STANDARD.decode(text.trim()).map_err(|_| KeyFileError::Malformed { path: path.to_owned() })?,
        );
        if bytes.len() != DATA_KEY_LEN {
            return Err(KeyFileError::Malformed { path: path.to_owned() });
        }
        warn_if_others_can_read(path);
        let digest = Sha256::digest([b"galley key file fingerprint".as_slice(), &bytes].concat());
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        Ok(Self {
            path: path.to_owned(),
            key_encryption: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            fingerprint,
        })
    }

    fn create(path: &Path) -> std::io::Result<String> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(new_data_key().as_ref())));
        let mut file = options.open(path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), "created the key file that seals secrets at rest; back it up apart from the database");
        Ok(text.to_string())
    }

    fn fingerprint_hex(fingerprint: &[u8]) -> String {
        fingerprint.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn wrap_aad(context: &SecretContext) -> Vec<u8> {
        [LOCAL_WRAP_LABEL, &context_bytes(context)].concat()
    }
}

#[cfg(unix)]
fn warn_if_others_can_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the key file sealing secrets at rest is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_path: &Path) {}

#[async_trait]
impl SecretEnvelope for LocalKeyFileEnvelope {
    fn wrapping_key(&self) -> String {
        format!("local key file {} ({})", self.path.display(), Self::fingerprint_hex(&self.fingerprint))
    }

    async fn seal(&self, plaintext: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError> {
        let data_key = new_data_key();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let wrapped = self
            .key_encryption
            .encrypt(&nonce, Payload { msg: data_key.as_ref(), aad: &Self::wrap_aad(context) })
            .map_err(|_| refused("wrapping the data key failed"))?;
        let wrapped_key = [self.fingerprint.as_slice(), nonce.as_slice(), &wrapped].concat();
        seal_with_data_key(&data_key, Wrapper::LocalKeyFile, &wrapped_key, plaintext, context)
    }

    async fn open(&self, sealed: &[u8], context: &SecretContext) -> Result<Vec<u8>, EnvelopeError> {
        let envelope = SealedEnvelope::parse(sealed)?;
        envelope.require_wrapper(Wrapper::LocalKeyFile)?;
        let wrapped = envelope.wrapped_key;
        if wrapped.len() < 8 + NONCE_LEN {
            return Err(refused("truncated wrapped data key"));
        }
        let (fingerprint, rest) = wrapped.split_at(8);
        if fingerprint != self.fingerprint {
            return Err(refused(format!(
                "sealed by another key file ({})",
                Self::fingerprint_hex(fingerprint)
            )));
        }
        let (nonce, wrapped) = rest.split_at(NONCE_LEN);
        let data_key = Zeroizing::new(
            self.key_encryption
                .decrypt(Nonce::from_slice(nonce), Payload { msg: wrapped, aad: &Self::wrap_aad(context) })
                .map_err(|_| refused("the data key does not unwrap (tampered with, or another context)"))?,
        );
        let data_key: &[u8; DATA_KEY_LEN] =
            data_key.as_slice().try_into().map_err(|_| refused("the data key has the wrong length"))?;
        envelope.open_with_data_key(data_key, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(kid: &str) -> SecretContext {
        SecretContext::new("galley/signing-key").with("kid", kid)
    }

    #[test]
    fn the_format_round_trips_and_binds_key_wrapper_and_context() {
        let key = new_data_key();
        let sealed =
            seal_with_data_key(&key, Wrapper::AwsKms, b"wrapped", b"secret", &context("a")).expect("sealed");
        let envelope = SealedEnvelope::parse(&sealed).expect("parses");
        assert_eq!((envelope.wrapper, envelope.wrapped_key), (Wrapper::AwsKms, b"wrapped".as_slice()));
        assert_eq!(envelope.open_with_data_key(&key, &context("a")).expect("opens"), b"secret");
        assert!(envelope.open_with_data_key(&key, &context("b")).is_err(), "another context");
        assert!(envelope.open_with_data_key(&new_data_key(), &context("a")).is_err(), "another key");
        assert!(envelope.require_wrapper(Wrapper::LocalKeyFile).is_err());

        // Every byte is covered: flipping any one makes it unreadable.
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            let opened =
                SealedEnvelope::parse(&tampered).and_then(|e| e.open_with_data_key(&key, &context("a")));
            assert!(opened.is_err(), "byte {index} flipped still opened");
        }
        assert!(SealedEnvelope::parse(&sealed[..sealed.len() - 17]).is_err(), "truncated");
        let mut future = sealed.clone();
        future[2] = 2;
        let error = SealedEnvelope::parse(&future).expect_err("unknown version").to_string();
        assert!(error.contains("version 2"), "{error}");
    }

    #[tokio::test]
    async fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join(LocalKeyFileEnvelope::FILE_NAME);
        let first = LocalKeyFileEnvelope::open_or_create(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.seal(b"-----BEGIN PRIVATE KEY-----", &context("k")).await.expect("sealed");
        assert!(!sealed.windows(5).any(|w| w == b"BEGIN"), "no plaintext in the envelope");
        let again = LocalKeyFileEnvelope::open_or_create(&path).expect("reopened");
        assert_eq!(again.open(&sealed, &context("k")).await.expect("opens"), b"-----BEGIN PRIVATE KEY-----");
        assert!(matches!(again.open(&sealed, &context("other")).await, Err(EnvelopeError::Refused(_))));
        assert!(again.wrapping_key().contains(LocalKeyFileEnvelope::FILE_NAME));
    }

    #[tokio::test]
    async fn another_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = LocalKeyFileEnvelope::open_or_create(&dir.path().join("one.key")).expect("one");
        let two = LocalKeyFileEnvelope::open_or_create(&dir.path().join("two.key")).expect("two");
        let sealed = one.seal(b"secret", &context("k")).await.expect("sealed");
        let error = two.open(&sealed, &context("k")).await.expect_err("refused").to_string();
        assert!(error.contains("sealed by another key file"), "{error}");
    }

    #[test]
    fn a_malformed_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").expect("write");
        let error = LocalKeyFileEnvelope::open_or_create(&path).expect_err("malformed").to_string();
        assert!(error.contains("does not hold a base64 256-bit key"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "not a key", "left alone");
    }
}
