//! The secrets port and the configuration layer static secrets arrive in.
//!
//! Platform knows no secrets server: an adapter (the Vault one, `galley-vault`) implements
//! [`SecretsBackend`] and fetches static secrets into a [`SecretLayer`]; [`load_settings_layered`]
//! puts that layer between the configuration files and the `GALLEY__*` environment, so operators can
//! still override any key from the environment. Values stay strings until the settings structs
//! deserialize them (into `Secret`s where they are secret); what is logged is only which source each
//! layered key finally came from.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

use crate::config::{ConfigError, ConfigSource};
use crate::secret::Secret;

/// Static configuration values from a secrets server, keyed by dotted configuration key
/// (`identity.cookie_key`, `store.mongodb.uri`). A value is read as the same `GALLEY__*` variable would
/// be (`20` is a number, `true` a boolean, anything else a string).
#[derive(Clone, Default)]
pub struct SecretLayer {
    /// Human-readable name of the source (`vault secret/galley/shared`), per key, for the log.
    entries: BTreeMap<String, (String, Secret)>,
}

impl std::fmt::Debug for SecretLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and sources only; values never.
        let keys: BTreeMap<&str, &str> =
            self.entries.iter().map(|(k, (s, _))| (k.as_str(), s.as_str())).collect();
        f.debug_struct("SecretLayer").field("keys", &keys).finish()
    }
}

impl SecretLayer {
    /// An empty layer (the `none` backend).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key = value` read from `source`; a later insert of the same key wins (the service's own
    /// path is read after the shared one).
    pub fn insert(&mut self, key: impl Into<String>, value: Secret, source: impl Into<String>) {
        self.entries.insert(key.into(), (source.into(), value));
    }

    /// The dotted keys this layer holds, with the source each came from.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(key, (source, _))| (key.as_str(), source.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Name of the figment provider, as it appears in configuration errors ("... in Vault KV").
const LAYER_NAME: &str = "Vault KV";

impl Provider for SecretLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(LAYER_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        use secrecy::ExposeSecret as _;
        let mut dict = Dict::new();
        for (key, (_, value)) in &self.entries {
            // As figment's `Env` reads a variable: `7` a number, `true` a boolean, else a string.
            let parsed: Value = value
                .expose_secret()
                .parse()
                .unwrap_or_else(|_| Value::from(value.expose_secret().to_owned()));
            insert_dotted(&mut dict, key, parsed);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at the dotted `key` (`a.b.c`) of `dict`, creating the tables on the way; a key that is
/// a prefix of another (`a.b` and `a.b.c`) keeps the longer one's table.
fn insert_dotted(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_owned()).or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// Where a layered key's final value came from: the secrets backend, or the environment overriding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOrigin {
    /// Dotted configuration key (`identity.cookie_key`).
    pub key: String,
    /// The source that won (`vault secret/galley/shared`, or the environment provider's name).
    pub source: String,
    /// Whether the environment overrode the secrets backend.
    pub overridden_by_env: bool,
}

impl KeyOrigin {
    /// Logs the origin (key and source, never the value). Called once logging is set up, which is
    /// after configuration is loaded.
    pub fn log(&self) {
        if self.overridden_by_env {
            tracing::info!(key = %self.key, source = %self.source, "configuration key from the environment, overriding the secrets backend");
        } else {
            tracing::info!(key = %self.key, source = %self.source, "configuration key from the secrets backend");
        }
    }
}

/// Like [`crate::load_settings`] with `layer` between the configuration files and the environment.
/// Returns, for every key of the layer, the source its final value came from.
pub fn load_settings_layered<T: DeserializeOwned>(
    source: &ConfigSource,
    layer: &SecretLayer,
) -> Result<(T, Vec<KeyOrigin>), ConfigError> {
    let figment = source.figment_with(layer);
    let settings = figment.extract().map_err(|error| ConfigError::from(Box::new(error)))?;
    let origins = layer
        .keys()
        .map(|(key, layer_source)| {
            let winner = figment.find_metadata(key).map(|metadata| metadata.name.to_string());
            match winner {
                Some(name) if name != LAYER_NAME => {
                    KeyOrigin { key: key.to_owned(), source: name, overridden_by_env: true }
                }
                _ => KeyOrigin {
                    key: key.to_owned(),
                    source: layer_source.to_owned(),
                    overridden_by_env: false,
                },
            }
        })
        .collect();
    Ok((settings, origins))
}

/// Credentials leased from a secrets engine (`database/creds/<role>`, `rabbitmq/creds/<role>`).
#[derive(Debug, Clone)]
pub struct Lease {
    /// Id to renew and revoke the lease with.
    pub id: String,
    /// How long the credentials are valid from now unless renewed.
    pub ttl: Duration,
    /// Whether the server accepts renewals.
    pub renewable: bool,
    pub username: String,
    pub password: Secret,
}

/// A username and password a dependency is reached with (leased, so they change over time).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret as _;
        self.username == other.username && self.password.expose_secret() == other.password.expose_secret()
    }
}

/// The credentials source an adapter follows: the current credentials, and a change notification
/// each time they are replaced. Adapters configured with a static URL never see one.
pub type CredentialsFeed = tokio::sync::watch::Receiver<Credentials>;

/// The outcome of renewing a lease: the new remaining lifetime, which the server caps at the lease's
/// max TTL (a renewal that returns less than asked for means the max TTL is near).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRenewal {
    pub ttl: Duration,
}

/// Why a secrets call failed. Details (hosts, server messages) go to the log, not into responses.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The server could not be reached or answered with a server error: try again later.
    #[error("secrets backend unavailable: {0}")]
    Unavailable(String),
    /// The server refused our credentials or the path is not permitted to us.
    #[error("secrets backend refused access: {0}")]
    Denied(String),
    /// The path holds nothing (or the lease is unknown).
    #[error("not found in the secrets backend: {0}")]
    NotFound(String),
    /// The configuration of the backend is unusable (bad address, missing credentials).
    #[error("secrets backend misconfigured: {0}")]
    Misconfigured(String),
    /// The server answered something we could not read.
    #[error("unexpected answer from the secrets backend: {0}")]
    Protocol(String),
}

/// The port the credential rotation and the configuration layer need from a secrets server. Adapters:
/// Vault/OpenBao (`galley-vault`); tests add in-memory ones.
#[async_trait]
pub trait SecretsBackend: Send + Sync + std::fmt::Debug {
    /// The key/value pairs stored at `path` (relative to the configured KV mount); an absent path is an
    /// empty map.
    async fn read_static(&self, path: &str) -> Result<BTreeMap<String, Secret>, SecretsError>;
    /// New credentials from the lease path `path` (`database/creds/cache`).
    async fn lease(&self, path: &str) -> Result<Lease, SecretsError>;
    /// Extends the lease by `increment` (the server caps it at the max TTL).
    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<LeaseRenewal, SecretsError>;
    /// Ends the lease now: the server deletes the user and drops its connections.
    async fn revoke(&self, lease_id: &str) -> Result<(), SecretsError>;
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use std::path::PathBuf;

    use secrecy::ExposeSecret as _;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Sample {
        identity: Identity,
        store: Store,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Identity {
        cookie_key: Option<Secret>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Store {
        uri: String,
        pool: u32,
        name: String,
    }

    fn layer() -> SecretLayer {
        let mut layer = SecretLayer::new();
        layer.insert("identity.cookie_key", Secret::from("from-vault"), "vault shared");
        layer.insert("store.uri", Secret::from("mongodb://vault"), "vault recipes-api");
        layer.insert("store.pool", Secret::from("7"), "vault recipes-api");
        layer
    }

    #[test]
    fn the_layer_overrides_files_and_the_environment_overrides_the_layer() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "default.toml",
                "[store]\nuri = \"from-file\"\nname = \"kept\"\n[identity]\ncookie_key = \"file\"\n",
            )?;
            jail.set_env("GALLEY__STORE__URI", "from-env");
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let (settings, origins): (Sample, _) =
                load_settings_layered(&source, &layer()).map_err(|e| e.to_string())?;
            let overridden: Vec<&str> =
                origins.iter().filter(|o| o.overridden_by_env).map(|o| o.key.as_str()).collect();
            assert_eq!(overridden, ["store.uri"]);
            let from_vault =
                origins.iter().find(|o| o.key == "identity.cookie_key").map(|o| o.source.as_str());
            assert_eq!(from_vault, Some("vault shared"));
            assert_eq!(settings.store.uri, "from-env");
            assert_eq!(settings.store.name, "kept");
            assert_eq!(settings.store.pool, 7, "a numeric string becomes a number, as from the environment");
            assert_eq!(
                settings.identity.cookie_key.map(|k| k.expose_secret().to_owned()).as_deref(),
                Some("from-vault")
            );
            Ok(())
        });
    }

    #[test]
    fn an_empty_layer_changes_nothing() -> Result<(), ConfigError> {
        let source =
            ConfigSource { dir: PathBuf::from("/nonexistent"), profile: String::new(), read_env: false };
        let (settings, origins): (Sample, _) = load_settings_layered(&source, &SecretLayer::new())?;
        assert!(origins.is_empty());
        assert!(settings.identity.cookie_key.is_none());
        Ok(())
    }

    #[test]
    fn debug_output_names_keys_but_never_values() {
        let printed = format!("{:?}", layer());
        assert!(printed.contains("identity.cookie_key"), "{printed}");
        assert!(!printed.contains("from-vault"), "{printed}");
    }
}
