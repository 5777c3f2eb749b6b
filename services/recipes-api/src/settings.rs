//! recipes-api configuration, loaded by `galley_platform::load_settings` (defaults → `config/*.toml` →
//! `GALLEY__SECTION__KEY`).

use std::time::Duration;

use galley_auth0::{Auth0Settings, IdentityProviderKind};
use galley_crypto::Argon2Params;
use galley_platform::{
    CacheSettings, Environment, HttpSettings, KmsSettings, LimitsSettings, Secret, StoreSettings,
    TelemetrySettings,
};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` or `production` (start-up refuses what is unsafe there).
    pub environment: Environment,
    pub http: HttpSettings,
    pub telemetry: TelemetrySettings,
    pub store: StoreSettings,
    pub cache: CacheSettings,
    pub recipes: RecipesSettings,
    pub identity: IdentitySettings,
    /// Per-client throttles of sign-up, sign-in and refresh.
    pub limits: LimitsSettings,
    /// Envelope encryption of the signing keys at rest (`GALLEY__KMS__KEY_ID`, `__REGION`, `__ENDPOINT`).
    pub kms: KmsSettings,
}

/// `[recipes]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RecipesSettings {
    /// Store the bundled sample recipes when the store is empty at start-up.
    pub seed_samples: bool,
}

/// `[identity]`: which identity provider, and the built-in one's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// `builtin` (default) or `auth0`.
    pub provider: IdentityProviderKind,
    /// `[identity.auth0]`, used with `provider = "auth0"`.
    pub auth0: Auth0Settings,
    /// `iss` of issued tokens and base of the discovery URLs. Default: `http://<bound address>/`; set
    /// it to the public URL (`https://galley.example/`) behind nginx. With Auth0: the tokens' expected
    /// issuer, by default the Auth0 base URL.
    pub issuer: Option<String>,
    /// `aud` of access tokens.
    pub api_audience: String,
    /// `aud` of ID tokens.
    pub client_id: String,
    /// Lifetime of access and ID tokens (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens and of the session cookie that carries one (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub refresh_token_ttl: Duration,
    /// Base64 key (at least 32 bytes) encrypting the session cookie. Without one a random key is made at
    /// start-up: cookies then do not survive a restart (bearer tokens do).
    pub cookie_key: Option<Secret>,
    /// Signing keys older than this are rotated at start-up (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub signing_key_rotation: Duration,
    pub argon2: Argon2Params,
    pub lockout: LockoutSettings,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            provider: IdentityProviderKind::default(),
            auth0: Auth0Settings::default(),
            issuer: None,
            api_audience: "galley-api".to_owned(),
            client_id: "galley-web".to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            cookie_key: None,
            signing_key_rotation: Duration::from_secs(30 * 24 * 3600),
            argon2: Argon2Params::default(),
            lockout: LockoutSettings::default(),
        }
    }
}

/// `[identity.lockout]`: brute-force protection of sign-in (ADR 0017; every attempt is charged
/// before the password is checked).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LockoutSettings {
    /// Attempts per username per window from clients it has not recently signed in from.
    pub max_failures_per_username: u32,
    /// Attempts per client address (IPv6: per /64) per window, across usernames.
    pub max_failures_per_client: u32,
    /// Attempts per (username, client address) per window.
    pub max_failures_per_username_and_client: u32,
    /// Length of the counting window and of the lock (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub window: Duration,
    /// How long a successful sign-in exempts that (username, client) from the username budget (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub remember_client_for: Duration,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        let policy = galley_identity::LockoutPolicy::default();
        Self {
            max_failures_per_username: policy.max_failures_per_username,
            max_failures_per_client: policy.max_failures_per_client,
            max_failures_per_username_and_client: policy.max_failures_per_username_and_client,
            window: policy.window,
            remember_client_for: policy.remember_client_for,
        }
    }
}
