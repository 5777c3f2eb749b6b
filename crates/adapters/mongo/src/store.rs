//! Connection, indexes and error translation.

use std::time::Duration;

use futures::TryStreamExt as _;
use galley_kernel::StoreError;
use galley_platform::MongoDbSettings;
use galley_platform::secret::ExposeSecret as _;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, FindOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

/// The database every Mongo repository works on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MongoStore {
    database: Database,
}

impl MongoStore {
    /// Connects and creates the indexes; fails if no server answers within `settings.timeout`.
    pub async fn connect(settings: &MongoDbSettings) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(settings.uri.expose_secret()).await.map_err(translate)?;
        options.app_name = Some("galley".to_owned());
        options.max_pool_size = Some(settings.max_pool_size);
        options.server_selection_timeout = Some(settings.timeout);
        options.connect_timeout = Some(settings.timeout);
        let client = Client::with_options(options).map_err(translate)?;
        let store = Self { database: client.database(&settings.database) };
        store.ensure_indexes().await?;
        Ok(store)
    }

    pub fn database(&self) -> &Database {
        &self.database
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
        for (collection, indexes) in plan {
            self.database
                .collection::<Document>(collection)
                .create_indexes(indexes)
                .await
                .map_err(translate)?;
        }
        Ok(())
    }

    /// Round trip for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        ping(self.database.client()).await
    }

    /// Closes the client's connections (in-flight operations finish first).
    pub async fn close(&self) {
        self.database.client().clone().shutdown().await;
    }
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
