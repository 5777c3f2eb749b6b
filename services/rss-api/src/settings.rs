//! rss-api configuration (defaults → `config/*.toml` → `GALLEY__SECTION__KEY`).

use galley_platform::{
    BusSettings, CacheSettings, Environment, HttpSettings, LimitsSettings, Secret, StoreSettings,
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
    pub bus: BusSettings,
    pub identity: IdentitySettings,
    /// Per-client throttle of `POST /rss/fetch` (`limits.fetch`).
    pub limits: LimitsSettings,
}

/// `[identity]`, as a token verifier: rss-api issues no tokens, it checks those of the issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// The issuer whose `/.well-known/openid-configuration` and JWKS verify tokens (recipes-api's
    /// public URL with the built-in provider, or `https://<tenant>.auth0.com/`).
    pub issuer: String,
    pub api_audience: String,
    /// The same key as recipes-api's, so the session cookie works here too.
    pub cookie_key: Option<Secret>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080/".to_owned(),
            api_audience: "galley-api".to_owned(),
            cookie_key: None,
        }
    }
}
