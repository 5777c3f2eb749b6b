//! `secrets.backend` → where static secrets come from, and the process's session with the secrets
//! backend (kept open for token renewal and the leases of dynamic credentials).
//!
//! The order of a start-up: read `[secrets]` from the files and the environment; with `vault`, log in
//! (an unreachable or refusing Vault stops the start with one clear error), read the service's KV paths
//! into a [`SecretLayer`]; then load each service's settings with the layer between the files and the
//! environment; log where every layered key came from once logging is set up.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use galley_platform::{
    ConfigSource, CredentialsFeed, HealthCheck, KeyOrigin, Metrics, SecretLayer, StoreBackend, StoreSettings,
    load_settings, load_settings_layered,
};
use galley_vault::{
    LeaseHealth, LeasePaths, LeasedCredentials, RotationTimings, SecretsBackendKind, SecretsSection,
    VaultClient, read_static_layer,
};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::telemetry::leases::metered_lease_backend;

/// The secrets of one process: the static layer and, with Vault, the open session and the leases of
/// dynamic credentials.
#[derive(Debug)]
pub struct Secrets {
    layer: SecretLayer,
    vault: Option<VaultSession>,
    /// Lease paths of dynamic credentials (`secrets.vault.leases.*`).
    lease_paths: LeasePaths,
    /// Leases obtained so far, revoked by [`Secrets::close`].
    leases: Mutex<Vec<LeasedCredentials>>,
    /// Where leases obtained from now on count their renewals and replacements
    /// ([`Secrets::measure_leases_into`]; disabled until then).
    lease_metrics: Mutex<Metrics>,
    /// Origins of the layered keys, gathered by every [`Secrets::load`] and logged once.
    origins: Mutex<Vec<KeyOrigin>>,
    /// How long logging in to Vault and reading the static layer took, and how many keys it held:
    /// measured before logging is set up, so kept for [`Secrets::log_origins`].
    vault_open: Option<(std::time::Duration, usize)>,
}

#[derive(Debug)]
struct VaultSession {
    client: VaultClient,
    stop: CancellationToken,
    renewal: tokio::task::JoinHandle<()>,
}

impl Secrets {
    /// No secrets backend: configuration from the files and the environment only.
    pub fn none() -> Self {
        Self {
            layer: SecretLayer::new(),
            vault: None,
            lease_paths: LeasePaths::default(),
            leases: Mutex::new(Vec::new()),
            lease_metrics: Mutex::new(Metrics::disabled()),
            origins: Mutex::new(Vec::new()),
            vault_open: None,
        }
    }

    /// Opens the backend named by `secrets.backend` in `source` and reads the static secrets of
    /// `services` (`recipes-api`, `rss-api`, `rss-worker`; the all-in-one process names all three).
    pub async fn open(source: &ConfigSource, services: &[&str]) -> anyhow::Result<Self> {
        let section: SecretsSection = load_settings(source)?;
        match section.secrets.backend {
            SecretsBackendKind::None => Ok(Self::none()),
            SecretsBackendKind::Vault => {
                let vault = &section.secrets.vault;
                let started = std::time::Instant::now();
                let client = VaultClient::connect(vault)
                    .await
                    .with_context(|| format!("cannot log in to Vault at {}", vault.addr))?;
                let layer = read_static_layer(&client, &vault.kv_mount, &vault.kv_prefix, services)
                    .await
                    .with_context(|| format!("cannot read static secrets from Vault at {}", vault.addr))?;
                let stop = CancellationToken::new();
                let renewal = client.spawn_token_renewal(stop.clone());
                let vault_open = Some((started.elapsed(), layer.len()));
                Ok(Self {
                    layer,
                    vault: Some(VaultSession { client, stop, renewal }),
                    lease_paths: vault.leases.clone(),
                    leases: Mutex::new(Vec::new()),
                    lease_metrics: Mutex::new(Metrics::disabled()),
                    origins: Mutex::new(Vec::new()),
                    vault_open,
                })
            }
        }
    }

    /// Loads settings of type `T` from `source` with the static secrets layered between the files and
    /// the environment.
    pub fn load<T: DeserializeOwned>(&self, source: &ConfigSource) -> anyhow::Result<T> {
        let (settings, origins) = load_settings_layered(source, &self.layer)?;
        let mut gathered = self.origins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for origin in origins {
            if !gathered.contains(&origin) {
                gathered.push(origin);
            }
        }
        Ok(settings)
    }

    /// Logs where each layered key came from (never its value). Call after `telemetry::init`.
    pub fn log_origins(&self) {
        if let Some((elapsed, keys)) = self.vault_open {
            tracing::info!(?elapsed, keys, "logged in to Vault and read the static secrets");
        }
        let gathered = self.origins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for origin in gathered.iter() {
            origin.log();
        }
    }

    /// The Vault session, when `secrets.backend = vault`.
    pub fn vault(&self) -> Option<&VaultClient> {
        self.vault.as_ref().map(|session| &session.client)
    }

    /// Counts the renewals and replacements of the leases obtained from now on into `metrics`
    /// (`galley_vault_lease_*`). The metrics registry is built after the secrets session opens (it is
    /// part of the service's settings), and before any lease is taken: call this in between.
    pub fn measure_leases_into(&self, metrics: &Metrics) {
        *self.lease_metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = metrics.clone();
    }

    /// The cache's credentials when `secrets.vault.leases.cache` names a lease path (else the cache
    /// uses the static `cache.redis.url`). Obtained once per process and kept until [`Secrets::close`].
    pub async fn cache_credentials(&self) -> anyhow::Result<Option<CredentialsFeed>> {
        self.credentials("cache", self.lease_paths.cache.as_deref()).await
    }

    /// The bus's credentials when `secrets.vault.leases.bus` names a lease path.
    pub async fn bus_credentials(&self) -> anyhow::Result<Option<CredentialsFeed>> {
        self.credentials("bus", self.lease_paths.bus.as_deref()).await
    }

    /// The store's credentials when `secrets.vault.leases.store` names a lease path (else MongoDB is
    /// reached with whatever `store.mongodb.uri` carries), for `DocumentStore::open_with`. With the
    /// embedded store a lease path stops the start before anything is leased: a SQLite file has no
    /// users, and a lease taken only to be refused would leave a user behind until its TTL ends.
    pub async fn store_credentials(&self, store: &StoreSettings) -> anyhow::Result<Option<CredentialsFeed>> {
        if self.vault.is_some() && self.lease_paths.store.is_some() && store.backend == StoreBackend::Embedded
        {
            return Err(crate::embedded_store_lease_refused());
        }
        self.credentials("store", self.lease_paths.store.as_deref()).await
    }

    async fn credentials(
        &self,
        what: &'static str,
        path: Option<&str>,
    ) -> anyhow::Result<Option<CredentialsFeed>> {
        let (Some(path), Some(session)) = (path, &self.vault) else { return Ok(None) };
        if let Some(existing) = self.leases().iter().find(|lease| lease.path() == path) {
            return Ok(Some(existing.feed()));
        }
        let metrics = self.lease_metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let backend = metered_lease_backend(Arc::new(session.client.clone()), what, &metrics);
        let leased = LeasedCredentials::obtain(backend, path, RotationTimings::default())
            .await
            .with_context(|| format!("cannot lease the {what} credentials from Vault ({path})"))?;
        let feed = leased.feed();
        self.leases().push(leased);
        Ok(Some(feed))
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Vec<LeasedCredentials>> {
        self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Readiness of the secrets backend, when there is one: degraded (not failed) while a lease can
    /// be neither renewed nor replaced, since the current credentials work until their lease ends.
    pub fn health_check(&self) -> Option<Arc<dyn HealthCheck>> {
        let session = self.vault.as_ref()?;
        let leases = self.leases().iter().map(LeasedCredentials::health).collect();
        Some(Arc::new(SecretsCheck { client: session.client.clone(), leases }))
    }

    /// Ends the session: revokes the leases (the services' connections using them are closed by now)
    /// and stops the token renewal.
    pub async fn close(self) {
        let leases = std::mem::take(&mut *self.leases());
        for leased in leases {
            leased.revoke().await;
        }
        if let Some(session) = self.vault {
            session.stop.cancel();
            if let Err(error) = session.renewal.await {
                tracing::warn!(%error, "the Vault token renewal task failed");
            }
        }
    }
}

/// `secrets` in the readiness report: Vault answers, and every lease is being kept.
#[derive(Debug)]
struct SecretsCheck {
    client: VaultClient,
    leases: Vec<LeaseHealth>,
}

#[async_trait]
impl HealthCheck for SecretsCheck {
    fn name(&self) -> &'static str {
        "secrets"
    }

    async fn check(&self) -> Result<(), String> {
        self.client.is_available().await.map_err(|error| error.to_string())?;
        if self.leases.iter().all(LeaseHealth::is_healthy) {
            Ok(())
        } else {
            Err("a lease of dynamic credentials can be neither renewed nor replaced".to_owned())
        }
    }

    fn critical(&self) -> bool {
        false
    }
}
