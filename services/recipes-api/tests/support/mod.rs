//! `spawn_app()`: a real recipes-api on a free loopback port with its own temporary database and a
//! clock the test controls, shared by the API tests and the cucumber features.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use galley_platform::{HttpSettings, Shutdown};
use galley_test_support::auth0::{self, FakeAuth0};
use galley_test_support::fixtures::ManualClock;
use recipes_api::{Application, Settings};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse!";

/// The identity provider a test app runs with.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    #[default]
    Builtin,
    /// Auth0, played by a `FakeAuth0` on loopback that stamps tokens with the app's clock.
    Auth0,
}

#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    /// The Auth0 tenant behind the app in `Provider::Auth0` mode.
    pub auth0: Option<FakeAuth0>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    /// The separate metrics listener, with [`AppOptions::separate_metrics_listener`].
    pub metrics_address: Option<SocketAddr>,
    shutdown: Shutdown,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data: Option<TempDir>,
}

/// Options for [`spawn_app_with`].
#[derive(Debug, Default, Clone)]
pub struct AppOptions {
    pub seed_samples: bool,
    /// Reuse a data directory (restart tests); a fresh temporary one otherwise.
    pub data_dir: Option<PathBuf>,
    /// Peers whose forwarding headers are trusted.
    pub trusted_proxies: Vec<String>,
    /// Use Redis at this URL with this key prefix for the cache, revocations and sign-in attempts.
    pub redis: Option<(String, String)>,
    /// The tokens' issuer (replicas share one); derived from the bound address otherwise.
    pub issuer: Option<String>,
    /// Per-client throttles; off unless given, since tests sign in many times from one address.
    pub limits: Option<galley_platform::LimitsSettings>,
    pub provider: Provider,
    /// With `Provider::Auth0`: the grant that signs users in (Galley's default otherwise).
    pub auth0_grant: Option<galley_auth0::settings::Auth0Grant>,
    /// Serve `GET /metrics` on a listener of its own (`telemetry.metrics_bind`, a free port).
    pub separate_metrics_listener: bool,
    /// `telemetry.metrics`; on unless given.
    pub metrics: Option<bool>,
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: String,
    /// The `Cookie` header value carrying the session cookie.
    pub cookie: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let (data_dir, guard) = match options.data_dir {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::tempdir().expect("temp dir");
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let mut settings = Settings {
        http: HttpSettings { bind: SocketAddr::from(([127, 0, 0, 1], 0)), ..HttpSettings::default() },
        ..Settings::default()
    };
    settings.http.trusted_proxies =
        options.trusted_proxies.iter().map(|p| p.parse().expect("network")).collect();
    settings.store.embedded.path = data_dir.join("galley.db");
    settings.recipes.seed_samples = options.seed_samples;
    settings.identity.issuer = options.issuer;
    settings.limits = options.limits.unwrap_or_else(galley_platform::LimitsSettings::disabled);
    if let Some((url, prefix)) = options.redis {
        settings.cache.backend = galley_platform::CacheBackend::Redis;
        settings.cache.redis.url = url.into();
        settings.cache.redis.prefix = prefix;
    }
    settings.telemetry.metrics = options.metrics.unwrap_or(true);
    if options.separate_metrics_listener {
        settings.telemetry.metrics_bind = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    let clock = ManualClock::new(Utc::now());
    let fake_auth0 = match options.provider {
        Provider::Builtin => None,
        Provider::Auth0 => {
            let fake = FakeAuth0::start_with_clock(clock.clone()).await;
            let auth0 = &mut settings.identity.auth0;
            settings.identity.provider = galley_auth0::IdentityProviderKind::Auth0;
            auth0.base_url = Some(fake.base_url().to_owned());
            auth0.client_id = auth0::CLIENT_ID.to_owned();
            auth0.client_secret = Some(auth0::CLIENT_SECRET.into());
            auth0.audience = auth0::AUDIENCE.to_owned();
            auth0.timeout = std::time::Duration::from_secs(2);
            if let Some(grant) = options.auth0_grant {
                auth0.grant = grant;
            }
            Some(fake)
        }
    };
    let application =
        Application::build_with_clock(settings, clock.clone()).await.expect("application builds");
    let address = application.local_addr().expect("bound");
    let metrics_address = application.metrics_addr();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::builder().no_proxy().build().expect("http client");
    TestApp {
        address,
        auth0: fake_auth0,
        client,
        clock,
        data_dir,
        metrics_address,
        shutdown,
        server: Some(server),
        _data: guard,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// GET `path` and decode the JSON body (whatever the status).
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("json body")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    /// A request carrying `user`'s bearer token.
    pub fn as_user(&self, method: reqwest::Method, path: &str, user: &TestUser) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header(AUTHORIZATION, format!("Bearer {}", user.access_token))
    }

    pub async fn sign_up(&self, username: &str) -> reqwest::Response {
        self.post_json(
            "/auth/signup",
            &json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD}),
        )
        .await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_json("/auth/signin", &json!({"username": username, "password": password})).await
    }

    /// Signs a new user up and in.
    pub async fn user(&self, username: &str) -> TestUser {
        assert_eq!(self.sign_up(username).await.status(), 201, "sign-up of {username}");
        let response = self.sign_in(username, PASSWORD).await;
        assert_eq!(response.status(), 200, "sign-in of {username}");
        TestUser::from_sign_in(username, response).await
    }

    /// Creates a recipe as `user` and returns its JSON representation.
    pub async fn create_recipe_as(
        &self,
        user: &TestUser,
        name: &str,
        tags: &[&str],
        ingredients: &[&str],
    ) -> Value {
        let response = self
            .as_user(reqwest::Method::POST, "/recipes", user)
            .json(&json!({"name": name, "tags": tags, "ingredients": ingredients, "instructions": ["Cook it."]}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201, "creating {name}");
        response.json().await.expect("json body")
    }

    /// The app's signing keys as it reads them: from its SQLite file, opened with the key file in its
    /// data directory (they are sealed at rest).
    pub async fn signing_keys(&self) -> Vec<galley_identity::StoredSigningKey> {
        use galley_identity::SigningKeyStore as _;
        let (store, envelope) = self.store_and_key_file().await;
        let keys = galley_identity::at_rest::SealedSigningKeyStore::new(
            Arc::new(galley_embedded::SqliteSigningKeyStore::new(&store)),
            Arc::new(envelope),
        );
        keys.load().await.expect("keys")
    }

    /// The provider session (Auth0 mode) recorded for the sign-in that issued `access_token`, as
    /// stored in the app's SQLite file, with the key file of its data directory to open what it seals.
    pub async fn provider_session(
        &self,
        access_token: &str,
    ) -> (Option<galley_identity::ProviderSession>, galley_crypto::LocalKeyFileEnvelope) {
        use galley_identity::ProviderSessionStore as _;
        let (store, envelope) = self.store_and_key_file().await;
        let sessions = galley_embedded::SqliteProviderSessionStore::new(&store);
        let key = galley_identity::tokens::token_digest(access_token);
        (sessions.find(&key).await.expect("session lookup"), envelope)
    }

    async fn store_and_key_file(
        &self,
    ) -> (galley_embedded::SqliteStore, galley_crypto::LocalKeyFileEnvelope) {
        let store =
            galley_embedded::SqliteStore::open(&self.data_dir.join("galley.db")).await.expect("store");
        let envelope = galley_crypto::LocalKeyFileEnvelope::open_or_create(
            &self.data_dir.join(galley_crypto::LocalKeyFileEnvelope::FILE_NAME),
        )
        .expect("key file");
        (store, envelope)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

impl TestUser {
    pub async fn from_sign_in(username: &str, response: reqwest::Response) -> Self {
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("Authorization="))
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .to_owned();
        let body: Value = response.json().await.expect("token json");
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        Self {
            username: username.to_owned(),
            access_token: field("access_token"),
            refresh_token: field("refresh_token"),
            id_token: field("id_token"),
            cookie,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
