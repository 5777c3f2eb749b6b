//! `[secrets]`: which secrets backend a process uses and how it reaches Vault/OpenBao.
//!
//! Read before the rest of the configuration (from the files and the environment only), because the
//! rest may come from Vault. Every key is part of the documented contract (README, "Secrets").

use std::path::PathBuf;
use std::time::Duration;

use galley_platform::Secret;
use serde::Deserialize;

/// `secrets.backend`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsBackendKind {
    /// Secrets come from the configuration files and the environment only.
    #[default]
    None,
    /// Vault or OpenBao (`secrets.vault.*`).
    Vault,
}

/// `[secrets]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretsSettings {
    pub backend: SecretsBackendKind,
    pub vault: VaultSettings,
}

/// Only the `[secrets]` section of the whole configuration, so it can be read first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretsSection {
    pub secrets: SecretsSettings,
}

/// `secrets.vault.auth`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuthMethod {
    /// A token given in `secrets.vault.token` (renewed if renewable; cannot be re-obtained).
    #[default]
    Token,
    /// `secrets.vault.role_id` and a secret id (`secret_id_file`, else `secret_id`).
    Approle,
    /// `secrets.vault.username` and `secrets.vault.password`.
    Userpass,
}

/// `[secrets.vault]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VaultSettings {
    /// `http(s)://host:port` of the Vault/OpenBao API.
    pub addr: String,
    pub auth: VaultAuthMethod,
    pub token: Option<Secret>,
    pub role_id: Option<String>,
    /// File holding the AppRole secret id (a trailing newline is ignored); preferred to `secret_id`
    /// because files can be mounted with narrow permissions and kept out of process listings.
    pub secret_id_file: Option<PathBuf>,
    pub secret_id: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Mount of the KV v2 engine holding static secrets.
    pub kv_mount: String,
    /// Folder under the mount: `<prefix>/shared` and `<prefix>/<service>` are read.
    pub kv_prefix: String,
    /// Lease paths of dynamic credentials; unset = static credentials from configuration.
    pub leases: LeasePaths,
    /// Bound on every call to Vault (seconds).
    #[serde(with = "galley_platform::config::duration_secs")]
    pub timeout: Duration,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            addr: "http://127.0.0.1:8200".to_owned(),
            auth: VaultAuthMethod::default(),
            token: None,
            role_id: None,
            secret_id_file: None,
            secret_id: None,
            username: None,
            password: None,
            kv_mount: "secret".to_owned(),
            kv_prefix: "galley".to_owned(),
            leases: LeasePaths::default(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[secrets.vault.leases]`: where each dependency's dynamic credentials come from
/// (`database/creds/<role>`, `rabbitmq/creds/<role>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LeasePaths {
    /// The document store (MongoDB).
    pub store: Option<String>,
    /// The cache (Redis).
    pub cache: Option<String>,
    /// The bus (RabbitMQ).
    pub bus: Option<String>,
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use galley_platform::{ConfigSource, load_settings};

    use super::*;

    #[test]
    fn defaults_are_no_backend_and_the_documented_kv_location() -> Result<(), galley_platform::ConfigError> {
        let section: SecretsSection = load_settings(&ConfigSource::defaults_only())?;
        assert_eq!(section.secrets.backend, SecretsBackendKind::None);
        assert_eq!(section.secrets.vault.kv_mount, "secret");
        assert_eq!(section.secrets.vault.kv_prefix, "galley");
        assert!(section.secrets.vault.leases.cache.is_none());
        Ok(())
    }

    #[test]
    fn the_contract_keys_are_read_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GALLEY__SECRETS__BACKEND", "vault");
            jail.set_env("GALLEY__SECRETS__VAULT__ADDR", "http://127.0.0.1:1");
            jail.set_env("GALLEY__SECRETS__VAULT__AUTH", "approle");
            jail.set_env("GALLEY__SECRETS__VAULT__ROLE_ID", "role");
            jail.set_env("GALLEY__SECRETS__VAULT__SECRET_ID_FILE", "/run/secret-id");
            jail.set_env("GALLEY__SECRETS__VAULT__KV_MOUNT", "kv");
            jail.set_env("GALLEY__SECRETS__VAULT__KV_PREFIX", "prod");
            jail.set_env("GALLEY__SECRETS__VAULT__LEASES__CACHE", "database/creds/cache");
            jail.set_env("GALLEY__SECRETS__VAULT__LEASES__BUS", "rabbitmq/creds/bus");
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let section: SecretsSection = load_settings(&source).map_err(|e| e.to_string())?;
            let vault = section.secrets.vault;
            assert_eq!(section.secrets.backend, SecretsBackendKind::Vault);
            assert_eq!(vault.auth, VaultAuthMethod::Approle);
            assert_eq!(vault.role_id.as_deref(), Some("role"));
            assert_eq!(vault.secret_id_file, Some(PathBuf::from("/run/secret-id")));
            assert_eq!((vault.kv_mount.as_str(), vault.kv_prefix.as_str()), ("kv", "prod"));
            assert_eq!(vault.leases.cache.as_deref(), Some("database/creds/cache"));
            assert_eq!(vault.leases.bus.as_deref(), Some("rabbitmq/creds/bus"));
            assert!(vault.leases.store.is_none());
            Ok(())
        });
    }
}
