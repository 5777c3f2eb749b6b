//! `Auth0IdentityProvider`: the identity port over Auth0's Authentication API (see the crate docs).
//!
//! Error contract: Auth0's answers are translated here and nowhere else — `user_exists` /
//! `username_exists` → `Conflict` naming the field; `invalid_password` / `password_leaked` /
//! `invalid_signup` → `Invalid` with a violation; `invalid_grant` → `InvalidCredentials` (sign-in) or
//! `InvalidRefreshToken` (refresh); `too_many_attempts` → `LockedOut`; `unauthorized` (blocked user)
//! → `Blocked`; 5xx, timeouts and connection errors → `Unavailable`; anything else (a misconfigured
//! application) → `Internal`. Bodies and hosts are logged at most, never put in an error a client sees.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone as _, Utc};
use galley_crypto::{JwtVerifier, OidcIdClaims};
use galley_identity::{
    Credentials, IdentityError, IdentityProvider, Principal, Profile, ProviderSession, ProviderSessionStore,
    SecretSealer, SignUp, TokenSet, TokenVerifier, UniqueField, token_digest,
};
use galley_kernel::{Clock, UserId, Violation, Violations};
use galley_platform::secret::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::settings::{Auth0Grant, Auth0Settings, Auth0SettingsError};

/// Auth0 database connections accept usernames of at most 15 characters by default.
pub const AUTH0_USERNAME_MAX_CHARS: usize = 15;
const PASSWORD_REALM_GRANT: &str = "http://auth0.com/oauth/grant-type/password-realm";
const SCOPE: &str = "openid profile email offline_access";
/// What Auth0's brute-force lock is reported as: Auth0 says neither how long it lasts nor when it ends.
const AUTH0_LOCK_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

pub struct Auth0IdentityProvider {
    http: reqwest::Client,
    base_url: String,
    settings: Auth0Settings,
    verifier: JwtVerifier,
    sessions: Arc<dyn ProviderSessionStore>,
    sealer: Arc<dyn SecretSealer>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Auth0IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth0IdentityProvider").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// The ports the Auth0 provider works with.
#[derive(Debug, Clone)]
pub struct Auth0Ports {
    pub sessions: Arc<dyn ProviderSessionStore>,
    pub sealer: Arc<dyn SecretSealer>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum Auth0SetupError {
    #[error(transparent)]
    Settings(#[from] Auth0SettingsError),
    #[error("http client: {0}")]
    Client(String),
}

/// `/oauth/token` success.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `/oauth/token` and `/oauth/revoke` errors.
#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
}

/// `/dbconnections/signup` errors (`code`; older tenants also say `name`).
#[derive(Deserialize, Default)]
struct SignUpError {
    #[serde(default)]
    code: String,
}

/// `/userinfo`, as far as read.
#[derive(Deserialize, Default)]
struct UserInfo {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
}

/// What a failed call came back as.
enum Failure {
    /// Auth0 answered with this status and body.
    Answered(reqwest::StatusCode, String),
    /// 5xx, timeout, connection refused or reset: Auth0 is unavailable.
    Unavailable(String),
}

impl Auth0IdentityProvider {
    /// `verifier` must be the Auth0 access-token verifier (`crate::auth0_verifier`) on the same
    /// settings; ID tokens are checked with it too.
    pub fn new(
        settings: Auth0Settings,
        verifier: JwtVerifier,
        ports: Auth0Ports,
    ) -> Result<Self, Auth0SetupError> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|error| Auth0SetupError::Client(error.to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url()?,
            settings,
            verifier,
            sessions: ports.sessions,
            sealer: ports.sealer,
            clock: ports.clock,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn client_secret(&self) -> Option<&str> {
        self.settings.client_secret.as_ref().map(|secret| secret.expose_secret())
    }

    /// Sends and reads the body; only 2xx is `Ok`.
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<String, Failure> {
        let unavailable = |error: reqwest::Error| Failure::Unavailable(format!("{what}: {error}"));
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.text().await.map_err(unavailable)?;
        if status.is_success() {
            Ok(body)
        } else if status.is_server_error() {
            Err(Failure::Unavailable(format!("{what}: Auth0 answered {status}")))
        } else {
            Err(Failure::Answered(status, body))
        }
    }

    /// `POST /oauth/token` with `form` plus the client credentials.
    async fn token(
        &self,
        mut form: Vec<(&str, String)>,
        client: Option<IpAddr>,
    ) -> Result<TokenResponse, Failure> {
        form.push(("client_id", self.settings.client_id.clone()));
        let mut request = self.http.post(self.url("oauth/token"));
        if let Some(secret) = self.client_secret() {
            form.push(("client_secret", secret.to_owned()));
            // Only a confidential client may vouch for the end user's address.
            if let Some(ip) = client {
                request = request.header("auth0-forwarded-for", ip.to_string());
            }
        }
        let body = self.send(request.form(&form), "oauth/token").await?;
        serde_json::from_str(&body)
            .map_err(|error| Failure::Unavailable(format!("oauth/token: unreadable answer: {error}")))
    }

    /// The tokens' claims, checked, and the session record kept for sign-out and `me`.
    async fn accept(
        &self,
        tokens: TokenResponse,
        previous_refresh: Option<&str>,
    ) -> Result<TokenSet, IdentityError> {
        let access = self.verifier.verify_access(&tokens.access_token).await.map_err(|failure| {
            IdentityError::Internal(format!("Auth0 issued an access token Galley refuses: {failure}"))
        })?;
        let id_claims = match &tokens.id_token {
            Some(id_token) => {
                Some(self.verifier.verify_id_token(id_token, &self.settings.client_id).await.map_err(
                    |failure| {
                        IdentityError::Internal(format!("Auth0 issued an ID token Galley refuses: {failure}"))
                    },
                )?)
            }
            None => None,
        };
        if id_claims.as_ref().is_some_and(|claims| claims.sub != access.sub) {
            return Err(IdentityError::Internal("Auth0's ID and access tokens name different users".into()));
        }
        let profile = self.profile_claims(id_claims, &tokens.access_token).await?;
        // Rotation: Auth0 answers a new refresh token; a tenant without rotation keeps the old one.
        let refresh_token = tokens.refresh_token.or_else(|| previous_refresh.map(str::to_owned));
        let sealed_refresh_token = match &refresh_token {
            Some(token) => Some(self.sealer.seal(token).await?),
            None => None,
        };
        let now = self.clock.now();
        let session = ProviderSession {
            key: token_digest(&tokens.access_token),
            user_id: UserId::new(access.sub.clone()),
            sealed_refresh_token,
            username: profile.username,
            email: profile.email,
            given_name: profile.given_name,
            created_at: now,
            expires_at: Utc.timestamp_opt(access.exp, 0).single().unwrap_or(now),
        };
        self.sessions.put(&session).await?;
        let expires_in = tokens
            .expires_in
            .unwrap_or_else(|| u64::try_from(access.exp.saturating_sub(now.timestamp())).unwrap_or_default());
        Ok(TokenSet {
            access_token: tokens.access_token,
            id_token: tokens.id_token.unwrap_or_default(),
            refresh_token: refresh_token.unwrap_or_default(),
            expires_in,
        })
    }

    /// Username, email and given name from the ID token, else from `/userinfo`.
    async fn profile_claims(
        &self,
        id: Option<OidcIdClaims>,
        access_token: &str,
    ) -> Result<ProfileClaims, IdentityError> {
        let from_id = id.map(|claims| ProfileClaims {
            username: claims.username.or(claims.nickname).unwrap_or_default(),
            email: claims.email.unwrap_or_default(),
            given_name: claims.given_name,
        });
        if let Some(profile) = from_id.as_ref().filter(|p| !p.username.is_empty() && !p.email.is_empty()) {
            return Ok(profile.clone());
        }
        let body = self
            .send(self.http.get(self.url("userinfo")).bearer_auth(access_token), "userinfo")
            .await
            .map_err(|failure| unexpected(failure, "userinfo"))?;
        let info: UserInfo = serde_json::from_str(&body).unwrap_or_default();
        let base = from_id.unwrap_or_default();
        Ok(ProfileClaims {
            username: info.username.or(info.nickname).filter(|u| !u.is_empty()).unwrap_or(base.username),
            email: info.email.filter(|e| !e.is_empty()).unwrap_or(base.email),
            given_name: info.given_name.or(base.given_name),
        })
    }
}

#[derive(Debug, Clone, Default)]
struct ProfileClaims {
    username: String,
    email: String,
    given_name: Option<String>,
}

/// A failure no mapping claims: Auth0 down → `Unavailable`; any other answer is Galley's or the
/// tenant's misconfiguration → `Internal`. The body is logged by the caller's error, never sent on.
fn unexpected(failure: Failure, what: &str) -> IdentityError {
    match failure {
        Failure::Unavailable(reason) => IdentityError::Unavailable(reason),
        Failure::Answered(status, body) => {
            tracing::error!(%status, %body, "{what}: unexpected answer from Auth0");
            IdentityError::Internal(format!("{what}: Auth0 answered {status}"))
        }
    }
}

fn invalid(violation: Violation) -> IdentityError {
    IdentityError::Invalid(Violations::from(violation))
}

fn oauth_code(body: &str) -> String {
    serde_json::from_str::<OAuthError>(body).unwrap_or_default().error
}

fn lifetime_left(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or_default()
}

#[async_trait]
impl IdentityProvider for Auth0IdentityProvider {
    async fn sign_up(&self, sign_up: SignUp) -> Result<Profile, IdentityError> {
        if sign_up.username.chars().count() > AUTH0_USERNAME_MAX_CHARS {
            return Err(invalid(
                Violation::new("username", "too_long").with("max", AUTH0_USERNAME_MAX_CHARS),
            ));
        }
        let mut body = json!({
            "client_id": self.settings.client_id,
            "email": sign_up.email,
            "password": sign_up.password.expose(),
            "connection": self.settings.connection,
            "username": sign_up.username,
        });
        if let Some(given_name) = &sign_up.given_name {
            body["given_name"] = json!(given_name);
        }
        match self
            .send(self.http.post(self.url("dbconnections/signup")).json(&body), "dbconnections/signup")
            .await
        {
            Ok(answer) => {
                let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
                let id = ["user_id", "_id", "id"]
                    .iter()
                    .find_map(|field| answer[*field].as_str())
                    .map(|id| if id.starts_with("auth0|") { id.to_owned() } else { format!("auth0|{id}") })
                    .unwrap_or_default();
                Ok(Profile {
                    id: UserId::new(id),
                    username: sign_up.username,
                    email: sign_up.email,
                    given_name: sign_up.given_name,
                    created_at: self.clock.now(),
                })
            }
            Err(Failure::Answered(status, answer)) if status.is_client_error() => {
                let code = serde_json::from_str::<SignUpError>(&answer).unwrap_or_default().code;
                match code.as_str() {
                    "user_exists" => Err(IdentityError::Conflict(vec![UniqueField::Email])),
                    "username_exists" => Err(IdentityError::Conflict(vec![UniqueField::Username])),
                    "invalid_password" => Err(invalid(Violation::new("password", "password_too_weak"))),
                    "password_leaked" => Err(invalid(Violation::new("password", "password_leaked"))),
                    "invalid_signup" => Err(invalid(Violation::new("email", "signup_rejected"))),
                    _ => Err(unexpected(Failure::Answered(status, answer), "dbconnections/signup")),
                }
            }
            Err(failure) => Err(unexpected(failure, "dbconnections/signup")),
        }
    }

    async fn sign_in(
        &self,
        credentials: &Credentials,
        client: Option<IpAddr>,
    ) -> Result<TokenSet, IdentityError> {
        let mut form = vec![
            ("username", credentials.username.clone()),
            ("password", credentials.password.expose().to_owned()),
            ("audience", self.settings.audience.clone()),
            ("scope", SCOPE.to_owned()),
        ];
        match self.settings.grant {
            Auth0Grant::PasswordRealm => {
                form.push(("grant_type", PASSWORD_REALM_GRANT.to_owned()));
                form.push(("realm", self.settings.connection.clone()));
            }
            Auth0Grant::Password => form.push(("grant_type", "password".to_owned())),
        }
        match self.token(form, client).await {
            Ok(tokens) => self.accept(tokens, None).await,
            Err(Failure::Answered(status, body)) => match oauth_code(&body).as_str() {
                "invalid_grant" => Err(IdentityError::InvalidCredentials),
                "too_many_attempts" => Err(IdentityError::LockedOut { retry_after: AUTH0_LOCK_RETRY_AFTER }),
                "unauthorized" => Err(IdentityError::Blocked),
                _ => Err(unexpected(Failure::Answered(status, body), "oauth/token")),
            },
            Err(failure) => Err(unexpected(failure, "oauth/token")),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        let form =
            vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh_token.to_owned())];
        match self.token(form, None).await {
            Ok(tokens) => self.accept(tokens, Some(refresh_token)).await,
            Err(Failure::Answered(status, body)) => match oauth_code(&body).as_str() {
                "invalid_grant" | "unauthorized" => Err(IdentityError::InvalidRefreshToken),
                _ => Err(unexpected(Failure::Answered(status, body), "oauth/token (refresh)")),
            },
            Err(failure) => Err(unexpected(failure, "oauth/token (refresh)")),
        }
    }

    /// Revokes the sign-in's refresh token at Auth0 (the caller has already put the access token on the
    /// revocation list). If Auth0 cannot be reached the record stays, so the failure is reported (503)
    /// and the record expires with the access token.
    async fn sign_out(&self, principal: &Principal) -> Result<(), IdentityError> {
        let Some(key) = &principal.session_id else {
            return Ok(());
        };
        let Some(session) = self.sessions.find(key).await? else {
            return Ok(());
        };
        if let Some(sealed) = &session.sealed_refresh_token {
            let token = self.sealer.open(sealed).await?;
            let mut body = json!({"client_id": self.settings.client_id, "token": token});
            if let Some(secret) = self.client_secret() {
                body["client_secret"] = json!(secret);
            }
            self.send(self.http.post(self.url("oauth/revoke")).json(&body), "oauth/revoke")
                .await
                .map_err(|failure| unexpected(failure, "oauth/revoke"))?;
        }
        self.sessions.delete(key).await?;
        tracing::debug!(left = ?lifetime_left(session.expires_at, self.clock.now()), "Auth0 session ended");
        Ok(())
    }

    async fn profile(&self, principal: &Principal) -> Result<Profile, IdentityError> {
        let session = match &principal.session_id {
            Some(key) => self.sessions.find(key).await?,
            None => None,
        };
        let session =
            session.filter(|s| s.user_id == principal.user_id).ok_or(IdentityError::UserNotFound)?;
        Ok(Profile {
            id: session.user_id,
            username: session.username,
            email: session.email,
            given_name: session.given_name,
            created_at: session.created_at,
        })
    }
}
