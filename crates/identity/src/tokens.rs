//! Token shapes. Access and ID tokens are JWTs (signed by a [`crate::ports::TokenSigner`]); refresh
//! tokens are opaque random strings stored only as hashes, grouped in families (one per sign-in session)
//! so that reuse of a rotated token can revoke the whole session.

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use galley_kernel::UserId;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Who issues tokens and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// `iss` of every token, e.g. `http://127.0.0.1:8080/` (Auth0 style: with the trailing slash).
    pub issuer: String,
    /// `aud` of access tokens: the API.
    pub api_audience: String,
    /// `aud` of ID tokens: the client application.
    pub client_id: String,
}

/// `aud` is a string or an array of strings (Auth0 access tokens use arrays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    /// Token id, the key of the revocation list. Issuers that put none in their tokens (Auth0's default
    /// access tokens) get the token's digest here from the verifier ([`token_digest`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Session (refresh-token family) id; revoking it revokes every access token of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Claims of an ID token: who the user is, for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub username: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
}

/// What a successful sign-in or refresh returns.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// The authenticated caller of a request, from a verified, unrevoked access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: Option<String>,
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
}

impl Principal {
    pub fn from_claims(claims: &AccessClaims) -> Self {
        Self {
            user_id: UserId::new(claims.sub.clone()),
            session_id: claims.sid.clone(),
            token_id: claims.jti.clone(),
            expires_at: Utc.timestamp_opt(claims.exp, 0).single().unwrap_or_default(),
        }
    }
}

/// A stored refresh token (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    /// The session this token belongs to; all rotations of one sign-in share it.
    pub family_id: String,
    pub user_id: UserId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The digest naming a bearer token where it has no `jti`: the revocation-list entry and the key of the
/// provider's per-sign-in session record. Same hash as refresh tokens (the input is high-entropy).
pub fn token_digest(token: &str) -> String {
    format!("digest:{}", hash_refresh_token(token))
}

/// 256 random bits, URL-safe: unguessable and fine in JSON, cookies and forms.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Refresh tokens are stored hashed, so a leaked database cannot be replayed. They are high-entropy, so
/// a fast hash (SHA-256) is enough; passwords are a different matter (Argon2id).
pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_a_string_or_an_array() {
        let one: Audience = serde_json::from_str("\"api\"").expect("string");
        assert!(one.contains("api"));
        let many: Audience = serde_json::from_str("[\"api\",\"other\"]").expect("array");
        assert!(many.contains("other"));
        assert!(!many.contains("nope"));
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed_stably() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
        assert_eq!(hash_refresh_token("abc").len(), 64);
    }
}
