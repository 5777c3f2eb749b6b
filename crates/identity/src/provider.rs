//! Galley as its own identity provider: Argon2id-hashed passwords in the user store, RS256 tokens, and
//! rotating refresh tokens whose reuse revokes the session.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_kernel::{Clock, UserId};

use crate::error::IdentityError;
use crate::model::{Credentials, Password, Profile, SignUp, User};
use crate::ports::{
    ConsumeOutcome, IdentityProvider, InsertUserError, PasswordHasher, RefreshTokenStore, RevocationList,
    TokenSigner, UserRepository,
};
use crate::tokens::{
    AccessClaims, Audience, IdClaims, IssuerConfig, Principal, RefreshRecord, TokenSet, hash_refresh_token,
    new_refresh_token,
};

/// How long each kind of token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Access and ID tokens (also the cookie's Max-Age).
    pub access: Duration,
    /// Refresh tokens (the longest a session can last without signing in again).
    pub refresh: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self { access: Duration::from_secs(15 * 60), refresh: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// How much longer than an access token a session revocation is kept: covers a token signed by a
/// refresh that raced the revocation, plus the verifiers' clock-skew leeway.
pub const SESSION_REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// Password checked for unknown usernames, so that "no such user" takes as long as "wrong password" and
/// response times do not reveal which usernames exist.
const DUMMY_PASSWORD: &str = "galley-timing-equaliser!";

#[derive(Debug)]
pub struct BuiltinIdentityProvider {
    users: Arc<dyn UserRepository>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    revocations: Arc<dyn RevocationList>,
    hasher: Arc<dyn PasswordHasher>,
    signer: Arc<dyn TokenSigner>,
    clock: Arc<dyn Clock>,
    issuer: IssuerConfig,
    lifetimes: TokenLifetimes,
    dummy_hash: String,
}

/// The ports the built-in provider works with.
#[derive(Debug, Clone)]
pub struct BuiltinPorts {
    pub users: Arc<dyn UserRepository>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub revocations: Arc<dyn RevocationList>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub signer: Arc<dyn TokenSigner>,
    pub clock: Arc<dyn Clock>,
}

impl BuiltinIdentityProvider {
    /// Computes the timing-equaliser hash once, with the real hasher parameters.
    pub async fn new(
        ports: BuiltinPorts,
        issuer: IssuerConfig,
        lifetimes: TokenLifetimes,
    ) -> Result<Self, IdentityError> {
        let dummy_hash = ports.hasher.hash(&Password::new(DUMMY_PASSWORD)).await?;
        Ok(Self {
            users: ports.users,
            refresh_tokens: ports.refresh_tokens,
            revocations: ports.revocations,
            hasher: ports.hasher,
            signer: ports.signer,
            clock: ports.clock,
            issuer,
            lifetimes,
            dummy_hash,
        })
    }

    fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
        now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
    }

    /// Signs access and ID tokens and stores a new refresh token of `family_id`.
    async fn issue(&self, user: &User, family_id: &str) -> Result<TokenSet, IdentityError> {
        let now = self.clock.now();
        let expires = Self::later(now, self.lifetimes.access);
        let access = AccessClaims {
            iss: self.issuer.issuer.clone(),
            sub: user.id.as_str().to_owned(),
            aud: Audience::One(self.issuer.api_audience.clone()),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: Some(family_id.to_owned()),
        };
        let id = IdClaims {
            iss: self.issuer.issuer.clone(),
            sub: user.id.as_str().to_owned(),
            aud: self.issuer.client_id.clone(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            username: user.username.clone(),
            email: user.email.clone(),
            given_name: user.given_name.clone(),
        };
        let refresh_token = new_refresh_token();
        let record = RefreshRecord {
            token_hash: hash_refresh_token(&refresh_token),
            family_id: family_id.to_owned(),
            user_id: user.id.clone(),
            issued_at: now,
            expires_at: Self::later(now, self.lifetimes.refresh),
        };
        self.refresh_tokens.insert(&record).await?;
        Ok(TokenSet {
            access_token: self.signer.sign_access(&access).await?,
            id_token: self.signer.sign_id(&id).await?,
            refresh_token,
            expires_in: self.lifetimes.access.as_secs(),
        })
    }

    /// Kills a session: its refresh tokens and (through the revocation list) its access tokens.
    ///
    /// The family stays revoked in the store (a token inserted into it later is born revoked), so a
    /// refresh racing this cannot mint a usable refresh token. Its access token may be signed just after
    /// this call, so the `sid` entry outlives the access lifetime by [`SESSION_REVOCATION_MARGIN`].
    async fn end_session(&self, family_id: &str) -> Result<(), IdentityError> {
        self.refresh_tokens.revoke_family(family_id).await?;
        self.revocations.revoke(family_id, self.lifetimes.access + SESSION_REVOCATION_MARGIN).await?;
        Ok(())
    }
}

#[async_trait]
impl IdentityProvider for BuiltinIdentityProvider {
    async fn sign_up(&self, sign_up: SignUp) -> Result<Profile, IdentityError> {
        let user = User {
            id: UserId::new(uuid::Uuid::now_v7().to_string()),
            username: sign_up.username,
            email: sign_up.email,
            given_name: sign_up.given_name,
            password_hash: self.hasher.hash(&sign_up.password).await?,
            created_at: self.clock.now(),
        };
        match self.users.insert(&user).await {
            Ok(()) => Ok(user.profile()),
            Err(InsertUserError::Duplicate(fields)) => Err(IdentityError::Conflict(fields)),
            Err(InsertUserError::Store(error)) => Err(error.into()),
        }
    }

    async fn sign_in(
        &self,
        credentials: &Credentials,
        _client: Option<std::net::IpAddr>,
    ) -> Result<TokenSet, IdentityError> {
        let Some(user) = self.users.find_by_username(&credentials.username).await? else {
            // Same work as a real check, result ignored — unless the hasher refused the work: then the
            // caller must hear "busy" as it would for a real user (and not be charged a failure).
            if let Err(busy @ IdentityError::Overloaded { .. }) =
                self.hasher.verify(&credentials.password, &self.dummy_hash).await
            {
                return Err(busy);
            }
            return Err(IdentityError::InvalidCredentials);
        };
        if !self.hasher.verify(&credentials.password, &user.password_hash).await? {
            return Err(IdentityError::InvalidCredentials);
        }
        self.issue(&user, &uuid::Uuid::new_v4().to_string()).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        match self.refresh_tokens.consume(&hash_refresh_token(refresh_token)).await? {
            ConsumeOutcome::Fresh(record) => {
                if record.expires_at <= self.clock.now() {
                    return Err(IdentityError::InvalidRefreshToken);
                }
                let user = self
                    .users
                    .find_by_id(&record.user_id)
                    .await?
                    .ok_or(IdentityError::InvalidRefreshToken)?;
                self.issue(&user, &record.family_id).await
            }
            ConsumeOutcome::Reused(record) => {
                // A rotated token came back: it was stolen or the client is broken. Either way the
                // session can no longer be trusted.
                tracing::warn!(family = %record.family_id, user = %record.user_id, "refresh token reused; session revoked");
                self.end_session(&record.family_id).await?;
                Err(IdentityError::InvalidRefreshToken)
            }
            ConsumeOutcome::Revoked | ConsumeOutcome::Unknown => Err(IdentityError::InvalidRefreshToken),
        }
    }

    async fn sign_out(&self, principal: &Principal) -> Result<(), IdentityError> {
        match &principal.session_id {
            Some(family_id) => self.end_session(family_id).await,
            None => Ok(()),
        }
    }

    async fn profile(&self, principal: &Principal) -> Result<Profile, IdentityError> {
        let user = self.users.find_by_id(&principal.user_id).await?.ok_or(IdentityError::UserNotFound)?;
        Ok(user.profile())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use galley_kernel::SystemClock;

    use super::*;
    use crate::ports::{
        MockPasswordHasher, MockRefreshTokenStore, MockRevocationList, MockTokenSigner, MockUserRepository,
        UniqueField,
    };

    struct Mocks {
        users: MockUserRepository,
        refresh: MockRefreshTokenStore,
        revocations: MockRevocationList,
        hasher: MockPasswordHasher,
        signer: MockTokenSigner,
    }

    impl Mocks {
        fn new() -> Self {
            let mut hasher = MockPasswordHasher::new();
            hasher.expect_hash().returning(|p| Ok(format!("hash:{}", p.expose())));
            hasher.expect_verify().returning(|p, h| Ok(h == format!("hash:{}", p.expose())));
            let mut signer = MockTokenSigner::new();
            signer
                .expect_sign_access()
                .returning(|c| Ok(format!("access:{}:{}", c.sub, c.sid.clone().unwrap_or_default())));
            signer.expect_sign_id().returning(|c| Ok(format!("id:{}:{}", c.username, c.email)));
            Self {
                users: MockUserRepository::new(),
                refresh: MockRefreshTokenStore::new(),
                revocations: MockRevocationList::new(),
                hasher,
                signer,
            }
        }

        async fn provider(self) -> BuiltinIdentityProvider {
            let ports = BuiltinPorts {
                users: Arc::new(self.users),
                refresh_tokens: Arc::new(self.refresh),
                revocations: Arc::new(self.revocations),
                hasher: Arc::new(self.hasher),
                signer: Arc::new(self.signer),
                clock: Arc::new(SystemClock),
            };
            let issuer =
                IssuerConfig { issuer: "iss".into(), api_audience: "api".into(), client_id: "web".into() };
            BuiltinIdentityProvider::new(ports, issuer, TokenLifetimes::default()).await.expect("provider")
        }
    }

    fn alice() -> User {
        User {
            id: UserId::new("u-alice"),
            username: "Alice".into(),
            email: "alice@example.com".into(),
            given_name: None,
            password_hash: "hash:right!pass".into(),
            created_at: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        }
    }

    fn record(expires_in_secs: i64) -> RefreshRecord {
        RefreshRecord {
            token_hash: "h".into(),
            family_id: "family-1".into(),
            user_id: UserId::new("u-alice"),
            issued_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in_secs),
        }
    }

    fn credentials(password: &str) -> Credentials {
        Credentials { username: "alice".into(), password: Password::new(password) }
    }

    #[tokio::test]
    async fn sign_in_issues_tokens_of_a_new_session() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_by_username().returning(|_| Ok(Some(alice())));
        mocks
            .refresh
            .expect_insert()
            .withf(|r| r.user_id == UserId::new("u-alice"))
            .times(1)
            .returning(|_| Ok(()));
        let tokens =
            mocks.provider().await.sign_in(&credentials("right!pass"), None).await.expect("signed in");
        assert!(tokens.access_token.starts_with("access:u-alice:"));
        assert_eq!(tokens.id_token, "id:Alice:alice@example.com");
        assert_eq!(tokens.expires_in, 900);
        assert_eq!(tokens.refresh_token.len(), 43);
    }

    #[tokio::test]
    async fn unknown_users_and_wrong_passwords_look_the_same() {
        let mut mocks = Mocks::new();
        let mut calls = 0;
        mocks.users.expect_find_by_username().returning(move |_| {
            calls += 1;
            Ok(if calls == 1 { None } else { Some(alice()) })
        });
        mocks.refresh.expect_insert().never();
        let provider = mocks.provider().await;
        let unknown = provider.sign_in(&credentials("right!pass"), None).await;
        let wrong = provider.sign_in(&credentials("wrong!pass"), None).await;
        assert!(matches!(unknown, Err(IdentityError::InvalidCredentials)));
        assert!(matches!(wrong, Err(IdentityError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn an_overloaded_hasher_is_reported_for_unknown_users_too() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_by_username().returning(|_| Ok(None));
        let mut provider = mocks.provider().await;
        let mut busy = MockPasswordHasher::new();
        busy.expect_verify()
            .returning(|_, _| Err(IdentityError::Overloaded { retry_after: Duration::from_secs(2) }));
        provider.hasher = Arc::new(busy);
        let result = provider.sign_in(&credentials("any!pass"), None).await;
        assert!(matches!(result, Err(IdentityError::Overloaded { .. })), "{result:?}");
    }

    #[tokio::test]
    async fn duplicates_become_conflicts() {
        let mut mocks = Mocks::new();
        mocks
            .users
            .expect_insert()
            .returning(|_| Err(InsertUserError::Duplicate(vec![UniqueField::Username, UniqueField::Email])));
        let sign_up = SignUp {
            email: "alice@example.com".into(),
            username: "Alice".into(),
            password: Password::new("right!pass"),
            given_name: None,
        };
        let result = mocks.provider().await.sign_up(sign_up).await;
        assert!(matches!(result, Err(IdentityError::Conflict(fields)) if fields.len() == 2));
    }

    #[tokio::test]
    async fn refresh_rotates_within_the_same_session() {
        let mut mocks = Mocks::new();
        mocks.refresh.expect_consume().returning(|_| Ok(ConsumeOutcome::Fresh(record(60))));
        mocks.users.expect_find_by_id().returning(|_| Ok(Some(alice())));
        mocks.refresh.expect_insert().withf(|r| r.family_id == "family-1").times(1).returning(|_| Ok(()));
        let tokens = mocks.provider().await.refresh("old").await.expect("rotated");
        assert_eq!(tokens.access_token, "access:u-alice:family-1");
    }

    #[tokio::test]
    async fn a_reused_refresh_token_revokes_the_whole_session() {
        let mut mocks = Mocks::new();
        mocks.refresh.expect_consume().returning(|_| Ok(ConsumeOutcome::Reused(record(60))));
        mocks.refresh.expect_revoke_family().withf(|f| f == "family-1").times(1).returning(|_| Ok(()));
        mocks
            .revocations
            .expect_revoke()
            .withf(|id, ttl| {
                id == "family-1" && *ttl == Duration::from_secs(15 * 60) + SESSION_REVOCATION_MARGIN
            })
            .times(1)
            .returning(|_, _| Ok(()));
        mocks.refresh.expect_insert().never();
        let result = mocks.provider().await.refresh("stolen").await;
        assert!(matches!(result, Err(IdentityError::InvalidRefreshToken)));
    }

    #[tokio::test]
    async fn expired_revoked_and_unknown_refresh_tokens_are_refused() {
        for outcome in [ConsumeOutcome::Fresh(record(-1)), ConsumeOutcome::Revoked, ConsumeOutcome::Unknown] {
            let mut mocks = Mocks::new();
            mocks.refresh.expect_consume().returning(move |_| Ok(outcome.clone()));
            mocks.refresh.expect_insert().never();
            let result = mocks.provider().await.refresh("token").await;
            assert!(matches!(result, Err(IdentityError::InvalidRefreshToken)));
        }
    }
}
