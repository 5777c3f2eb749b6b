//! What kind of deployment a process runs in, and the rules a production deployment must meet before it
//! serves anything.
//!
//! `environment = "production"` (set by `config/production.toml`, or `GALLEY__ENVIRONMENT=production`
//! under any profile) turns mistakes that are harmless on a laptop into start-up errors, because in
//! production they are silent security holes:
//! - the development cookie key is published in this repository, so anyone could forge session cookies;
//!   no key at all gives every replica its own random key, so cookies break between replicas;
//! - a process-local revocation list in a standalone rss-api never hears of sign-outs made on
//!   recipes-api, so signed-out tokens would keep working there until they expire.

use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::CacheBackend;
use crate::secret::Secret;

/// The key `config/local.toml` ships for laptops (a test keeps the two equal). Recognised so that
/// production refuses it.
pub const DEVELOPMENT_COOKIE_KEY: &str = "muGKQ0IOPkCh/8BJCTrAxts99OQ4aUxMJB7mQDw9Ao8PSE9D/bgR01g3/dxzs9vS";

/// `environment`: `development` (default) or `production`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A laptop or a test: conveniences such as the published cookie key are allowed.
    #[default]
    Development,
    /// Anything users reach: the rules of this module are enforced at start-up.
    Production,
}

/// A production rule broken by the configuration; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error(
        "environment = production needs identity.cookie_key: set GALLEY__IDENTITY__COOKIE_KEY to at least 32 \
         random bytes in base64 (e.g. `head -c 48 /dev/urandom | base64 -w0`), the same on every replica"
    )]
    MissingCookieKey,
    #[error(
        "environment = production refuses the development identity.cookie_key published in config/local.toml: \
         set GALLEY__IDENTITY__COOKIE_KEY to a key of your own"
    )]
    DevelopmentCookieKey,
    #[error(
        "environment = production: a standalone {service} needs the shared revocation list \
         (cache.backend = \"redis\"), or tokens signed out on recipes-api keep working here until they expire"
    )]
    ProcessLocalRevocations { service: &'static str },
}

impl Environment {
    pub fn is_production(self) -> bool {
        self == Self::Production
    }

    /// The session-cookie key rule: in production a key must be configured and must not be the
    /// development one.
    pub fn check_cookie_key(self, configured: Option<&Secret>) -> Result<(), DeploymentError> {
        if !self.is_production() {
            return Ok(());
        }
        match configured {
            None => Err(DeploymentError::MissingCookieKey),
            Some(key) if key.expose_secret().trim() == DEVELOPMENT_COOKIE_KEY => {
                Err(DeploymentError::DevelopmentCookieKey)
            }
            Some(_) => Ok(()),
        }
    }

    /// The revocation rule for a process that verifies tokens it did not issue (a standalone rss-api):
    /// in production its revocation list must be the shared one.
    pub fn check_shared_revocations(
        self,
        service: &'static str,
        backend: CacheBackend,
    ) -> Result<(), DeploymentError> {
        if self.is_production() && backend == CacheBackend::Memory {
            return Err(DeploymentError::ProcessLocalRevocations { service });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_allows_what_production_refuses() {
        let development = Environment::Development;
        assert_eq!(development.check_cookie_key(None), Ok(()));
        assert_eq!(development.check_cookie_key(Some(&DEVELOPMENT_COOKIE_KEY.into())), Ok(()));
        assert_eq!(development.check_shared_revocations("rss-api", CacheBackend::Memory), Ok(()));
    }

    #[test]
    fn production_needs_an_own_cookie_key() {
        let production = Environment::Production;
        assert_eq!(production.check_cookie_key(None), Err(DeploymentError::MissingCookieKey));
        assert_eq!(
            production.check_cookie_key(Some(&format!(" {DEVELOPMENT_COOKIE_KEY}\n").into())),
            Err(DeploymentError::DevelopmentCookieKey)
        );
        let own = "c2VjcmV0LWtleS1vZi10aGlzLWRlcGxveW1lbnQtMDEyMzQ1Njc4OQ==";
        assert_eq!(production.check_cookie_key(Some(&own.into())), Ok(()));
    }

    #[test]
    fn production_needs_the_shared_revocation_list() {
        let production = Environment::Production;
        assert_eq!(
            production.check_shared_revocations("rss-api", CacheBackend::Memory),
            Err(DeploymentError::ProcessLocalRevocations { service: "rss-api" })
        );
        assert_eq!(production.check_shared_revocations("rss-api", CacheBackend::Redis), Ok(()));
    }

    /// The constant must be the key `config/local.toml` really ships, or production would miss it.
    #[test]
    fn the_development_key_is_the_one_the_local_profile_ships() {
        let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/local.toml");
        let text = std::fs::read_to_string(&local).expect("config/local.toml");
        assert!(text.contains(&format!("cookie_key = \"{DEVELOPMENT_COOKIE_KEY}\"")), "{text}");
    }

    #[test]
    fn the_production_profile_declares_production() {
        let production =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/production.toml");
        #[derive(Deserialize)]
        struct Top {
            environment: Environment,
        }
        let text = std::fs::read_to_string(&production).expect("config/production.toml");
        let top: Top = toml_from(&text);
        assert_eq!(top.environment, Environment::Production);
    }

    fn toml_from<T: serde::de::DeserializeOwned>(text: &str) -> T {
        use figment::providers::{Format, Toml};
        figment::Figment::new().merge(Toml::string(text)).extract().expect("valid TOML")
    }
}
