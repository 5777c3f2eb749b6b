//! `[identity.auth0]` (`GALLEY__IDENTITY__AUTH0__*`): the tenant, the application and the API.

use std::time::Duration;

use galley_platform::Secret;
use serde::Deserialize;

/// `identity.provider`: who manages users and issues tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    /// Galley itself (`BuiltinIdentityProvider`, its own keys and discovery documents).
    #[default]
    Builtin,
    /// Auth0 (`Auth0IdentityProvider`); Galley serves no `/.well-known` documents then.
    Auth0,
}

/// Which Resource Owner Password grant signs users in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth0Grant {
    /// `http://auth0.com/oauth/grant-type/password-realm` with `realm` = the connection.
    #[default]
    PasswordRealm,
    /// `password`: the tenant's default directory decides the connection.
    Password,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Auth0Settings {
    /// The tenant's domain, e.g. `tenant.eu.auth0.com`; the base URL is then `https://{domain}/`.
    pub domain: Option<String>,
    /// Overrides the base URL (tests, private clouds); the issuer is then this URL.
    pub base_url: Option<String>,
    /// The application's client id (also the `aud` of ID tokens).
    pub client_id: String,
    /// The application's client secret. With one, the end user's address is sent in
    /// `auth0-forwarded-for`, so Auth0's brute-force protection counts per user and address.
    pub client_secret: Option<Secret>,
    /// The database connection users sign up in and (password-realm) sign in against.
    pub connection: String,
    /// The API identifier: the `audience` asked for and the `aud` both APIs require.
    pub audience: String,
    pub grant: Auth0Grant,
    /// Time limit of each call to Auth0 (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub timeout: Duration,
}

impl Default for Auth0Settings {
    fn default() -> Self {
        Self {
            domain: None,
            base_url: None,
            client_id: String::new(),
            client_secret: None,
            connection: "Username-Password-Authentication".to_owned(),
            audience: String::new(),
            grant: Auth0Grant::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Auth0SettingsError {
    #[error("identity.auth0.domain (or identity.auth0.base_url) is required with identity.provider = auth0")]
    NoTenant,
    #[error("identity.auth0.client_id is required with identity.provider = auth0")]
    NoClientId,
    #[error("identity.auth0.audience is required with identity.provider = auth0")]
    NoAudience,
}

impl Auth0Settings {
    /// `base_url` (with a trailing slash added if missing), else `https://{domain}/`.
    pub fn base_url(&self) -> Result<String, Auth0SettingsError> {
        let base = match (&self.base_url, &self.domain) {
            (Some(base), _) if !base.trim().is_empty() => base.trim().to_owned(),
            (_, Some(domain)) if !domain.trim().is_empty() => {
                format!("https://{}/", domain.trim().trim_end_matches('/'))
            }
            _ => return Err(Auth0SettingsError::NoTenant),
        };
        Ok(if base.ends_with('/') { base } else { format!("{base}/") })
    }

    /// Everything a deployment in Auth0 mode needs, checked at start-up.
    pub fn validate(&self) -> Result<(), Auth0SettingsError> {
        self.base_url()?;
        if self.client_id.trim().is_empty() {
            return Err(Auth0SettingsError::NoClientId);
        }
        if self.audience.trim().is_empty() {
            return Err(Auth0SettingsError::NoAudience);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_comes_from_the_override_or_the_domain_with_a_trailing_slash() {
        let mut settings = Auth0Settings { domain: Some("tenant.eu.auth0.com".into()), ..Default::default() };
        assert_eq!(settings.base_url(), Ok("https://tenant.eu.auth0.com/".into()));
        settings.base_url = Some("http://127.0.0.1:9999".into());
        assert_eq!(settings.base_url(), Ok("http://127.0.0.1:9999/".into()));
        assert_eq!(Auth0Settings::default().base_url(), Err(Auth0SettingsError::NoTenant));
        assert_eq!(settings.validate(), Err(Auth0SettingsError::NoClientId));
        settings.client_id = "client".into();
        assert_eq!(settings.validate(), Err(Auth0SettingsError::NoAudience));
        settings.audience = "https://api".into();
        assert_eq!(settings.validate(), Ok(()));
        assert_eq!(settings.connection, "Username-Password-Authentication");
        assert_eq!(settings.grant, Auth0Grant::PasswordRealm);
        assert_eq!(settings.timeout, Duration::from_secs(10));
    }
}
