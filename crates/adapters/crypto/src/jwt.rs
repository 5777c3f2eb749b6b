//! `JwtAuthority`: signs access and ID tokens with the ring's active key, and verifies access tokens.
//!
//! Verification pins RS256 (so `alg: none` and HS256-with-the-public-key forgeries are refused before
//! any key is used), requires the header's `typ: at+jwt` (RFC 9068: access tokens are typed, so an ID
//! token — same issuer, same keys, possibly the same audience — is never accepted as one), requires a
//! `kid` naming a published key, then checks issuer, audience and the validity window against the
//! injected clock with a small leeway for clock skew between hosts.
//! `jsonwebtoken`'s own time checks are disabled because they read the system clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use galley_identity::{
    AccessClaims, Audience, AuthFailure, IdClaims, IdentityError, StoreError, TokenSigner, TokenVerifier,
};
use galley_kernel::Clock;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Serialize;

use crate::keys::KeyRing;

/// The JOSE `typ` of access tokens (RFC 9068 §2.1); `application/at+jwt` is the same type spelt out.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|typ| {
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
    })
}

/// Tolerated clock skew between the issuer and the verifier.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// Where verification keys come from: this process's own key ring, or a remote issuer's JWKS.
#[async_trait]
pub trait VerificationKeys: Send + Sync + std::fmt::Debug {
    /// The key published under `kid`, if any (implementations may refresh on a miss, rate-limited).
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, StoreError>;
}

#[async_trait]
impl VerificationKeys for KeyRing {
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, StoreError> {
        Ok(self.find(kid).await?.map(|key| key.decoding))
    }
}

/// Verifies access tokens of one issuer and audience (see the module docs for the checks).
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: Arc<dyn VerificationKeys>,
    clock: Arc<dyn Clock>,
    issuer: String,
    audience: String,
    require_access_token_type: bool,
    sessions_by_digest: bool,
}

impl JwtVerifier {
    pub fn new(
        keys: Arc<dyn VerificationKeys>,
        clock: Arc<dyn Clock>,
        issuer: String,
        audience: String,
    ) -> Self {
        Self { keys, clock, issuer, audience, require_access_token_type: true, sessions_by_digest: false }
    }

    /// Also accepts access tokens without `typ: at+jwt`, for issuers that do not type them (Auth0 types
    /// them only with its RFC 9068 token profile). Such a verifier then relies on the audience alone to
    /// tell access from ID tokens, so the API audience must differ from every client id.
    pub fn accepting_untyped_tokens(mut self) -> Self {
        self.require_access_token_type = false;
        self
    }
}

/// The built-in issuer: signs with the key ring's active key and verifies against the ring.
#[derive(Debug, Clone)]
pub struct JwtAuthority {
    keys: Arc<KeyRing>,
    verifier: JwtVerifier,
}

impl JwtAuthority {
    /// Signs with `keys`; verifies tokens issued by `issuer` for `audience`.
    pub fn new(keys: Arc<KeyRing>, clock: Arc<dyn Clock>, issuer: String, audience: String) -> Self {
        let verifier = JwtVerifier::new(keys.clone(), clock, issuer, audience);
        Self { keys, verifier }
    }

    async fn sign<T: Serialize + Sync>(&self, claims: &T, typ: &str) -> Result<String, IdentityError> {
        let key = self.keys.signing_key().await?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|error| IdentityError::Internal(format!("signing failed: {error}")))
    }
}

#[async_trait]
impl TokenSigner for JwtAuthority {
    async fn sign_access(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        self.sign(claims, ACCESS_TOKEN_TYPE).await
    }

    async fn sign_id(&self, claims: &IdClaims) -> Result<String, IdentityError> {
        self.sign(claims, "JWT").await
    }
}

#[async_trait]
impl TokenVerifier for JwtAuthority {
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthFailure> {
        self.verifier.verify_access(token).await
    }
}

/// The claims every verified token is checked on.
#[derive(serde::Deserialize)]
struct StandardClaims {
    iss: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    azp: Option<String>,
}

/// Claims of an OpenID Connect ID token issued by an external provider (Auth0), as far as Galley reads
/// them. Auth0 puts the database connection's username in no standard claim: `username` is read when an
/// Action adds it, `nickname` (Auth0's default: the username, else the email's local part) otherwise.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct OidcIdClaims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
}

impl JwtVerifier {
    /// For issuers whose access tokens name no Galley session (Auth0): the token's digest
    /// ([`galley_identity::token_digest`]) becomes its id when it has no `jti`, and always its session,
    /// which is the key of the provider's per-sign-in record.
    pub fn naming_sessions_by_token_digest(mut self) -> Self {
        self.sessions_by_digest = true;
        self
    }

    /// Verifies an OpenID Connect ID token for `client_id`: same algorithm, key, issuer and time checks
    /// as access tokens; `aud` must contain the client id and, when it lists several audiences, `azp`
    /// must be the client id (OpenID Connect Core §3.1.3.7).
    pub async fn verify_id_token(&self, token: &str, client_id: &str) -> Result<OidcIdClaims, AuthFailure> {
        let (claims, standard) = self.verified(token, false, client_id).await?;
        if matches!(&standard.aud, Audience::Many(many) if many.len() > 1)
            && standard.azp.as_deref() != Some(client_id)
        {
            return Err(AuthFailure::WrongAudience);
        }
        serde_json::from_value(claims).map_err(|_| AuthFailure::Malformed)
    }

    /// Algorithm, type, key, signature, issuer, audience and validity window (see the module docs).
    async fn verified(
        &self,
        token: &str,
        require_type: bool,
        audience: &str,
    ) -> Result<(serde_json::Value, StandardClaims), AuthFailure> {
        // Pin the algorithm first, from the raw header, so that names jsonwebtoken does not even model
        // (`none`) are reported as what they are.
        if raw_algorithm(token).ok_or(AuthFailure::Malformed)? != "RS256" {
            return Err(AuthFailure::AlgorithmNotAllowed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Malformed)?;
        if require_type && !is_access_token_type(header.typ.as_deref()) {
            return Err(AuthFailure::WrongTokenType);
        }
        let kid = header.kid.ok_or(AuthFailure::UnknownKey)?;
        let key = self
            .keys
            .decoding_key(&kid)
            .await
            .map_err(|error| AuthFailure::Unavailable(error.to_string()))?
            .ok_or(AuthFailure::UnknownKey)?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidSignature => AuthFailure::BadSignature,
                ErrorKind::InvalidAlgorithm => AuthFailure::AlgorithmNotAllowed,
                _ => AuthFailure::Malformed,
            })?
            .claims;
        let standard: StandardClaims =
            serde_json::from_value(claims.clone()).map_err(|_| AuthFailure::Malformed)?;

        if standard.iss != self.issuer {
            return Err(AuthFailure::WrongIssuer);
        }
        if !standard.aud.contains(audience) {
            return Err(AuthFailure::WrongAudience);
        }
        let now = self.clock.now().timestamp();
        let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(0);
        if now >= standard.exp.saturating_add(leeway) {
            return Err(AuthFailure::Expired);
        }
        if standard.iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AuthFailure::NotYetValid);
        }
        Ok((claims, standard))
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthFailure> {
        let (claims, _) = self.verified(token, self.require_access_token_type, &self.audience).await?;
        let mut claims: AccessClaims = serde_json::from_value(claims).map_err(|_| AuthFailure::Malformed)?;
        if self.sessions_by_digest {
            let digest = galley_identity::token_digest(token);
            if claims.jti.is_empty() {
                claims.jti = digest.clone();
            }
            claims.sid = Some(digest);
        } else if claims.jti.is_empty() {
            // Galley's own tokens always carry one; without it nothing could revoke this token.
            return Err(AuthFailure::Malformed);
        }
        Ok(claims)
    }
}

/// The `alg` named in a JWT's header, without trusting anything else in it.
fn raw_algorithm(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<AlgOnly>(&bytes).ok().map(|h| h.alg)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::keys::KeyPolicy;
    use crate::keys::tests::{ManualClock, VecKeyStore};

    const ISSUER: &str = "http://127.0.0.1:8080/";
    const AUDIENCE: &str = "galley-api";

    async fn authority() -> (JwtAuthority, Arc<ManualClock>, Arc<KeyRing>) {
        let clock = ManualClock::at(Utc::now());
        let ring = Arc::new(
            KeyRing::open(Arc::new(VecKeyStore::default()), clock.clone(), KeyPolicy::default())
                .await
                .expect("keys"),
        );
        (JwtAuthority::new(ring.clone(), clock.clone(), ISSUER.into(), AUDIENCE.into()), clock, ring)
    }

    fn claims(clock: &ManualClock) -> AccessClaims {
        let now = clock.now().timestamp();
        AccessClaims {
            iss: ISSUER.into(),
            sub: "user-1".into(),
            aud: Audience::One(AUDIENCE.into()),
            iat: now,
            exp: now + 900,
            jti: "token-1".into(),
            sid: Some("session-1".into()),
        }
    }

    #[tokio::test]
    async fn signed_tokens_verify_and_carry_their_claims() {
        let (authority, clock, _) = authority().await;
        let token = authority.sign_access(&claims(&clock)).await.expect("signed");
        let verified = authority.verify_access(&token).await.expect("valid");
        assert_eq!(verified, claims(&clock));
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert!(header.kid.is_some());
    }

    #[tokio::test]
    async fn an_id_token_is_not_an_access_token_even_for_the_same_audience() {
        let (authority, clock, ring) = authority().await;
        let now = clock.now().timestamp();
        let id_claims = IdClaims {
            iss: ISSUER.into(),
            sub: "user-1".into(),
            // A client whose id equals the API audience: only the type tells the tokens apart.
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + 900,
            jti: "id-1".into(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            given_name: None,
        };
        let id_token = authority.sign_id(&id_claims).await.expect("signed");
        assert_eq!(authority.verify_access(&id_token).await, Err(AuthFailure::WrongTokenType));

        let lenient =
            JwtVerifier::new(ring, clock.clone(), ISSUER.into(), AUDIENCE.into()).accepting_untyped_tokens();
        assert!(lenient.verify_access(&id_token).await.is_ok(), "the opt-out relies on audiences");
        let access = authority.sign_access(&claims(&clock)).await.expect("signed");
        assert!(lenient.verify_access(&access).await.is_ok());
    }

    #[test]
    fn the_access_token_type_is_matched_as_rfc_9068_spells_it() {
        assert!(is_access_token_type(Some("at+jwt")));
        assert!(is_access_token_type(Some("application/at+JWT")));
        assert!(!is_access_token_type(Some("JWT")));
        assert!(!is_access_token_type(None));
    }

    #[tokio::test]
    async fn expiry_is_checked_against_the_injected_clock_with_leeway() {
        let (authority, clock, _) = authority().await;
        let token = authority.sign_access(&claims(&clock)).await.expect("signed");
        clock.advance(chrono::Duration::seconds(900 + 4));
        assert!(authority.verify_access(&token).await.is_ok(), "inside the leeway");
        clock.advance(chrono::Duration::seconds(2));
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::Expired));
    }

    #[tokio::test]
    async fn tokens_from_the_future_are_refused() {
        let (authority, clock, _) = authority().await;
        let mut future = claims(&clock);
        future.iat += 60;
        let token = authority.sign_access(&future).await.expect("signed");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::NotYetValid));
    }

    #[tokio::test]
    async fn wrong_issuer_or_audience_is_refused() {
        let (authority, clock, _) = authority().await;
        let mut other_issuer = claims(&clock);
        other_issuer.iss = "https://evil.example/".into();
        let token = authority.sign_access(&other_issuer).await.expect("signed");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::WrongIssuer));

        let mut other_audience = claims(&clock);
        other_audience.aud = Audience::Many(vec!["other-api".into()]);
        let token = authority.sign_access(&other_audience).await.expect("signed");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::WrongAudience));

        let mut listed = claims(&clock);
        listed.aud = Audience::Many(vec!["other-api".into(), AUDIENCE.into()]);
        let token = authority.sign_access(&listed).await.expect("signed");
        assert!(authority.verify_access(&token).await.is_ok(), "an audience array containing ours is fine");
    }

    fn forge(header: &str, claims: &AccessClaims, signature: &str) -> String {
        let payload = serde_json::to_vec(claims).expect("json");
        format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload))
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let (authority, clock, _) = authority().await;
        let token = forge(r#"{"alg":"none","typ":"JWT"}"#, &claims(&clock), "");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::AlgorithmNotAllowed));
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_is_refused() {
        let (authority, clock, ring) = authority().await;
        let jwks = ring.jwks();
        let public_n = jwks["keys"][0]["n"].as_str().expect("n").to_owned();
        let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_owned();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims(&clock),
            &jsonwebtoken::EncodingKey::from_secret(public_n.as_bytes()),
        )
        .expect("forged");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::AlgorithmNotAllowed));
    }

    #[tokio::test]
    async fn unknown_or_missing_kid_is_refused() {
        let (authority, clock, _) = authority().await;
        let token = authority.sign_access(&claims(&clock)).await.expect("signed");
        let (header, rest) = token.split_once('.').expect("jwt");
        let mut decoded: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        decoded["kid"] = serde_json::json!("no-such-key");
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(decoded.to_string()));
        assert_eq!(authority.verify_access(&forged).await, Err(AuthFailure::UnknownKey));

        let without_kid = forge(r#"{"alg":"RS256","typ":"at+jwt"}"#, &claims(&clock), "c2ln");
        assert_eq!(authority.verify_access(&without_kid).await, Err(AuthFailure::UnknownKey));
    }

    #[tokio::test]
    async fn tampered_payloads_and_garbage_are_refused() {
        let (authority, clock, _) = authority().await;
        let token = authority.sign_access(&claims(&clock)).await.expect("signed");
        let parts: Vec<&str> = token.split('.').collect();
        let mut tampered = claims(&clock);
        tampered.sub = "admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).expect("json")),
            parts[2]
        );
        assert_eq!(authority.verify_access(&forged).await, Err(AuthFailure::BadSignature));
        assert_eq!(authority.verify_access("not a token").await, Err(AuthFailure::Malformed));
        assert_eq!(authority.verify_access("").await, Err(AuthFailure::Malformed));
    }

    #[tokio::test]
    async fn a_token_signed_by_another_issuers_key_is_refused() {
        let (authority, clock, _) = authority().await;
        let (stranger, _, _) = authority_with_clock(clock.clone()).await;
        let token = stranger.sign_access(&claims(&clock)).await.expect("signed");
        assert_eq!(authority.verify_access(&token).await, Err(AuthFailure::UnknownKey));
    }

    async fn authority_with_clock(clock: Arc<ManualClock>) -> (JwtAuthority, Arc<ManualClock>, Arc<KeyRing>) {
        let ring = Arc::new(
            KeyRing::open(Arc::new(VecKeyStore::default()), clock.clone(), KeyPolicy::default())
                .await
                .expect("keys"),
        );
        (JwtAuthority::new(ring.clone(), clock.clone(), ISSUER.into(), AUDIENCE.into()), clock, ring)
    }
}
