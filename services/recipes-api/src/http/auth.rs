//! `/auth/*` and `/.well-known/*`: sign-up, sign-in, refresh, sign-out, profile, and the issuer's
//! discovery documents.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::Key;
use chrono::{DateTime, Utc};
use galley_crypto::KeyRing;
use galley_http_kit::auth::{self, SessionCookie};
use galley_http_kit::{Authenticated, ClientInfo, JsonBody};
use galley_identity::{AuthService, Credentials, IssuerConfig, Password, Profile, SignUpInput, TokenSet};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::ApiError;

/// Everything the identity routes need.
#[derive(Clone)]
pub struct AuthState {
    pub service: AuthService,
    /// The built-in issuer's keys; `None` with an external provider (Auth0 publishes its own).
    pub keys: Option<Arc<KeyRing>>,
    pub issuer: IssuerConfig,
    pub cookie_key: Key,
    /// The session cookie's Max-Age: the refresh token's lifetime, since the cookie carries it and must
    /// outlive the access token inside to renew it.
    pub cookie_max_age: Duration,
    /// Sign-in outcomes (`galley_auth_sign_ins_total`).
    pub sign_ins: crate::telemetry::SignInMetrics,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// `POST /auth/signup` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    #[schema(required = true, nullable = false, format = Email, max_length = 254, example = "alice@example.com")]
    pub email: Option<String>,
    /// Letters only, 3 to 32.
    #[schema(required = true, nullable = false, pattern = r"^\s*[A-Za-z]{3,32}\s*$", example = "alice")]
    pub username: Option<String>,
    /// At least 8 characters including one of `@!*&#$`.
    #[schema(
        required = true,
        nullable = false,
        min_length = 8,
        max_length = 128,
        pattern = "[@!*&#$]",
        example = "correct horse!"
    )]
    pub password: Option<String>,
    #[schema(max_length = 100)]
    pub given_name: Option<String>,
}

/// `POST /auth/signup` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignUpResponse {
    pub username: String,
    pub email: String,
}

/// `POST /auth/signin` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 64,
        pattern = r"\S",
        example = "alice"
    )]
    pub username: Option<String>,
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 1024,
        example = "correct horse!"
    )]
    pub password: Option<String>,
}

/// `POST /auth/refresh` body (optional when the session cookie is sent).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

/// Tokens, as an OAuth 2.0 token response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    #[schema(example = "Bearer")]
    pub token_type: String,
}

/// The signed-in user's profile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileResponse {
    pub id: String,
    pub username: String,
    pub email: String,
    pub given_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Profile> for ProfileResponse {
    fn from(profile: Profile) -> Self {
        Self {
            id: profile.id.as_str().to_owned(),
            username: profile.username,
            email: profile.email,
            given_name: profile.given_name,
            created_at: profile.created_at,
        }
    }
}

/// Token responses carry credentials: never cache them (RFC 6749 §5.1).
fn token_response(state: &AuthState, tokens: TokenSet, client: ClientInfo) -> Response {
    let jar = auth::set_session(
        &state.cookie_key,
        &SessionCookie {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
        },
        state.cookie_max_age,
        client,
    );
    let body = TokenResponse {
        access_token: tokens.access_token,
        id_token: tokens.id_token,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
        token_type: "Bearer".to_owned(),
    };
    (jar, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body)).into_response()
}

/// Create an account.
#[utoipa::path(
    post, path = "/auth/signup", tag = "auth", request_body = SignUpRequest,
    responses(
        (status = 201, description = "Account created", body = SignUpResponse),
        (status = 409, description = "Username or email taken", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid sign-up data", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn sign_up(
    State(state): State<AuthState>,
    JsonBody(request): JsonBody<SignUpRequest>,
) -> Result<(StatusCode, Json<SignUpResponse>), ApiError> {
    let profile = state
        .service
        .sign_up(SignUpInput {
            email: request.email,
            username: request.username,
            password: request.password.map(Password::new),
            given_name: request.given_name,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(SignUpResponse { username: profile.username, email: profile.email })))
}

/// Sign in with username and password. Also sets the encrypted session cookie (`__Host-Authorization`
/// over HTTPS, `Authorization` over plain HTTP).
#[utoipa::path(
    post, path = "/auth/signin", tag = "auth", request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    State(state): State<AuthState>,
    client: ClientInfo,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Response, ApiError> {
    let credentials = Credentials::parse(request.username, request.password.map(Password::new))?;
    let tokens = state.service.sign_in(&credentials, client.ip).await;
    state.sign_ins.record(&tokens);
    Ok(token_response(&state, tokens?, client))
}

/// Exchange a refresh token (from the body, else the session cookie) for new tokens. Refresh tokens
/// rotate: each works once, and presenting a used one ends the whole session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", request_body(content = RefreshRequest, description = "Optional with the session cookie"),
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(
    State(state): State<AuthState>,
    client: ClientInfo,
    request: Request,
) -> Result<Response, ApiError> {
    let cookie =
        auth::read_session(request.headers(), &state.cookie_key).map(|session| session.refresh_token);
    let cookie_is_usable =
        auth::same_origin_or_not_a_browser(request.method(), request.uri(), request.headers(), client.secure);
    let from_body = if request.headers().contains_key(header::CONTENT_TYPE) {
        let JsonBody(body) = JsonBody::<RefreshRequest>::from_request(request, &()).await?;
        body.refresh_token
    } else {
        None
    };
    let token = match (from_body, cookie) {
        (Some(token), _) => token,
        // The cookie is ambient authority: like every cookie-authenticated write, it must be same-origin.
        (None, Some(_)) if !cookie_is_usable => {
            return Err(galley_http_kit::Problem::new(StatusCode::FORBIDDEN, "cross_site_request").into());
        }
        (None, Some(token)) => token,
        (None, None) => {
            let violation = galley_kernel::Violation::new("refresh_token", "required");
            return Err(ApiError::Invalid(violation.into()));
        }
    };
    let tokens = state.service.refresh(&token).await?;
    Ok(token_response(&state, tokens, client))
}

/// End the session: the access token, the refresh token and the cookie stop working at once.
#[utoipa::path(
    post, path = "/auth/signout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn sign_out(
    State(state): State<AuthState>,
    client: ClientInfo,
    authenticated: Authenticated,
) -> Result<Response, ApiError> {
    state.service.sign_out(&authenticated.principal).await?;
    Ok((auth::clear_session(&state.cookie_key, client), StatusCode::NO_CONTENT).into_response())
}

/// The signed-in user's profile.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Profile", body = ProfileResponse),
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn me(
    State(state): State<AuthState>,
    authenticated: Authenticated,
) -> Result<Json<ProfileResponse>, ApiError> {
    Ok(Json(state.service.me(&authenticated.principal).await?.into()))
}

/// The public keys verifying Galley's tokens (JWKS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set")))]
pub async fn jwks(State(state): State<AuthState>) -> Response {
    let Some(keys) = &state.keys else {
        // Not routed with an external provider; answer as if it were not there.
        return StatusCode::NOT_FOUND.into_response();
    };
    // Short enough that a rotated-in key is seen well before the old one is withdrawn.
    ([(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"))], Json(keys.jwks()))
        .into_response()
}

/// OpenID Connect discovery for the built-in issuer.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "auth", responses((status = 200, description = "Discovery document")))]
pub async fn openid_configuration(State(state): State<AuthState>) -> Json<Value> {
    let base = state.issuer.issuer.trim_end_matches('/');
    Json(json!({
        "issuer": state.issuer.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/auth/signin"),
        "userinfo_endpoint": format!("{base}/auth/me"),
        "response_types_supported": ["token", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["password", "refresh_token"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "jti", "username", "email", "given_name"],
    }))
}
