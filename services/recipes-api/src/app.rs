//! Composition root: the only place that knows which adapter implements which port.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use axum::Router;

use galley_auth0::{Auth0IdentityProvider, Auth0Ports, IdentityProviderKind, auth0_verifier};
use galley_crypto::{AesGcmSealer, Argon2Hasher, JwtAuthority, KeyPolicy, KeyRing};
use galley_http_kit::{AuthConfig, HttpContext, MetricsEndpoint, process_router};
use galley_identity::at_rest::EnvelopeSealer;
use galley_identity::provider::BuiltinPorts;
use galley_identity::{
    AttemptTracker, AuthService, BuiltinIdentityProvider, IssuerConfig, LockoutPolicy, RevocationList,
    SecretSealer, SigningKeyStore, TokenLifetimes,
};
use galley_kernel::{Cache, Clock, SystemClock};
use galley_platform::{
    BuildInfo, CacheSettings, HealthCheck, HttpSettings, Localizer, Metrics, Shutdown, StoreSettings,
};
use galley_recipes::RecipeService;
use galley_wiring::secrets::Secrets;

use crate::reads::{CacheTtls, InvalidatingRecipeRepository, RecipeReads};
use galley_wiring::{CacheAdapters, DocumentStore};
use tokio::net::TcpListener;

use crate::http;
use crate::http::auth::AuthState;
use crate::settings::{IdentitySettings, Settings};

/// The `purpose` bound to every Auth0 refresh token sealed at rest (the envelope's context).
const AUTH0_REFRESH_TOKEN_PURPOSE: &str = "galley/auth0/refresh-token";

/// Everything the recipes service contributes to a process: routes, readiness checks and API docs.
pub struct RecipesModule {
    /// Unlayered routes; the process wraps all modules' routes in the standard stack once.
    pub router: Router,
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
    pub openapi: utoipa::openapi::OpenApi,
    pub service: RecipeService,
    /// Authenticates bearer tokens and session cookies; other in-process services reuse it.
    pub auth: AuthConfig,
}

impl std::fmt::Debug for RecipesModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipesModule").field("health_checks", &self.health_checks).finish_non_exhaustive()
    }
}

/// Shared infrastructure a module may be handed instead of opening its own (the all-in-one binary
/// shares one store and one cache between services).
#[derive(Debug, Clone)]
pub struct Infrastructure {
    pub store: DocumentStore,
    pub cache: Arc<dyn Cache>,
    /// Revoked token and session ids (lives with the cache: in memory, or Redis in production).
    pub revocations: Arc<dyn RevocationList>,
    /// Failed sign-in counters (same backend as the cache).
    pub attempts: Arc<dyn AttemptTracker>,
    pub clock: Arc<dyn Clock>,
    /// Where the modules built on this infrastructure measure (disabled until
    /// [`Infrastructure::instrumented`]).
    pub metrics: Metrics,
}

impl Infrastructure {
    /// Opens the adapters named by the settings (`store.backend`, `cache.backend`).
    pub async fn open(
        store: &StoreSettings,
        cache: &CacheSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::open_with_secrets(store, cache, clock, &Secrets::none()).await
    }

    /// Like [`Infrastructure::open`], reaching the dependencies whose lease paths `secrets` names
    /// with leased credentials (`secrets.vault.leases.*`).
    pub async fn open_with_secrets(
        store: &StoreSettings,
        cache: &CacheSettings,
        clock: Arc<dyn Clock>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        let store = DocumentStore::open_with(store, secrets.store_credentials(store).await?).await?;
        let credentials = secrets.cache_credentials().await?;
        let CacheAdapters { cache, revocations, attempts } =
            CacheAdapters::open_with(cache, Arc::clone(&clock), credentials).await?;
        Ok(Self { store, cache, revocations, attempts, clock, metrics: Metrics::disabled() })
    }

    /// Measures into `metrics`: the cache's hits, misses and errors and the store's operations here,
    /// sign-in outcomes and the hashing pool in the modules built on it.
    #[must_use]
    pub fn instrumented(mut self, metrics: &Metrics) -> Self {
        self.cache = galley_wiring::telemetry::MeteredCache::wrap(self.cache, metrics);
        self.store = self.store.instrumented(metrics);
        self.metrics = metrics.clone();
        self
    }
}

impl RecipesModule {
    /// Wires the recipes and identity use cases to the infrastructure. `issuer` is the `iss` of the
    /// tokens this process issues (see `identity.issuer`).
    pub async fn new(
        infrastructure: &Infrastructure,
        settings: &Settings,
        issuer: String,
    ) -> anyhow::Result<Self> {
        settings.environment.check_cookie_key(settings.identity.cookie_key.as_ref())?;
        let clock = Arc::clone(&infrastructure.clock);
        let ttls = CacheTtls { item: settings.cache.item_ttl, list: settings.cache.list_ttl };
        // Every write through the store bumps the cache generation; reads are served encoded.
        let recipes = Arc::new(InvalidatingRecipeRepository::new(
            Arc::clone(&infrastructure.store.recipes),
            Arc::clone(&infrastructure.cache),
        ));
        let service = RecipeService::new(recipes, Arc::clone(&clock));
        let reads = RecipeReads::new(service.clone(), Arc::clone(&infrastructure.cache), ttls);

        // Boxed: opening the identity provider (KMS clients, key ring) is a deep future, and callers
        // nest this whole build inside their own start-up futures.
        let auth_state = Box::pin(identity(infrastructure, settings, issuer)).await?;
        let auth = AuthConfig {
            authenticator: Arc::new(auth_state.service.clone()),
            cookie_key: auth_state.cookie_key.clone(),
        };
        let health_checks: Vec<Arc<dyn HealthCheck>> = vec![
            Arc::clone(&infrastructure.store.health),
            Arc::new(CacheCheck(Arc::clone(&infrastructure.cache))),
        ];
        let throttles = http::AuthThrottles::from_settings(&settings.limits)?;
        Ok(Self {
            router: http::routes(
                http::RecipesState { service: service.clone(), reads },
                auth_state,
                auth.clone(),
                &throttles,
            ),
            health_checks,
            openapi: http::openapi(),
            service,
            auth,
        })
    }

    /// Stores the bundled samples if the store is empty; returns how many were stored.
    pub async fn seed_samples(&self) -> anyhow::Result<usize> {
        let samples = galley_recipes::seed::sample_recipes()?;
        Ok(self.service.seed_if_empty(samples).await?)
    }
}

/// The identity provider `identity.provider` names. The built-in one's signing keys are sealed at
/// rest as `kms.*` says (AWS KMS, or a key file in the data directory).
async fn identity(
    infrastructure: &Infrastructure,
    settings: &Settings,
    issuer: String,
) -> anyhow::Result<AuthState> {
    match settings.identity.provider {
        IdentityProviderKind::Builtin => {
            let signing_keys = galley_wiring::at_rest::sealed_signing_keys(
                Arc::clone(&infrastructure.store.signing_keys),
                &settings.kms,
                &settings.store,
            )
            .await?;
            builtin_identity(infrastructure, &settings.identity, issuer, signing_keys).await
        }
        IdentityProviderKind::Auth0 => {
            let at_rest = galley_wiring::at_rest::at_rest_keys(&settings.kms, &settings.store).await?;
            auth0_identity(infrastructure, &settings.identity, issuer, at_rest)
        }
    }
}

fn lockout_policy(settings: &IdentitySettings) -> LockoutPolicy {
    LockoutPolicy {
        max_failures_per_username: settings.lockout.max_failures_per_username,
        max_failures_per_client: settings.lockout.max_failures_per_client,
        max_failures_per_username_and_client: settings.lockout.max_failures_per_username_and_client,
        window: settings.lockout.window,
        remember_client_for: settings.lockout.remember_client_for,
    }
}

/// Auth0 behind the same port: its tokens verified against its JWKS, Galley's lockout in front of it,
/// the per-sign-in records in the document store with the refresh tokens sealed by the at-rest
/// envelope (AWS KMS, or the data directory's key file). Where there is none (MongoDB without
/// `kms.key_id`) they are sealed by a key derived from `identity.cookie_key` (random without one, like
/// the cookie key: records then die with the process); that sealer also opens records written before
/// an envelope was configured.
fn auth0_identity(
    infrastructure: &Infrastructure,
    settings: &IdentitySettings,
    issuer: String,
    at_rest: Option<galley_wiring::at_rest::AtRestKeys>,
) -> anyhow::Result<AuthState> {
    use galley_platform::secret::ExposeSecret as _;
    let auth0 = &settings.auth0;
    auth0.validate()?;
    let clock = Arc::clone(&infrastructure.clock);
    let base_url = auth0.base_url()?;
    let (verifier, _) = auth0_verifier(
        &base_url,
        &issuer,
        &auth0.audience,
        Arc::clone(&clock),
        galley_crypto::JwksIntervals::default(),
    )?;
    let cookie_key_sealer: Arc<dyn SecretSealer> = match &settings.cookie_key {
        Some(key) => Arc::new(AesGcmSealer::derive(
            key.expose_secret().trim().as_bytes(),
            "galley/auth0/refresh-tokens",
        )),
        None => Arc::new(AesGcmSealer::random()),
    };
    let sealer: Arc<dyn SecretSealer> = match at_rest {
        Some(keys) => {
            let sealer = EnvelopeSealer::new(keys.current, AUTH0_REFRESH_TOKEN_PURPOSE)
                .opening_older_values_with(cookie_key_sealer);
            Arc::new(match keys.previous {
                Some(previous) => sealer.opening_envelopes_of(previous),
                None => sealer,
            })
        }
        None => cookie_key_sealer,
    };
    let ports = Auth0Ports {
        sessions: Arc::clone(&infrastructure.store.provider_sessions),
        sealer,
        clock: Arc::clone(&clock),
    };
    let provider = Auth0IdentityProvider::new(auth0.clone(), verifier.clone(), ports)?;
    tracing::info!(base_url = %base_url, "identity provider: Auth0");
    let service = AuthService::new(
        Arc::new(provider),
        Arc::new(verifier),
        Arc::clone(&infrastructure.revocations),
        Arc::clone(&infrastructure.attempts),
        clock,
        lockout_policy(settings),
    );
    let issuer =
        IssuerConfig { issuer, api_audience: auth0.audience.clone(), client_id: auth0.client_id.clone() };
    Ok(AuthState {
        service,
        keys: None,
        issuer,
        cookie_key: galley_http_kit::auth::cookie_key(settings.cookie_key.as_ref())?,
        cookie_max_age: settings.refresh_token_ttl,
        sign_ins: crate::telemetry::SignInMetrics::new(&infrastructure.metrics),
    })
}

/// The built-in identity provider on the document store, signing with the keys in `signing_keys`.
async fn builtin_identity(
    infrastructure: &Infrastructure,
    settings: &IdentitySettings,
    issuer: String,
    signing_keys: Arc<dyn SigningKeyStore>,
) -> anyhow::Result<AuthState> {
    let clock = Arc::clone(&infrastructure.clock);
    let issuer = IssuerConfig {
        issuer,
        api_audience: settings.api_audience.clone(),
        client_id: settings.client_id.clone(),
    };
    let key_policy = KeyPolicy {
        rotate_after: settings.signing_key_rotation,
        // Retired keys stay published while tokens they signed can still be valid, plus skew margin.
        publish_retired_for: settings.access_token_ttl + std::time::Duration::from_secs(300),
    };
    let keys = Arc::new(KeyRing::open(signing_keys, Arc::clone(&clock), key_policy).await?);
    let jwt = Arc::new(JwtAuthority::new(
        Arc::clone(&keys),
        Arc::clone(&clock),
        issuer.issuer.clone(),
        issuer.api_audience.clone(),
    ));
    let ports = BuiltinPorts {
        users: Arc::clone(&infrastructure.store.users),
        refresh_tokens: Arc::clone(&infrastructure.store.refresh_tokens),
        revocations: Arc::clone(&infrastructure.revocations),
        hasher: Arc::new(
            Argon2Hasher::new(settings.argon2)?
                .with_metrics(crate::telemetry::hashing_pool(&infrastructure.metrics)),
        ),
        signer: jwt.clone(),
        clock: Arc::clone(&clock),
    };
    let lifetimes = TokenLifetimes { access: settings.access_token_ttl, refresh: settings.refresh_token_ttl };
    let provider = BuiltinIdentityProvider::new(ports, issuer.clone(), lifetimes).await?;
    let policy = lockout_policy(settings);
    let service = AuthService::new(
        Arc::new(provider),
        jwt,
        Arc::clone(&infrastructure.revocations),
        Arc::clone(&infrastructure.attempts),
        clock,
        policy,
    );
    Ok(AuthState {
        service,
        keys: Some(keys),
        issuer,
        cookie_key: galley_http_kit::auth::cookie_key(settings.cookie_key.as_ref())?,
        cookie_max_age: settings.refresh_token_ttl,
        sign_ins: crate::telemetry::SignInMetrics::new(&infrastructure.metrics),
    })
}

/// The `iss` of the tokens this process accepts: configured; else with Auth0 its base URL; else the
/// built-in issuer at the address it listens on.
pub fn issuer_for(settings: &IdentitySettings, address: SocketAddr) -> String {
    let auth0_base = match settings.provider {
        IdentityProviderKind::Auth0 => settings.auth0.base_url().ok(),
        IdentityProviderKind::Builtin => None,
    };
    settings.issuer.clone().or(auth0_base).unwrap_or_else(|| format!("http://{address}/"))
}

/// The message catalogue of a process serving recipes.
pub fn localizer() -> anyhow::Result<Localizer> {
    Ok(Localizer::builder()
        .add_resources(&galley_platform::i18n::PLATFORM_RESOURCES)
        .add_resources(&crate::RESOURCES)
        .build()?)
}

/// The standalone recipes-api process.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    http: HttpSettings,
    store: DocumentStore,
    metrics: MetricsEndpoint,
}

impl Application {
    /// Opens the adapters, seeds if configured, and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock the use cases see (tests move time forward).
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_with_secrets(settings, clock, &Secrets::none()).await
    }

    /// As [`Application::build_with_clock`], with the process's secrets session: leased credentials
    /// for the dependencies that have a lease path, and the `secrets` readiness check.
    pub async fn build_with_secrets(
        settings: Settings,
        clock: Arc<dyn Clock>,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        let issuer = issuer_for(&settings.identity, listener.local_addr()?);
        let metrics = Metrics::from_settings(
            settings.telemetry.metrics,
            BuildInfo { service: "recipes-api", version: env!("CARGO_PKG_VERSION") },
        );
        secrets.measure_leases_into(&metrics);
        let infrastructure =
            Infrastructure::open_with_secrets(&settings.store, &settings.cache, clock, secrets)
                .await?
                .instrumented(&metrics);
        let mut module = RecipesModule::new(&infrastructure, &settings, issuer).await?;
        module.health_checks.extend(secrets.health_check());
        if settings.recipes.seed_samples {
            let seeded = module.seed_samples().await?;
            if seeded > 0 {
                tracing::info!(seeded, "stored sample recipes");
            }
        }
        let endpoint = MetricsEndpoint::bind(&metrics, &settings.telemetry).await?;
        let context =
            HttpContext { localizer: Arc::new(localizer()?), settings: settings.http.clone(), metrics };
        let routes = module
            .router
            .merge(endpoint.routes())
            .merge(galley_http_kit::front_door("recipes-api", env!("CARGO_PKG_VERSION")));
        let router = process_router(routes, module.health_checks, module.openapi, context);
        Ok(Self { listener, router, http: settings.http, store: infrastructure.store, metrics: endpoint })
    }

    /// Where `GET /metrics` is served when `telemetry.metrics_bind` moves it off the API's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.local_addr()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|addr| addr.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` fires and in-flight requests finish, then closes the store.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let metrics = self.metrics.spawn(shutdown.clone());
        let result =
            galley_http_kit::serve(self.listener, self.router, shutdown, self.http.shutdown_grace).await;
        metrics.abort();
        self.store.close().await;
        result
    }
}

/// Readiness of the cache; not critical, as reads fall back to the store.
#[derive(Debug)]
struct CacheCheck(Arc<dyn Cache>);

#[async_trait]
impl HealthCheck for CacheCheck {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| error.to_string())
    }

    fn critical(&self) -> bool {
        false
    }
}

/// This service's settings: the files, its static secrets from the secrets backend when
/// `secrets.backend` names one (`<prefix>/shared` and `<prefix>/recipes-api`), then the environment.
/// Also returns the open secrets session, which the process keeps until it stops.
pub async fn load_settings(source: &galley_platform::ConfigSource) -> anyhow::Result<(Settings, Secrets)> {
    let secrets = Secrets::open(source, &["recipes-api"]).await?;
    let settings = secrets.load(source)?;
    Ok((settings, secrets))
}

/// The standalone process: settings from `config/*.toml` and `GALLEY__*` variables, logs initialised,
/// serves until SIGINT/SIGTERM. Used by this service's binary and by `galley run recipes-api`.
pub async fn run_from_config() -> anyhow::Result<()> {
    let (settings, secrets) = load_settings(&galley_platform::ConfigSource::from_env()).await?;
    let _telemetry = galley_platform::telemetry::init("recipes-api", &settings.telemetry);
    secrets.log_origins();
    let application = Application::build_with_secrets(settings, Arc::new(SystemClock), &secrets).await?;
    tracing::info!(address = %application.local_addr()?, "recipes-api listening");
    application.run_until_stopped(Shutdown::on_signals()).await?;
    secrets.close().await;
    tracing::info!("recipes-api stopped");
    Ok(())
}
