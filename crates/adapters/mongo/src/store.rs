//! Connection (static or following leased credentials), indexes and error translation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::TryStreamExt as _;
use galley_kernel::StoreError;
use galley_platform::secret::ExposeSecret as _;
use galley_platform::{Credentials, CredentialsFeed, MongoDbSettings};
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, Credential, FindOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

/// The database every Mongo repository works on. Cheap to clone: clones share the current client.
///
/// Repositories take their collection from here for each operation ([`MongoStore::collection`]), so
/// that a client swapped in by [`MongoStore::connect_following`] serves every operation that starts
/// after the swap, while those already running keep the handle (and client) they started with.
#[derive(Debug, Clone)]
pub struct MongoStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Replaced as a whole when leased credentials rotate. A `Database` is a cheap handle on its
    /// client, so a read is a lock and a clone; writes happen once per rotation.
    current: RwLock<Database>,
    /// Set by [`MongoStore::close`]: a rotation arriving afterwards must not open a new client.
    closed: AtomicBool,
}

impl MongoStore {
    /// Connects with the credentials the URI carries (if any) and creates the indexes; fails if no
    /// server answers within `settings.timeout`.
    pub async fn connect(settings: &MongoDbSettings) -> Result<Self, StoreError> {
        let options = client_options(settings).await?;
        let client = Client::with_options(options).map_err(translate)?;
        let store = Self::on(client.database(&settings.database));
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// Connects as the user `credentials` names now and follows the feed; `settings.uri` carries no
    /// credentials (a URI with a username or password is refused: two sources of truth).
    ///
    /// The auth source is the URI's `authSource` option; without one, the driver's default for a
    /// credential given in code, `admin` for SCRAM, which is where Vault's MongoDB plugin creates its
    /// users unless the role's creation statement names another `db`. The URI's path database is not
    /// used as the auth source here (the driver does that only for credentials in the URI itself).
    ///
    /// On every change of the feed a new client is built with the new credentials and pinged; on
    /// success it serves the operations that start from then on, and the old client closes when the
    /// last operation holding it drops its handle. A failed connect is logged and the current client
    /// kept (its lease still runs; Vault replaces leases before they end). Same semantics as
    /// `galley_redis::RedisConnection::connect_following`.
    pub async fn connect_following(
        settings: &MongoDbSettings,
        mut credentials: CredentialsFeed,
    ) -> Result<Self, StoreError> {
        let uri = settings.uri.expose_secret();
        let login = LeasedLogin::new(client_options(settings).await?, uri)?;
        let current = credentials.borrow_and_update().clone();
        let client = Client::with_options(login.options_for(&current)).map_err(translate)?;
        let store = Self::on(client.database(&settings.database));
        store.ensure_indexes().await?;
        let shared = Arc::downgrade(&store.shared);
        let name = settings.database.clone();
        tokio::spawn(async move {
            // Ends when the feed closes (the lease is revoked) or every handle on the store is dropped.
            while credentials.changed().await.is_ok() {
                let Some(target) = shared.upgrade() else { return };
                if target.closed.load(Ordering::SeqCst) {
                    return;
                }
                let next = credentials.borrow_and_update().clone();
                match connected(login.options_for(&next)).await {
                    Ok(client) => {
                        let mut current = target.current.write().unwrap_or_else(PoisonError::into_inner);
                        if target.closed.load(Ordering::SeqCst) {
                            drop(current);
                            client.shutdown().await;
                            return;
                        }
                        // The old `Database` drops here; its client closes with the last clone.
                        *current = client.database(&name);
                        drop(current);
                        tracing::info!(username = %next.username, "MongoDB client swapped to new credentials");
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        username = %next.username,
                        "cannot connect with the new MongoDB credentials; keeping the current client"
                    ),
                }
            }
        });
        Ok(store)
    }

    fn on(database: Database) -> Self {
        Self { shared: Arc::new(Shared { current: RwLock::new(database), closed: AtomicBool::new(false) }) }
    }

    /// The database on the current client. Take it per operation rather than keeping it: after a
    /// rotation of leased credentials a kept handle goes on using the replaced user.
    pub fn database(&self) -> Database {
        self.shared.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The collection `name` on the current client (a cheap handle), for one operation.
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.database().collection(name)
    }

    /// Idempotent: creating an existing index is a no-op.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let unique = || IndexOptions::builder().unique(true).build();
        let index =
            |keys, options: Option<IndexOptions>| IndexModel::builder().keys(keys).options(options).build();
        let plan: Vec<(&str, Vec<IndexModel>)> = vec![
            (
                "recipes",
                vec![
                    index(doc! { "published_us": -1, "_id": -1 }, None),
                    index(doc! { "name_key": 1, "_id": 1 }, None),
                    index(doc! { "tags": 1 }, None),
                ],
            ),
            (
                "users",
                vec![
                    index(doc! { "username_key": 1 }, Some(unique())),
                    index(doc! { "email": 1 }, Some(unique())),
                ],
            ),
            (
                "refresh_tokens",
                vec![
                    index(doc! { "family_id": 1 }, None),
                    // MongoDB deletes expired tokens itself.
                    index(
                        doc! { "expires_at": 1 },
                        Some(IndexOptions::builder().expire_after(Duration::from_secs(86_400)).build()),
                    ),
                ],
            ),
            (
                "provider_sessions",
                vec![index(
                    doc! { "expires_at": 1 },
                    Some(IndexOptions::builder().expire_after(Duration::from_secs(0)).build()),
                )],
            ),
            (
                "rss_jobs",
                vec![
                    index(
                        doc! { "requested_by": 1, "idempotency_key": 1 },
                        Some(
                            IndexOptions::builder()
                                .unique(true)
                                .partial_filter_expression(doc! { "idempotency_key": { "$type": "string" } })
                                .build(),
                        ),
                    ),
                    // The sweeper's query (`list_stale`).
                    index(doc! { "status": 1, "updated_us": 1 }, None),
                ],
            ),
            (
                "rss_entries",
                vec![
                    index(doc! { "sort_us": -1, "_id": -1 }, None),
                    index(doc! { "feed_url": 1, "sort_us": -1, "_id": -1 }, None),
                    index(doc! { "job_id": 1 }, None),
                ],
            ),
        ];
        let database = self.database();
        for (collection, indexes) in plan {
            database.collection::<Document>(collection).create_indexes(indexes).await.map_err(translate)?;
        }
        Ok(())
    }

    /// Round trip for readiness probes, on the current client.
    pub async fn ping(&self) -> Result<(), StoreError> {
        ping(self.database().client()).await
    }

    /// Closes the current client's connections (in-flight operations finish first) and stops
    /// following leased credentials.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let client = self.database().client().clone();
        client.shutdown().await;
    }
}

/// The options every client of `settings` starts from: the URI's, with Galley's name, pool size and
/// timeouts.
async fn client_options(settings: &MongoDbSettings) -> Result<ClientOptions, StoreError> {
    let mut options = ClientOptions::parse(settings.uri.expose_secret()).await.map_err(translate)?;
    options.app_name = Some("galley".to_owned());
    options.max_pool_size = Some(settings.max_pool_size);
    options.server_selection_timeout = Some(settings.timeout);
    options.connect_timeout = Some(settings.timeout);
    Ok(options)
}

/// A client on `options` that has answered a ping, i.e. reached a server and authenticated (the
/// driver authenticates every connection in its handshake). Bounded by the server selection timeout.
async fn connected(options: ClientOptions) -> Result<Client, StoreError> {
    let client = Client::with_options(options).map_err(translate)?;
    match ping(&client).await {
        Ok(()) => Ok(client),
        Err(error) => {
            client.shutdown().immediate(true).await;
            Err(error)
        }
    }
}

/// How a client logs in with leased credentials: the URI's options without credentials, and the
/// credential template (the auth source; the mechanism is negotiated, SCRAM) the feed's user and
/// password are put into.
#[derive(Debug, Clone)]
pub(crate) struct LeasedLogin {
    options: ClientOptions,
    credential: Credential,
}

impl LeasedLogin {
    /// Refuses a URI that carries a username or password: with a lease the feed is the one source of
    /// the credentials, and a second one would silently win or lose depending on code paths.
    pub(crate) fn new(mut options: ClientOptions, uri: &str) -> Result<Self, StoreError> {
        let parsed = options.credential.take().unwrap_or_default();
        if parsed.username.is_some() || parsed.password.is_some() {
            return Err(StoreError::Internal(
                "the MongoDB URI carries credentials while leased credentials are configured: remove the \
                 user and password from the URI (the lease supplies them)"
                    .to_owned(),
            ));
        }
        if let Some(mechanism) = parsed.mechanism {
            // The driver itself refuses SCRAM without a username, so this is one that takes none
            // (X.509, AWS, OIDC): it cannot log in as a leased user.
            return Err(StoreError::Internal(format!(
                "the MongoDB URI names authMechanism {mechanism:?}, which does not log in with the \
                 username and password of leased credentials: remove it from the URI"
            )));
        }
        let mut credential = Credential::default();
        // The driver keeps `authSource` only when the URI names a user or a mechanism, so it is read
        // from the URI here; `None` leaves the driver's default (`admin` for SCRAM).
        credential.source = uri_auth_source(uri);
        Ok(Self { options, credential })
    }

    /// Client options logging in as `credentials`.
    pub(crate) fn options_for(&self, credentials: &Credentials) -> ClientOptions {
        let mut credential = self.credential.clone();
        credential.username = Some(credentials.username.clone());
        credential.password = Some(credentials.password.expose_secret().to_owned());
        let mut options = self.options.clone();
        options.credential = Some(credential);
        options
    }
}

/// The `authSource` option of a connection string (option names are case-insensitive, values
/// percent-encoded), as the driver reads it.
fn uri_auth_source(uri: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.eq_ignore_ascii_case("authSource")
            .then(|| percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
            .filter(|source| !source.is_empty())
    })
}

#[async_trait::async_trait]
impl galley_platform::HealthCheck for MongoStore {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|error| error.to_string())
    }
}

/// One round trip to the server of `client` (readiness probes of every repository).
pub(crate) async fn ping(client: &Client) -> Result<(), StoreError> {
    client.database("admin").run_command(doc! { "ping": 1 }).await.map(|_| ()).map_err(translate)
}

/// Whether a write failed on a unique index.
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == 11000,
        ErrorKind::InsertMany(failure) => {
            failure.write_errors.as_ref().is_some_and(|errors| errors.iter().all(|e| e.code == 11000))
                && failure.write_concern_error.is_none()
        }
        ErrorKind::Command(command) => command.code == 11000,
        _ => false,
    }
}

/// Every document of `collection` that `filter` matches, in the order and window `options` set: the
/// find-then-collect round trip of every listing. Errors stay the driver's, for the caller's translation.
pub(crate) async fn find_all<T>(
    collection: &Collection<T>,
    filter: Document,
    options: FindOptions,
) -> Result<Vec<T>, mongodb::error::Error>
where
    T: serde::de::DeserializeOwned + Unpin + Send + Sync,
{
    collection.find(filter).with_options(options).await?.try_collect().await
}

/// Driver errors into the ports' contract: trouble reaching the server is "unavailable".
pub(crate) fn translate(error: mongodb::error::Error) -> StoreError {
    let unavailable = matches!(
        error.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
    ) || error.contains_label("RetryableWriteError")
        || error.contains_label("TransientTransactionError");
    if unavailable {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Internal(error.to_string())
    }
}

pub(crate) fn micros(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn instant(us: i64, field: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Internal(format!("corrupt {field}: {us}")))
}

/// `u64` counts stored as BSON's signed 64-bit integers.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessee(username: &str) -> Credentials {
        Credentials { username: username.to_owned(), password: format!("{username}-password").into() }
    }

    async fn leased_login(uri: &str) -> Result<LeasedLogin, StoreError> {
        let options = ClientOptions::parse(uri).await.map_err(translate)?;
        LeasedLogin::new(options, uri)
    }

    #[tokio::test]
    async fn a_leased_user_logs_in_with_the_drivers_default_auth_source() {
        let login =
            leased_login("mongodb://127.0.0.1:27017/?directConnection=true").await.expect("no credentials");
        let options = login.options_for(&lessee("v-token-galley-store-a"));
        let credential = options.credential.expect("credential set");
        assert_eq!(credential.username.as_deref(), Some("v-token-galley-store-a"));
        assert_eq!(credential.password.as_deref(), Some("v-token-galley-store-a-password"));
        // None: the driver resolves it to `admin` for SCRAM, where Vault creates its users.
        assert_eq!(credential.source, None);
        assert_eq!(credential.mechanism, None);
        assert_eq!(options.direct_connection, Some(true), "the URI's other options are kept");
    }

    #[tokio::test]
    async fn the_uris_auth_source_is_kept_and_the_path_database_is_not_one() {
        let login = leased_login("mongodb://127.0.0.1:27017/galley?AUTHSOURCE=leases%2Dv1&retryWrites=false")
            .await
            .expect("no credentials");
        let credential = login.options_for(&lessee("a")).credential.expect("credential set");
        assert_eq!(credential.source.as_deref(), Some("leases-v1"));

        let login = leased_login("mongodb://127.0.0.1:27017/galley").await.expect("no credentials");
        let credential = login.options_for(&lessee("a")).credential.expect("credential set");
        assert_eq!(credential.source, None, "the path database is the default only for URI credentials");
    }

    #[tokio::test]
    async fn a_mechanism_that_takes_no_password_is_refused() {
        // The driver refuses SCRAM without a user itself; X.509 it accepts, and a lease cannot use it.
        for uri in [
            "mongodb://127.0.0.1:27017/?authMechanism=SCRAM-SHA-256",
            "mongodb://127.0.0.1:27017/?authMechanism=MONGODB-X509&tls=true",
        ] {
            assert!(leased_login(uri).await.is_err(), "{uri}");
        }
    }

    #[tokio::test]
    async fn each_rotation_replaces_the_user_and_password() {
        let login = leased_login("mongodb://127.0.0.1:27017").await.expect("no credentials");
        let first = login.options_for(&lessee("a")).credential.expect("a");
        let second = login.options_for(&lessee("b")).credential.expect("b");
        assert_eq!(first.username.as_deref(), Some("a"));
        assert_eq!(second.username.as_deref(), Some("b"));
        assert_eq!(second.password.as_deref(), Some("b-password"));
    }

    #[tokio::test]
    async fn a_uri_with_credentials_and_a_lease_is_refused() {
        for uri in
            ["mongodb://galley:secret@127.0.0.1:27017", "mongodb://galley@127.0.0.1:27017/?authSource=admin"]
        {
            let error = leased_login(uri).await.err().map(|error| error.to_string()).unwrap_or_default();
            assert!(
                error.contains("carries credentials while leased credentials are configured"),
                "{uri}: {error}"
            );
            assert!(!error.contains("secret"), "no password in the message: {error}");
        }
    }

    #[tokio::test]
    async fn connect_following_refuses_a_uri_with_credentials_before_connecting() {
        let settings = MongoDbSettings {
            uri: "mongodb://galley:pw@127.0.0.1:9/?directConnection=true".into(),
            timeout: Duration::from_millis(300),
            ..MongoDbSettings::default()
        };
        let (_publish, feed) = tokio::sync::watch::channel(lessee("a"));
        let error = MongoStore::connect_following(&settings, feed).await.err().map(|e| e.to_string());
        assert!(
            error.as_deref().unwrap_or_default().contains("remove the user and password from the URI"),
            "{error:?}"
        );
    }

    #[test]
    fn auth_source_is_read_like_the_driver_reads_it() {
        assert_eq!(uri_auth_source("mongodb://h"), None);
        assert_eq!(uri_auth_source("mongodb://h/?authSource="), None);
        assert_eq!(uri_auth_source("mongodb://h/db?w=1&authsource=admin").as_deref(), Some("admin"));
        assert_eq!(
            uri_auth_source("mongodb+srv://h.example/?authSource=%24external").as_deref(),
            Some("$external")
        );
    }
}
