//! rss-api configuration (defaults → `config/*.toml` → `GALLEY__SECTION__KEY`).

use std::time::Duration;

use galley_auth0::{Auth0Settings, IdentityProviderKind};
use galley_platform::config::duration_secs;
use galley_platform::{
    BusSettings, CacheSettings, Environment, HttpSettings, LimitsSettings, Secret, StoreSettings,
    TelemetrySettings,
};
use galley_rss::SweepPolicy;
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
    pub bus: BusSettings,
    pub identity: IdentitySettings,
    /// Per-client throttle of `POST /rss/fetch` (`limits.fetch`).
    pub limits: LimitsSettings,
    pub rss: RssSettings,
}

/// `[rss]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RssSettings {
    pub sweep: SweepSettings,
}

/// `[rss.sweep]`: the sweeper that keeps jobs out of limbo (see `FetchRequests::sweep`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SweepSettings {
    /// Seconds between sweeps; 0 turns the sweeper off.
    #[serde(with = "duration_secs")]
    pub interval: Duration,
    /// Seconds a job may stay `queued` untouched before it is handed to the queue again. Keep it above
    /// the longest retry delay of the workers (four times `retry.max_delay`: 20 min by default).
    #[serde(with = "duration_secs")]
    pub queued_after: Duration,
    /// Seconds a job may stay `fetching` untouched before it is failed with `timeout`.
    #[serde(with = "duration_secs")]
    pub fetching_deadline: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            queued_after: Duration::from_secs(30 * 60),
            fetching_deadline: Duration::from_secs(15 * 60),
        }
    }
}

impl SweepSettings {
    /// Jobs handled per state and sweep.
    const BATCH: u32 = 100;

    pub fn policy(&self) -> SweepPolicy {
        SweepPolicy {
            queued_after: self.queued_after,
            fetching_deadline: self.fetching_deadline,
            batch: Self::BATCH,
        }
    }
}

/// `[identity]`, as a token verifier: rss-api issues no tokens, it checks those of the issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// `builtin` (tokens of recipes-api, found through its discovery document) or `auth0` (Auth0's JWKS
    /// at `{base}/.well-known/jwks.json`).
    pub provider: IdentityProviderKind,
    /// `[identity.auth0]`: with `provider = "auth0"`, the base URL and `audience` are read from it.
    pub auth0: Auth0Settings,
    /// The issuer whose tokens are accepted. Builtin: recipes-api's public URL (default
    /// `http://127.0.0.1:8080/`); Auth0: default its base URL `https://{domain}/`.
    pub issuer: Option<String>,
    /// The access tokens' audience with the built-in provider (Auth0: `identity.auth0.audience`).
    pub api_audience: String,
    /// The same key as recipes-api's, so the session cookie works here too.
    pub cookie_key: Option<Secret>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            provider: IdentityProviderKind::default(),
            auth0: Auth0Settings::default(),
            issuer: None,
            api_audience: "galley-api".to_owned(),
            cookie_key: None,
        }
    }
}

impl IdentitySettings {
    /// The expected `iss` (see [`IdentitySettings::issuer`]).
    pub fn issuer(&self) -> Result<String, galley_auth0::settings::Auth0SettingsError> {
        match (&self.issuer, self.provider) {
            (Some(issuer), _) => Ok(issuer.clone()),
            (None, IdentityProviderKind::Auth0) => self.auth0.base_url(),
            (None, IdentityProviderKind::Builtin) => Ok("http://127.0.0.1:8080/".to_owned()),
        }
    }
}
