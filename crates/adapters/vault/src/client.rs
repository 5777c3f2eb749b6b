//! [`VaultClient`]: one authenticated session with Vault/OpenBao, implementing the secrets port.
//!
//! `vaultrs` does the calls it covers well (KV v2 reads, AppRole and userpass logins, token look-up
//! and renewal). Leases are called directly over HTTP: `vaultrs` drops the lease id of database
//! credentials and has no lease renew/revoke, and without the lease id credentials can be neither
//! renewed nor revoked.
//!
//! The client token is kept alive by [`VaultClient::spawn_token_renewal`]: renewed at about two
//! thirds of its TTL; when it cannot be renewed (refused, or the renewal was capped by the token's
//! max TTL) the client logs in again with its configured method.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use galley_platform::secret::ExposeSecret as _;
use galley_platform::{Lease, LeaseRenewal, Secret, SecretsBackend, SecretsError};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use vaultrs::client::{VaultClient as ApiClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::settings::{VaultAuthMethod, VaultSettings};

/// Mount points of the auth methods (the defaults `bao auth enable` uses).
const APPROLE_MOUNT: &str = "approle";
const USERPASS_MOUNT: &str = "userpass";
/// After a failed login the renewal task tries again this often (bounded by the token's own expiry).
const LOGIN_RETRY: Duration = Duration::from_secs(2);

/// How the client proves who it is; resolved from settings once, at start-up.
#[derive(Clone)]
enum Credentials {
    Token(Secret),
    Approle { role_id: String, secret_id: Secret },
    Userpass { username: String, password: Secret },
}

impl Credentials {
    fn from_settings(settings: &VaultSettings) -> Result<Self, SecretsError> {
        let missing = |key: &str| {
            SecretsError::Misconfigured(format!(
                "secrets.vault.{key} is required for auth = {:?}",
                settings.auth
            ))
        };
        match settings.auth {
            VaultAuthMethod::Token => {
                Ok(Self::Token(settings.token.clone().ok_or_else(|| missing("token"))?))
            }
            VaultAuthMethod::Approle => {
                let role_id = settings.role_id.clone().ok_or_else(|| missing("role_id"))?;
                let secret_id = match (&settings.secret_id_file, &settings.secret_id) {
                    (Some(path), _) => {
                        let text = std::fs::read_to_string(path).map_err(|error| {
                            SecretsError::Misconfigured(format!(
                                "cannot read secrets.vault.secret_id_file {}: {error}",
                                path.display()
                            ))
                        })?;
                        // Files written by `echo` or editors end in a newline that is not part of the id.
                        Secret::from(text.trim_end_matches(['\n', '\r']).to_owned())
                    }
                    (None, Some(secret_id)) => secret_id.clone(),
                    (None, None) => return Err(missing("secret_id_file (or secret_id)")),
                };
                Ok(Self::Approle { role_id, secret_id })
            }
            VaultAuthMethod::Userpass => Ok(Self::Userpass {
                username: settings.username.clone().ok_or_else(|| missing("username"))?,
                password: settings.password.clone().ok_or_else(|| missing("password"))?,
            }),
        }
    }

    fn can_log_in_again(&self) -> bool {
        !matches!(self, Self::Token(_))
    }
}

/// The current client token and when it runs out.
#[derive(Clone)]
struct TokenState {
    token: Secret,
    /// TTL when obtained or last renewed; zero = never expires (a root token).
    ttl: Duration,
    renewable: bool,
    refreshed_at: Instant,
}

/// A session with Vault/OpenBao. Cheap to clone; clones share the session (and its token).
#[derive(Clone)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    addr: url::Url,
    kv_mount: String,
    credentials: Credentials,
    /// `vaultrs`'s client carries the token too: it is replaced under the write lock on every login.
    api: tokio::sync::RwLock<ApiClient>,
    /// For the lease endpoints `vaultrs` lacks.
    http: reqwest::Client,
    token: RwLock<TokenState>,
    logins: AtomicU64,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient").field("addr", &self.inner.addr.as_str()).finish_non_exhaustive()
    }
}

impl VaultClient {
    /// Resolves the credentials, logs in (or checks the given token) and returns the session. Fails
    /// when Vault cannot be reached or refuses the credentials: a service must not start without it.
    pub async fn connect(settings: &VaultSettings) -> Result<Self, SecretsError> {
        let addr = url::Url::parse(&settings.addr).map_err(|error| {
            SecretsError::Misconfigured(format!(
                "secrets.vault.addr `{}` is not a URL: {error}",
                settings.addr
            ))
        })?;
        let credentials = Credentials::from_settings(settings)?;
        let api_settings = VaultClientSettingsBuilder::default()
            .address(addr.as_str())
            .token("")
            .timeout(Some(settings.timeout))
            .build()
            .map_err(|error| SecretsError::Misconfigured(error.to_string()))?;
        let api =
            ApiClient::new(api_settings).map_err(|error| SecretsError::Misconfigured(error.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|error| SecretsError::Misconfigured(error.to_string()))?;
        let client = Self {
            inner: Arc::new(Inner {
                addr,
                kv_mount: settings.kv_mount.clone(),
                credentials,
                api: tokio::sync::RwLock::new(api),
                http,
                token: RwLock::new(TokenState {
                    token: Secret::from(String::new()),
                    ttl: Duration::ZERO,
                    renewable: false,
                    refreshed_at: Instant::now(),
                }),
                logins: AtomicU64::new(0),
            }),
        };
        client.log_in().await?;
        Ok(client)
    }

    /// How many times this session logged in (the first login included): a re-login after a failed
    /// renewal shows up here.
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// The KV v2 mount static secrets are read from.
    pub fn kv_mount(&self) -> &str {
        &self.inner.kv_mount
    }

    /// Obtains a token with the configured method (for `token`: looks the given one up).
    async fn log_in(&self) -> Result<(), SecretsError> {
        let mut api = self.inner.api.write().await;
        let state = match &self.inner.credentials {
            Credentials::Token(token) => {
                // Directly, not `vaultrs::token::lookup_self`: its response type insists on fields
                // (`renewable`) a root token from `operator init` does not have, and only two are needed.
                #[derive(Deserialize)]
                struct Lookup {
                    data: LookupData,
                }
                #[derive(Deserialize)]
                struct LookupData {
                    ttl: u64,
                    /// Absent for the root token `operator init` prints.
                    #[serde(default)]
                    renewable: bool,
                }
                let response = self
                    .inner
                    .http
                    .get(self.url("auth/token/lookup-self")?)
                    .header("X-Vault-Token", token.expose_secret())
                    .send()
                    .await
                    .map_err(transport_error)?;
                let status = response.status();
                if !status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    return Err(status_error(status.as_u16(), format!("token look-up: {}", body.trim())));
                }
                let lookup: Lookup = response
                    .json()
                    .await
                    .map_err(|error| SecretsError::Protocol(format!("token look-up: {error}")))?;
                TokenState {
                    token: token.clone(),
                    ttl: Duration::from_secs(lookup.data.ttl),
                    renewable: lookup.data.renewable,
                    refreshed_at: Instant::now(),
                }
            }
            Credentials::Approle { role_id, secret_id } => {
                let auth =
                    vaultrs::auth::approle::login(&*api, APPROLE_MOUNT, role_id, secret_id.expose_secret())
                        .await
                        .map_err(login_error)?;
                token_state(auth)
            }
            Credentials::Userpass { username, password } => {
                let auth =
                    vaultrs::auth::userpass::login(&*api, USERPASS_MOUNT, username, password.expose_secret())
                        .await
                        .map_err(login_error)?;
                token_state(auth)
            }
        };
        vaultrs::client::Client::set_token(&mut *api, state.token.expose_secret());
        *self.inner.token.write().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("logged in to Vault");
        Ok(())
    }

    /// Renews the client token; returns its new TTL.
    async fn renew_token(&self) -> Result<Duration, SecretsError> {
        let api = self.inner.api.read().await;
        let auth = vaultrs::token::renew_self(&*api, None).await.map_err(api_error)?;
        let mut state = self.inner.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.ttl = Duration::from_secs(auth.lease_duration);
        state.renewable = auth.renewable;
        state.refreshed_at = Instant::now();
        Ok(state.ttl)
    }

    fn token_state(&self) -> TokenState {
        self.inner.token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Keeps the client token valid until `stop` fires: renews it at two thirds of its TTL, logs in
    /// again when renewal is refused or capped by the max TTL. A token that never expires (TTL 0)
    /// needs nothing.
    pub fn spawn_token_renewal(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let client = self.clone();
        tokio::spawn(async move {
            loop {
                let state = client.token_state();
                if state.ttl.is_zero() {
                    stop.cancelled().await;
                    return;
                }
                let due = state.refreshed_at + state.ttl * 2 / 3;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(due.into()) => {}
                }
                client.refresh_token(&state, &stop).await;
            }
        })
    }

    /// One renewal round: renew, else log in again (retrying until the token would have expired, then
    /// on, since a service without a token can still use the credentials it holds).
    async fn refresh_token(&self, before: &TokenState, stop: &CancellationToken) {
        if before.renewable {
            match self.renew_token().await {
                // Capped by the max TTL: the next renewal would buy even less; log in while we can.
                Ok(ttl) if ttl < before.ttl => tracing::debug!(?ttl, "Vault token near its max TTL"),
                Ok(_) => return,
                Err(error) => tracing::warn!(%error, "renewing the Vault token failed; logging in again"),
            }
        }
        if !self.inner.credentials.can_log_in_again() {
            tracing::warn!(
                "the configured Vault token cannot be renewed and auth = token cannot log in again"
            );
            // Wait for it to expire; nothing else can be done.
            let expiry = before.refreshed_at + before.ttl;
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep_until(expiry.into()) => {}
            }
            let mut state = self.inner.token.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.ttl = Duration::ZERO;
            return;
        }
        loop {
            match self.log_in().await {
                Ok(()) => return,
                Err(error) => tracing::warn!(%error, "logging in to Vault failed; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LOGIN_RETRY) => {}
            }
        }
    }

    /// `GET /v1/sys/health`: whether Vault answers and is unsealed (readiness).
    pub async fn is_available(&self) -> Result<(), SecretsError> {
        let url = self.url("sys/health")?;
        let response = self.inner.http.get(url).send().await.map_err(transport_error)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SecretsError::Unavailable(format!("Vault health answered {}", response.status())))
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, SecretsError> {
        self.inner
            .addr
            .join(&format!("v1/{}", path.trim_start_matches('/')))
            .map_err(|error| SecretsError::Misconfigured(format!("path `{path}`: {error}")))
    }

    /// `POST /v1/<path>` with `body` as the session's token: the operator calls `vaultrs` has no
    /// typed request for (mounting engines, writing policies and roles). Returns the answer's JSON,
    /// if any.
    pub async fn write(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, SecretsError> {
        let request = self.inner.http.post(self.url(path)?).json(body);
        self.call(request, path).await
    }

    /// `GET /v1/<path>` as the session's token.
    pub async fn read(&self, path: &str) -> Result<Option<serde_json::Value>, SecretsError> {
        let request = self.inner.http.get(self.url(path)?);
        self.call(request, path).await
    }

    /// Sends a request with the current token, reading the answer as `T` (or nothing for 204).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Option<T>, SecretsError> {
        let token = self.token_state().token;
        let response =
            request.header("X-Vault-Token", token.expose_secret()).send().await.map_err(transport_error)?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(status_error(status.as_u16(), format!("{what}: {}", body.trim())));
        }
        let body =
            response.json::<T>().await.map_err(|error| SecretsError::Protocol(format!("{what}: {error}")))?;
        Ok(Some(body))
    }
}

fn token_state(auth: vaultrs::api::AuthInfo) -> TokenState {
    TokenState {
        token: Secret::from(auth.client_token),
        ttl: Duration::from_secs(auth.lease_duration),
        renewable: auth.renewable,
        refreshed_at: Instant::now(),
    }
}

fn status_error(code: u16, detail: String) -> SecretsError {
    match code {
        401 | 403 => SecretsError::Denied(detail),
        404 => SecretsError::NotFound(detail),
        // 429: standby or rate limited; 5xx: sealed, down, or the backend behind the engine failed.
        429 | 500..=599 => SecretsError::Unavailable(detail),
        _ => SecretsError::Protocol(format!("status {code}: {detail}")),
    }
}

fn transport_error(error: reqwest::Error) -> SecretsError {
    SecretsError::Unavailable(error.to_string())
}

/// Login endpoints answer wrong credentials with 400 ("invalid role or secret ID"): a refusal.
fn login_error(error: ClientError) -> SecretsError {
    match error {
        ClientError::APIError { code: 400, errors } => SecretsError::Denied(errors.join("; ")),
        other => api_error(other),
    }
}

fn api_error(error: ClientError) -> SecretsError {
    match error {
        ClientError::APIError { code, errors } => status_error(code, errors.join("; ")),
        // Transport failures, and server errors without a readable body.
        ClientError::RestClientError { source } => SecretsError::Unavailable(source.to_string()),
        other => SecretsError::Protocol(other.to_string()),
    }
}

/// `GET <lease path>` of the database and rabbitmq engines.
#[derive(Debug, Deserialize)]
struct LeaseResponse {
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    data: CredentialsData,
}

#[derive(Deserialize)]
struct CredentialsData {
    username: String,
    password: String,
}

impl std::fmt::Debug for CredentialsData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsData").field("username", &self.username).finish_non_exhaustive()
    }
}

/// `PUT sys/leases/renew`
#[derive(Debug, Deserialize)]
struct RenewResponse {
    lease_duration: u64,
}

#[async_trait]
impl SecretsBackend for VaultClient {
    async fn read_static(&self, path: &str) -> Result<BTreeMap<String, Secret>, SecretsError> {
        let api = self.inner.api.read().await;
        let values: HashMap<String, serde_json::Value> =
            match vaultrs::kv2::read(&*api, &self.inner.kv_mount, path).await {
                Ok(values) => values,
                Err(ClientError::APIError { code: 404, .. }) => return Ok(BTreeMap::new()),
                Err(error) => return Err(api_error(error)),
            };
        let mut secrets = BTreeMap::new();
        for (key, value) in values {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                _ => {
                    // Named, never printed: the value may be a secret.
                    tracing::warn!(
                        key,
                        path,
                        "KV value is neither a string, a number nor a boolean; ignored"
                    );
                    continue;
                }
            };
            secrets.insert(key, Secret::from(text));
        }
        Ok(secrets)
    }

    async fn lease(&self, path: &str) -> Result<Lease, SecretsError> {
        let request = self.inner.http.get(self.url(path)?);
        let response: LeaseResponse = self
            .call(request, path)
            .await?
            .ok_or_else(|| SecretsError::Protocol(format!("{path}: empty answer")))?;
        Ok(Lease {
            id: response.lease_id,
            ttl: Duration::from_secs(response.lease_duration),
            renewable: response.renewable,
            username: response.data.username,
            password: Secret::from(response.data.password),
        })
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<LeaseRenewal, SecretsError> {
        let body = serde_json::json!({ "lease_id": lease_id, "increment": increment.as_secs() });
        let request = self.inner.http.put(self.url("sys/leases/renew")?).json(&body);
        let response: RenewResponse = self
            .call(request, "lease renewal")
            .await?
            .ok_or_else(|| SecretsError::Protocol("lease renewal: empty answer".to_owned()))?;
        Ok(LeaseRenewal { ttl: Duration::from_secs(response.lease_duration) })
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), SecretsError> {
        let body = serde_json::json!({ "lease_id": lease_id });
        let request = self.inner.http.put(self.url("sys/leases/revoke")?).json(&body);
        self.call::<serde_json::Value>(request, "lease revocation").await?;
        Ok(())
    }
}
