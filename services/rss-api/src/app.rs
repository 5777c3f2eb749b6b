//! Composition root of rss-api.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;

use galley_auth0::{IdentityProviderKind, auth0_verifier};
use galley_crypto::{JwtVerifier, RemoteJwks};
use galley_http_kit::{AuthConfig, HttpContext, MetricsEndpoint, Throttle, process_router};
use galley_identity::TokenAuthenticator;
use galley_kernel::{Cache, Clock, SystemClock};
use galley_messaging::{BusHealth, MessageBus};
use galley_platform::{
    BuildInfo, CacheBackend, HealthCheck, HttpSettings, LimitsSettings, Localizer, Metrics, Shutdown,
};
use galley_rss::FetchRequests;
use galley_rss::invalidation::EntriesGeneration;
use galley_wiring::secrets::Secrets;
use galley_wiring::{CacheAdapters, DocumentStore, open_bus_with};
use tokio::net::TcpListener;

use crate::http::{self, RssState};
use crate::queue::{BusFetchQueue, apply_replies};
use crate::reads::EntryReads;
use crate::settings::{IdentitySettings, Settings, SweepSettings};
use crate::sweeper::run_sweeper;

/// What rss-api contributes to a process.
pub struct RssModule {
    pub router: Router,
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
    pub openapi: utoipa::openapi::OpenApi,
    pub requests: FetchRequests,
    bus: Arc<dyn MessageBus>,
    entries_generation: Option<EntriesGeneration>,
}

/// Where rss-api keeps its encoded pages of entries, and for how long at most (`cache.list_ttl`): a
/// cache the worker's writes reach (see [`crate::reads`]).
#[derive(Debug, Clone)]
pub struct EntriesCache {
    pub cache: Arc<dyn Cache>,
    pub ttl: Duration,
}

impl std::fmt::Debug for RssModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RssModule").field("health_checks", &self.health_checks).finish_non_exhaustive()
    }
}

impl RssModule {
    /// Wires the use cases to the store and the bus; `auth` authenticates requests, `limits` throttles
    /// fetch requests per client.
    pub fn new(
        store: &DocumentStore,
        entries_cache: Option<EntriesCache>,
        bus: Arc<dyn MessageBus>,
        auth: AuthConfig,
        localizer: Arc<Localizer>,
        clock: Arc<dyn Clock>,
        limits: &LimitsSettings,
    ) -> anyhow::Result<Self> {
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            Arc::new(BusFetchQueue::new(Arc::clone(&bus))),
            clock,
        );
        let (entries, entries_generation) = match entries_cache {
            Some(EntriesCache { cache, ttl }) => (
                EntryReads::new(requests.clone(), Arc::clone(&cache), ttl),
                Some(EntriesGeneration::new(cache)),
            ),
            None => (EntryReads::uncached(requests.clone()), None),
        };
        let state = RssState { requests: requests.clone(), entries, localizer };
        let health_checks: Vec<Arc<dyn HealthCheck>> =
            vec![Arc::clone(&store.health), Arc::new(BusHealth(Arc::clone(&bus)))];
        let fetch_throttle = Throttle::from_settings("fetch", limits, limits.fetch)?;
        let router = http::routes(state, auth, fetch_throttle.as_ref());
        Ok(Self { router, health_checks, openapi: http::openapi(), requests, bus, entries_generation })
    }

    /// Applies workers' replies in the background until `shutdown`.
    pub fn spawn_reply_listener(&self, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let (bus, requests) = (Arc::clone(&self.bus), self.requests.clone());
        tokio::spawn(apply_replies(bus, requests, self.entries_generation.clone(), shutdown))
    }

    /// Sweeps jobs left in limbo in the background until `shutdown` (see [`run_sweeper`]).
    pub fn spawn_sweeper(&self, settings: SweepSettings, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run_sweeper(self.requests.clone(), settings, shutdown))
    }
}

/// Messages of every service whose routes rss-api serves.
pub fn localizer() -> anyhow::Result<Localizer> {
    Ok(Localizer::builder()
        .add_resources(&galley_platform::i18n::PLATFORM_RESOURCES)
        .add_resources(&crate::RESOURCES)
        .build()?)
}

/// The verifier of the configured issuer's access tokens: recipes-api's (discovered) or Auth0's.
fn verifier(settings: &IdentitySettings, clock: Arc<dyn Clock>) -> anyhow::Result<JwtVerifier> {
    let issuer = settings.issuer()?;
    Ok(match settings.provider {
        IdentityProviderKind::Builtin => {
            let keys = Arc::new(RemoteJwks::new(&issuer)?);
            JwtVerifier::new(keys, clock, issuer, settings.api_audience.clone())
        }
        IdentityProviderKind::Auth0 => {
            settings.auth0.base_url()?;
            if settings.auth0.audience.trim().is_empty() {
                anyhow::bail!("identity.auth0.audience is required with identity.provider = auth0");
            }
            let base_url = settings.auth0.base_url()?;
            let intervals = galley_crypto::JwksIntervals::default();
            auth0_verifier(&base_url, &issuer, &settings.auth0.audience, clock, intervals)?.0
        }
    })
}

/// The standalone rss-api process: verifies tokens against the configured issuer's JWKS.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    http: HttpSettings,
    store: DocumentStore,
    module: RssModule,
    sweep: SweepSettings,
    metrics: MetricsEndpoint,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], on a given bus and clock (tests share an in-process bus with a worker).
    pub async fn build_with(
        settings: Settings,
        bus: Option<Arc<dyn MessageBus>>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::assemble(settings, bus, clock, &Secrets::none()).await
    }

    /// As [`Application::build`], with the process's secrets session: leased credentials for the
    /// store, the bus and the revocation list when their lease paths are set, and the `secrets`
    /// readiness check.
    pub async fn build_with_secrets(
        settings: Settings,
        clock: Arc<dyn Clock>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        Self::assemble(settings, None, clock, secrets).await
    }

    async fn assemble(
        settings: Settings,
        bus: Option<Arc<dyn MessageBus>>,
        clock: Arc<dyn Clock>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        settings.environment.check_cookie_key(settings.identity.cookie_key.as_ref())?;
        settings.environment.check_shared_revocations("rss-api", settings.cache.backend)?;
        let metrics = Metrics::from_settings(
            settings.telemetry.metrics,
            BuildInfo { service: "rss-api", version: env!("CARGO_PKG_VERSION") },
        );
        secrets.measure_leases_into(&metrics);
        // First of the leases: a store lease the store cannot use stops the start before any is taken.
        let store_credentials = secrets.store_credentials(&settings.store).await?;
        let bus = match bus {
            Some(bus) => bus,
            None => open_bus_with(&settings.bus, secrets.bus_credentials().await?).await?,
        };
        let bus = galley_wiring::telemetry::MeteredBus::wrap(bus, &metrics);
        let store =
            DocumentStore::open_with(&settings.store, store_credentials).await?.instrumented(&metrics);
        let verifier = verifier(&settings.identity, Arc::clone(&clock))?;
        // The revocation list must be the issuer's (Redis, `cache.backend = "redis"`) for sign-outs to
        // take effect here at once; in memory, a signed-out token works here until it expires. The
        // cache holds the encoded pages of entries.
        let cache_adapters =
            CacheAdapters::open_with(&settings.cache, Arc::clone(&clock), secrets.cache_credentials().await?)
                .await?;
        let authenticator = TokenAuthenticator::new(Arc::new(verifier), cache_adapters.revocations);
        // Only a shared cache is one the worker's writes invalidate (see `crate::reads`).
        let entries_cache = (settings.cache.backend == CacheBackend::Redis).then(|| EntriesCache {
            cache: galley_wiring::telemetry::MeteredCache::wrap(cache_adapters.cache, &metrics),
            ttl: settings.cache.list_ttl,
        });
        let auth = AuthConfig {
            authenticator: Arc::new(authenticator),
            cookie_key: galley_http_kit::auth::cookie_key(settings.identity.cookie_key.as_ref())?,
        };
        let localizer = Arc::new(localizer()?);
        let mut module = RssModule::new(
            &store,
            entries_cache,
            bus,
            auth,
            Arc::clone(&localizer),
            clock,
            &settings.limits,
        )?;
        module.health_checks.extend(secrets.health_check());
        let endpoint = MetricsEndpoint::bind(&metrics, &settings.telemetry).await?;
        let context = HttpContext { localizer, settings: settings.http.clone(), metrics };
        let router = process_router(
            module
                .router
                .clone()
                .merge(endpoint.routes())
                .merge(galley_http_kit::front_door("rss-api", env!("CARGO_PKG_VERSION"))),
            module.health_checks.clone(),
            module.openapi.clone(),
            context,
        );
        let listener = TcpListener::bind(settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        Ok(Self {
            listener,
            router,
            http: settings.http,
            store,
            module,
            sweep: settings.rss.sweep,
            metrics: endpoint,
        })
    }

    /// Where `GET /metrics` is served when `telemetry.metrics_bind` moves it off the API's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.local_addr()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves, applies replies and sweeps jobs until `shutdown`, then closes the store.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let replies = self.module.spawn_reply_listener(shutdown.clone());
        let sweeper = self.module.spawn_sweeper(self.sweep.clone(), shutdown.clone());
        let metrics = self.metrics.spawn(shutdown.clone());
        let result =
            galley_http_kit::serve(self.listener, self.router, shutdown, self.http.shutdown_grace).await;
        metrics.abort();
        replies.abort();
        sweeper.abort();
        self.store.close().await;
        result
    }
}

/// This service's settings: the files, its static secrets from the secrets backend when
/// `secrets.backend` names one (`<prefix>/shared` and `<prefix>/rss-api`), then the environment.
/// Also returns the open secrets session, which the process keeps until it stops.
pub async fn load_settings(source: &galley_platform::ConfigSource) -> anyhow::Result<(Settings, Secrets)> {
    let secrets = Secrets::open(source, &["rss-api"]).await?;
    let settings = secrets.load(source)?;
    Ok((settings, secrets))
}

/// The standalone process: settings from `config/*.toml` and `GALLEY__*` variables, logs initialised,
/// serves until SIGINT/SIGTERM. Used by this service's binary and by `galley run rss-api`.
pub async fn run_from_config() -> anyhow::Result<()> {
    let (settings, secrets) = load_settings(&galley_platform::ConfigSource::from_env()).await?;
    let _telemetry = galley_platform::telemetry::init("rss-api", &settings.telemetry);
    secrets.log_origins();
    let application = Application::build_with_secrets(settings, Arc::new(SystemClock), &secrets).await?;
    tracing::info!(address = %application.local_addr()?, "rss-api listening");
    application.run_until_stopped(Shutdown::on_signals()).await?;
    secrets.close().await;
    tracing::info!("rss-api stopped");
    Ok(())
}
