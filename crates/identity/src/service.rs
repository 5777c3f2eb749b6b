//! `AuthService`: the use cases behind `/auth/*` and the authentication of every protected request.
//!
//! Brute-force protection: failed sign-ins are counted per username and per client address in a fixed
//! window. When either count has reached its limit, sign-in is refused with `LockedOut` — even with the
//! right password — until the window ends; a successful sign-in resets the username's count. If the
//! attempt tracker cannot be reached, sign-in is refused (`Unavailable`) rather than run unprotected.
//! (Concurrent attempts racing the limit can each be evaluated once; the count still includes them.)
//!
//! Authentication: a token is accepted when its signature and claims verify and neither its id (`jti`)
//! nor its session (`sid`) is on the revocation list.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use galley_kernel::Clock;

use crate::error::{AuthFailure, IdentityError};
use crate::model::{Credentials, Profile, SignUp, SignUpInput, User};
use crate::ports::{AttemptTracker, Authenticator, IdentityProvider, RevocationList, TokenVerifier};
use crate::tokens::{Principal, TokenSet};

/// Limits for failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures_per_username: u32,
    pub max_failures_per_client: u32,
    pub window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures_per_username: 5,
            max_failures_per_client: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService {
    provider: Arc<dyn IdentityProvider>,
    tokens: TokenAuthenticator,
    revocations: Arc<dyn RevocationList>,
    attempts: Arc<dyn AttemptTracker>,
    clock: Arc<dyn Clock>,
    policy: LockoutPolicy,
}

impl AuthService {
    pub fn new(
        provider: Arc<dyn IdentityProvider>,
        verifier: Arc<dyn TokenVerifier>,
        revocations: Arc<dyn RevocationList>,
        attempts: Arc<dyn AttemptTracker>,
        clock: Arc<dyn Clock>,
        policy: LockoutPolicy,
    ) -> Self {
        let tokens = TokenAuthenticator::new(verifier, Arc::clone(&revocations));
        Self { provider, tokens, revocations, attempts, clock, policy }
    }

    pub async fn sign_up(&self, input: SignUpInput) -> Result<Profile, IdentityError> {
        self.provider.sign_up(SignUp::parse(input)?).await
    }

    /// Signs in, enforcing the lockout policy for the username and the client address.
    pub async fn sign_in(
        &self,
        credentials: &Credentials,
        client: Option<IpAddr>,
    ) -> Result<TokenSet, IdentityError> {
        let user_key = format!("signin:user:{}", User::username_key(&credentials.username));
        let client_key = client.map(|ip| format!("signin:client:{ip}"));

        self.refuse_if_locked(&user_key, self.policy.max_failures_per_username).await?;
        if let Some(key) = &client_key {
            self.refuse_if_locked(key, self.policy.max_failures_per_client).await?;
        }

        match self.provider.sign_in(credentials).await {
            Ok(tokens) => {
                if let Err(error) = self.attempts.reset(&user_key).await {
                    tracing::warn!(%error, "could not reset failed sign-in count");
                }
                Ok(tokens)
            }
            Err(IdentityError::InvalidCredentials) => {
                self.attempts.record_failure(&user_key, self.policy.window).await?;
                if let Some(key) = &client_key {
                    self.attempts.record_failure(key, self.policy.window).await?;
                }
                Err(IdentityError::InvalidCredentials)
            }
            Err(other) => Err(other),
        }
    }

    async fn refuse_if_locked(&self, key: &str, limit: u32) -> Result<(), IdentityError> {
        let state = self.attempts.state(key).await?;
        if state.failures >= limit {
            // Never advise retrying "in 0 seconds".
            let retry_after = state.window_left.max(Duration::from_secs(1));
            return Err(IdentityError::LockedOut { retry_after });
        }
        Ok(())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        self.provider.refresh(refresh_token).await
    }

    /// Revokes the principal's access token and session at once, then ends the provider session.
    pub async fn sign_out(&self, principal: &Principal) -> Result<(), IdentityError> {
        let remaining = (principal.expires_at - self.clock.now()).to_std().unwrap_or_default();
        // Keep the entry a little longer than the token could be accepted (verification leeway).
        let ttl = remaining + Duration::from_secs(60);
        self.revocations.revoke(&principal.token_id, ttl).await?;
        self.provider.sign_out(principal).await
    }

    pub async fn me(&self, principal: &Principal) -> Result<Profile, IdentityError> {
        self.provider.profile(&principal.user_id).await
    }
}

#[async_trait]
impl Authenticator for AuthService {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        self.tokens.authenticate(token).await
    }
}

/// Authentication on its own, for services that verify tokens but do not issue them (rss-api): a token
/// is accepted when its signature and claims verify and neither its id (`jti`) nor its session (`sid`)
/// is on the revocation list.
#[derive(Debug, Clone)]
pub struct TokenAuthenticator {
    verifier: Arc<dyn TokenVerifier>,
    revocations: Arc<dyn RevocationList>,
}

impl TokenAuthenticator {
    pub fn new(verifier: Arc<dyn TokenVerifier>, revocations: Arc<dyn RevocationList>) -> Self {
        Self { verifier, revocations }
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        let claims = self.verifier.verify_access(token).await?;
        let principal = Principal::from_claims(&claims);
        let ids = std::iter::once(principal.token_id.as_str()).chain(principal.session_id.as_deref());
        for id in ids {
            match self.revocations.is_revoked(id).await {
                Ok(false) => {}
                Ok(true) => return Err(AuthFailure::Revoked),
                Err(error) => return Err(AuthFailure::Unavailable(error.to_string())),
            }
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use galley_kernel::{SystemClock, UserId};

    use super::*;
    use crate::error::StoreError;
    use crate::model::Password;
    use crate::ports::{
        AttemptState, MockAttemptTracker, MockIdentityProvider, MockRevocationList, MockTokenVerifier,
    };
    use crate::tokens::{AccessClaims, Audience};

    fn credentials() -> Credentials {
        Credentials { username: "Alice".into(), password: Password::new("right!pass") }
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "a".into(),
            id_token: "i".into(),
            refresh_token: "r".into(),
            expires_in: 900,
        }
    }

    fn state(failures: u32) -> AttemptState {
        AttemptState { failures, window_left: Duration::from_secs(600) }
    }

    fn service(provider: MockIdentityProvider, attempts: MockAttemptTracker) -> AuthService {
        service_with(provider, attempts, MockTokenVerifier::new(), MockRevocationList::new())
    }

    fn service_with(
        provider: MockIdentityProvider,
        attempts: MockAttemptTracker,
        verifier: MockTokenVerifier,
        revocations: MockRevocationList,
    ) -> AuthService {
        AuthService::new(
            Arc::new(provider),
            Arc::new(verifier),
            Arc::new(revocations),
            Arc::new(attempts),
            Arc::new(SystemClock),
            LockoutPolicy::default(),
        )
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test]
    async fn a_locked_username_is_refused_even_with_the_right_password() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_state().withf(|key| key == "signin:user:alice").returning(|_| Ok(state(5)));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(
            matches!(result, Err(IdentityError::LockedOut { retry_after }) if retry_after == Duration::from_secs(600))
        );
    }

    #[tokio::test]
    async fn a_locked_client_address_is_refused() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_state().withf(|key| key.starts_with("signin:user:")).returning(|_| Ok(state(0)));
        attempts.expect_state().withf(|key| key == "signin:client:127.0.0.1").returning(|_| Ok(state(5)));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::LockedOut { .. })));
    }

    #[tokio::test]
    async fn failures_are_counted_per_username_and_per_client() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_state().returning(|_| Ok(state(4)));
        attempts
            .expect_record_failure()
            .withf(|key, _| key == "signin:user:alice")
            .times(1)
            .returning(|_, _| Ok(state(5)));
        attempts
            .expect_record_failure()
            .withf(|key, _| key == "signin:client:127.0.0.1")
            .times(1)
            .returning(|_, _| Ok(state(5)));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().returning(|_| Err(IdentityError::InvalidCredentials));
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn a_success_resets_the_username_count_only() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_state().returning(|_| Ok(state(2)));
        attempts.expect_reset().withf(|key| key == "signin:user:alice").times(1).returning(|_| Ok(()));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().returning(|_| Ok(tokens()));
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert_eq!(result.expect("signed in"), tokens());
    }

    #[tokio::test]
    async fn sign_in_is_refused_when_attempts_cannot_be_checked() {
        let mut attempts = MockAttemptTracker::new();
        attempts.expect_state().returning(|_| Err(StoreError::Unavailable("redis down".into())));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_in().never();
        let result = service(provider, attempts).sign_in(&credentials(), CLIENT).await;
        assert!(matches!(result, Err(IdentityError::Unavailable(_))));
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "iss".into(),
            sub: "user-1".into(),
            aud: Audience::One("api".into()),
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 900,
            jti: "jti-1".into(),
            sid: Some("sid-1".into()),
        }
    }

    async fn authenticate_with(revoked: &'static str) -> Result<Principal, AuthFailure> {
        let mut verifier = MockTokenVerifier::new();
        verifier.expect_verify_access().returning(|_| Ok(claims()));
        let mut revocations = MockRevocationList::new();
        revocations.expect_is_revoked().returning(move |id| {
            if id == "down" || revoked == "down" {
                Err(StoreError::Unavailable("down".into()))
            } else {
                Ok(id == revoked)
            }
        });
        service_with(MockIdentityProvider::new(), MockAttemptTracker::new(), verifier, revocations)
            .authenticate("token")
            .await
    }

    #[tokio::test]
    async fn authentication_honours_token_and_session_revocation() {
        let principal = authenticate_with("nothing").await.expect("valid");
        assert_eq!(principal.user_id, UserId::new("user-1"));
        assert_eq!(principal.session_id.as_deref(), Some("sid-1"));
        assert_eq!(authenticate_with("jti-1").await, Err(AuthFailure::Revoked));
        assert_eq!(authenticate_with("sid-1").await, Err(AuthFailure::Revoked));
        assert!(matches!(authenticate_with("down").await, Err(AuthFailure::Unavailable(_))));
    }

    #[tokio::test]
    async fn sign_out_revokes_the_token_then_the_session() {
        let mut revocations = MockRevocationList::new();
        revocations
            .expect_revoke()
            .withf(|id, ttl| {
                id == "jti-1" && *ttl > Duration::from_secs(900) && *ttl <= Duration::from_secs(961)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let mut provider = MockIdentityProvider::new();
        provider.expect_sign_out().times(1).returning(|_| Ok(()));
        let service =
            service_with(provider, MockAttemptTracker::new(), MockTokenVerifier::new(), revocations);
        service.sign_out(&Principal::from_claims(&claims())).await.expect("signed out");
    }
}
