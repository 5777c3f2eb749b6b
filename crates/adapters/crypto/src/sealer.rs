//! `AesGcmSealer`: the `SecretSealer` port on AES-256-GCM (a random 96-bit nonce per seal, prepended to
//! the ciphertext, base64url). The key is derived with HKDF-SHA256 from a master secret and a purpose
//! label, so one configured secret can key several purposes without any two sharing a key.

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use galley_identity::{IdentityError, SecretSealer};
use hkdf::Hkdf;
use sha2::Sha256;

const NONCE_LEN: usize = 12;

pub struct AesGcmSealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for AesGcmSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesGcmSealer").finish_non_exhaustive()
    }
}

impl AesGcmSealer {
    /// A sealer keyed by HKDF-SHA256(`master`, info = `purpose`).
    pub fn derive(master: &[u8], purpose: &str) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so expansion cannot fail.
        let _ = Hkdf::<Sha256>::new(None, master).expand(purpose.as_bytes(), &mut key);
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    /// A sealer with a random key: what it seals cannot be opened by another process or after restart.
    pub fn random() -> Self {
        Self { cipher: Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng)) }
    }
}

#[async_trait]
impl SecretSealer for AesGcmSealer {
    async fn seal(&self, plaintext: &str) -> Result<String, IdentityError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| IdentityError::Internal("sealing failed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    async fn open(&self, sealed: &str) -> Result<String, IdentityError> {
        let unreadable =
            || IdentityError::Internal("sealed secret unreadable (other key or tampered)".into());
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| unreadable())?;
        if bytes.len() <= NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext =
            self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| unreadable())?;
        String::from_utf8(plaintext).map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_secrets_open_with_the_same_key_only() {
        let sealer = AesGcmSealer::derive(b"a master secret of at least thirty-two bytes", "refresh tokens");
        let sealed = sealer.seal("refresh-token-1").await.expect("sealed");
        assert!(!sealed.contains("refresh-token-1"));
        assert_ne!(sealed, sealer.seal("refresh-token-1").await.expect("sealed"), "fresh nonce per seal");
        assert_eq!(sealer.open(&sealed).await.expect("opened"), "refresh-token-1");

        let other_purpose = AesGcmSealer::derive(b"a master secret of at least thirty-two bytes", "other");
        assert!(other_purpose.open(&sealed).await.is_err());
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).expect("b64");
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(sealer.open(&URL_SAFE_NO_PAD.encode(tampered)).await.is_err());
        assert!(sealer.open("short").await.is_err());
    }
}
