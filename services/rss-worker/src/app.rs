//! Composition root of rss-worker.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use galley_http_fetch::HttpFeedFetcher;
use galley_http_kit::{HttpContext, MetricsEndpoint, process_router};
use galley_kernel::{Cache, Clock, SystemClock};
use galley_messaging::{BusHealth, MessageBus};
use galley_platform::{BuildInfo, CacheBackend, HealthCheck, HttpSettings, Localizer, Metrics, Shutdown};
use galley_rss::fetch::FeedFetcher;
use galley_rss::ingest::IngestionPorts;
use galley_rss::invalidation::{EntriesGeneration, InvalidatingEntryRepository};
use galley_rss::ports::EntryRepository;
use galley_rss::{FeedIngestion, RetryPolicy};
use galley_wiring::secrets::Secrets;
use galley_wiring::{CacheAdapters, DocumentStore, open_bus_with};
use tokio::net::TcpListener;

use crate::settings::Settings;
use crate::telemetry::{MeteredFetcher, WorkerMetrics};
use crate::worker::{Worker, WorkerSettings};

/// The ingestion use case on the document store. With `entries_cache` — rss-api's cache, shared in one
/// process or on Redis — every fetch that stores entries makes rss-api's cached pages of entries stale
/// before the job is recorded as done ([`InvalidatingEntryRepository`]).
pub fn ingestion(
    store: &DocumentStore,
    entries_cache: Option<Arc<dyn Cache>>,
    fetcher: Arc<dyn FeedFetcher>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
) -> FeedIngestion {
    let entries: Arc<dyn EntryRepository> = match entries_cache {
        Some(cache) => Arc::new(InvalidatingEntryRepository::new(
            Arc::clone(&store.entries),
            EntriesGeneration::new(cache),
        )),
        None => Arc::clone(&store.entries),
    };
    let ports = IngestionPorts {
        jobs: Arc::clone(&store.jobs),
        entries,
        feeds: Arc::clone(&store.feeds),
        fetcher,
        clock,
    };
    FeedIngestion::new(ports, retry)
}

/// A worker on `bus`, fetching with `settings.fetch`; `entries_cache` as for [`ingestion`].
pub fn worker(
    store: &DocumentStore,
    entries_cache: Option<Arc<dyn Cache>>,
    bus: Arc<dyn MessageBus>,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Worker> {
    metered_worker(store, entries_cache, bus, settings, clock, &Metrics::disabled())
}

/// As [`worker`], measuring fetches, job states and entries into `metrics` (the bus is measured
/// where it is opened).
pub fn metered_worker(
    store: &DocumentStore,
    entries_cache: Option<Arc<dyn Cache>>,
    bus: Arc<dyn MessageBus>,
    settings: &Settings,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
) -> anyhow::Result<Worker> {
    let fetcher = HttpFeedFetcher::new(settings.fetch.clone())
        .context("building the feed fetcher")?
        .with_body_sizes(crate::telemetry::body_sizes(metrics));
    let fetcher = MeteredFetcher::wrap(Arc::new(fetcher), metrics);
    let ingestion = ingestion(store, entries_cache, fetcher, clock, settings.retry.policy());
    Ok(Worker::new(bus, ingestion, WorkerSettings { ..settings.worker.clone() })
        .with_shutdown_grace(settings.http.shutdown_grace)
        .with_metrics(WorkerMetrics::new(metrics)))
}

/// The standalone rss-worker process: the worker plus `/health/live` and `/health/ready`.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    http: HttpSettings,
    store: DocumentStore,
    worker: Worker,
    metrics: MetricsEndpoint,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None).await
    }

    /// As [`Application::build`], on a given bus (tests share an in-process bus with rss-api).
    pub async fn build_with(settings: Settings, bus: Option<Arc<dyn MessageBus>>) -> anyhow::Result<Self> {
        Self::assemble(settings, bus, &Secrets::none()).await
    }

    /// As [`Application::build`], with the process's secrets session: leased store, bus and cache
    /// credentials when `secrets.vault.leases.{store,bus,cache}` are set, and the `secrets` readiness
    /// check.
    pub async fn build_with_secrets(settings: Settings, secrets: &Secrets) -> anyhow::Result<Self> {
        Self::assemble(settings, None, secrets).await
    }

    async fn assemble(
        settings: Settings,
        bus: Option<Arc<dyn MessageBus>>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::from_settings(
            settings.telemetry.metrics,
            BuildInfo { service: "rss-worker", version: env!("CARGO_PKG_VERSION") },
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
        // Only a shared cache reaches rss-api; with an in-memory one, rss-api invalidates its pages of
        // entries itself when the job's reply arrives.
        let entries_cache = match settings.cache.backend {
            CacheBackend::Redis => {
                let credentials = secrets.cache_credentials().await?;
                let clock = Arc::new(SystemClock);
                Some(CacheAdapters::open_with(&settings.cache, clock, credentials).await?.cache)
            }
            CacheBackend::Memory => None,
        };
        let clock = Arc::new(SystemClock);
        let worker = metered_worker(&store, entries_cache, Arc::clone(&bus), &settings, clock, &metrics)?;
        let mut checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::clone(&store.health), Arc::new(BusHealth(bus))];
        checks.extend(secrets.health_check());
        let localizer =
            Localizer::builder().add_resources(&galley_platform::i18n::PLATFORM_RESOURCES).build()?;
        let endpoint = MetricsEndpoint::bind(&metrics, &settings.telemetry).await?;
        let context =
            HttpContext { localizer: Arc::new(localizer), settings: settings.http.clone(), metrics };
        let router = process_router(
            endpoint.routes(),
            checks,
            utoipa::openapi::OpenApiBuilder::new().build(),
            context,
        );
        let listener = TcpListener::bind(settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        Ok(Self { listener, router, http: settings.http, store, worker, metrics: endpoint })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Works and serves health until `shutdown`, lets deliveries in progress finish (or hands them back
    /// when `http.shutdown_grace` runs out), closes the store.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let worker = tokio::spawn(self.worker.run(shutdown.clone()));
        let metrics = self.metrics.spawn(shutdown.clone());
        galley_http_kit::serve(self.listener, self.router, shutdown, self.http.shutdown_grace).await?;
        metrics.abort();
        worker.await.context("worker task")??;
        self.store.close().await;
        Ok(())
    }
}

/// This service's settings: the files, its static secrets from the secrets backend when
/// `secrets.backend` names one (`<prefix>/shared` and `<prefix>/rss-worker`), then the environment.
/// Also returns the open secrets session, which the process keeps until it stops.
pub async fn load_settings(source: &galley_platform::ConfigSource) -> anyhow::Result<(Settings, Secrets)> {
    let secrets = Secrets::open(source, &["rss-worker"]).await?;
    let settings = secrets.load(source)?;
    Ok((settings, secrets))
}

/// The standalone process: settings from `config/*.toml` and `GALLEY__*` variables, logs initialised,
/// serves until SIGINT/SIGTERM. Used by this service's binary and by `galley run rss-worker`.
pub async fn run_from_config() -> anyhow::Result<()> {
    let (settings, secrets) = load_settings(&galley_platform::ConfigSource::from_env()).await?;
    let _telemetry = galley_platform::telemetry::init("rss-worker", &settings.telemetry);
    secrets.log_origins();
    let application = Application::build_with_secrets(settings, &secrets).await?;
    tracing::info!(health = %application.local_addr()?, "rss-worker running");
    application.run_until_stopped(Shutdown::on_signals()).await?;
    secrets.close().await;
    tracing::info!("rss-worker stopped");
    Ok(())
}
