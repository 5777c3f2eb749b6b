//! The all-in-one process: every Galley service on one address, on embedded defaults.
//!
//! One document store and one cache are shared by the services; rss-api and rss-worker talk
//! over an in-process bus; every public route is mounted as nginx presents them in production
//! (`/recipes`, `/auth`, `/.well-known`, `/rss`), with one `/health` and one `/docs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use galley_http_kit::{HttpContext, MetricsEndpoint, process_router};
use galley_kernel::{Clock, SystemClock};
use galley_messaging::{InProcessBus, MessageBus};
use galley_platform::{BuildInfo, HealthCheck, Localizer, Metrics, Shutdown};
use galley_wiring::secrets::Secrets;
use recipes_api::RecipesModule;
use recipes_api::app::{Infrastructure, issuer_for};
use rss_api::RssModule;
use rss_worker::Worker;
use tokio::net::TcpListener;

/// Marks a data directory whose samples were stored once, so deleting every recipe does not bring the
/// samples back on the next start.
const SEEDED_MARKER: &str = ".samples-seeded";

/// Settings of the whole process: each service reads its own sections from the same sources.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub recipes: recipes_api::Settings,
    pub worker: rss_worker::Settings,
    /// Where the embedded database lives (overrides `store.embedded.path`).
    pub data_dir: PathBuf,
}

/// Every message catalogue of the process.
pub fn localizer() -> anyhow::Result<Localizer> {
    Ok(Localizer::builder()
        .add_resources(&galley_platform::i18n::PLATFORM_RESOURCES)
        .add_resources(&recipes_api::RESOURCES)
        .add_resources(&rss_api::RESOURCES)
        .build()?)
}

/// The assembled process, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    infrastructure: Infrastructure,
    rss: RssModule,
    worker: Worker,
    settings: Settings,
    metrics: MetricsEndpoint,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Binds, opens the store, wires every service, seeds samples on first start.
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_with_secrets(settings, clock, &Secrets::none()).await
    }

    /// As [`Application::build_with_clock`], with the process's secrets session (leased credentials
    /// for the dependencies that have a lease path, the `secrets` readiness check).
    pub async fn build_with_secrets(
        mut settings: Settings,
        clock: Arc<dyn Clock>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        settings.recipes.store.embedded.path = settings.data_dir.join("galley.db");
        let http = settings.recipes.http.clone();
        let listener =
            TcpListener::bind(http.bind).await.with_context(|| format!("binding {}", http.bind))?;
        let issuer = issuer_for(&settings.recipes.identity, listener.local_addr()?);

        // One registry for the process: every service's families on one `/metrics`.
        let metrics = Metrics::from_settings(
            settings.recipes.telemetry.metrics,
            BuildInfo { service: "galley", version: env!("CARGO_PKG_VERSION") },
        );
        secrets.measure_leases_into(&metrics);
        let infrastructure = Infrastructure::open_with_secrets(
            &settings.recipes.store,
            &settings.recipes.cache,
            Arc::clone(&clock),
            secrets,
        )
        .await?
        .instrumented(&metrics);
        let recipes = RecipesModule::new(&infrastructure, &settings.recipes, issuer).await?;
        seed_on_first_start(&recipes, &settings.data_dir).await?;

        let localizer = Arc::new(localizer()?);
        let bus: Arc<dyn MessageBus> =
            galley_wiring::telemetry::MeteredBus::wrap(Arc::new(InProcessBus::new()), &metrics);
        // One `[limits]` section for the process: the same throttles as the standalone services.
        // One cache for the process: the worker's writes invalidate rss-api's pages of entries in it.
        let entries_cache = rss_api::app::EntriesCache {
            cache: Arc::clone(&infrastructure.cache),
            ttl: settings.recipes.cache.list_ttl,
        };
        let rss = RssModule::new(
            &infrastructure.store,
            Some(entries_cache),
            Arc::clone(&bus),
            recipes.auth.clone(),
            Arc::clone(&localizer),
            Arc::clone(&clock),
            &settings.recipes.limits,
        )?;
        // The worker shares the process's cache, so stored entries invalidate rss-api's pages at once.
        let worker = rss_worker::app::metered_worker(
            &infrastructure.store,
            Some(Arc::clone(&infrastructure.cache)),
            bus,
            &settings.worker,
            Arc::clone(&clock),
            &metrics,
        )?;

        let mut openapi = recipes.openapi;
        openapi.merge(rss.openapi.clone());
        let health_checks: Vec<Arc<dyn HealthCheck>> = recipes
            .health_checks
            .into_iter()
            .chain(rss.health_checks.iter().filter(|c| c.name() == "bus").cloned())
            .chain(secrets.health_check())
            .collect();
        let endpoint = MetricsEndpoint::bind(&metrics, &settings.recipes.telemetry).await?;
        let context = HttpContext { localizer, settings: http, metrics };
        let routes = recipes
            .router
            .merge(rss.router.clone())
            .merge(endpoint.routes())
            .merge(galley_http_kit::front_door("galley", env!("CARGO_PKG_VERSION")));
        let router = process_router(routes, health_checks, openapi, context);
        Ok(Self { listener, router, infrastructure, rss, worker, settings, metrics: endpoint })
    }

    /// Where `GET /metrics` is served when `telemetry.metrics_bind` moves it off the API's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.local_addr()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves, works and applies replies until `shutdown`; then lets requests and deliveries in
    /// progress finish and closes the store.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let replies = self.rss.spawn_reply_listener(shutdown.clone());
        // The in-process bus loses queued requests when the process stops: the sweeper hands their
        // jobs over again after a restart.
        let sweeper = self.rss.spawn_sweeper(rss_api::settings::SweepSettings::default(), shutdown.clone());
        let worker = tokio::spawn(self.worker.run(shutdown.clone()));
        let metrics = self.metrics.spawn(shutdown.clone());
        let grace = self.settings.recipes.http.shutdown_grace;
        galley_http_kit::serve(self.listener, self.router, shutdown, grace).await?;
        metrics.abort();
        worker.await.context("worker task")??;
        replies.abort();
        sweeper.abort();
        self.infrastructure.store.close().await;
        Ok(())
    }
}

async fn seed_on_first_start(recipes: &RecipesModule, data_dir: &Path) -> anyhow::Result<()> {
    let marker = data_dir.join(SEEDED_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let seeded = recipes.seed_samples().await?;
    if seeded > 0 {
        tracing::info!(seeded, "stored sample recipes");
    }
    std::fs::write(&marker, b"sample recipes were stored in this data directory\n")
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}
