//! The RSS ports on the embedded SQLite store: jobs, entries and per-feed state (tables from
//! `migrations/0003_rss.sql`). Job transitions are single conditional statements, so a redelivered
//! message or a late reply cannot move a finished job.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_kernel::{Page, StoreError, UserId};
use galley_rss::FeedUrl;
use galley_rss::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use galley_rss::ports::{
    EntryRepository, FeedState, FeedStateRepository, InsertJob, JobOutcome, JobRepository,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::rows::{column, from_us, to_us};
use crate::sqlite::{SqliteStore, store_error};

const JOB_COLUMNS: &str =
    "id, url, requested_by, status, inserted, skipped, error, attempts, created_us, updated_us, finished_us";

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn decode_job(row: &SqliteRow) -> Result<Job, StoreError> {
    let id: String = column(row, "id")?;
    let status: String = column(row, "status")?;
    Ok(Job {
        id: id.parse().map_err(|_| StoreError::Internal(format!("corrupt job id {id}")))?,
        url: FeedUrl::from_trusted(column(row, "url")?),
        requested_by: UserId::new(column::<String>(row, "requested_by")?),
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Internal(format!("corrupt job status {status}")))?,
        inserted: count(column(row, "inserted")?),
        skipped: count(column(row, "skipped")?),
        error: column(row, "error")?,
        attempts: u32::try_from(column::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
        created_at: from_us(column(row, "created_us")?, "rss_jobs.created_us")?,
        updated_at: from_us(column(row, "updated_us")?, "rss_jobs.updated_us")?,
        finished_at: column::<Option<i64>>(row, "finished_us")?
            .map(|us| from_us(us, "rss_jobs.finished_us"))
            .transpose()?,
    })
}

/// Fetch jobs on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteJobRepository {
    pool: SqlitePool,
}

impl SqliteJobRepository {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl JobRepository for SqliteJobRepository {
    async fn insert<'a>(&self, job: &Job, idempotency_key: Option<&'a str>) -> Result<InsertJob, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO rss_jobs (id, url, requested_by, status, inserted, skipped, error, attempts,
                                   idempotency_key, created_us, updated_us, finished_us)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING",
        )
        .bind(job.id.to_string())
        .bind(job.url.as_str())
        .bind(job.requested_by.as_str())
        .bind(job.status.as_str())
        .bind(signed(job.inserted))
        .bind(signed(job.skipped))
        .bind(job.error.as_deref())
        .bind(i64::from(job.attempts))
        .bind(idempotency_key)
        .bind(to_us(job.created_at))
        .bind(to_us(job.updated_at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 1 {
            return Ok(InsertJob::Created);
        }
        let existing = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM rss_jobs WHERE requested_by = ? AND idempotency_key = ?"
        ))
        .bind(job.requested_by.as_str())
        .bind(idempotency_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?
        .ok_or_else(|| StoreError::Internal("job insert ignored but no conflicting job found".into()))?;
        Ok(InsertJob::Existing(decode_job(&existing)?))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM rss_jobs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode_job).transpose()
    }

    async fn delete(&self, id: JobId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rss_jobs WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn start_attempt(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<Job>, StoreError> {
        let started = sqlx::query(&format!(
            "UPDATE rss_jobs SET status = 'fetching', attempts = attempts + 1, updated_us = ?
             WHERE id = ? AND status IN ('queued', 'fetching') RETURNING {JOB_COLUMNS}"
        ))
        .bind(to_us(now))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        match started {
            Some(row) => decode_job(&row).map(Some),
            None => self.get(id).await,
        }
    }

    async fn requeue(&self, id: JobId, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rss_jobs SET status = 'queued', error = ?, updated_us = ?
             WHERE id = ? AND status IN ('queued', 'fetching')",
        )
        .bind(error)
        .bind(to_us(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn finish(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        sqlx::query(
            "UPDATE rss_jobs SET status = ?, inserted = ?, skipped = ?, error = ?, updated_us = ?, finished_us = ?
             WHERE id = ? AND status IN ('queued', 'fetching')",
        )
        .bind(outcome.status.as_str())
        .bind(signed(outcome.inserted))
        .bind(signed(outcome.skipped))
        .bind(outcome.error.as_deref())
        .bind(to_us(now))
        .bind(to_us(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        self.get(id).await
    }

    async fn list_stale(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM rss_jobs WHERE status = ? AND updated_us < ?
             ORDER BY updated_us, id LIMIT ?"
        ))
        .bind(status.as_str())
        .bind(to_us(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(decode_job).collect()
    }

    async fn claim_stale(
        &self,
        id: JobId,
        status: JobStatus,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed =
            sqlx::query("UPDATE rss_jobs SET updated_us = ? WHERE id = ? AND status = ? AND updated_us = ?")
                .bind(to_us(now))
                .bind(id.to_string())
                .bind(status.as_str())
                .bind(to_us(seen))
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }
}

/// Rows per multi-row INSERT: 10 parameters each stays far below SQLite's variable limit.
const ENTRY_BATCH: usize = 500;

fn decode_entry(row: &SqliteRow) -> Result<Entry, StoreError> {
    Ok(Entry {
        id: column(row, "id")?,
        feed_url: FeedUrl::from_trusted(column(row, "feed_url")?),
        title: column(row, "title")?,
        link: column(row, "link")?,
        thumbnail: column(row, "thumbnail")?,
        summary: column(row, "summary")?,
        published_at: column::<Option<i64>>(row, "published_us")?
            .map(|us| from_us(us, "rss_entries.published_us"))
            .transpose()?,
        fetched_at: from_us(column(row, "fetched_us")?, "rss_entries.fetched_us")?,
    })
}

/// Feed entries on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteEntryRepository {
    pool: SqlitePool,
}

impl SqliteEntryRepository {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl EntryRepository for SqliteEntryRepository {
    async fn insert_new(&self, job: JobId, entries: &[Entry]) -> Result<(u64, u64), StoreError> {
        let job_id = job.to_string();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for batch in entries.chunks(ENTRY_BATCH) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO rss_entries
                 (id, feed_url, title, link, thumbnail, summary, published_us, fetched_us, sort_us, job_id) ",
            );
            insert.push_values(batch, |mut row, entry| {
                let published = entry.published_at.map(to_us);
                row.push_bind(&entry.id)
                    .push_bind(entry.feed_url.as_str())
                    .push_bind(&entry.title)
                    .push_bind(entry.link.as_deref())
                    .push_bind(entry.thumbnail.as_deref())
                    .push_bind(entry.summary.as_deref())
                    .push_bind(published)
                    .push_bind(to_us(entry.fetched_at))
                    .push_bind(published.unwrap_or_else(|| to_us(entry.fetched_at)))
                    .push_bind(&job_id);
            });
            insert.build().execute(&mut *tx).await.map_err(store_error)?;
        }
        let inserted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rss_entries WHERE job_id = ?")
            .bind(&job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        let inserted = count(inserted);
        let total = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        Ok((inserted, total.saturating_sub(inserted)))
    }

    async fn list(&self, query: &EntryQuery) -> Result<Page<Entry>, StoreError> {
        let filter = |sql: &mut QueryBuilder<'_, Sqlite>| {
            if let Some(feed) = &query.feed_url {
                sql.push(" WHERE feed_url = ").push_bind(feed.as_str().to_owned());
            }
        };
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, feed_url, title, link, thumbnail, summary, published_us, fetched_us, COUNT(*) OVER () AS total
             FROM rss_entries",
        );
        filter(&mut sql);
        sql.push(" ORDER BY sort_us DESC, id DESC LIMIT ").push_bind(i64::from(query.page.limit()));
        sql.push(" OFFSET ").push_bind(i64::try_from(query.page.offset()).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(store_error)?;
        let total = match rows.first() {
            Some(row) => count(column(row, "total")?),
            None if query.page.offset() > 0 => {
                let mut total = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM rss_entries");
                filter(&mut total);
                count(total.build_query_scalar().fetch_one(&self.pool).await.map_err(store_error)?)
            }
            None => 0,
        };
        let items = rows.iter().map(decode_entry).collect::<Result<_, _>>()?;
        Ok(Page { items, request: query.page, total })
    }
}

/// Per-feed state on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteFeedStateRepository {
    pool: SqlitePool,
}

impl SqliteFeedStateRepository {
    pub fn new(store: &SqliteStore) -> Self {
        Self { pool: store.pool().clone() }
    }
}

#[async_trait]
impl FeedStateRepository for SqliteFeedStateRepository {
    async fn get(&self, url: &FeedUrl) -> Result<Option<FeedState>, StoreError> {
        let row = sqlx::query(
            "SELECT url, etag, last_modified, consecutive_failures, last_error, last_fetched_us
             FROM rss_feeds WHERE url = ?",
        )
        .bind(url.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|row| {
            Ok(FeedState {
                url: FeedUrl::from_trusted(column(&row, "url")?),
                etag: column(&row, "etag")?,
                last_modified: column(&row, "last_modified")?,
                consecutive_failures: u32::try_from(column::<i64>(&row, "consecutive_failures")?)
                    .unwrap_or(u32::MAX),
                last_error: column(&row, "last_error")?,
                last_fetched_at: column::<Option<i64>>(&row, "last_fetched_us")?
                    .map(|us| from_us(us, "rss_feeds.last_fetched_us"))
                    .transpose()?,
            })
        })
        .transpose()
    }

    async fn record_success<'a>(
        &self,
        url: &FeedUrl,
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rss_feeds (url, etag, last_modified, consecutive_failures, last_error, last_fetched_us)
             VALUES (?, ?, ?, 0, NULL, ?)
             ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
                 consecutive_failures = 0, last_error = NULL, last_fetched_us = excluded.last_fetched_us",
        )
        .bind(url.as_str())
        .bind(etag)
        .bind(last_modified)
        .bind(to_us(now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn record_failure(&self, url: &FeedUrl, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rss_feeds (url, etag, last_modified, consecutive_failures, last_error, last_fetched_us)
             VALUES (?, NULL, NULL, 1, ?, ?)
             ON CONFLICT (url) DO UPDATE SET consecutive_failures = consecutive_failures + 1,
                 last_error = excluded.last_error, last_fetched_us = excluded.last_fetched_us",
        )
        .bind(url.as_str())
        .bind(error)
        .bind(to_us(now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
