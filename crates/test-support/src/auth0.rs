//! `FakeAuth0`: an Auth0 tenant on a free loopback port, following Auth0's documented Authentication API
//! contract (not Galley's expectations) as far as Galley uses it:
//! - `POST /dbconnections/signup` (JSON) → `{_id, email, email_verified, username, given_name}`; errors
//!   `{name, code, description, statusCode}` (`user_exists`, `username_exists`, `invalid_password`,
//!   `password_leaked`, `invalid_signup`);
//! - `POST /oauth/token` (form) with the `password`, `http://auth0.com/oauth/grant-type/password-realm`
//!   (`realm` = the connection) and `refresh_token` grants; errors `{error, error_description}`
//!   (`invalid_grant` 403, `too_many_attempts` 429, `unauthorized` 401 for blocked users). Refresh tokens
//!   rotate: using one retires it;
//! - `POST /oauth/revoke` → 200; `GET /userinfo` (bearer); `GET /.well-known/jwks.json`.
//!
//! Tokens are RS256 with a `kid`; the issuer is the base URL *with* its trailing slash; `sub` is
//! `auth0|<id>`; access tokens have no `jti`, an array `aud` (API, then `{base}userinfo`) and `azp`;
//! ID tokens have `aud` = the client id and the profile claims (`nickname` = the username). Keys rotate
//! on demand (the old key stays published until dropped); [`Mode`] makes every endpoint answer 503 or
//! hang. Written by hand because no package fakes the password-realm grant or database sign-up (see
//! `INFRA.md`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use galley_kernel::{Clock, SystemClock};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{EncodeRsaPrivateKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "fake-auth0-client";
pub const CLIENT_SECRET: &str = "fake-auth0-client-secret";
pub const AUDIENCE: &str = "https://api.galley.test";
pub const CONNECTION: &str = "Username-Password-Authentication";
/// A password the tenant's breached-password detection knows.
pub const LEAKED_PASSWORD: &str = "password123!";
/// Lifetime of access and ID tokens, as `expires_in`.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;
const PASSWORD_REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// How the tenant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Every endpoint answers 503 with an HTML body (what a load balancer in trouble sends).
    Failing,
    /// Every endpoint waits far longer than any client timeout.
    Hanging,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// RSA generation takes a CPU for a good fraction of a second: off the async threads.
    async fn generated() -> Self {
        tokio::task::spawn_blocking(Self::generate).await.expect("key generation")
    }

    fn generate() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let pem = private.to_pkcs1_pem(LineEnding::LF).expect("PEM");
        Self {
            kid: uuid::Uuid::new_v4().simple().to_string(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key"),
            n: URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed")
    }
}

#[derive(Debug, Clone)]
struct FakeUser {
    id: String,
    email: String,
    username: String,
    password: String,
    given_name: Option<String>,
    blocked: bool,
}

struct Tenant {
    base_url: String,
    clock: Arc<dyn Clock>,
    mode: Mutex<Mode>,
    users: Mutex<Vec<FakeUser>>,
    /// Live refresh tokens → user id.
    refresh_tokens: Mutex<HashMap<String, String>>,
    /// Published keys, the signing one first.
    keys: Mutex<Vec<Arc<SigningKey>>>,
    jwks_fetches: AtomicU64,
    revocations: AtomicU64,
    /// `auth0-forwarded-for` of the last token request, and its grant type.
    last_token_request: Mutex<Option<(String, Option<String>)>>,
    /// ID tokens carry only the registered claims (as for an app that did not ask for `profile
    /// email`, or a rule that strips them): the profile must then come from `/userinfo`.
    bare_id_tokens: AtomicBool,
    userinfo_calls: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake tenant; stops when dropped.
pub struct FakeAuth0 {
    tenant: Arc<Tenant>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeAuth0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAuth0").field("base_url", &self.tenant.base_url).finish_non_exhaustive()
    }
}

impl FakeAuth0 {
    pub async fn start() -> Self {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }

    /// A tenant whose tokens are stamped by `clock` (share the service's test clock).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let address = listener.local_addr().expect("address");
        let tenant = Arc::new(Tenant {
            base_url: format!("http://{address}/"),
            clock,
            mode: Mutex::new(Mode::Normal),
            users: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            keys: Mutex::new(vec![Arc::new(SigningKey::generated().await)]),
            jwks_fetches: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            last_token_request: Mutex::new(None),
            bare_id_tokens: AtomicBool::new(false),
            userinfo_calls: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/dbconnections/signup", post(sign_up))
            .route("/oauth/token", post(token))
            .route("/oauth/revoke", post(revoke))
            .route("/userinfo", get(userinfo))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(Arc::clone(&tenant));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { tenant, server }
    }

    /// `http://127.0.0.1:PORT/`: the issuer of its tokens, with the trailing slash.
    pub fn base_url(&self) -> &str {
        &self.tenant.base_url
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.tenant.mode) = mode;
    }

    /// Starts signing with a new key; the previous one stays published.
    pub async fn rotate_keys(&self) {
        let key = Arc::new(SigningKey::generated().await);
        lock(&self.tenant.keys).insert(0, key);
    }

    /// Withdraws every key but the signing one.
    pub fn drop_old_keys(&self) {
        lock(&self.tenant.keys).truncate(1);
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.tenant.jwks_fetches.load(Ordering::Relaxed)
    }

    /// How many refresh tokens `/oauth/revoke` revoked.
    /// From now on, ID tokens carry no profile claims (see `bare_id_tokens`).
    pub fn issue_bare_id_tokens(&self) {
        self.tenant.bare_id_tokens.store(true, Ordering::Relaxed);
    }

    /// `GET /userinfo` requests answered.
    pub fn userinfo_calls(&self) -> u64 {
        self.tenant.userinfo_calls.load(Ordering::Relaxed)
    }

    pub fn revocations(&self) -> u64 {
        self.tenant.revocations.load(Ordering::Relaxed)
    }

    pub fn live_refresh_tokens(&self) -> usize {
        lock(&self.tenant.refresh_tokens).len()
    }

    /// The `auth0-forwarded-for` header and grant type of the last `/oauth/token` request.
    pub fn last_token_request(&self) -> Option<(String, Option<String>)> {
        lock(&self.tenant.last_token_request).clone()
    }

    /// Blocks the user with this username (what an administrator does in the dashboard).
    pub fn block(&self, username: &str) {
        for user in lock(&self.tenant.users).iter_mut().filter(|u| u.username == username) {
            user.blocked = true;
        }
    }

    /// The claims of an access token the tenant would issue to `sub` now.
    pub fn access_claims(&self, sub: &str) -> Value {
        self.tenant.access_claims(sub)
    }

    /// Signs `claims` with the current key, RS256.
    pub fn sign(&self, claims: &Value) -> String {
        self.tenant.current_key().sign(claims)
    }

    /// Signs `claims` RS256 with a key the tenant never published, under a published `kid`.
    pub async fn sign_with_unpublished_key(&self, claims: &Value) -> String {
        let stranger = SigningKey::generated().await;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.tenant.current_key().kid.clone());
        jsonwebtoken::encode(&header, claims, &stranger.encoding).expect("signed")
    }

    /// An HS256 token keyed with the published modulus (the classic algorithm-confusion forgery).
    pub fn sign_hs256_with_public_key(&self, claims: &Value) -> String {
        let key = self.tenant.current_key();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.n.as_bytes())).expect("signed")
    }

    /// An unsigned token (`alg: none`).
    pub fn unsigned(&self, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.tenant.current_key().kid});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }
}

impl Drop for FakeAuth0 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Tenant {
    fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&lock(&self.keys)[0])
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn access_claims(&self, sub: &str) -> Value {
        let now = self.now();
        json!({
            "iss": self.base_url,
            "sub": sub,
            "aud": [AUDIENCE, format!("{}userinfo", self.base_url)],
            "azp": CLIENT_ID,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "scope": "openid profile email offline_access",
        })
    }

    fn id_claims(&self, user: &FakeUser) -> Value {
        let now = self.now();
        let mut claims = json!({
            "iss": self.base_url,
            "sub": user.id,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "email": user.email,
            "email_verified": false,
            "nickname": user.username,
            "name": user.email,
        });
        if let Some(given_name) = &user.given_name {
            claims["given_name"] = json!(given_name);
        }
        claims
    }

    /// Tokens for `user`; a refresh token when `offline_access` was asked for.
    fn issue(&self, user: &FakeUser, offline: bool) -> Value {
        let key = self.current_key();
        let mut id_claims = self.id_claims(user);
        if self.bare_id_tokens.load(Ordering::Relaxed)
            && let Some(claims) = id_claims.as_object_mut()
        {
            claims.retain(|name, _| ["iss", "sub", "aud", "iat", "exp"].contains(&name.as_str()));
        }
        let mut body = json!({
            "access_token": key.sign(&self.access_claims(&user.id)),
            "id_token": key.sign(&id_claims),
            "scope": "openid profile email offline_access",
            "expires_in": TOKEN_LIFETIME_SECS,
            "token_type": "Bearer",
        });
        if offline {
            let refresh = uuid::Uuid::new_v4().simple().to_string();
            lock(&self.refresh_tokens).insert(refresh.clone(), user.id.clone());
            body["refresh_token"] = json!(refresh);
        }
        body
    }

    /// What the mode makes of a request before it is looked at.
    async fn disturbance(&self) -> Option<Response> {
        let mode = *lock(&self.mode);
        match mode {
            Mode::Normal => None,
            Mode::Failing => Some(
                (StatusCode::SERVICE_UNAVAILABLE, "<html>upstream connect error at 10.1.2.3</html>")
                    .into_response(),
            ),
            Mode::Hanging => {
                tokio::time::sleep(Duration::from_secs(300)).await;
                Some(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
        }
    }
}

fn signup_error(code: &str, description: &str) -> Response {
    let body =
        json!({"name": "BadRequestError", "code": code, "description": description, "statusCode": 400});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn sign_up(State(tenant): State<Arc<Tenant>>, Json(body): Json<Value>) -> Response {
    if let Some(response) = tenant.disturbance().await {
        return response;
    }
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    if field("client_id") != CLIENT_ID || field("connection") != CONNECTION {
        return signup_error("invalid_signup", "Invalid sign up");
    }
    let (email, username, password) = (field("email").to_lowercase(), field("username"), field("password"));
    if password.chars().count() < 8 {
        return signup_error("invalid_password", "PasswordStrengthError: Password is too weak");
    }
    if password == LEAKED_PASSWORD {
        return signup_error("password_leaked", "This password has been leaked and cannot be used.");
    }
    if username.chars().count() > 15 {
        return signup_error("invalid_signup", "Invalid sign up");
    }
    let mut users = lock(&tenant.users);
    if users.iter().any(|u| u.email == email) {
        return signup_error("user_exists", "The user already exists.");
    }
    if users.iter().any(|u| u.username.eq_ignore_ascii_case(&username)) {
        return signup_error("username_exists", "The username provided is in use already.");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let given_name = body["given_name"].as_str().map(str::to_owned);
    users.push(FakeUser {
        id: format!("auth0|{id}"),
        email: email.clone(),
        username: username.clone(),
        password,
        given_name: given_name.clone(),
        blocked: false,
    });
    Json(json!({"_id": id, "email": email, "email_verified": false, "username": username, "given_name": given_name}))
        .into_response()
}

async fn token(
    State(tenant): State<Arc<Tenant>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(response) = tenant.disturbance().await {
        return response;
    }
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let forwarded = headers.get("auth0-forwarded-for").and_then(|v| v.to_str().ok()).map(str::to_owned);
    *lock(&tenant.last_token_request) = Some((field("grant_type").to_owned(), forwarded));
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return oauth_error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    match field("grant_type") {
        "password" | PASSWORD_REALM => {
            if field("grant_type") == PASSWORD_REALM && field("realm") != CONNECTION {
                return oauth_error(StatusCode::FORBIDDEN, "invalid_grant", "Wrong email or password.");
            }
            if field("audience") != AUDIENCE {
                return oauth_error(StatusCode::FORBIDDEN, "access_denied", "Service not found");
            }
            let login = field("username");
            let user = lock(&tenant.users)
                .iter()
                .find(|u| u.username.eq_ignore_ascii_case(login) || u.email == login.to_lowercase())
                .cloned();
            let Some(user) = user.filter(|u| u.password == field("password")) else {
                return oauth_error(StatusCode::FORBIDDEN, "invalid_grant", "Wrong email or password.");
            };
            if user.blocked {
                return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "user is blocked");
            }
            let offline = field("scope").split(' ').any(|s| s == "offline_access");
            Json(tenant.issue(&user, offline)).into_response()
        }
        "refresh_token" => {
            let user_id = lock(&tenant.refresh_tokens).remove(field("refresh_token"));
            let user = user_id.and_then(|id| lock(&tenant.users).iter().find(|u| u.id == id).cloned());
            match user {
                Some(user) => Json(tenant.issue(&user, true)).into_response(),
                None => {
                    oauth_error(StatusCode::FORBIDDEN, "invalid_grant", "Unknown or invalid refresh token.")
                }
            }
        }
        _ => oauth_error(StatusCode::FORBIDDEN, "unsupported_grant_type", "Grant type not allowed."),
    }
}

async fn revoke(State(tenant): State<Arc<Tenant>>, Json(body): Json<Value>) -> Response {
    if let Some(response) = tenant.disturbance().await {
        return response;
    }
    if body["client_id"] != CLIENT_ID || body["client_secret"] != CLIENT_SECRET {
        return oauth_error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    let token = body["token"].as_str().unwrap_or_default();
    if lock(&tenant.refresh_tokens).remove(token).is_some() {
        tenant.revocations.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK.into_response()
}

async fn userinfo(State(tenant): State<Arc<Tenant>>, headers: HeaderMap) -> Response {
    if let Some(response) = tenant.disturbance().await {
        return response;
    }
    // The tenant trusts the tokens it signed: it reads `sub` from the payload of one it recognises.
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let sub = bearer
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|claims| claims["sub"].as_str().map(str::to_owned));
    let user = sub.and_then(|sub| lock(&tenant.users).iter().find(|u| u.id == sub).cloned());
    match user {
        Some(user) => {
            tenant.userinfo_calls.fetch_add(1, Ordering::Relaxed);
            let mut claims = tenant.id_claims(&user);
            if let Some(object) = claims.as_object_mut() {
                for standard in ["iss", "aud", "iat", "exp"] {
                    object.remove(standard);
                }
            }
            Json(claims).into_response()
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn jwks(State(tenant): State<Arc<Tenant>>) -> Response {
    if let Some(response) = tenant.disturbance().await {
        return response;
    }
    tenant.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let keys: Vec<Value> = lock(&tenant.keys)
        .iter()
        .map(
            |key| json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": key.kid, "n": key.n, "e": key.e}),
        )
        .collect();
    Json(json!({"keys": keys})).into_response()
}
