//! Opens the adapters that configuration names, so that every composition root (the three services and
//! the all-in-one binary) picks them the same way and holds them as `Arc<dyn Port>`.
//!
//! Module map:
//! - [`DocumentStore`]: `store.backend` → every repository port on SQLite (`embedded`) or MongoDB
//!   (`mongodb`, as a leased user with [`DocumentStore::open_with`]), plus the store's readiness check
//!   and its orderly close.
//! - [`CacheAdapters`]: `cache.backend` → the cache, the token revocation list and the sign-in attempt
//!   tracker, in memory (`memory`) or on one shared Redis connection (`redis`).
//! - [`open_bus`]: `bus.backend` → the message bus, in-process, RabbitMQ or SQS (RabbitMQ as a leased
//!   user with [`open_bus_with`]).
//! - [`at_rest`]: `kms.*` → the envelope sealing secrets at rest (AWS KMS, or a key file in the data
//!   directory), and the signing-key store sealed by it.
//! - [`secrets`]: `secrets.backend` → static secrets layered into configuration (Vault KV), and the
//!   process's session with Vault.
//! - [`telemetry`]: measuring decorators around the cache, the bus, the store's repositories and the
//!   secrets backend's leases ([`telemetry::MeteredCache`], [`telemetry::MeteredBus`], ...).
//! - `startup`: retrying Redis and RabbitMQ at start-up for `connect_wait` seconds.
//!
//! This crate is the only one besides the binaries that names concrete adapters; use cases and domain
//! crates never see it.

pub mod at_rest;
pub mod secrets;
mod startup;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context as _;
use galley_embedded::{
    MemoryAttemptTracker, MemoryCache, MemoryRevocationList, SqliteEntryRepository,
    SqliteFeedStateRepository, SqliteJobRepository, SqliteProviderSessionStore, SqliteRecipeRepository,
    SqliteRefreshTokenStore, SqliteSigningKeyStore, SqliteStore, SqliteUserRepository,
};
use galley_identity::{
    AttemptTracker, ProviderSessionStore, RefreshTokenStore, RevocationList, SigningKeyStore, UserRepository,
};
use galley_kernel::{Cache, Clock};
use galley_messaging::{InProcessBus, MessageBus};
use galley_mongo::{
    MongoEntryRepository, MongoFeedStateRepository, MongoJobRepository, MongoProviderSessionStore,
    MongoRecipeRepository, MongoRefreshTokenStore, MongoSigningKeyStore, MongoStore, MongoUserRepository,
};
use galley_platform::secret::ExposeSecret as _;
use galley_platform::{
    BusBackend, BusSettings, CacheBackend, CacheSettings, CredentialsFeed, HealthCheck, StoreBackend,
    StoreSettings,
};
use galley_rabbitmq::{RabbitMqBus, RabbitMqOptions};
use galley_recipes::RecipeRepository;
use galley_redis::{RedisAttemptTracker, RedisCache, RedisConnection, RedisRevocationList};
use galley_rss::ports::{EntryRepository, FeedStateRepository, JobRepository};
use galley_sqs::{SqsBus, SqsOptions};

/// Every repository port on one document store. Cheap to clone: the adapters share the store's pool.
#[derive(Clone)]
pub struct DocumentStore {
    pub recipes: Arc<dyn RecipeRepository>,
    pub users: Arc<dyn UserRepository>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub signing_keys: Arc<dyn SigningKeyStore>,
    /// Per-sign-in records of an external identity provider (Auth0).
    pub provider_sessions: Arc<dyn ProviderSessionStore>,
    pub jobs: Arc<dyn JobRepository>,
    pub entries: Arc<dyn EntryRepository>,
    pub feeds: Arc<dyn FeedStateRepository>,
    /// Readiness of the store (critical: nothing works without it).
    pub health: Arc<dyn HealthCheck>,
    backend: Backend,
}

/// The store itself, kept to close it on shutdown.
#[derive(Clone)]
enum Backend {
    Embedded(SqliteStore),
    Mongodb(MongoStore),
}

impl std::fmt::Debug for DocumentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Mongodb(_) => "mongodb",
        };
        f.debug_struct("DocumentStore").field("backend", &backend).finish_non_exhaustive()
    }
}

impl DocumentStore {
    /// Opens the store named by `store.backend`: migrates the SQLite file, or connects to MongoDB and
    /// creates its indexes (failing if the server cannot be reached within `store.mongodb.timeout`).
    pub async fn open(settings: &StoreSettings) -> anyhow::Result<Self> {
        Self::open_with(settings, None).await
    }

    /// Like [`DocumentStore::open`]; with `credentials` (leased from the secrets backend) MongoDB is
    /// reached at `store.mongodb.uri`, which then carries no credentials, as their user, following each
    /// rotation. The embedded store refuses them: a SQLite file has no users, and a lease configured
    /// for it is a mistake to report rather than a setting to ignore.
    pub async fn open_with(
        settings: &StoreSettings,
        credentials: Option<CredentialsFeed>,
    ) -> anyhow::Result<Self> {
        match settings.backend {
            StoreBackend::Embedded => {
                if credentials.is_some() {
                    return Err(embedded_store_lease_refused());
                }
                let path = &settings.embedded.path;
                let store = SqliteStore::open(path)
                    .await
                    .with_context(|| format!("opening the embedded store {}", path.display()))?;
                Ok(Self::embedded(store))
            }
            StoreBackend::Mongodb => {
                let leased = credentials.is_some();
                let connected = match credentials {
                    None => MongoStore::connect(&settings.mongodb).await,
                    Some(credentials) => MongoStore::connect_following(&settings.mongodb, credentials).await,
                };
                let store = connected.with_context(|| {
                    let how = if leased { " as the leased user" } else { "" };
                    format!(
                        "connecting to MongoDB{how} (database {}, store.mongodb.uri)",
                        settings.mongodb.database
                    )
                })?;
                tracing::info!(database = %settings.mongodb.database, leased, "document store: MongoDB");
                Ok(Self::mongodb(store))
            }
        }
    }

    /// Every port on an open SQLite store.
    pub fn embedded(store: SqliteStore) -> Self {
        Self {
            recipes: Arc::new(SqliteRecipeRepository::new(&store)),
            users: Arc::new(SqliteUserRepository::new(&store)),
            refresh_tokens: Arc::new(SqliteRefreshTokenStore::new(&store)),
            signing_keys: Arc::new(SqliteSigningKeyStore::new(&store)),
            provider_sessions: Arc::new(SqliteProviderSessionStore::new(&store)),
            jobs: Arc::new(SqliteJobRepository::new(&store)),
            entries: Arc::new(SqliteEntryRepository::new(&store)),
            feeds: Arc::new(SqliteFeedStateRepository::new(&store)),
            health: Arc::new(store.clone()),
            backend: Backend::Embedded(store),
        }
    }

    /// Every port on a connected MongoDB database.
    pub fn mongodb(store: MongoStore) -> Self {
        Self {
            recipes: Arc::new(MongoRecipeRepository::new(&store)),
            users: Arc::new(MongoUserRepository::new(&store)),
            refresh_tokens: Arc::new(MongoRefreshTokenStore::new(&store)),
            signing_keys: Arc::new(MongoSigningKeyStore::new(&store)),
            provider_sessions: Arc::new(MongoProviderSessionStore::new(&store)),
            jobs: Arc::new(MongoJobRepository::new(&store)),
            entries: Arc::new(MongoEntryRepository::new(&store)),
            feeds: Arc::new(MongoFeedStateRepository::new(&store)),
            health: Arc::new(store.clone()),
            backend: Backend::Mongodb(store),
        }
    }

    /// Every repository timed into `metrics` (`galley_store_operation_duration_seconds`,
    /// `galley_store_errors_total`, see [`telemetry::store`]); with metrics off, unchanged.
    #[must_use]
    pub fn instrumented(self, metrics: &galley_platform::Metrics) -> Self {
        telemetry::store::instrument(self, metrics)
    }

    /// Lets in-flight operations finish and closes the connections (SQLite also checkpoints its WAL).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Embedded(store) => store.close().await,
            Backend::Mongodb(store) => store.close().await,
        }
    }
}

/// Why a store lease with the embedded store stops the start (one line, naming both settings).
pub(crate) fn embedded_store_lease_refused() -> anyhow::Error {
    anyhow::anyhow!(
        "secrets.vault.leases.store is set but store.backend = \"embedded\": a SQLite file has no users \
         to lease; unset the lease path or use store.backend = \"mongodb\""
    )
}

/// The adapters that live with the cache: shared by every replica when they are on Redis.
#[derive(Clone)]
pub struct CacheAdapters {
    pub cache: Arc<dyn Cache>,
    /// Revoked token and session ids.
    pub revocations: Arc<dyn RevocationList>,
    /// Failed sign-in counters.
    pub attempts: Arc<dyn AttemptTracker>,
}

impl std::fmt::Debug for CacheAdapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheAdapters").finish_non_exhaustive()
    }
}

impl CacheAdapters {
    /// Opens the backend named by `cache.backend`. Redis is reached through one self-healing
    /// connection: start-up fails if Redis cannot be reached then; after that an outage only degrades
    /// the process (reads bypass the cache, sign-in refuses) until the connection heals.
    pub async fn open(settings: &CacheSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::open_with(settings, clock, None).await
    }

    /// Like [`CacheAdapters::open`]; with `credentials` (leased from the secrets backend) Redis is
    /// reached at `cache.redis.url` as their user, following each rotation.
    pub async fn open_with(
        settings: &CacheSettings,
        clock: Arc<dyn Clock>,
        credentials: Option<CredentialsFeed>,
    ) -> anyhow::Result<Self> {
        Ok(match settings.backend {
            CacheBackend::Memory => Self {
                cache: Arc::new(MemoryCache::new(settings.memory_max_bytes)),
                revocations: Arc::new(MemoryRevocationList::default()),
                attempts: Arc::new(MemoryAttemptTracker::new(clock)),
            },
            CacheBackend::Redis => {
                let redis = redis(settings, credentials).await?;
                Self {
                    cache: Arc::new(RedisCache(redis.clone())),
                    revocations: Arc::new(RedisRevocationList(redis.clone())),
                    attempts: Arc::new(RedisAttemptTracker::new(redis)),
                }
            }
        })
    }

    /// Only the revocation list (rss-api checks tokens but neither caches nor signs in). In memory it
    /// is this process's own: a token signed out at the issuer then works here until it expires, so
    /// production deployments use Redis.
    pub async fn revocation_list(settings: &CacheSettings) -> anyhow::Result<Arc<dyn RevocationList>> {
        Self::revocation_list_with(settings, None).await
    }

    /// Like [`CacheAdapters::revocation_list`], as the user of leased `credentials` when given.
    pub async fn revocation_list_with(
        settings: &CacheSettings,
        credentials: Option<CredentialsFeed>,
    ) -> anyhow::Result<Arc<dyn RevocationList>> {
        Ok(match settings.backend {
            CacheBackend::Memory => Arc::new(MemoryRevocationList::default()),
            CacheBackend::Redis => Arc::new(RedisRevocationList(redis(settings, credentials).await?)),
        })
    }
}

async fn redis(
    settings: &CacheSettings,
    credentials: Option<CredentialsFeed>,
) -> anyhow::Result<RedisConnection> {
    let url = settings.redis.url.expose_secret();
    let prefix = &settings.redis.prefix;
    startup::connect_within("Redis", settings.redis.connect_wait, || {
        let credentials = credentials.clone();
        async move {
            match credentials {
                None => RedisConnection::connect(url, prefix).await,
                Some(credentials) => RedisConnection::connect_following(url, prefix, credentials).await,
            }
        }
    })
    .await
    .context("connecting to Redis (cache.redis.url)")
}

/// Opens the bus named by `bus.backend`. The in-process bus only connects services in this process,
/// which is what the all-in-one binary wants and almost never what a standalone service wants: say so.
pub async fn open_bus(settings: &BusSettings) -> anyhow::Result<Arc<dyn MessageBus>> {
    open_bus_with(settings, None).await
}

/// Like [`open_bus`]; with `credentials` (leased from the secrets backend) RabbitMQ is reached at
/// `bus.rabbitmq.url` as their user, following each rotation.
pub async fn open_bus_with(
    settings: &BusSettings,
    credentials: Option<CredentialsFeed>,
) -> anyhow::Result<Arc<dyn MessageBus>> {
    Ok(match settings.backend {
        BusBackend::InProcess => {
            tracing::warn!("bus.backend = in-process: only services in this process receive its messages");
            Arc::new(InProcessBus::new())
        }
        BusBackend::Rabbitmq => {
            let options = RabbitMqOptions {
                prefix: settings.rabbitmq.prefix.clone(),
                delivery_limit: settings.rabbitmq.delivery_limit,
            };
            let url = settings.rabbitmq.url.expose_secret();
            let bus = startup::connect_within("RabbitMQ", settings.rabbitmq.connect_wait, || {
                let (options, credentials) = (options.clone(), credentials.clone());
                async move {
                    match credentials {
                        None => RabbitMqBus::connect_with(url, options).await,
                        Some(credentials) => RabbitMqBus::connect_following(url, options, credentials).await,
                    }
                }
            })
            .await;
            Arc::new(bus.context("connecting to RabbitMQ (bus.rabbitmq.url)")?)
        }
        BusBackend::Sqs => {
            let (aws, options) = sqs_settings(&settings.sqs);
            Arc::new(
                SqsBus::connect(&aws, options)
                    .await
                    .context("connecting to SQS (bus.sqs; credentials from the AWS default chain)")?,
            )
        }
    })
}

/// `bus.sqs` as the SQS adapter's client settings and options.
fn sqs_settings(settings: &galley_platform::SqsSettings) -> (galley_aws::AwsClientSettings, SqsOptions) {
    let aws = galley_aws::AwsClientSettings {
        region: settings.region.clone(),
        endpoint: settings.endpoint.clone(),
    };
    let options = SqsOptions {
        queue_prefix: settings.queue_prefix.clone(),
        visibility_timeout: settings.visibility_timeout,
        wait_time: settings.wait_time,
        max_receives: settings.max_receives,
        create_queues: settings.create_queues,
    };
    (aws, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqs_settings_reach_the_adapter_unchanged() {
        let settings = galley_platform::SqsSettings {
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:5000".into()),
            queue_prefix: "staging-".into(),
            visibility_timeout: std::time::Duration::from_secs(4),
            wait_time: std::time::Duration::from_secs(2),
            max_receives: 3,
            create_queues: false,
        };
        let (aws, options) = sqs_settings(&settings);
        assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            options,
            SqsOptions {
                queue_prefix: "staging-".into(),
                visibility_timeout: std::time::Duration::from_secs(4),
                wait_time: std::time::Duration::from_secs(2),
                max_receives: 3,
                create_queues: false,
            }
        );
        // The defaults on both sides agree.
        assert_eq!(sqs_settings(&galley_platform::SqsSettings::default()).1, SqsOptions::default());
    }

    #[tokio::test]
    async fn the_embedded_backend_opens_every_port_on_one_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = StoreSettings {
            embedded: galley_platform::EmbeddedStoreSettings { path: dir.path().join("nested/galley.db") },
            ..StoreSettings::default()
        };
        let store = DocumentStore::open(&settings).await.expect("opens");
        assert_eq!(format!("{store:?}"), r#"DocumentStore { backend: "embedded", .. }"#);
        assert!(store.health.check().await.is_ok());
        assert!(dir.path().join("nested/galley.db").exists());
        store.close().await;
        assert!(store.health.check().await.is_err(), "a closed store is not ready");
    }

    /// MongoDB at `uri`, giving up quickly (port 9 on loopback: nothing listens, refused at once).
    fn mongodb_at(uri: &str) -> StoreSettings {
        StoreSettings {
            backend: StoreBackend::Mongodb,
            mongodb: galley_platform::MongoDbSettings {
                uri: uri.into(),
                timeout: std::time::Duration::from_millis(300),
                ..Default::default()
            },
            ..StoreSettings::default()
        }
    }

    /// Why opening the store failed, with its causes on one line (empty if it opened).
    async fn open_error(settings: &StoreSettings, credentials: Option<CredentialsFeed>) -> String {
        DocumentStore::open_with(settings, credentials)
            .await
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn an_unreachable_mongodb_fails_start_up_with_a_readable_reason() {
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let settings = mongodb_at("mongodb://127.0.0.1:9/?directConnection=true");
        let error = open_error(&settings, None).await;
        assert!(error.contains("connecting to MongoDB (database galley"), "{error}");
    }

    fn leased(username: &str) -> (tokio::sync::watch::Sender<galley_platform::Credentials>, CredentialsFeed) {
        tokio::sync::watch::channel(galley_platform::Credentials {
            username: username.to_owned(),
            password: "leased".into(),
        })
    }

    #[tokio::test]
    async fn the_embedded_store_refuses_a_store_lease_in_one_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = StoreSettings {
            embedded: galley_platform::EmbeddedStoreSettings { path: dir.path().join("galley.db") },
            ..StoreSettings::default()
        };
        let (_publish, feed) = leased("v-galley-store");
        let error = open_error(&settings, Some(feed)).await;
        assert!(
            error.contains("secrets.vault.leases.store is set but store.backend = \"embedded\""),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        assert!(!dir.path().join("galley.db").exists(), "refused before the file is created");
    }

    #[tokio::test]
    async fn a_mongodb_uri_with_credentials_and_a_store_lease_is_refused() {
        let settings = mongodb_at("mongodb://galley:static@127.0.0.1:9/?directConnection=true");
        let (_publish, feed) = leased("v-galley-store");
        let error = open_error(&settings, Some(feed)).await;
        assert!(error.contains("as the leased user"), "{error}");
        assert!(error.contains("remove the user and password from the URI"), "{error}");
        assert!(!error.contains("static"), "no password in the message: {error}");
    }

    #[tokio::test]
    async fn an_unreachable_mongodb_with_a_lease_fails_start_up_with_a_readable_reason() {
        let settings = mongodb_at("mongodb://127.0.0.1:9/?directConnection=true");
        let (_publish, feed) = leased("v-galley-store");
        let error = open_error(&settings, Some(feed)).await;
        assert!(error.contains("connecting to MongoDB as the leased user (database galley"), "{error}");
    }
}
