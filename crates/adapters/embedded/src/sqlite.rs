//! SQLite document store (sqlx): one database file in the data directory, WAL mode so readers never wait
//! for the writer, schema migrations embedded in the binary and applied at start-up.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use galley_kernel::Page;
use galley_recipes::{
    Recipe, RecipeId, RecipeQuery, RecipeRepository, RecipeSort, RepositoryError, Revision, TagMatch,
    WriteOutcome,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error("cannot open the embedded store at {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot create the directory of the embedded store {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("cannot migrate the embedded store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The embedded database. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database file at `path` and applies pending
    /// migrations.
    pub async fn open(path: &Path) -> Result<Self, OpenStoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| OpenStoreError::Directory { path: dir.display().to_string(), source })?;
        }
        let open_error = |source| OpenStoreError::Open { path: path.display().to_string(), source };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_error)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the
            // last transactions, which is the usual trade-off for an embedded default.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for in-flight queries and closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The two kinds of failure every port on this store reports: "try again later" versus "bug or
/// corruption". Each port maps them onto its own error enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Unavailable,
    Internal,
}

/// The one place deciding which sqlx errors are transient, shared by the recipe and identity adapters
/// so a 503 means the same thing for every port on the store.
/// Translates a sqlx error into the storage ports' shared error; the message is for logs only.
pub(crate) fn store_error(error: sqlx::Error) -> galley_kernel::StoreError {
    match classify(&error) {
        Failure::Unavailable => galley_kernel::StoreError::Unavailable(error.to_string()),
        Failure::Internal => galley_kernel::StoreError::Internal(error.to_string()),
    }
}

pub(crate) fn classify(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => Failure::Unavailable,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended codes BUSY_SNAPSHOT (517) and
        // LOCKED_SHAREDCACHE (262): another writer held the lock past busy_timeout.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517" | "262")) => {
            Failure::Unavailable
        }
        _ => Failure::Internal,
    }
}

/// Translates sqlx errors into the recipe port's error.
fn translate(error: sqlx::Error) -> RepositoryError {
    match classify(&error) {
        Failure::Unavailable => RepositoryError::Unavailable(error.to_string()),
        Failure::Internal => RepositoryError::Internal(error.to_string()),
    }
}

fn decode(doc: &str) -> Result<Recipe, RepositoryError> {
    serde_json::from_str(doc)
        .map_err(|error| RepositoryError::Internal(format!("corrupt recipe document: {error}")))
}

fn encode(recipe: &Recipe) -> Result<String, RepositoryError> {
    serde_json::to_string(recipe).map_err(|error| RepositoryError::Internal(error.to_string()))
}

/// The recipe repository on the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteRecipeRepository {
    pool: SqlitePool,
}

impl SqliteRecipeRepository {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool.clone() }
    }

    async fn replace_tags(
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        recipe: &Recipe,
    ) -> Result<(), RepositoryError> {
        let id = recipe.id.to_string();
        sqlx::query("DELETE FROM recipe_tags WHERE recipe_id = ?")
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(translate)?;
        if recipe.tags.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO recipe_tags (tag, recipe_id) ");
        insert.push_values(&recipe.tags, |mut row, tag| {
            row.push_bind(tag).push_bind(&id);
        });
        insert.build().execute(&mut **tx).await.map_err(translate)?;
        Ok(())
    }

    /// Tells `NotFound` from `RevisionMismatch` after a conditional write touched no row.
    async fn missed_write(&self, id: RecipeId) -> Result<WriteOutcome, RepositoryError> {
        let exists = sqlx::query("SELECT 1 FROM recipes WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        Ok(if exists.is_some() { WriteOutcome::RevisionMismatch } else { WriteOutcome::NotFound })
    }
}

fn published_us(recipe: &Recipe) -> i64 {
    recipe.published_at.timestamp_micros()
}

fn revision_value(revision: Revision) -> Result<i64, RepositoryError> {
    i64::try_from(revision.get()).map_err(|_| RepositoryError::Internal("revision overflow".into()))
}

/// Appends the WHERE clause for `query`'s filters (semantics documented in `galley_recipes::query`).
fn push_filters(sql: &mut QueryBuilder<'_, Sqlite>, query: &RecipeQuery) {
    sql.push(" WHERE 1 = 1");
    if !query.tags.is_empty() {
        sql.push(" AND r.id IN (SELECT recipe_id FROM recipe_tags WHERE tag IN (");
        let mut tags = sql.separated(", ");
        for tag in &query.tags {
            tags.push_bind(tag.clone());
        }
        sql.push(")");
        if query.tag_match == TagMatch::All {
            sql.push(" GROUP BY recipe_id HAVING COUNT(*) = ");
            sql.push_bind(i64::try_from(query.tags.len()).unwrap_or(i64::MAX));
        }
        sql.push(")");
    }
    for term in &query.terms {
        // Both sides are lower-cased in Rust (full Unicode), so a byte-wise instr() is a correct
        // case-insensitive substring test, unlike SQLite's ASCII-only LIKE.
        sql.push(" AND instr(r.search_text, ").push_bind(term.clone()).push(") > 0");
    }
}

#[async_trait]
impl RecipeRepository for SqliteRecipeRepository {
    async fn insert(&self, recipe: &Recipe) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        sqlx::query(
            "INSERT INTO recipes (id, doc, revision, name_key, published_us, search_text)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(recipe.id.to_string())
        .bind(encode(recipe)?)
        .bind(revision_value(recipe.revision)?)
        .bind(recipe.name.to_lowercase())
        .bind(published_us(recipe))
        .bind(recipe.search_text())
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        Self::replace_tags(&mut tx, recipe).await?;
        tx.commit().await.map_err(translate)
    }

    async fn get(&self, id: RecipeId) -> Result<Option<Recipe>, RepositoryError> {
        let row = sqlx::query("SELECT doc FROM recipes WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        row.map(|row| decode(row.get::<&str, _>(0))).transpose()
    }

    async fn list(&self, query: &RecipeQuery) -> Result<Page<Recipe>, RepositoryError> {
        // One statement returns the page and, through a window function, the total of all matches.
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT r.doc, COUNT(*) OVER () FROM recipes r");
        push_filters(&mut sql, query);
        sql.push(match query.sort {
            RecipeSort::PublishedDesc => " ORDER BY r.published_us DESC, r.id DESC",
            RecipeSort::PublishedAsc => " ORDER BY r.published_us ASC, r.id ASC",
            RecipeSort::Name => " ORDER BY r.name_key ASC, r.id ASC",
        });
        sql.push(" LIMIT ").push_bind(i64::from(query.page.limit()));
        sql.push(" OFFSET ").push_bind(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(translate)?;

        let total = match rows.first() {
            Some(row) => u64::try_from(row.get::<i64, _>(1)).unwrap_or_default(),
            // A page past the end has no rows to carry the total; count separately.
            None if query.page.offset() > 0 => {
                let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM recipes r");
                push_filters(&mut count, query);
                let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(translate)?;
                u64::try_from(total).unwrap_or_default()
            }
            None => 0,
        };
        let items = rows.iter().map(|row| decode(row.get::<&str, _>(0))).collect::<Result<_, _>>()?;
        Ok(Page { items, request: query.page, total })
    }

    async fn update(&self, recipe: &Recipe, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let updated = sqlx::query(
            "UPDATE recipes SET doc = ?, revision = ?, name_key = ?, published_us = ?, search_text = ?
             WHERE id = ? AND revision = ?",
        )
        .bind(encode(recipe)?)
        .bind(revision_value(recipe.revision)?)
        .bind(recipe.name.to_lowercase())
        .bind(published_us(recipe))
        .bind(recipe.search_text())
        .bind(recipe.id.to_string())
        .bind(revision_value(expected)?)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        if updated.rows_affected() == 0 {
            drop(tx);
            return self.missed_write(recipe.id).await;
        }
        Self::replace_tags(&mut tx, recipe).await?;
        tx.commit().await.map_err(translate)?;
        Ok(WriteOutcome::Done)
    }

    async fn delete(&self, id: RecipeId, expected: Revision) -> Result<WriteOutcome, RepositoryError> {
        let deleted = sqlx::query("DELETE FROM recipes WHERE id = ? AND revision = ?")
            .bind(id.to_string())
            .bind(revision_value(expected)?)
            .execute(&self.pool)
            .await
            .map_err(translate)?;
        if deleted.rows_affected() == 0 {
            return self.missed_write(id).await;
        }
        Ok(WriteOutcome::Done)
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipes")
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(translate)?;
        Ok(())
    }
}

/// Readiness of the embedded store: one round trip through the pool.
#[async_trait]
impl galley_platform::HealthCheck for SqliteStore {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<(), String> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(|error| error.to_string())
    }
}
